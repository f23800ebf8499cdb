"""Build the labelled frame pool and the independent test set of the labels-vs-accuracy benchmark (no AiiDA).

System: ZnBDCdabco (DMOF-1, 54 atoms; RASPA2's CIF read with ``tools.intake.read_cif_atoms``) with 0, 1, 2
and 4 CO2 per unit cell (guests at the emptiest spots, ``common.loading.place_guests``). Labels: GFN1-xTB
from tblite in-process (``engines.xtb.label.run``, the engine behind ``mofmlp-xtb``, as in the demo).

Stages (each cached in ``--workdir``, so that a rerun resumes after the last finished one):

1. ``cells``: the empty and loaded unit cells;
2. ``bootstrap``: rattled copies (0.03 / 0.06 / 0.1 A) of every cell, labelled; the shipped small MOF
   foundation (``resources/foundation``) fine-tuned on them (``engines.mace.train``, naive) is the
   bootstrap model (``--bootstrap-epochs 0``: the foundation as it is);
3. ``sample``: unlabelled frames for the pool: Langevin MD (ASE, 1 fs) with the bootstrap model at
   ``--temperatures`` for every loading; strained cells (isotropic and shear strains, small rattle); rattled
   cells and MD frames; hybrid MD-GCMC of CO2 in the empty framework (``engines.lammps.md.run_md``) at
   ``--gcmc-pressures``; and the test set from independent MD runs (other seeds, ``--test-temperatures``).
   An MD run that blows up (atoms closer than 0.85 A, |F| > 50 eV/A) stops there and drops its last two
   frames; nothing is topped up (``build_info.json`` records every run's status);
4. ``label``: xTB in ``--jobs`` worker processes, in chunks of ``--chunk`` frames (each chunk cached).

Outputs in ``--out``: ``pool.extxyz.gz``, ``test.extxyz.gz``, ``bootstrap.extxyz.gz`` and ``build_info.json``
(the command, the cold wall time of every stage, counts per frame kind, failures, tblite version).

Full cache (>= 2000 pool + >= 200 test frames; the issue-21 run)::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/labels_vs_accuracy/build_pool.py --jobs 2

Tiny cache for the test of the machinery (a few minutes)::

    .venv/bin/python benchmarks/labels_vs_accuracy/build_pool.py --quick --out /tmp/lva_quick
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from ase import Atoms

from aiida_mofmlp.common.frames import read_frames, write_frames

HERE = Path(__file__).resolve().parent
CIF_NAME = "ZnBDCdabco.cif"
LOADINGS = (0, 1, 2, 4)
#: an MD frame with two atoms closer than this (Angstrom) ends the run: the model has failed there
MIN_DISTANCE = 0.85
MAX_FORCE = 50.0
RATTLE_STDEVS = (0.03, 0.06, 0.1)
STRAINS_ISO = (-0.03, -0.02, -0.01, 0.01, 0.02, 0.03)
STRAINS_SHEAR = (-0.02, 0.02)
#: the labeller's settings (engines.xtb.label.DEFAULTS otherwise): GFN1-xTB as in the demo
XTB_SETTINGS: dict[str, Any] = {"method": "GFN1-xTB"}

#: the full build (issue 21) and the tiny one of the test
FULL: dict[str, Any] = {
    "temperatures": [100.0, 200.0, 300.0, 400.0, 500.0, 600.0],
    "frames_per_run": 50,
    "stride": 20,
    "n_strained": 300,
    "n_rattled": 300,
    "gcmc_pressures": [0.1, 1.0, 10.0],
    "gcmc_frames": 100,
    "test_temperatures": [150.0, 350.0, 550.0],
    "test_frames_per_run": 20,
    "n_bootstrap": 24,
    "bootstrap_epochs": 20,
}
QUICK: dict[str, Any] = {
    "temperatures": [300.0],
    "frames_per_run": 3,
    "stride": 5,
    "n_strained": 4,
    "n_rattled": 4,
    "gcmc_pressures": [10.0],
    "gcmc_frames": 4,
    "test_temperatures": [350.0],
    "test_frames_per_run": 1,
    "n_bootstrap": 0,
    "bootstrap_epochs": 0,
}


def cif_path() -> Path:
    """ZnBDCdabco.cif from RASPA2's share directory."""
    import RASPA2

    path = Path(RASPA2.__file__).parent / "share" / "raspa" / "structures" / "cif" / CIF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{CIF_NAME} not found at {path}: is RASPA2 installed (scripts/install.sh)?")
    return path


