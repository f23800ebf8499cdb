"""Fine-tune a MACE model from a foundation model with ``mace_run_train`` (``mofmlp-train``).

Two modes: ``naive`` (continue training the foundation on the new data) and ``multihead`` (replay
fine-tuning: a ``pt_head`` keeps fitting replay data from the foundation's domain while the
``Default`` head learns the new data, which avoids forgetting). Multihead mode needs a replay file;
the engine refuses to run without one rather than let mace fall back silently to naive fine-tuning
(mace-torch 0.3 behaviour), and checks afterwards that the saved model really has the two heads.

Default schedule (Jin et al., Chem. Sci. 2026, DOI 10.1039/D5SC09058J): stage 1 energy:forces
weights 1:100 at lr 1e-3; stage 2 (mace ``--swa``) weights 10:1 at lr 1e-4 from ``start_stage_two``
(default 3/4 of the epochs); batch 8, weight decay 5e-7, early stopping with patience 10.
``stress_weight`` > 0 adds stress to both stages (Elena et al., npj Comput. Mater. 2025,
DOI 10.1038/s41524-025-01611-8, use 1:10:100): every frame of the training and validation files must
then carry ``REF_stress``, and mace's ``stress`` loss (``universal`` in multihead mode, which mace imposes
there) weights it with ``stress_weight`` in stage one and ``stage_two_stress_weight`` in stage two (mace's
``weighted`` loss would drop the stress). With ``stress_weight`` 0 both stress weights are passed as 0, so
no stress is fitted even where mace's multihead loss would otherwise use its own default weights.

Input file (JSON or YAML); paths are relative to the working directory::

    train_file: train.extxyz          # REF_energy, REF_forces [, REF_stress]
    valid_file: null                  # else valid_fraction of train_file is held out (split by seed)
    valid_fraction: 0.1
    foundation_model: foundation.model  # a model file (or a mace name like "medium", needs internet)
    mode: multihead                   # or naive
    replay_file: replay.extxyz        # multihead only: labelled frames of the foundation's domain
    seed: 0
    name: model
    max_num_epochs: 100
    ... (see TRAIN_DEFAULTS)

Outputs: ``<name>.model`` (the final model; stage-two model when stage two ran), ``results.json``
(status, head to use, species, curves, final train/valid MAE and RMSE of energy per atom (eV/atom)
and forces (eV/A) and, when the frames carry ``REF_stress``, of the stress per Voigt component
(``mae_stress``/``rmse_stress`` in eV/A^3, ``mae_stress_gpa``/``rmse_stress_gpa`` in GPa, ASE sign; see
:func:`aiida_mofmlp.common.metrics.stress_metrics`)), ``curves.npz`` (per-epoch arrays) and
``mace_train.log``.
Exit status: 0 ok, 2 invalid input (before training), 3 training diverged (NaN/inf loss),
4 mace_run_train failed otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aiida_mofmlp.common.frames import STRESS_KEY, read_frames, write_frames
from aiida_mofmlp.common.metrics import STRESS_METRIC_UNITS
from aiida_mofmlp.common.metrics import error_metrics as shared_error_metrics
from aiida_mofmlp.common.serialise import dumps
from aiida_mofmlp.engines.io import read_input
from aiida_mofmlp.engines.mace.common import (
    EXIT_BAD_INPUT,
    EXIT_DIVERGED,
    EXIT_MACE_FAILED,
    InputError,
    has_nonfinite_loss,
    load_model,
    model_species,
    read_results_lines,
    resolve_device,
    run_mace_train,
    species_in_file,
    to_symbols,
)
from aiida_mofmlp.engines.mace.safe_model import save_safe_model

MODES = ("naive", "multihead")
#: mace_run_train flags that name files or folders: the engine sets them from its inputs, not ``extra_args``
PATH_FLAGS = (
    "--train_file",
    "--valid_file",
    "--test_file",
    "--pt_train_file",
    "--pt_valid_file",
    "--foundation_model",
    "--work_dir",
    "--model_dir",
    "--log_dir",
    "--checkpoints_dir",
    "--results_dir",
    "--downloads_dir",
    "--statistics_file",
    "--name",
)


def settings_problem(config: Mapping[str, Any]) -> str | None:
    """Types of the known settings (those of :data:`TRAIN_DEFAULTS`) and the flags of ``extra_args``: a
    message naming the setting, or None. The CalcJob's validator and :func:`validate_config` both use it."""
    from aiida_mofmlp.common.schema import type_problem

    # E0s: "foundation", "average" or {symbol: eV}, so its type is left open
    message = type_problem(config, {**TRAIN_DEFAULTS, "E0s": None}, "parameters")
    if message:
        return message
    for argument in config.get("extra_args") or []:
        if not isinstance(argument, str):
            return f"parameters.extra_args: {argument!r} is not text like '--key=value'"
        flag = argument.split("=", 1)[0].strip()
        if flag in PATH_FLAGS:
            return (
                f"parameters.extra_args: {flag} names a file or folder, which the engine sets from its "
                f"inputs; extra_args may not contain {', '.join(PATH_FLAGS)}"
            )
    return None


