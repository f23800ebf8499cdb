"""Build (once) the labelled frame pool and the held-out test set of the labels-vs-accuracy benchmark.

System: ZnBDCdabco (DMOF-1, 54 atoms, closed shell) empty and with 1 or 2 CO2 per unit cell; reference
labels from the ``fast`` CP2K protocol (GFN1-xTB) through ``LabellingWorkChain`` in the AiiDA profile
``mofmlp`` (``aiida.engine.run``, no daemon). There is no foundation model offline, so the pool is
bootstrapped:

1. ``raspa``: canonical-MC CO2 snapshots (``IsothermWorkChain``, snapshot mode) folded into the unit cell
   (``fold_guests``; ``place_guests`` when the guests do not fit);
2. ``bootstrap``: rattled copies of the empty and loaded cells, labelled with CP2K;
3. ``model``: a small MACE model (``make_small_model`` + ``mace_train`` naive fine-tuning) on them;
4. ``md``: Langevin MD with that model (ASE) at 300 and 500 K for 0, 1 and 2 CO2 per cell; frames are
   sampled at a fixed stride, every ``--test-every``-th frame goes to the test set. A run that blows up
   (atoms closer than 0.85 Angstrom or forces above 50 eV/Angstrom) stops there; its last two frames are
   dropped and the run is topped up with rattled copies (0.03, 0.06 or 0.1 Angstrom) of its earlier frames
   or of the start cell (documented in ``build_info.json`` and the frames' ``config_type``);
5. ``label``: one ``LabellingWorkChain`` over pool + test frames.

Outputs in this folder: ``pool.extxyz.gz``, ``test.extxyz.gz``, ``bootstrap.extxyz.gz`` and
``build_info.json`` (sizes, timings, process pks). Intermediate files go to ``--workdir`` so that a
rerun resumes after the last finished stage. Rebuild (about 40 min on 2 CPU cores)::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/labels_vs_accuracy/build_pool.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

HERE = Path(__file__).resolve().parent

from _common import MODEL_SETTINGS, read_gz, write_gz  # noqa: E402

from aiida_mofmlp.workflows.cp2k.inputs import smeared_scf_overrides  # noqa: E402

CIF_NAME = "ZnBDCdabco.cif"
#: an MD frame with two atoms closer than this (Angstrom) ends the run: the young model has failed there
MIN_DISTANCE = 0.85
#: rattle amplitudes (Angstrom) of the fallback frames that top up a run that blew up
TOPUP_STDEVS = (0.03, 0.06, 0.1)

#: SCF settings deep-merged into the ``fast`` protocol for every frame: with the protocol's direct P mixing
#: the SCF of loaded frames oscillates (100 steps, +-5 Ha) and only the work chain's second escalation stage
#: (diagonalisation, Fermi-Dirac smearing at 300 K, Broyden mixing) converges. Using those settings from the
#: start makes every label come from the same SCF recipe and avoids two wasted runs per frame.
SCF_OVERRIDES = smeared_scf_overrides(alpha=0.1)


def cif_path() -> Path:
    """ZnBDCdabco.cif from RASPA2's share directory."""
    import RASPA2

    path = Path(RASPA2.__file__).parent / "share" / "raspa" / "structures" / "cif" / CIF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{CIF_NAME} not found at {path}: is RASPA2 installed (scripts/install.sh)?")
    return path


def _ids(atoms, ids) -> Any:
    atoms.set_array("guest_id", np.asarray(ids, dtype=int))
    return atoms


