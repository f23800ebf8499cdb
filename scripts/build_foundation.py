"""Build the small MOF "foundation" MACE model shipped in ``aiida_mofmlp/resources/foundation`` (no AiiDA).

A stand-in for MACE-MP (Batatia et al., arXiv:2401.00096) for offline demos and tests: a small MACE
(Batatia et al., NeurIPS 2022) trained from scratch on GFN1-xTB labels (Grimme et al., J. Chem. Theory
Comput. 2017, DOI 10.1021/acs.jctc.7b00118; tblite) of several MOFs from RASPA2's CIF library,
empty and with CO2, N2, CH4, H2O or H2 guests. Stages (each cached in ``--workdir``; a rerun resumes):

1. ``frameworks``: read the CIFs, reduce centred cells to primitive ones, repeat until every perpendicular
   width is >= 2 r_max;
2. ``cells``: each framework empty, with one guest of one kind and with two of another (placed at the
   emptiest grid points, no contact under 2 Angstrom);
3. ``initial_frames``: rattled copies (several amplitudes) and strained copies (isotropic and shear,
   up to +-3 %, slightly rattled) of every cell;
4. ``label_initial``: GFN1-xTB energy, forces and stress (``aiida_mofmlp.engines.xtb.label``, 2 processes);
5. ``bootstrap``: a first small MACE trained on those labels;
6. ``md``: short Langevin MD with it at 300, 500 and 700 K; a run stops when two atoms come closer than
   0.6 x the sum of their covalent radii, and its last frames before that are dropped;
7. ``label_md``: GFN1-xTB labels of the MD frames;
8. ``split``: ~10 % of the frames of each framework held out as a test set;
9. ``train``: the foundation (energy, forces and stress) on the rest;
10. ``evaluate`` and ``package``: held-out errors per framework; model, replay sample, held-out sample
    and card written to ``--output``.

Full build (about 40 min on 2 shared, busy cores; most of it GFN1-xTB labelling and training)::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/build_foundation.py --workdir /tmp/foundation_build

``--quick`` builds a toy version (2 frameworks, few frames, 2 epochs) in about a minute, for tests.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from ase import Atoms
from ase.build import molecule
from ase.data import covalent_radii

from aiida_mofmlp.common.frames import GUEST_ID_KEY, read_frames, sha256_of_file, write_frames
from aiida_mofmlp.common.geometry import perpendicular_widths, supercell_for_cutoff
from aiida_mofmlp.common.loading import empty_framework, place_guests

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "src" / "aiida_mofmlp" / "resources" / "foundation"
MODEL_NAME = "small_mof_foundation"
GUESTS = ("CO2", "N2", "CH4", "H2O", "H2")
ALLOWED = {
    "H",
    "C",
    "N",
    "O",
    "F",
    "S",
    "Cl",
    "Zn",
    "Cu",
    "Co",
    "Ni",
    "Mg",
    "Al",
    "V",
    "Zr",
    "Fe",
    "Cr",
    "Mn",
}
#: frameworks of the full build (RASPA2 CIF names); ZnBDCdabco is DMOF-1, the demo's framework
FRAMEWORKS = (
    "ZnBDCdabco",
    "IRMOF-1",
    "Mg-DOBDC",
    "CoBDP",
    "MIL-88A-open",
    "MIL-53(Cr)ht",
    "ZnHBDC",
)
QUICK_FRAMEWORKS = ("ZnBDCdabco", "Mg-DOBDC")
#: an MD frame with two atoms closer than this fraction of the sum of their covalent radii ends the run
MIN_CONTACT_RATIO = 0.6

#: settings of the full and quick builds
PLANS: dict[str, dict[str, Any]] = {
    "full": {
        "frameworks": FRAMEWORKS,
        "max_atoms": 120,
        "r_max": 5.0,
        "loadings": (1, 2),  # guests per cell, one guest kind per loading
        "rattle": (0.03, 0.08),
        "n_rattle": 1,  # per amplitude and cell
        "strains": {"iso": (-0.03, 0.03), "shear": (-0.03, 0.03)},
        "strains_per_cell": 2,  # drawn from the strains above, in turn
        "temperatures": (300.0, 500.0, 700.0),
        "md_frames": 4,  # per run (one run per cell, temperature cycling over the cells)
        "md_stride": 10,
        "md_equilibrate": 30,
        "bootstrap": {"num_channels": 16, "max_L": 0, "max_num_epochs": 8, "r_max": 5.0},
        "foundation": {"num_channels": 32, "max_L": 0, "max_num_epochs": 20, "r_max": 5.0},
        "test_fraction": 0.1,
        "replay_frames": 240,
        "heldout_per_framework": 2,
        "chunk": 12,
    },
    "quick": {
        "frameworks": QUICK_FRAMEWORKS,
        "max_atoms": 60,
        "r_max": 3.0,
        "loadings": (1,),
        "rattle": (0.05,),
        "n_rattle": 1,
        "strains": {"iso": (0.03,)},
        "strains_per_cell": 1,
        "temperatures": (300.0,),
        "md_frames": 1,
        "md_stride": 5,
        "md_equilibrate": 5,
        "bootstrap": {"num_channels": 8, "max_L": 0, "max_num_epochs": 1, "r_max": 3.0},
        "foundation": {"num_channels": 8, "max_L": 0, "max_num_epochs": 2, "r_max": 3.0},
        "test_fraction": 0.2,
        "replay_frames": 6,
        "heldout_per_framework": 1,
        "chunk": 6,
    },
}


# --- helpers ----------------------------------------------------------------------------------------------
def log(message: str) -> None:
    print(f"[build_foundation] {message}", flush=True)


def cif_dir() -> Path:
    """RASPA2's CIF library."""
    import RASPA2

    path = Path(RASPA2.__file__).parent / "share" / "raspa" / "structures" / "cif"
    if not path.is_dir():
        raise FileNotFoundError(f"RASPA2's CIF library not found at {path}: run scripts/install.sh")
    return path