TRAIN_DEFAULTS: dict[str, Any] = {
    "valid_file": None,
    "valid_fraction": 0.1,
    "mode": "multihead",
    "replay_file": None,
    "num_samples_replay": 10000,
    "seed": 0,
    "name": "model",
    "max_num_epochs": 100,
    "stage_two": True,
    "start_stage_two": None,  # epoch; None: 3/4 of max_num_epochs
    "energy_weight": 1.0,
    "forces_weight": 100.0,
    "stress_weight": 0.0,
    "lr": 1e-3,
    "stage_two_energy_weight": 10.0,
    "stage_two_forces_weight": 1.0,
    "stage_two_stress_weight": None,  # None: same as stress_weight
    "stage_two_lr": 1e-4,
    "batch_size": 8,
    "valid_batch_size": None,  # None: same as batch_size
    "weight_decay": 5e-7,
    "patience": 10,
    "ema": True,
    "ema_decay": 0.99,
    "E0s": "foundation",
    "device": "auto",
    "default_dtype": "float64",
    "eval_interval": 1,
    "extra_args": [],
}


def validate_config(config: Mapping[str, Any], work_dir: Path) -> dict[str, Any]:
    """Fill defaults and check the inputs; raise :class:`InputError` with a precise message."""
    required = ("train_file", "foundation_model")
    unknown = sorted(set(config) - set(TRAIN_DEFAULTS) - set(required))
    if unknown:
        raise InputError(
            f"unknown training input keys {unknown}; valid: {sorted([*required, *TRAIN_DEFAULTS])}"
        )
    missing = [key for key in required if not config.get(key)]
    if missing:
        raise InputError(f"the training input needs {missing}")
    problem = settings_problem(config)
    if problem:
        raise InputError(problem)
    full = {**TRAIN_DEFAULTS, **config}
    if full["mode"] not in MODES:
        raise InputError(f"mode {full['mode']!r} is not valid; valid: {list(MODES)}")
    for key in ("train_file", "valid_file", "replay_file"):
        if full[key] is not None and not (work_dir / full[key]).is_file():
            raise InputError(f"{key} {full[key]!r} does not exist")
    if full["mode"] == "multihead" and not full["replay_file"]:
        raise InputError(
            "mode 'multihead' needs `replay_file` (labelled frames of the foundation's domain); without it "
            "mace_run_train silently falls back to naive fine-tuning. Give a replay file or use mode 'naive'."
        )
    if full["mode"] == "naive" and full["replay_file"]:
        raise InputError("replay_file is only used in mode 'multihead'; remove it or set mode: multihead")
    for key in (
        "energy_weight",
        "forces_weight",
        "stress_weight",
        "stage_two_energy_weight",
        "stage_two_forces_weight",
    ):
        if float(full[key]) < 0:
            raise InputError(f"{key}={full[key]!r} must be >= 0")
    if full["stage_two_stress_weight"] is not None and float(full["stage_two_stress_weight"]) < 0:
        raise InputError(
            f"stage_two_stress_weight={full['stage_two_stress_weight']!r} must be >= 0 "
            "(or null: the same as stress_weight)"
        )
    if float(full["stress_weight"]) == 0 and full["stage_two_stress_weight"]:
        raise InputError(
            f"stage_two_stress_weight={full['stage_two_stress_weight']!r} needs stress_weight > 0 (stress is "
            "trained in both stages or in neither); set stress_weight or remove stage_two_stress_weight"
        )
    for key in ("lr", "stage_two_lr", "batch_size", "max_num_epochs", "patience"):
        if float(full[key]) <= 0:
            raise InputError(f"{key}={full[key]!r} must be > 0")
    if not 0 < float(full["valid_fraction"]) < 1:
        raise InputError(f"valid_fraction={full['valid_fraction']!r} must be between 0 and 1")
    if not isinstance(full["extra_args"], list):
        raise InputError("extra_args must be a list of mace_run_train arguments like '--key=value'")
    return full