def co2() -> Atoms:
    """A linear CO2 (C-O 1.16 A)."""
    return Atoms("CO2", positions=[[0.0, 0.0, 0.0], [0.0, 0.0, 1.16], [0.0, 0.0, -1.16]])


def make_cells(loadings: tuple[int, ...] = LOADINGS) -> dict[int, Atoms]:
    """The DMOF-1 unit cell empty and with ``loadings`` CO2 at the emptiest spots (``guest_id`` set)."""
    from aiida_mofmlp.common.loading import empty_framework, place_guests
    from aiida_mofmlp.tools.intake import read_cif_atoms

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        framework = read_cif_atoms(cif_path())[0]
    cells = {}
    for n in loadings:
        cell = empty_framework(framework) if n == 0 else None
        for contact in (2.0, 1.8, 1.6):  # 4 CO2 per cell is a high loading: relax the contact if needed
            if cell is None:
                cell = place_guests(framework, co2(), n, min_contact=contact)
        if cell is None:
            raise RuntimeError(f"could not place {n} CO2 in the {CIF_NAME} unit cell")
        cell.info.update({"loading": n})
        cells[n] = cell
    return cells


def tag(frame: Atoms, kind: str, **info: Any) -> Atoms:
    frame.calc = None
    frame.info.update({"config_type": kind, **info})
    return frame


def rattle(cell: Atoms, stdev: float, rng: np.random.Generator) -> Atoms:
    frame = cell.copy()
    frame.positions = frame.positions + rng.normal(0.0, stdev, frame.positions.shape)
    return frame


def strained(cell: Atoms, rng: np.random.Generator) -> tuple[Atoms, str]:
    """``cell`` under a random isotropic or shear strain (atoms follow), rattled by 0.02 A."""
    strain = np.eye(3)
    if rng.random() < 0.6:
        eps = float(rng.choice(STRAINS_ISO))
        strain *= 1.0 + eps
        label = f"iso{eps:+.2f}"
    else:
        eps = float(rng.choice(STRAINS_SHEAR))
        i, j = rng.choice(3, size=2, replace=False)
        strain[i, j] = strain[j, i] = eps / 2
        label = f"shear{'xyz'[i]}{'xyz'[j]}{eps:+.2f}"
    frame = cell.copy()
    frame.set_cell(cell.cell.array @ strain, scale_atoms=True)
    return rattle(frame, 0.02, rng), label


def label_chunk(task: dict) -> dict:
    """Label one chunk of frames with xTB in ``task['folder']`` (skipped when already labelled)."""
    from aiida_mofmlp.engines.xtb.label import LABELLED_FILE, SUMMARY_FILE, run

    folder = Path(task["folder"])
    if (folder / SUMMARY_FILE).is_file() and (folder / LABELLED_FILE).is_file():
        return json.loads((folder / SUMMARY_FILE).read_text())
    folder.mkdir(parents=True, exist_ok=True)
    write_frames(task["frames"], folder / "frames.extxyz")
    return run({**XTB_SETTINGS, "frames": "frames.extxyz"}, folder)


def label(frames: list[Atoms], folder: Path, jobs: int, chunk: int) -> tuple[list[Atoms], dict]:
    """xTB labels of ``frames`` (input order kept; failed frames dropped) and a summary."""
    from aiida_mofmlp.engines.xtb.label import FAILURES_FILE, LABELLED_FILE

    tasks = [
        {"folder": str(folder / f"chunk_{k:04d}"), "frames": frames[start : start + chunk]}
        for k, start in enumerate(range(0, len(frames), chunk))
    ]
    if jobs > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as executor:
            summaries = list(executor.map(label_chunk, tasks))
    else:
        summaries = [label_chunk(task) for task in tasks]
    out, failures = [], []
    for k, task in enumerate(tasks):
        start = k * chunk
        for atoms in read_frames(Path(task["folder"]) / LABELLED_FILE):
            atoms.info.pop("parent_index", None)
            out.append(atoms)
        for failure in json.loads((Path(task["folder"]) / FAILURES_FILE).read_text()):
            failures.append({**failure, "index": start + int(failure["index"])})
    seconds = float(sum(s["seconds"] for s in summaries))
    return out, {
        "n_frames": len(frames),
        "n_labelled": len(out),
        "n_failed": len(failures),
        "failures": failures,
        "xtb_seconds": round(seconds, 1),
        "program_version": summaries[0]["program_version"] if summaries else None,
    }