def _is_invariant(atoms: Atoms, shift: np.ndarray, tol: float = 0.05) -> bool:
    """Whether the fractional translation ``shift`` maps every atom of ``atoms`` onto one of its kind."""
    frac = atoms.get_scaled_positions(wrap=True)
    moved = (frac + shift) % 1.0
    cell = atoms.cell.array
    numbers = atoms.numbers
    for z in np.unique(numbers):
        a, b = moved[numbers == z], frac[numbers == z]
        delta = a[:, None, :] - b[None, :, :]
        delta -= np.round(delta)
        dist = np.linalg.norm(delta @ cell, axis=-1)
        if not np.all(dist.min(axis=1) < tol):
            return False
    return True


_CENTRINGS = [np.array(t, float) for t in itertools.product((0.0, 0.5), repeat=3) if any(t)] + [
    np.array(t) / 3.0 for t in ((2, 1, 1), (1, 2, 2), (1, 2, 1), (2, 1, 2), (1, 1, 2), (2, 2, 1))
]


def primitive_cell(atoms: Atoms) -> Atoms:
    """``atoms`` reduced by every pure lattice translation (F, I, A/B/C and R centring), Niggli-reduced."""
    from ase.build import niggli_reduce

    current = atoms.copy()
    while True:
        for shift in _CENTRINGS:
            if _is_invariant(current, shift):
                break
        else:
            niggli_reduce(current)
            return current
        order = 2 if np.allclose(shift * 2, np.round(shift * 2)) else 3
        candidates = [shift + np.array(k) for k in itertools.product((-1, 0, 1), repeat=3)]
        candidates += list(np.eye(3))
        best, best_len = None, np.inf
        for trio in itertools.combinations(candidates, 3):
            matrix = np.array(trio)
            if not np.isclose(abs(np.linalg.det(matrix)), 1.0 / order, atol=1e-6):
                continue
            length = np.linalg.norm(matrix @ current.cell.array, axis=1).sum()
            if length < best_len:
                best, best_len = matrix, length
        new_cell = best @ current.cell.array
        frac = np.linalg.solve(new_cell.T, current.positions.T).T % 1.0
        keep: list[int] = []
        for index in range(len(current)):
            delta = frac[keep] - frac[index]
            delta -= np.round(delta)
            if keep and np.min(np.linalg.norm(delta @ new_cell, axis=1)) < 0.05:
                continue
            keep.append(index)
        if len(keep) * order != len(current):
            raise RuntimeError(f"primitive reduction by {shift} kept {len(keep)} of {len(current)} atoms")
        current = Atoms(
            current.numbers[keep], scaled_positions=frac[keep], cell=new_cell, pbc=True, info=current.info
        )