def unpack_for_mace(safe_path: Path, target: Path) -> Path:
    """The safe-form model at ``safe_path`` as the pickled module ``mace_run_train --foundation_model`` reads.

    Written by this job from weights and mace's own classes, so the pickle mace opens holds nothing else.
    """
    import torch

    torch.save(load_model(safe_path), str(target))
    return target


def check_species(foundation: Path, files: Sequence[Path]) -> list[int]:
    """Raise when the data hold elements the foundation model lacks; return the data's atomic numbers."""
    known = set(model_species(foundation))
    present: set[int] = set()
    for path in files:
        present.update(species_in_file(path))
    missing = sorted(present - known)
    if missing:
        raise InputError(
            f"the training data contain {to_symbols(missing)}, which the foundation model {foundation.name} "
            f"does not know (its species: {to_symbols(sorted(known))}); use a foundation model covering them"
        )
    return sorted(present)


def check_stress_labels(files: Mapping[str, Path], stress_weight: float) -> None:
    """Raise when ``stress_weight`` > 0 but frames of ``files`` (input key -> path) lack ``REF_stress``."""
    if stress_weight <= 0:
        return
    lacking = []
    for key, path in files.items():
        frames = read_frames(path)
        missing = sum(STRESS_KEY not in atoms.info for atoms in frames)
        if missing:
            lacking.append(f"{missing} of {len(frames)} frames of {key} {path.name}")
    if lacking:
        raise InputError(
            f"stress_weight={stress_weight!r} trains on stress, but {' and '.join(lacking)} lack "
            f"{STRESS_KEY}; label them with the stress (e.g. compute_stress: true) or set stress_weight: 0"
        )


def split_train_valid(train_file: Path, valid_fraction: float, seed: int, folder: Path) -> tuple[Path, Path]:
    """Write a reproducible random train/valid split of ``train_file`` into ``folder``."""
    frames = read_frames(train_file)
    if len(frames) < 2:
        raise InputError(
            f"train_file {train_file.name} has {len(frames)} frame(s); need >= 2 to hold out validation"
        )
    order = np.random.default_rng(seed).permutation(len(frames))
    n_valid = min(len(frames) - 1, max(1, round(valid_fraction * len(frames))))
    valid = [frames[i] for i in sorted(order[:n_valid])]
    train = [frames[i] for i in sorted(order[n_valid:])]
    write_frames(train, folder / "train_split.extxyz")
    write_frames(valid, folder / "valid_split.extxyz")
    return folder / "train_split.extxyz", folder / "valid_split.extxyz"


