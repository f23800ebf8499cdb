"""Regenerate the stored engine outputs parsed by ``tests/parsers/test_engine_parsers.py``.

Runs each engine's console script on the toy data (``aiida_mofmlp.engines.mace.toy``) in a scratch
directory, with its standard error captured as ``stderr.txt`` (as the CalcJobs do), and copies the
retrieved files into ``<engine>/ok`` (a finished run) and ``<engine>/rejected`` (the engine refused its
input). Run from the repository root: ``python tests/parsers/data/generate_outputs.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from aiida_mofmlp.common.frames import write_frames
from aiida_mofmlp.engines.mace.foundation import make_small_model
from aiida_mofmlp.engines.mace.toy import TOY_SPECIES, build_tiny_model, label_with_model, toy_frames

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent
E0S = {"H": -1.0, "C": -2.0, "O": -3.0, "Zn": -4.0}


def run_engine(script: str, workdir: Path, config: dict, retrieve: list[str], target: Path) -> None:
    """Run ``script input.<json|yaml>`` in ``workdir``; copy the files of ``retrieve`` into ``target``."""
    name = "input.yaml" if script in ("mofmlp-md", "mofmlp-select") else "input.json"
    text = yaml.safe_dump(config) if name.endswith(".yaml") else json.dumps(config)
    (workdir / name).write_text(text)
    with open(workdir / "stdout.txt", "w") as out, open(workdir / "stderr.txt", "w") as err:
        status = subprocess.run([str(BIN / script), name], cwd=workdir, stdout=out, stderr=err).returncode
    print(f"{script} -> exit status {status} in {workdir}")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for filename in ["stdout.txt", "stderr.txt", *retrieve]:
        if (workdir / filename).is_file():
            shutil.copy(workdir / filename, target / filename)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # --- deviation: 2 random models on 4 toy frames -------------------------------------------
        work = tmp / "deviation"
        work.mkdir()
        for seed in range(2):
            make_small_model(TOY_SPECIES, work / f"model_{seed}.model", seed=seed)
        frames = toy_frames(4, seed=5, max_guests=1)
        write_frames(frames, work / "frames.extxyz")
        shutil.copy(work / "frames.extxyz", HERE / "deviation" / "frames.extxyz")  # the input set
        config = {"models": ["model_0.model", "model_1.model"], "frames": "frames.extxyz"}
        retrieve = ["deviation.npz", "deviation.json"]
        run_engine("mofmlp-deviation", work, config, retrieve, HERE / "deviation" / "ok")
        rejected = tmp / "deviation_rejected"
        shutil.copytree(work, rejected)
        for name in retrieve:
            (rejected / name).unlink()
        run_engine(
            "mofmlp-deviation", rejected, {**config, "batch": 2}, retrieve, HERE / "deviation" / "rejected"
        )

        # --- md: 20 NVT steps of a toy frame with the tiny ZBL model, a frame every 10 steps ----------
        work = tmp / "md"
        work.mkdir()
        build_tiny_model(list(TOY_SPECIES), work / "model.model")
        write_frames(frames[1:2], work / "structure.extxyz")
        config = {
            "structure": "structure.extxyz",
            "model": "model.model",
            "ensemble": "nvt",
            "steps": 20,
            "temperature": 300.0,
            "dump_interval": 10,
            "thermo_interval": 5,
        }
        retrieve = ["results.json", "trajectory.extxyz", "thermo.npz"]
        run_engine("mofmlp-md", work, config, retrieve, HERE / "lammps_md" / "ok")
        rejected = tmp / "md_rejected"
        rejected.mkdir()
        shutil.copy(work / "model.model", rejected)
        shutil.copy(work / "structure.extxyz", rejected)
        run_engine(
            "mofmlp-md", rejected, {**config, "ensemble": "nvx"}, retrieve, HERE / "lammps_md" / "rejected"
        )

        # --- train: 2 epochs of naive fine-tuning on 6 frames labelled by a random teacher ------------
        work = tmp / "train"
        work.mkdir()
        teacher = make_small_model(TOY_SPECIES, tmp / "teacher.model", seed=7, scale=5.0, e0s=E0S)
        # a small foundation keeps the stored model.model small
        make_small_model(
            TOY_SPECIES, work / "foundation.model", seed=0, e0s=E0S, num_channels=4, num_interactions=1
        )
        write_frames(label_with_model(toy_frames(6, seed=1), teacher), work / "train.extxyz")
        write_frames(label_with_model(toy_frames(3, seed=2), teacher), work / "valid.extxyz")
        config = {
            "train_file": "train.extxyz",
            "valid_file": "valid.extxyz",
            "foundation_model": "foundation.model",
            "mode": "naive",
            "max_num_epochs": 2,
            "batch_size": 3,
            "name": "model",
        }
        retrieve = ["results.json", "curves.npz", "mace_train.log", "model.model"]
        run_engine("mofmlp-train", work, config, retrieve, HERE / "mace_train" / "ok")
        rejected = tmp / "train_rejected"
        rejected.mkdir()
        for name in ("foundation.model", "train.extxyz", "valid.extxyz"):
            shutil.copy(work / name, rejected)
        run_engine(
            "mofmlp-train", rejected, {**config, "epochs": 2}, retrieve, HERE / "mace_train" / "rejected"
        )

        # --- select: k-means on SOAP of 8 toy frames, 3 selected, PCA map ------------------------------
        work = tmp / "select"
        work.mkdir()
        write_frames(toy_frames(8, seed=3), work / "pool.extxyz")
        config = {
            "pool": "pool.extxyz",
            "method": "kmeans",
            "n_select": 3,
            "soap": {"r_cut": 3.5, "n_max": 2, "l_max": 1, "species": list(TOY_SPECIES)},
        }
        retrieve = ["selected.json", "selected.extxyz", "map.npz", "map.png"]
        run_engine("mofmlp-select", work, config, retrieve, HERE / "select" / "ok")
        rejected = tmp / "select_rejected"
        rejected.mkdir()
        shutil.copy(work / "pool.extxyz", rejected)
        run_engine(
            "mofmlp-select", rejected, {**config, "n_clusters": 3}, retrieve, HERE / "select" / "rejected"
        )


if __name__ == "__main__":
    main()