def load_framework(name: str, r_max: float) -> Atoms:
    """The framework ``name`` from RASPA2's CIFs: primitive, repeated for ``r_max``, guest ids 0."""
    from aiida_mofmlp.tools.intake import read_cif_atoms

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        atoms, _, _ = read_cif_atoms(cif_dir() / f"{name}.cif")
    atoms = primitive_cell(Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True))
    repeat = supercell_for_cutoff(atoms.cell, r_max)
    atoms = atoms.repeat(repeat)
    atoms.wrap()
    atoms.info = {"framework": name, "repeat": "x".join(map(str, repeat))}
    return empty_framework(atoms)


def guest_molecule(name: str) -> Atoms:
    atoms = molecule(name)
    atoms.positions -= atoms.get_center_of_mass()
    return atoms


def min_contact_ratio(atoms: Atoms) -> float:
    """Smallest interatomic distance divided by the sum of the two covalent radii (minimum image)."""
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijd", atoms, 2.0)
    if len(d) == 0:
        return np.inf
    radii = covalent_radii[atoms.numbers]
    return float(np.min(d / (radii[i] + radii[j])))


def strained(cell: Atoms, kind: str, amount: float, rng: np.random.Generator) -> Atoms:
    """``cell`` with the symmetric strain ``kind`` (iso, or shear in a random plane) of size ``amount``."""
    eps = np.zeros((3, 3))
    if kind == "iso":
        eps = np.eye(3) * amount
    else:
        i, j = [(0, 1), (0, 2), (1, 2)][int(rng.integers(3))]
        eps[i, j] = eps[j, i] = amount / 2.0
    frame = cell.copy()
    frame.set_cell(cell.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    return frame


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[k : k + size] for k in range(0, len(items), size)]


def _label_chunk(folder: str) -> dict:
    from aiida_mofmlp.engines.xtb.label import run

    config = {"frames": "frames.extxyz", "method": "GFN1-xTB", "compute_stress": True}
    return run(config, folder)