def build_train_argv(
    full: Mapping[str, Any], foundation: str, train: Path, valid: Path, replay: Path | None, mace_dir: Path
) -> list[str]:
    """The ``mace_run_train`` command line for a fine-tuning run (see the module docstring on stress)."""
    stress = float(full["stress_weight"]) > 0
    stage_two_stress = full["stage_two_stress_weight"]
    if stage_two_stress is None or not stress:
        stage_two_stress = full["stress_weight"]
    batch = int(full["batch_size"])
    argv = [
        f"--name={full['name']}",
        f"--foundation_model={foundation}",
        f"--train_file={train}",
        f"--valid_file={valid}",
        f"--seed={int(full['seed'])}",
        f"--max_num_epochs={int(full['max_num_epochs'])}",
        f"--batch_size={batch}",
        f"--valid_batch_size={int(full['valid_batch_size'] or batch)}",
        f"--lr={float(full['lr'])}",
        f"--weight_decay={float(full['weight_decay'])}",
        f"--patience={int(full['patience'])}",
        f"--energy_weight={float(full['energy_weight'])}",
        f"--forces_weight={float(full['forces_weight'])}",
        f"--stress_weight={float(full['stress_weight'])}",
        f"--loss={'stress' if stress else 'weighted'}",
        "--energy_key=REF_energy",
        "--forces_key=REF_forces",
        "--stress_key=REF_stress",
        f"--E0s={full['E0s']}",
        f"--device={resolve_device(full['device'])}",
        f"--default_dtype={full['default_dtype']}",
        f"--eval_interval={int(full['eval_interval'])}",
        "--error_table=PerAtomMAE",
        "--plot=False",  # mace's own parity plots (an extra evaluation per stage); curves.npz has the curves
        "--save_cpu",
        f"--work_dir={mace_dir}",
        f"--model_dir={mace_dir}",
        f"--log_dir={mace_dir / 'logs'}",
        f"--checkpoints_dir={mace_dir / 'checkpoints'}",
        f"--results_dir={mace_dir / 'results'}",
    ]
    if full["ema"]:
        argv += ["--ema", f"--ema_decay={float(full['ema_decay'])}"]
    if full["stage_two"]:
        argv += [
            "--swa",
            f"--swa_energy_weight={float(full['stage_two_energy_weight'])}",
            f"--swa_forces_weight={float(full['stage_two_forces_weight'])}",
            f"--swa_lr={float(full['stage_two_lr'])}",
            f"--swa_stress_weight={float(stage_two_stress)}",
        ]
        if full["start_stage_two"] is not None:
            argv.append(f"--start_swa={int(full['start_stage_two'])}")
    if full["mode"] == "multihead":
        argv += [
            "--multiheads_finetuning=True",
            f"--pt_train_file={replay}",
            f"--num_samples_pt={int(full['num_samples_replay'])}",
            "--force_mh_ft_lr=True",  # keep the schedule's lr instead of mace's fixed 1e-4
        ]
    else:
        argv.append("--multiheads_finetuning=False")
    argv += [str(arg) for arg in full["extra_args"]]
    return argv


def error_metrics(model_path: Path, frames_path: Path, head: str | None, device: str) -> dict[str, float]:
    """MAE and RMSE of energy per atom (eV/atom), force components (eV/A) and stress of a model on frames.

    Frames without an energy (forces) label are left out of the energy (force) errors; ``n_frames``
    counts every frame of the file. The stress errors (``n_frames_stress``, ``mae_stress``, ``rmse_stress``
    in eV/A^3, ``mae_stress_gpa``, ``rmse_stress_gpa`` in GPa) are added when periodic frames carry
    ``REF_stress``, over those frames only. See :mod:`aiida_mofmlp.common.metrics`.
    """
    from aiida_mofmlp.common.frames import get_energy, get_forces
    from aiida_mofmlp.engines.mace.deviation import _Ensemble

    frames = read_frames(frames_path)
    ensemble = _Ensemble([model_path], "float64", device, head)
    ref_e, pred_e, n_atoms, ref_f, pred_f, ref_s, pred_s = [], [], [], [], [], [], []
    for start in range(0, len(frames), 8):
        batch = frames[start : start + 8]
        with_stress = [STRESS_KEY in atoms.info and bool(np.all(atoms.pbc)) for atoms in batch]
        forces, energies, stresses = ensemble.predict(batch, compute_stress=any(with_stress))
        offset = 0
        for column, atoms in enumerate(batch):
            n = len(atoms)
            reference_energy, reference_forces = get_energy(atoms), get_forces(atoms)
            if reference_energy is not None:
                ref_e.append(reference_energy)
                pred_e.append(energies[0, column])
                n_atoms.append(n)
            if reference_forces is not None:
                ref_f.append(reference_forces)
                pred_f.append(forces[0, offset : offset + n])
            if with_stress[column] and stresses is not None:
                ref_s.append(atoms.info[STRESS_KEY])
                pred_s.append(stresses[0, column])
            offset += n
    stress = {"ref_stress": ref_s, "pred_stress": pred_s} if ref_s else {}
    metrics = shared_error_metrics(ref_e, pred_e, n_atoms, ref_f, pred_f, **stress)
    result = {
        "mae_e_per_atom": metrics["mae_e_per_atom"],
        "rmse_e_per_atom": metrics["rmse_e_per_atom"],
        "mae_f": metrics["mae_f"],
        "rmse_f": metrics["rmse_f"],
        "n_frames": len(frames),
    }
    if stress:
        result.update({key: metrics[key] for key in ("n_frames_stress", *STRESS_METRIC_UNITS)})
    return result