def loaded_cells(framework, guest, loadings: list[int], seed: int, info: dict) -> dict[int, Any]:
    """Unit cells with 0 and ``loadings`` CO2 from RASPA snapshots (fallback: emptiest spots)."""
    from aiida.engine import run_get_node
    from aiida.orm import StructureData, load_code

    from aiida_mofmlp.common.codes import code_label
    from aiida_mofmlp.common.loading import fold_guests, place_guests
    from aiida_mofmlp.workflows.raspa.isotherm import IsothermWorkChain

    structure = StructureData(ase=framework).store()
    overrides = {
        "cutoff": 8.0,
        "run_widom": False,
        "run_isotherm": False,
        "snapshot_loadings": list(loadings),
        "snapshot_init_cycles": 20,
        "snapshot_cycles": 2,
        "equilibration_tolerance": None,
        "seed": seed,
    }
    builder = IsothermWorkChain.get_builder_from_protocol(
        load_code(code_label("raspa")), structure, guest, protocol="fast", overrides=overrides
    )
    results, node = run_get_node(builder)
    info["raspa_pk"] = node.pk
    cells = {0: _ids(framework.copy(), np.zeros(len(framework), dtype=int))}
    snapshots = list(results["snapshots"].iter_frames()) if node.is_finished_ok else []
    info["raspa_ok"] = bool(node.is_finished_ok)
    how = {}
    for index, loading in enumerate(loadings):
        cell = fold_guests(framework, snapshots[index], loading) if index < len(snapshots) else None
        how[loading] = "raspa"
        if cell is None:
            cell = place_guests(framework, guest.get_ase(), loading)
            how[loading] = "free_spot"
        cells[loading] = cell
    info["guest_placement"] = how
    return cells


def rattled(cell, n: int, stdev: float, rng: np.random.Generator, tag: str) -> list[Any]:
    out = []
    for _ in range(n):
        frame = cell.copy()
        frame.positions = frame.positions + rng.normal(0.0, stdev, frame.positions.shape)
        frame.info.update({"config_type": tag})
        out.append(frame)
    return out


def label(frames: list[Any], info: dict, key: str) -> list[Any]:
    """CP2K fast-protocol (GFN1-xTB) energies and forces, in input order; drops failed frames."""
    from aiida.engine import run_get_node
    from aiida.orm import load_code

    from aiida_mofmlp.common.codes import code_label
    from aiida_mofmlp.data import StructureSetData
    from aiida_mofmlp.workflows.cp2k.labelling import LabellingWorkChain

    for index, frame in enumerate(frames):
        frame.info["pool_index"] = index
    node_in = StructureSetData.from_frames(frames).store()
    builder = LabellingWorkChain.get_builder_from_protocol(
        load_code(code_label("cp2k")),
        node_in,
        protocol="fast",
        overrides=SCF_OVERRIDES,
        max_concurrent=2,
        max_failed_fraction=0.3,
    )
    results, node = run_get_node(builder)
    info[f"{key}_labelling_pk"] = node.pk
    if "labelled" not in results:
        raise RuntimeError(f"LabellingWorkChain<{node.pk}> gave no labelled frames: {node.exit_message}")
    out = sorted(results["labelled"].get_frames(), key=lambda atoms: int(atoms.info["pool_index"]))
    info[f"{key}_failed"] = len(frames) - len(out)
    return out