def label_frames(frames: list[Atoms], folder: Path, chunk: int, workers: int) -> tuple[list[Atoms], dict]:
    """GFN1-xTB labels (energy, forces, stress) of ``frames`` in chunks cached under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    dirs = []
    for k, part in enumerate(_chunks(frames, chunk)):
        sub = folder / f"chunk_{k:03d}"
        if not (sub / "summary.json").is_file():
            sub.mkdir(exist_ok=True)
            write_frames([a.copy() for a in part], sub / "frames.extxyz")
        dirs.append(sub)
    todo = [str(d) for d in dirs if not (d / "summary.json").is_file()]
    log(f"labelling {len(frames)} frames in {len(dirs)} chunks ({len(todo)} to do) with {workers} workers")
    done = len(dirs) - len(todo)
    if todo:
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers) as pool:
            for summary in pool.imap_unordered(_label_chunk, todo):
                done += 1
                log(
                    f"  chunk {done}/{len(dirs)}: {summary['n_labelled']}/{summary['n_frames']} labelled, "
                    f"{summary['seconds_per_frame']:.1f} s/frame"
                )
    labelled, failed, version = [], 0, None
    for k, sub in enumerate(dirs):
        summary = json.loads((sub / "summary.json").read_text())
        failed += summary["n_failed"]
        version = summary["program_version"]
        for atoms in read_frames(sub / "labelled.extxyz"):
            atoms.info["frame_index"] = k * chunk + int(atoms.info.pop("parent_index"))
            labelled.append(atoms)
    return labelled, {"n_failed": failed, "tblite_version": version}


def _train(frames: list[Atoms], folder: Path, settings: dict[str, Any], seed: int) -> Path:
    from aiida_mofmlp.engines.mace.foundation import train_foundation

    folder.mkdir(parents=True, exist_ok=True)
    write_frames(frames, folder / "train.extxyz")
    config = {
        "train_file": str(folder / "train.extxyz"),
        "name": settings.get("name", "model"),
        "valid_fraction": 0.1,
        "num_interactions": 2,
        "correlation": 2,
        "batch_size": settings.get("batch_size", 4),
        "lr": 0.01,
        "seed": seed,
        "E0s": "average",
        "energy_weight": 1.0,
        "forces_weight": 10.0,
        "stress_weight": 10.0,
        "device": "cpu",
        **{k: settings[k] for k in ("num_channels", "max_L", "max_num_epochs", "r_max")},
    }
    summary = train_foundation(config, folder)
    if summary["status"] != "ok":
        raise RuntimeError(f"training in {folder} {summary['status']}: see {folder / summary['log']}")
    return folder / f"{config['name']}.model"


def _md_run(job: dict) -> dict:
    """One Langevin NVT run (1 fs steps) with the bootstrap model; writes ``job['out']``."""
    import torch
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    torch.set_num_threads(1)
    from mace.calculators import MACECalculator

    atoms = read_frames(job["cell"])[job["index"]]
    ids = atoms.arrays[GUEST_ID_KEY].copy()
    info = dict(atoms.info)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        atoms.calc = MACECalculator(model_paths=job["model"], device="cpu", default_dtype="float64")
    rng = np.random.default_rng(job["seed"])
    temperature = job["temperature"]
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    warnings.simplefilter("ignore", FutureWarning)  # ase's note on Langevin(fixcm=True)
    dyn = Langevin(atoms, 1.0 * units.fs, temperature_K=temperature, friction=0.02, rng=rng)
    frames, status = [], "ok"
    dyn.run(job["equilibrate"])
    while len(frames) < job["n_frames"]:
        dyn.run(job["stride"])
        ratio = min_contact_ratio(atoms)
        if ratio < MIN_CONTACT_RATIO or not np.all(np.isfinite(atoms.positions)):
            frames = frames[:-2]  # the young model was already failing there
            status = f"stopped: contact ratio {ratio:.2f} after {len(frames) + 2} frames"
            break
        frame = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
        frame.set_array(GUEST_ID_KEY, ids)
        frame.info.update({**info, "kind": "md", "temperature": temperature})
        frames.append(frame)
    write_frames(frames, job["out"])
    return {"out": job["out"], "status": status, "n": len(frames)}


# --- the build --------------------------------------------------------------------------------------------
class Build:
    """Stages of the build, each cached in the work directory; timings kept in ``build_info.json``."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.plan = PLANS["quick" if args.quick else "full"]
        self.work = Path(args.workdir).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.info_path = self.work / "build_info.json"
        self.info: dict[str, Any] = (
            json.loads(self.info_path.read_text()) if self.info_path.is_file() else {"seconds": {}}
        )
        self.rng = np.random.default_rng(args.seed)

    def save(self) -> None:
        self.info_path.write_text(json.dumps(self.info, indent=1, default=str))

    def stage(self, name: str, target: Path, action: Callable[[], None]) -> None:
        """Run ``action`` unless ``target`` exists; record its seconds (cold runs only)."""
        if target.exists():
            log(f"{name}: cached ({self.info['seconds'].get(name, '?')} s when built)")
            return
        start = time.monotonic()
        log(f"{name}: start")
        action()
        self.info["seconds"][name] = round(time.monotonic() - start, 1)
        self.save()
        log(f"{name}: {self.info['seconds'][name]} s")

    # stage 1
    def frameworks(self) -> None:
        out = []
        for name in self.args.frameworks or self.plan["frameworks"]:
            atoms = load_framework(name, self.plan["r_max"])
            elements = set(atoms.get_chemical_symbols())
            if not elements <= ALLOWED:
                log(f"  skip {name}: elements {sorted(elements - ALLOWED)} not allowed")
                continue
            if len(atoms) > self.plan["max_atoms"]:
                log(f"  skip {name}: {len(atoms)} atoms > {self.plan['max_atoms']}")
                continue
            widths = perpendicular_widths(atoms.cell)
            log(f"  {name}: {len(atoms)} atoms, repeat {atoms.info['repeat']}, widths {np.round(widths, 1)}")
            out.append(atoms)
        write_frames(out, self.work / "frameworks.extxyz")

    # stage 2
    def cells(self) -> None:
        out = []
        for index, framework in enumerate(read_frames(self.work / "frameworks.extxyz")):
            name = framework.info["framework"]
            empty = framework.copy()
            empty.info.update({"guest": "none", "loading": 0})
            out.append(empty)
            for slot, n in enumerate(self.plan["loadings"]):
                guest = GUESTS[(2 * index + slot) % len(GUESTS)]
                loaded = place_guests(framework, guest_molecule(guest), n, grid=10, min_contact=2.2)
                if loaded is None:
                    log(f"  {name}: {n} {guest} do not fit; skipped")
                    continue
                loaded.info.update({"framework": name, "guest": guest, "loading": n})
                out.append(loaded)
        log(f"  {len(out)} cells")
        write_frames(out, self.work / "cells.extxyz")

    # stage 3
    def initial_frames(self) -> None:
        plan, out = self.plan, []
        strains = [(kind, amount) for kind, amounts in plan["strains"].items() for amount in amounts]
        half = len(strains) // 2
        strains = [strains[k // 2 + (k % 2) * half] for k in range(len(strains))]  # iso, shear, iso, ...
        n_strained = 0
        for cell in read_frames(self.work / "cells.extxyz"):
            for stdev in plan["rattle"]:
                for _ in range(plan["n_rattle"]):
                    frame = cell.copy()
                    frame.positions += self.rng.normal(0.0, stdev, frame.positions.shape)
                    frame.info.update({"kind": "rattled", "amplitude": stdev})
                    out.append(frame)
            for _ in range(plan["strains_per_cell"]):
                kind, amount = strains[n_strained % len(strains)]
                n_strained += 1
                frame = strained(cell, kind, amount, self.rng)
                frame.positions += self.rng.normal(0.0, 0.02, frame.positions.shape)
                frame.info.update({"kind": f"strain_{kind}", "amplitude": amount})
                out.append(frame)
        log(f"  {len(out)} rattled/strained frames")
        write_frames(out, self.work / "initial_frames.extxyz")

    def label(self, source: str, target: str, folder: str) -> Callable[[], None]:
        def action() -> None:
            frames = read_frames(self.work / source)
            labelled, facts = label_frames(frames, self.work / folder, self.plan["chunk"], self.args.workers)
            self.info.setdefault("labelling", {})[folder] = {"n_in": len(frames), **facts}
            write_frames(labelled, self.work / target)

        return action

    # stage 5
    def bootstrap(self) -> None:
        frames = read_frames(self.work / "initial_labelled.extxyz")
        settings = {**self.plan["bootstrap"], "name": "bootstrap"}
        _train(frames, self.work / "bootstrap", settings, self.args.seed)

    # stage 6
    def md(self) -> None:
        cells = read_frames(self.work / "cells.extxyz")
        folder = self.work / "md"
        folder.mkdir(exist_ok=True)
        temperatures = self.plan["temperatures"]
        jobs = []
        for index in range(len(cells)):
            out = folder / f"run_{index:03d}.extxyz"
            jobs.append(
                {
                    "cell": str(self.work / "cells.extxyz"),
                    "index": index,
                    "model": str(self.work / "bootstrap" / "bootstrap.model"),
                    "temperature": temperatures[index % len(temperatures)],
                    "seed": self.args.seed * 1000 + index,
                    "n_frames": self.plan["md_frames"],
                    "stride": self.plan["md_stride"],
                    "equilibrate": self.plan["md_equilibrate"],
                    "out": str(out),
                }
            )
        todo = [job for job in jobs if not Path(job["out"]).is_file()]
        notes = self.info.setdefault("md_runs", {})
        if todo:
            context = multiprocessing.get_context("spawn")
            with context.Pool(self.args.workers) as pool:
                for result in pool.imap_unordered(_md_run, todo):
                    notes[Path(result["out"]).stem] = f"{result['n']} frames, {result['status']}"
                    log(f"  MD {Path(result['out']).stem}: {notes[Path(result['out']).stem]}")
        frames = [atoms for job in jobs for atoms in read_frames(job["out"])]
        log(f"  {len(frames)} MD frames")
        write_frames(frames, self.work / "md_frames.extxyz")

    # stage 8
    def split(self) -> None:
        frames = read_frames(self.work / "initial_labelled.extxyz") + read_frames(
            self.work / "md_labelled.extxyz"
        )
        rng = np.random.default_rng(self.args.seed + 1)
        train, test = [], []
        by_framework: dict[str, list[Atoms]] = {}
        for atoms in frames:
            atoms.info.pop("frame_index", None)
            atoms.info.pop("label_method", None)
            by_framework.setdefault(atoms.info["framework"], []).append(atoms)
        for members in by_framework.values():
            order = rng.permutation(len(members))
            n_test = max(1, round(self.plan["test_fraction"] * len(members)))
            test += [members[i] for i in order[:n_test]]
            train += [members[i] for i in order[n_test:]]
        write_frames(train, self.work / "train.extxyz")
        write_frames(test, self.work / "test.extxyz")

    # stage 9
    def train(self) -> None:
        frames = read_frames(self.work / "train.extxyz")
        settings = {**self.plan["foundation"], "name": MODEL_NAME}
        _train(frames, self.work / "foundation", settings, self.args.seed)

    # stage 10
    def evaluate(self) -> None:
        from mace.calculators import MACECalculator

        model = self.work / "foundation" / f"{MODEL_NAME}.model"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            calc = MACECalculator(model_paths=str(model), device="cpu", default_dtype="float64")
        rows: dict[str, dict[str, list[float]]] = {}
        for atoms in read_frames(self.work / "test.extxyz"):
            row = rows.setdefault(atoms.info["framework"], {"e": [], "f": [], "s": []})
            work = atoms.copy()
            work.calc = calc
            row["e"].append(abs(work.get_potential_energy() - atoms.info["REF_energy"]) / len(atoms))
            row["f"] += np.abs(work.get_forces() - atoms.arrays["REF_forces"]).ravel().tolist()
            row["s"] += np.abs(work.get_stress(voigt=True) - atoms.info["REF_stress"]).tolist()
        errors = {}
        pooled = {k: [x for r in rows.values() for x in r[k]] for k in "efs"}
        for name, row in [*rows.items(), ("all", pooled)]:
            errors[name] = {
                "n_frames": len(row["e"]),
                "energy_mae_mev_per_atom": round(1000 * float(np.mean(row["e"])), 2),
                "forces_mae_mev_per_a": round(1000 * float(np.mean(row["f"])), 1),
                "stress_mae_mev_per_a3": round(1000 * float(np.mean(row["s"])), 3),
            }
            log(f"  {name}: {errors[name]}")
        (self.work / "errors.json").write_text(json.dumps(errors, indent=1))

    # stage 11
    def package(self) -> None:
        out = Path(self.args.output).resolve()
        out.mkdir(parents=True, exist_ok=True)
        model_src = self.work / "foundation" / f"{MODEL_NAME}.model"
        shutil.copyfile(model_src, out / f"{MODEL_NAME}.model")
        train = read_frames(self.work / "train.extxyz")
        test = read_frames(self.work / "test.extxyz")
        rng = np.random.default_rng(self.args.seed + 2)
        replay = [
            train[i]
            for i in sorted(rng.choice(len(train), min(len(train), self.plan["replay_frames"]), False))
        ]
        heldout: list[Atoms] = []
        for name in dict.fromkeys(a.info["framework"] for a in test):
            members = [a for a in test if a.info["framework"] == name]
            heldout += members[: self.plan["heldout_per_framework"]]
        files = {"model": f"{MODEL_NAME}.model", "replay": "replay.extxyz.gz", "heldout": "heldout.extxyz.gz"}
        for key, frames in (("replay", replay), ("heldout", heldout)):
            write_frames(frames, out / files[key])
        card = self.card(train, test, replay, heldout, files, out)
        import yaml

        (out / "card.yaml").write_text(yaml.safe_dump(card, sort_keys=False, width=100))
        (out / "card.md").write_text(card_markdown(card))
        init = out / "__init__.py"
        if not init.is_file():
            init.write_text('"""Small MOF foundation MACE model (a stand-in for MACE-MP; see card.md)."""\n')
        log(f"  wrote {sorted(p.name for p in out.iterdir())} to {out}")

    def card(self, train, test, replay, heldout, files, out: Path) -> dict[str, Any]:
        from importlib.metadata import version

        from aiida_mofmlp.engines.mace.common import load_model

        model = load_model(out / files["model"])
        everything = train + test
        kinds: dict[str, int] = {}
        for atoms in everything:
            kinds[atoms.info["kind"]] = kinds.get(atoms.info["kind"], 0) + 1
        frameworks = {}
        for atoms in read_frames(self.work / "frameworks.extxyz"):
            name = atoms.info["framework"]
            frameworks[name] = {
                "atoms": len(atoms),
                "repeat": atoms.info["repeat"],
                "formula": atoms.get_chemical_formula(),
                "frames": sum(a.info["framework"] == name for a in everything),
            }
        guests = sorted({a.info["guest"] for a in everything} - {"none"})
        labelling = self.info.get("labelling", {})
        n_params = sum(p.numel() for p in model.parameters())
        plan = self.plan["foundation"]
        seconds = self.info["seconds"]
        return {
            "name": MODEL_NAME,
            "purpose": (
                "A stand-in for MACE-MP in offline demos and tests of aiida-mofmlp (fine-tuning and "
                "multihead replay with real knowledge of MOFs and guests). Trained on GFN1-xTB labels of "
                "a few MOFs: NOT a model for production science; use MACE-MP or a DFT-level model for that."
            ),
            "files": {
                key: {"path": name, "sha256": sha256_of_file(out / name)} for key, name in files.items()
            },
            "model": {
                "architecture": type(model).__name__,
                "species": [str(s) for s in _symbols(model)],
                "r_max": float(model.r_max),
                "num_channels": plan["num_channels"],
                "max_L": plan["max_L"],
                "num_interactions": int(model.num_interactions),
                "correlation": 2,
                "parameters": int(n_params),
                "size_bytes": (out / files["model"]).stat().st_size,
                "dtype": "float64",
                "mace_torch": version("mace-torch"),
                "heads": list(getattr(model, "heads", None) or ["Default"]),
                "training": {
                    "max_num_epochs": plan["max_num_epochs"],
                    "loss": "stress (energy:forces:stress weights 1:10:10)",
                    "E0s": "average (least squares over the training set)",
                    "valid_fraction": 0.1,
                    "seed": self.args.seed,
                },
            },
            "data": {
                "labels": {
                    "method": "GFN1-xTB",
                    "program": "tblite",
                    "program_version": next(iter(labelling.values()), {}).get("tblite_version"),
                    "electronic_temperature_K": 300.0,
                    "quantities": "energy (eV), forces (eV/A), stress (eV/A^3)",
                    "failed_frames": sum(v.get("n_failed", 0) for v in labelling.values()),
                },
                "source": "RASPA2 CIF library (share/raspa/structures/cif), primitive cells repeated so that "
                f"every perpendicular width >= 2 r_max = {2 * self.plan['r_max']} A",
                "frameworks": frameworks,
                "guests": guests,
                "frames": {
                    "total": len(everything),
                    "train": len(train),
                    "test": len(test),
                    "per_kind": kinds,
                },
                "md_temperatures_K": list(self.plan["temperatures"]),
                "rattle_amplitudes_A": list(self.plan["rattle"]),
                "strains": {k: list(v) for k, v in self.plan["strains"].items()},
                "replay_frames": len(replay),
                "heldout_frames": len(heldout),
            },
            "heldout_errors": json.loads((self.work / "errors.json").read_text()),
            "build": {
                "command": self.info.get("command"),
                "seconds": dict(seconds),
                "total_seconds": round(sum(seconds.values()), 1),
                "machine": f"{os.cpu_count()} shared CPU cores, 1 thread each, {self.args.workers} workers",
            },
        }

    def run(self) -> None:
        self.info["command"] = " ".join(["python", "scripts/build_foundation.py", *sys.argv[1:]])
        w = self.work
        self.stage("frameworks", w / "frameworks.extxyz", self.frameworks)
        self.stage("cells", w / "cells.extxyz", self.cells)
        self.stage("initial_frames", w / "initial_frames.extxyz", self.initial_frames)
        self.stage(
            "label_initial",
            w / "initial_labelled.extxyz",
            self.label("initial_frames.extxyz", "initial_labelled.extxyz", "label_initial"),
        )
        self.stage("bootstrap", w / "bootstrap" / "bootstrap.model", self.bootstrap)
        self.stage("md", w / "md_frames.extxyz", self.md)
        self.stage(
            "label_md",
            w / "md_labelled.extxyz",
            self.label("md_frames.extxyz", "md_labelled.extxyz", "label_md"),
        )
        self.stage("split", w / "test.extxyz", self.split)
        self.stage("train", w / "foundation" / f"{MODEL_NAME}.model", self.train)
        self.stage("evaluate", w / "errors.json", self.evaluate)
        self.package()  # always: cheap, and the output folder may differ between runs
        self.save()
        log(f"done: stage seconds {self.info['seconds']}")


def _symbols(model) -> list[str]:
    from ase.data import chemical_symbols

    return [chemical_symbols[int(z)] for z in model.atomic_numbers.tolist()]


def card_markdown(card: dict[str, Any]) -> str:
    """The human-readable card."""
    model, data, build = card["model"], card["data"], card["build"]
    lines = [
        f"# `{card['name']}`: a small MOF foundation MACE model",
        "",
        f"**{card['purpose']}**",
        "",
        "## Model",
        "",
        f"{model['architecture']}, {model['num_channels']} channels, max_L {model['max_L']}, "
        f"{model['num_interactions']} interactions, correlation {model['correlation']}, "
        f"r_max {model['r_max']} A, "
        f"{model['parameters']} parameters, {model['size_bytes'] / 1e6:.2f} MB ({model['dtype']}, "
        f"mace-torch {model['mace_torch']}). Species: {', '.join(model['species'])}. "
        f"Trained {model['training']['max_num_epochs']} epochs, loss {model['training']['loss']}.",
        "",
        "## Data",
        "",
        f"Labels: {data['labels']['method']} by {data['labels']['program']} "
        f"{data['labels']['program_version']} "
        f"({data['labels']['quantities']}), {data['labels']['failed_frames']} frames failed. "
        f"Structures: {data['source']}. Guests: {', '.join(data['guests'])} (1 or 2 per cell).",
        "",
        f"Frames: {data['frames']['total']} ({data['frames']['train']} train, "
        f"{data['frames']['test']} held out); "
        + ", ".join(f"{k} {v}" for k, v in data["frames"]["per_kind"].items())
        + f". MD at {data['md_temperatures_K']} K with a bootstrap model; "
        f"rattles {data['rattle_amplitudes_A']} A; "
        f"strains {data['strains']}.",
        "",
        "| framework | atoms | repeat | frames | energy MAE (meV/atom) | forces MAE (meV/A) "
        "| stress MAE (meV/A^3) |",
        "|---|---|---|---|---|---|---|",
    ]
    errors = card["heldout_errors"]
    for name, fw in data["frameworks"].items():
        err = errors.get(name, {})
        lines.append(
            f"| {name} | {fw['atoms']} | {fw['repeat']} | {fw['frames']} "
            f"| {err.get('energy_mae_mev_per_atom')} "
            f"| {err.get('forces_mae_mev_per_a')} | {err.get('stress_mae_mev_per_a3')} |"
        )
    allerr = errors["all"]
    lines += [
        f"| **all held out** | | | {allerr['n_frames']} | {allerr['energy_mae_mev_per_atom']} "
        f"| {allerr['forces_mae_mev_per_a']} | {allerr['stress_mae_mev_per_a3']} |",
        "",
        "## Files",
        "",
        *[f"- `{f['path']}` sha256 `{f['sha256']}`" for f in card["files"].values()],
        "",
        f"`replay.extxyz.gz`: {data['replay_frames']} training frames for multihead fine-tuning "
        "(`replay_file`); "
        f"`heldout.extxyz.gz`: {data['heldout_frames']} held-out frames for checks.",
        "",
        "## Build",
        "",
        f"`{build['command']}` ({build['machine']}). Seconds per stage (cold build):",
        "",
        *[f"- {k}: {v}" for k, v in build["seconds"].items()],
        f"- total: {build['total_seconds']}",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workdir", default="/tmp/foundation_build", help="intermediate files (resume point)"
    )
    parser.add_argument(
        "--output", default=None, help=f"where the shipped files go (default {DEFAULT_OUTPUT})"
    )
    parser.add_argument("--quick", action="store_true", help="tiny build for tests (2 frameworks, 2 epochs)")
    parser.add_argument("--workers", type=int, default=2, help="processes for labelling and MD (at most 2)")
    parser.add_argument(
        "--frameworks", nargs="*", default=None, help="RASPA2 CIF names (default: built-in list)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.output is None:
        args.output = str(Path(args.workdir) / "output") if args.quick else str(DEFAULT_OUTPUT)
    args.workers = max(1, min(2, args.workers))
    start = time.monotonic()
    Build(args).run()
    log(f"wall time of this invocation: {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