def curves_from_rows(rows: list[dict[str, Any]], head: str) -> dict[str, np.ndarray]:
    """Per-epoch arrays: training loss (mean over optimiser steps) and validation metrics of ``head``."""
    train_loss: dict[int, list[float]] = {}
    for row in rows:
        if row.get("mode") == "opt" and row.get("epoch") is not None:
            train_loss.setdefault(int(row["epoch"]), []).append(float(row["loss"]))
    evals = [
        row
        for row in rows
        if row.get("mode") == "eval" and row.get("epoch") is not None and row.get("head", head) == head
    ]
    curves = {
        "epoch": np.asarray([int(row["epoch"]) for row in evals], dtype=int),
        "train_loss": np.asarray([np.mean(train_loss.get(int(row["epoch"]), [np.nan])) for row in evals]),
    }
    keys = ["loss", "mae_e_per_atom", "rmse_e_per_atom", "mae_f", "rmse_f"]
    # mace's own stress error (over the 9 entries of the 3x3 tensor, eV/A^3) when it trained on stress
    keys += [key for key in ("mae_stress", "rmse_stress") if any(row.get(key) is not None for row in evals)]
    for key in keys:
        curves[f"valid_{key}"] = np.asarray([float(row.get(key, np.nan)) for row in evals])
    return curves


def draw_replay(replay: Path, n_samples: int, seed: int, out_dir: Path) -> Path:
    """``replay`` itself, or a seeded random draw of ``n_samples`` of its frames written into ``out_dir``.

    mace_run_train applies its own ``--num_samples_pt`` only to the Materials Project replay data, so a
    replay file of our own is cut to ``num_samples_replay`` here: an epoch's cost grows with the replay size.
    """
    frames = read_frames(replay)
    if len(frames) <= n_samples:
        return replay
    picked = np.sort(np.random.default_rng(seed).choice(len(frames), size=n_samples, replace=False))
    target = out_dir / "replay_draw.extxyz"
    write_frames([frames[i] for i in picked], target)
    return target