def bootstrap_model(frames: list[Atoms], folder: Path, epochs: int, seed: int) -> Path:
    """The shipped foundation, fine-tuned (naive) on ``frames`` for ``epochs`` (0: the foundation itself)."""
    from aiida_mofmlp.common.resources import foundation_files
    from aiida_mofmlp.engines.mace import train as mace_train

    foundation = foundation_files().model
    if epochs <= 0 or not frames:
        return foundation
    model = folder / "bootstrap.model"
    if model.is_file():
        return model
    folder.mkdir(parents=True, exist_ok=True)
    write_frames(frames, folder / "train.extxyz")
    (folder / "foundation.model").write_bytes(foundation.read_bytes())
    config = {
        "train_file": "train.extxyz",
        "foundation_model": "foundation.model",
        "mode": "naive",
        "max_num_epochs": int(epochs),
        "batch_size": 4,
        "lr": 0.005,
        "seed": seed,
        "name": "bootstrap",
        "valid_fraction": 0.15,
        "patience": 50,
        "default_dtype": "float32",
    }
    results = mace_train.train(config, folder)
    if results["status"] != "ok":
        raise RuntimeError(f"bootstrap training {results['status']}: {results.get('message')} ({folder})")
    return model


def run_md(model: Path, cell: Atoms, temperature: float, n_frames: int, stride: int, seed: int):
    """Langevin NVT MD (1 fs) with ``model``; returns the sampled frames and 'ok' or why it stopped."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from aiida_mofmlp.engines.mace.common import mace_calculator

    atoms = cell.copy()
    ids = atoms.arrays["guest_id"].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        atoms.calc = mace_calculator(model, device="cpu", default_dtype="float32")
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    dyn = Langevin(atoms, 1.0 * units.fs, temperature_K=temperature, friction=0.02, rng=rng)
    frames: list[Atoms] = []
    dyn.run(5 * stride)  # equilibrate
    while len(frames) < n_frames:
        dyn.run(stride)
        forces = atoms.get_forces()
        distances = atoms.get_all_distances(mic=True)[np.triu_indices(len(atoms), 1)]
        if (
            distances.min() < MIN_DISTANCE
            or np.abs(forces).max() > MAX_FORCE
            or not np.isfinite(forces).all()
        ):
            return frames[:-2], f"stopped after {len(frames)} frames (min distance {distances.min():.2f} A)"
        frame = atoms.copy()
        frame.calc = None
        frame.set_array("guest_id", ids)
        frames.append(frame)
    return frames, "ok"


def run_gcmc(model: Path, framework: Atoms, pressures: list[float], n_frames: int, folder: Path, seed: int):
    """Hybrid MD-GCMC of CO2 in ``framework`` at 300 K (``engines.lammps.md``); frames and status."""
    from aiida_mofmlp.data.guest import BUILTIN_GUESTS
    from aiida_mofmlp.engines.lammps.md import run_md as lammps_md
    from aiida_mofmlp.engines.lammps.md_settings import RESULTS_FILE, TRAJECTORY_FILE

    folder.mkdir(parents=True, exist_ok=True)
    write_frames([framework], folder / "structure.extxyz")
    guest = co2()
    guest.positions -= guest.get_center_of_mass()
    spec = {k: v for k, v in BUILTIN_GUESTS["CO2"].items() if k.startswith(("critical", "acentric"))}
    spec.update(symbols=guest.get_chemical_symbols(), positions=guest.positions.tolist())
    (folder / "guest.json").write_text(json.dumps(spec))
    dump = 10
    per_pressure = max(1, -(-n_frames // len(pressures)))
    production = per_pressure * dump
    settings = {
        "structure": "structure.extxyz",
        "model": str(model),
        "dtype": "float32",
        "ensemble": "nvt",
        "timestep_fs": 0.5,
        "temperature": 300.0,
        "dump_interval": dump,
        "thermo_interval": dump,
        "seed": 1000 + seed,
        "safety": {"check_interval": dump, "min_distance": MIN_DISTANCE},
        "gcmc": {
            "guest": "guest.json",
            "pressures_bar": [float(p) for p in pressures],
            "equilibration_steps": production // 2,
            "production_steps": production,
            "initial_loading": 1,
        },
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lammps_md(settings, folder)
    status = json.loads((folder / RESULTS_FILE).read_text())
    frames = read_frames(folder / TRAJECTORY_FILE) if (folder / TRAJECTORY_FILE).is_file() else []
    # production frames only: per pressure, the frames after its equilibration (the first third)
    kept = []
    for pressure in pressures:
        group = [f for f in frames if abs(float(f.info.get("pressure", np.nan)) - float(pressure)) < 1e-9]
        for frame in group[len(group) // 3 :][:per_pressure]:
            for key in [k for k in frame.info if k.startswith("MACE_")]:
                del frame.info[key]
            for key in [k for k in frame.arrays if k.startswith("MACE_")]:
                del frame.arrays[key]
            kept.append(frame)
    return kept[:n_frames], status.get("status", "unknown")


def sample(cells: dict[int, Atoms], model: Path, opts: dict, work: Path, info: dict) -> tuple[list, list]:
    """Unlabelled pool and test frames (see the module docstring)."""
    rng = np.random.default_rng(opts["seed"])
    pool: list[Atoms] = []
    md_frames: list[Atoms] = []
    runs: dict[str, str] = {}
    for k, (temperature, n) in enumerate((t, n) for t in opts["temperatures"] for n in cells):
        got, status = run_md(model, cells[n], temperature, opts["frames_per_run"], opts["stride"], k)
        runs[f"T{int(temperature)}_n{n}"] = status
        print(f"[build_pool] MD {temperature:.0f} K, {n} CO2: {len(got)} frames, {status}", flush=True)
        md_frames += [tag(f, "md", temperature=temperature, loading=n, md_run=k) for f in got]
    pool += md_frames
    info["md_runs"] = runs
    loadings = list(cells)
    for index in range(opts["n_strained"]):
        n = loadings[index % len(loadings)]
        frame, how = strained(cells[n], rng)
        pool.append(tag(frame, "strained", loading=n, strain=how))
    parents = [cells[n] for n in loadings] + md_frames
    for _ in range(opts["n_rattled"]):
        parent = parents[int(rng.integers(len(parents)))]
        stdev = float(rng.choice(RATTLE_STDEVS))
        n = int(parent.info["loading"])
        pool.append(tag(rattle(parent, stdev, rng), "rattled", loading=n, rattle_stdev=stdev))
    if opts["gcmc_frames"] > 0:
        got, status = run_gcmc(
            model, cells[0], opts["gcmc_pressures"], opts["gcmc_frames"], work / "gcmc", opts["seed"]
        )
        info["gcmc"] = {"status": status, "n_frames": len(got), "pressures_bar": opts["gcmc_pressures"]}
        print(f"[build_pool] MD-GCMC: {len(got)} frames, {status}", flush=True)
        for frame in got:
            pool.append(tag(frame, "md_gcmc"))
    test: list[Atoms] = []
    test_runs: dict[str, str] = {}
    for k, (temperature, n) in enumerate((t, n) for t in opts["test_temperatures"] for n in cells):
        seed = 100_000 + k  # independent of every pool run
        got, status = run_md(model, cells[n], temperature, opts["test_frames_per_run"], opts["stride"], seed)
        test_runs[f"T{int(temperature)}_n{n}"] = status
        test += [tag(f, "md_test", temperature=temperature, loading=n, md_run=seed) for f in got]
    info["test_md_runs"] = test_runs
    return pool, test


def counts(frames: list[Atoms], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for atoms in frames:
        value = str(atoms.info.get(key))
        out[value] = out.get(value, 0) + 1
    return dict(sorted(out.items()))


def main(argv: list[str] | None = None) -> int:
    t_process = time.monotonic()
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "cache"), help="folder of the cache files")
    parser.add_argument("--workdir", default=None, help="intermediate files (default: OUT/work)")
    parser.add_argument("--quick", action="store_true", help="tiny cache for the test of the machinery")
    parser.add_argument("--jobs", type=int, default=1, help="xTB worker processes (1 core each)")
    parser.add_argument("--chunk", type=int, default=50, help="frames per cached labelling chunk")
    parser.add_argument("--seed", type=int, default=0)
    for key, value in FULL.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, list):
            parser.add_argument(flag, type=float, nargs="+", default=None, help=f"default {value}")
        else:
            parser.add_argument(flag, type=int, default=None, help=f"default {value} (quick {QUICK[key]})")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    opts = {
        key: getattr(args, key) if getattr(args, key) is not None else value for key, value in base.items()
    }
    opts["seed"] = args.seed
    out = Path(args.out)
    work = Path(args.workdir) if args.workdir else out / "work"
    work.mkdir(parents=True, exist_ok=True)
    info_path = work / "build_info.json"
    info: dict[str, Any] = json.loads(info_path.read_text()) if info_path.is_file() else {"timings_s": {}}
    command = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/labels_vs_accuracy/build_pool.py " + shlex.join(
        argv
    )
    info.update(command=command.strip(), settings=opts)

    def stage(name: str, t0: float) -> None:
        info["timings_s"][name] = round(time.monotonic() - t0, 1)
        info_path.write_text(json.dumps(info, indent=1))
        print(f"[build_pool] {name}: {info['timings_s'][name]} s", flush=True)

    t0 = time.monotonic()
    cells_file = work / "cells.extxyz"
    if not cells_file.is_file():
        write_frames(list(make_cells().values()), cells_file)
        stage("cells", t0)
    cells = {int(a.info["loading"]): a for a in read_frames(cells_file)}

    t0 = time.monotonic()
    boot_file = work / "bootstrap_labelled.extxyz"
    if not boot_file.is_file():
        rng = np.random.default_rng(args.seed)
        frames = [
            tag(rattle(cells[n], stdev, rng), "bootstrap", loading=n, rattle_stdev=stdev)
            for index in range(opts["n_bootstrap"])
            for n, stdev in [(LOADINGS[index % len(LOADINGS)], RATTLE_STDEVS[(index // 4) % 3])]
        ]
        boot, info["bootstrap_labelling"] = label(frames, work / "xtb_bootstrap", args.jobs, args.chunk)
        write_frames(boot, boot_file)
        stage("bootstrap_labelling", t0)
    boot = read_frames(boot_file)
    t0 = time.monotonic()
    model = bootstrap_model(boot, work / "bootstrap", opts["bootstrap_epochs"], args.seed)
    if "bootstrap_training" not in info["timings_s"]:
        stage("bootstrap_training", t0)
    info["md_model"] = model.name

    t0 = time.monotonic()
    pool_file, test_file = work / "pool_unlabelled.extxyz", work / "test_unlabelled.extxyz"
    if not (pool_file.is_file() and test_file.is_file()):
        pool, test = sample(cells, model, opts, work, info)
        write_frames(pool, pool_file)
        write_frames(test, test_file)
        stage("sample", t0)
    pool, test = read_frames(pool_file), read_frames(test_file)

    t0 = time.monotonic()
    print(f"[build_pool] labelling {len(pool)} pool + {len(test)} test frames ({args.jobs} jobs)", flush=True)
    pool, info["pool_labelling"] = label(pool, work / "xtb_pool", args.jobs, args.chunk)
    test, info["test_labelling"] = label(test, work / "xtb_test", args.jobs, args.chunk)
    if "label" not in info["timings_s"]:
        stage("label", t0)

    out.mkdir(parents=True, exist_ok=True)
    write_frames(pool, out / "pool.extxyz.gz")
    write_frames(test, out / "test.extxyz.gz")
    write_frames(boot, out / "bootstrap.extxyz.gz")
    info.update(
        n_pool=len(pool),
        n_test=len(test),
        n_bootstrap=len(boot),
        pool_kinds=counts(pool, "config_type"),
        pool_loadings=counts(pool, "loading"),
        test_loadings=counts(test, "loading"),
        cold_wall_s=round(sum(info["timings_s"].values()), 1),  # every stage's first (cold) run
        this_call_wall_s=round(time.monotonic() - t_process, 1),  # this call (less when it resumed)
        method=XTB_SETTINGS["method"],
    )
    info_path.write_text(json.dumps(info, indent=1))
    (out / "build_info.json").write_text(json.dumps(info, indent=1))
    print(f"[build_pool] pool {len(pool)} frames, test {len(test)} frames -> {out}", flush=True)
    return 0


def load_cache(folder: str | Path) -> tuple[list[Atoms], list[Atoms]]:
    """The labelled pool and test frames of a cache folder."""
    folder = Path(folder)
    return read_frames(folder / "pool.extxyz.gz"), read_frames(folder / "test.extxyz.gz")


if __name__ == "__main__":
    sys.exit(main())