def train_bootstrap(frames: list[Any], workdir: Path, seed: int) -> Path:
    from aiida_mofmlp.common.frames import composition_e0s, write_frames
    from aiida_mofmlp.engines.mace import train as mace_train
    from aiida_mofmlp.engines.mace.foundation import make_small_model

    workdir.mkdir(parents=True, exist_ok=True)
    species = sorted({s for atoms in frames for s in atoms.get_chemical_symbols()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e0s = composition_e0s(frames)
        make_small_model(species, workdir / "start.model", seed=seed, e0s=e0s, **MODEL_SETTINGS)
    write_frames(frames, workdir / "train.extxyz")
    config = {
        "train_file": "train.extxyz",
        "foundation_model": "start.model",
        "mode": "naive",
        "max_num_epochs": 100,
        "batch_size": 4,
        "lr": 0.01,
        "seed": seed,
        "name": "bootstrap",
        "valid_fraction": 0.15,
        "energy_weight": 1.0,
        "forces_weight": 10.0,  # 1:100 let the per-atom energy drift by ~2 eV/atom on 10 frames
        "patience": 50,
    }
    results = mace_train.train(config, workdir)
    if results["status"] != "ok":
        raise RuntimeError(f"bootstrap training {results['status']}: {results.get('message')} ({workdir})")
    return workdir / "bootstrap.model"


def run_md(model: Path, cell, temperature: float, n_frames: int, stride: int, seed: int) -> tuple[list, str]:
    """Langevin NVT MD (1 fs) with ``model``; returns the sampled frames and 'ok' or why it stopped."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from mace.calculators import MACECalculator

    atoms = cell.copy()
    ids = atoms.arrays["guest_id"].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        atoms.calc = MACECalculator(model_paths=str(model), device="cpu", default_dtype="float64")
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    dyn = Langevin(atoms, 1.0 * units.fs, temperature_K=temperature, friction=0.02, rng=rng)
    frames: list = []
    dyn.run(5 * stride)  # equilibrate
    while len(frames) < n_frames:
        dyn.run(stride)
        forces = atoms.get_forces()
        distances = atoms.get_all_distances(mic=True)[np.triu_indices(len(atoms), 1)]
        if distances.min() < MIN_DISTANCE or np.abs(forces).max() > 50 or not np.isfinite(forces).all():
            return frames, f"stopped after {len(frames)} frames (min distance {distances.min():.2f} A)"
        frame = atoms.copy()
        frame.calc = None
        frame.set_array("guest_id", ids)
        frames.append(frame)
    return frames, "ok"


def round_robin(frames: list) -> list[int]:
    """Frame indices taking one frame of every MD run in turn: any prefix covers all runs evenly."""
    runs: dict[int, list[int]] = {}
    for index, atoms in enumerate(frames):
        runs.setdefault(int(atoms.info["md_run"]), []).append(index)
    order = []
    for position in range(max(len(members) for members in runs.values())):
        order += [members[position] for members in runs.values() if position < len(members)]
    return order


def salvage(pk: int, md_frames: list) -> list:
    """Frames that a (killed) ``LabellingWorkChain<pk>`` over ``md_frames`` (or a subset) finished."""
    from aiida import orm

    node = orm.load_node(pk)
    inputs = node.inputs.structures.get_frames()
    out = []
    for call in node.called:
        if call.process_label != "label_frames" or "result" not in call.outputs:
            continue
        for atoms in call.outputs.result.get_frames():
            source = inputs[int(atoms.info["parent_index"])]
            index = int(source.info.get("md_index", source.info["pool_index"]))
            if not np.allclose(md_frames[index].positions, atoms.positions, atol=1e-6):
                raise ValueError(f"LabellingWorkChain<{pk}> frame {index} does not match md_frames.extxyz")
            atoms.info["md_index"] = index
            out.append(atoms)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/lva_build", help="intermediate files (resume point)")
    parser.add_argument("--frames-per-run", type=int, default=32, help="MD frames per (T, loading) run")
    parser.add_argument("--stride", type=int, default=20, help="MD steps between frames (1 fs steps)")
    parser.add_argument("--test-every", type=int, default=5, help="every n-th MD frame goes to the test set")
    parser.add_argument("--n-bootstrap", type=int, default=12, help="rattled frames to train the MD model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-frames", type=int, default=None, help="label only the first N MD frames in round-robin order"
    )
    parser.add_argument(
        "--salvage", type=int, nargs="*", default=[], help="pks of killed LabellingWorkChains to reuse"
    )
    args = parser.parse_args(argv)

    from aiida import load_profile

    load_profile("mofmlp")
    from aiida_mofmlp.common.frames import read_frames, write_frames
    from aiida_mofmlp.data import GuestMoleculeData
    from aiida_mofmlp.tools.intake import load_cif

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    info_path = work / "build_info.json"
    info: dict[str, Any] = json.loads(info_path.read_text()) if info_path.is_file() else {"timings_s": {}}
    rng = np.random.default_rng(args.seed)
    loadings = [1, 2]

    def stage(name: str, t0: float) -> None:
        info["timings_s"][name] = round(time.monotonic() - t0, 1)
        info_path.write_text(json.dumps(info, indent=1))
        print(f"[build_pool] {name}: {info['timings_s'][name]} s", flush=True)

    t0 = time.monotonic()
    cells_file = work / "cells.extxyz"
    if not cells_file.is_file():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure, _ = load_cif(cif_path())
            framework = structure.get_ase()
            guest = GuestMoleculeData.builtin("CO2").store()
            cells = loaded_cells(framework, guest, loadings, args.seed, info)
        for n, cell in cells.items():
            cell.info.update({"loading": n})
        write_frames([cells[n] for n in [0, *loadings]], cells_file)
        stage("raspa", t0)
    cells = {int(a.info["loading"]): a for a in read_frames(cells_file)}
    print(f"[build_pool] cells: { {n: len(a) for n, a in cells.items()} }", flush=True)

    t0 = time.monotonic()
    boot_file = HERE / "bootstrap.extxyz.gz"
    if not boot_file.is_file():
        frames = []
        for index in range(args.n_bootstrap):
            loading = [0, *loadings][index % (1 + len(loadings))]
            stdev = [0.03, 0.06, 0.1][(index // 3) % 3]
            frame = rattled(cells[loading], 1, stdev, rng, "rattled")[0]
            frame.info.update({"loading": loading, "rattle_stdev": stdev})
            frames.append(frame)
        write_gz(label(frames, info, "bootstrap"), boot_file)
        stage("bootstrap_labelling", t0)
    boot = read_gz(boot_file)

    t0 = time.monotonic()
    model = work / "bootstrap" / "bootstrap.model"
    if not model.is_file():
        model = train_bootstrap(boot, work / "bootstrap", args.seed)
        stage("bootstrap_training", t0)

    t0 = time.monotonic()
    md_file = work / "md_frames.extxyz"
    if not md_file.is_file():
        frames, notes = [], {}
        for run, (temperature, loading) in enumerate((t, n) for t in (300.0, 500.0) for n in [0, *loadings]):
            got, status = run_md(model, cells[loading], temperature, args.frames_per_run, args.stride, run)
            if status != "ok":  # drop the two frames just before the blow-up
                got = got[:-2]
            seeds = got or [cells[loading]]
            while len(got) < args.frames_per_run:  # young model blew up: rattle earlier frames (or the start)
                parent = seeds[int(rng.integers(len(seeds)))]
                stdev = float(rng.choice(TOPUP_STDEVS))
                frame = rattled(parent, 1, stdev, rng, "rattled_fallback")[0]
                frame.info["rattle_stdev"] = stdev
                got.append(frame)
            for index, frame in enumerate(got):
                frame.info.setdefault("config_type", "md")
                frame.info.update({"temperature": temperature, "loading": loading, "md_run": run})
                frame.info["split"] = "test" if index % args.test_every == args.test_every - 1 else "pool"
            notes[f"T{int(temperature)}_n{loading}"] = status
            print(f"[build_pool] MD {temperature} K, {loading} CO2: {status}", flush=True)
            frames += got
        info["md"] = notes
        write_frames(frames, md_file)
        stage("md", t0)
    md_frames = read_frames(md_file)

    t0 = time.monotonic()
    for index, frame in enumerate(md_frames):
        frame.info["md_index"] = index
    order = round_robin(md_frames)[: args.max_frames]
    done = {int(a.info["md_index"]): a for pk in args.salvage for a in salvage(pk, md_frames)}
    todo = [md_frames[i] for i in order if i not in done]
    info["salvaged"] = {"pks": args.salvage, "n_frames": len(done)}
    print(f"[build_pool] labelling {len(todo)} frames ({len(done)} salvaged)", flush=True)
    labelled = list(done.values()) + (label(todo, info, "pool") if todo else [])
    labelled.sort(key=lambda atoms: int(atoms.info["md_index"]))
    stage("pool_labelling", t0)
    pool = [a for a in labelled if a.info["split"] == "pool"]
    test = [a for a in labelled if a.info["split"] == "test"]
    write_gz(pool, HERE / "pool.extxyz.gz")
    write_gz(test, HERE / "test.extxyz.gz")
    info.update({"n_pool": len(pool), "n_test": len(test), "n_bootstrap": len(boot), "args": vars(args)})
    (HERE / "build_info.json").write_text(json.dumps(info, indent=1))
    print(f"[build_pool] pool {len(pool)} frames, test {len(test)} frames", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