def train(config: Mapping[str, Any], work_dir: str | Path = ".") -> dict[str, Any]:
    """Run a fine-tuning as described by ``config`` in ``work_dir``; return (and write) the results."""
    work_dir = Path(work_dir).resolve()
    full = validate_config(config, work_dir)
    train_file = work_dir / full["train_file"]
    labelled = {"train_file": train_file}
    if full["valid_file"]:
        labelled["valid_file"] = work_dir / full["valid_file"]
    check_stress_labels(labelled, float(full["stress_weight"]))
    mace_dir = work_dir / "mace"
    mace_dir.mkdir(parents=True, exist_ok=True)
    replay = work_dir / full["replay_file"] if full["replay_file"] else None
    if replay is not None:
        replay = draw_replay(replay, int(full["num_samples_replay"]), int(full["seed"]), mace_dir)
    foundation_path = work_dir / full["foundation_model"]
    if foundation_path.is_file():
        files = [train_file] + ([work_dir / full["valid_file"]] if full["valid_file"] else [])
        species = check_species(foundation_path, files)
        foundation = str(unpack_for_mace(foundation_path, mace_dir / "foundation_unpacked.model"))
    elif "/" in str(full["foundation_model"]) or str(full["foundation_model"]).endswith(".model"):
        raise InputError(f"foundation_model file {full['foundation_model']!r} does not exist")
    else:  # a name that mace resolves (downloads); cannot be checked offline
        foundation = str(full["foundation_model"])
        species = species_in_file(train_file)
    if full["valid_file"]:
        train_path, valid_path = train_file, work_dir / full["valid_file"]
    else:
        train_path, valid_path = split_train_valid(
            train_file, float(full["valid_fraction"]), int(full["seed"]), mace_dir
        )
    argv = build_train_argv(full, foundation, train_path, valid_path, replay, mace_dir)
    log_path = work_dir / "mace_train.log"
    status = run_mace_train(argv, log_path)
    rows = read_results_lines(mace_dir / "results")
    log_text = log_path.read_text(errors="replace")
    head = "Default"
    results: dict[str, Any] = {
        "mode": full["mode"],
        "seed": int(full["seed"]),
        "returncode": status,
        "argv": argv,
        "species": to_symbols(species),
        "units": {"energy_per_atom": "eV/atom", "forces": "eV/Angstrom"},
        "head": head,
    }
    if has_nonfinite_loss(rows, log_text):
        results["status"] = "diverged"
        results["message"] = "a training or validation loss became NaN/inf"
    elif status != 0:
        results["status"] = "failed"
        results["message"] = f"mace_run_train exited with status {status}; see mace_train.log"
    else:
        results.update(_collect_model(full, mace_dir, work_dir, train_path, valid_path, log_text))
    curves = curves_from_rows(rows, head)
    np.savez(work_dir / "curves.npz", **curves)
    results["curves"] = {key: value.tolist() for key, value in curves.items()}
    (work_dir / "results.json").write_text(dumps(results, fallback=str, indent=1))
    return results


def _collect_model(
    full: Mapping[str, Any], mace_dir: Path, work_dir: Path, train_path: Path, valid_path: Path, log_text: str
) -> dict[str, Any]:
    name = full["name"]
    stage_two = mace_dir / f"{name}_stagetwo.model"
    source = stage_two if stage_two.is_file() else mace_dir / f"{name}.model"
    if not source.is_file():
        return {"status": "failed", "message": f"mace_run_train finished but wrote no {source.name}"}
    target = work_dir / f"{name}.model"
    # mace's own output of this job, re-written in the safe form (weights + JSON architecture)
    model = load_model(source, trusted=True)
    save_safe_model(model, target)
    heads = list(getattr(model, "heads", None) or ["Default"])
    out: dict[str, Any] = {"model": target.name, "heads": heads, "stage_two": stage_two.is_file()}
    if full["mode"] == "multihead" and (
        "pt_head" not in heads or "Using multiheads finetuning" not in log_text
    ):
        out.update(
            status="failed",
            message=f"multihead fine-tuning was requested but the model has heads {heads} (naive fallback)",
        )
        return out
    device = resolve_device(full["device"])
    out["metrics"] = {
        "train": error_metrics(target, train_path, "Default", device),
        "valid": error_metrics(target, valid_path, "Default", device),
    }
    if any("mae_stress" in split for split in out["metrics"].values()):
        out["units"] = {"energy_per_atom": "eV/atom", "forces": "eV/Angstrom", **STRESS_METRIC_UNITS}
    finite = all(np.isfinite(value) for split in out["metrics"].values() for value in split.values())
    out["status"] = "ok" if finite else "diverged"
    if not finite:
        out["message"] = "the trained model predicts NaN/inf"
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry ``mofmlp-train INPUT``."""
    parser = argparse.ArgumentParser(prog="mofmlp-train", description=__doc__.splitlines()[0])
    parser.add_argument("input", help="JSON/YAML input file (see module docs)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported: one thread unless told
    try:
        results = train(read_input(args.input), ".")
    except InputError as error:
        print(f"mofmlp-train: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"mofmlp-train: {results['status']} {results.get('message', '')}".rstrip())
    if results["status"] == "diverged":
        return EXIT_DIVERGED
    return 0 if results["status"] == "ok" else EXIT_MACE_FAILED


if __name__ == "__main__":
    sys.exit(main())
