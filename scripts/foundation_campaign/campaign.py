"""The campaign's stages, each cached: the data folder (committed, machine-independent: frameworks, cells,
E0s, labels per framework, bootstrap model) and the work folder (scratch: chunks being labelled, MD
runs, training checkpoints)."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import platform
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from aiida_mofmlp.common.frames import read_frames, write_frames

from .labels import METHOD, isolated_atom_energies, label_once, log
from .plan import GUESTS, MODEL_NAME, PLANS, file_stem
from .structures import guest_molecule, load_framework, loaded_cell, strained

#: stages in order; ``--stop-after`` names one of them
STAGES = ("frameworks", "e0s", "cells", "label_initial", "bootstrap", "md", "train", "evaluate", "package")


class Campaign:
    """One campaign: ``data`` (committed) and ``work`` (scratch) folders, the plan, and its progress."""

    def __init__(self, data: Path, work: Path, quick: bool = False, seed: int = 0, workers: int = 2):
        self.data = Path(data).resolve()
        self.work = Path(work).resolve()
        self.quick = quick
        self.seed = seed
        self.workers = max(1, workers)
        self.data.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self.progress_path = self.data / "progress.json"
        self.progress: dict[str, Any] = (
            json.loads(self.progress_path.read_text())
            if self.progress_path.is_file()
            else {"plan": "quick" if quick else "full", "seed": seed, "seconds": {}, "labels": {}, "md": {}}
        )
        self.plan = PLANS[self.progress["plan"]]

    # --- bookkeeping ------------------------------------------------------------------------------
    def save(self) -> None:
        partial = self.progress_path.with_suffix(".partial")
        partial.write_text(json.dumps(self.progress, indent=1, sort_keys=False, default=str))
        partial.replace(self.progress_path)

    def add_seconds(self, stage: str, seconds: float) -> None:
        spent = self.progress["seconds"]
        spent[stage] = round(spent.get(stage, 0.0) + seconds, 1)
        self.save()

    def stage(self, name: str, done: Callable[[], bool], action: Callable[[], None]) -> None:
        """Run ``action`` unless ``done()``; its seconds are added to the stage's (resumed runs add up)."""
        if done():
            log(f"{name}: done ({self.progress['seconds'].get(name, '?')} s)")
            return
        log(f"{name}: start")
        start = time.monotonic()
        try:
            action()
        finally:
            self.add_seconds(name, time.monotonic() - start)
        log(f"{name}: {self.progress['seconds'][name]} s in all")

    def frameworks_by_role(self, *roles: str) -> list[str]:
        return [name for name, info in self.progress.get("frameworks", {}).items() if info["role"] in roles]

    def rng(self, *keys: Any) -> np.random.Generator:
        """A generator seeded by the campaign's seed and ``keys`` (the same frames on every machine)."""
        text = "/".join(map(str, (self.seed, *keys)))
        return np.random.default_rng(int.from_bytes(text.encode(), "little") % (2**63))

    # --- stage: frameworks -------------------------------------------------------------------------
    def make_frameworks(self) -> None:
        out, chosen = [], {}
        for name, role in self.plan["frameworks"].items():
            atoms = load_framework(name, self.plan["r_max"])
            if len(atoms) > self.plan["max_atoms"]:
                log(f"  skip {name}: {len(atoms)} atoms > {self.plan['max_atoms']}")
                continue
            chosen[name] = {
                "role": role,
                "atoms": len(atoms),
                "formula": atoms.get_chemical_formula(),
                "repeat": atoms.info["repeat"],
            }
            log(f"  {name} ({role}): {len(atoms)} atoms, repeat {atoms.info['repeat']}")
            out.append(atoms)
        trained = {
            s for atoms in out if chosen[atoms.info["framework"]]["role"] == "train" for s in atoms.symbols
        }
        trained |= {s for guest in GUESTS for s in guest_molecule(guest).symbols}
        for atoms in out:
            unknown = sorted(set(atoms.symbols) - trained)
            if unknown:
                name = atoms.info["framework"]
                raise ValueError(
                    f"{name} ({chosen[name]['role']}) has elements {unknown} that no training framework has: "
                    "the foundation could not be evaluated on it; give it the role 'train' or add a training "
                    "framework with those elements"
                )
        write_frames(out, self.data / "frameworks.extxyz.gz")
        self.progress["frameworks"] = chosen
        self.save()

    # --- stage: E0s -------------------------------------------------------------------------------
    def make_e0s(self) -> None:
        symbols = {s for atoms in read_frames(self.data / "frameworks.extxyz.gz") for s in atoms.symbols}
        symbols |= {s for guest in GUESTS for s in guest_molecule(guest).symbols}
        energies = isolated_atom_energies(sorted(symbols))
        (self.data / "e0s.json").write_text(json.dumps(energies, indent=1))
        log(f"  E0s of {len(energies)} elements: {', '.join(sorted(energies))}")

    # --- stage: cells -----------------------------------------------------------------------------
    def make_cells(self) -> None:
        cells = []
        for index, framework in enumerate(read_frames(self.data / "frameworks.extxyz.gz")):
            name = framework.info["framework"]
            empty = framework.copy()
            empty.info.update({"guest": "none", "loading": 0})
            cells.append(empty)
            symbols = set(framework.symbols)
            small = "C" not in symbols and symbols & set(self.plan["small_kinds"])
            loadings = self.plan["loadings_small"] if small else self.plan["loadings"]
            for slot, n in enumerate(loadings):
                guest = GUESTS[(index + slot) % len(GUESTS)]
                loaded = loaded_cell(framework, guest, n, self.rng("cell", name, slot))
                if loaded is None:
                    log(f"  {name}: {n} {guest} do not fit; skipped")
                    continue
                cells.append(loaded)
        write_frames(cells, self.data / "cells.extxyz.gz")
        molecules = []
        for guest in GUESTS:
            rng = self.rng("molecule", guest)
            for k in range(self.plan["molecule_frames"]):
                mol = guest_molecule(guest, rng)
                mol.positions += 10.0 + rng.normal(0.0, 0.03 if k else 0.0, mol.positions.shape)
                mol.set_cell([20.0, 20.0, 20.0])
                mol.pbc = True
                mol.set_array("guest_id", np.ones(len(mol), dtype=int))
                mol.info.update({"framework": "none", "guest": guest, "loading": 1, "kind": "molecule"})
                molecules.append(mol)
        write_frames(molecules, self.data / "molecules.extxyz.gz")
        log(f"  {len(cells)} cells, {len(molecules)} isolated guest molecules")

    def cells_of(self, name: str) -> list[Atoms]:
        return [a for a in read_frames(self.data / "cells.extxyz.gz") if a.info["framework"] == name]

    # --- stage: initial frames and their labels ----------------------------------------------------
    def initial_frames(self, name: str) -> list[Atoms]:
        """Rattled and strained copies of every cell of ``name`` (the same on every machine)."""
        plan, out = self.plan, []
        for c, cell in enumerate(self.cells_of(name)):
            rng = self.rng("initial", name, c)
            for stdev in plan["rattle"]:
                frame = cell.copy()
                frame.positions += rng.normal(0.0, stdev, frame.positions.shape)
                frame.info.update({"kind": "rattled", "amplitude": stdev})
                out.append(frame)
            for k in range(plan["strains"]):
                kind = ("iso", "shear")[k % 2]
                amount = float(rng.uniform(-plan["max_strain"], plan["max_strain"]))
                frame = strained(cell, kind, amount, rng)
                frame.positions += rng.normal(0.0, 0.02, frame.positions.shape)
                frame.info.update({"kind": f"strain_{kind}", "amplitude": round(amount, 4)})
                out.append(frame)
        return out

    def label_target(self, kind: str, name: str) -> Path:
        return self.data / "labels" / kind / f"{file_stem(name)}.extxyz.gz"

    def _label(self, kind: str, name: str, frames: list[Atoms]) -> None:
        start = time.monotonic()
        target = self.label_target(kind, name)
        facts = label_once(
            frames, target, self.work / "label" / kind / file_stem(name), self.plan["chunk"], self.workers
        )
        if facts:
            facts["seconds"] = round(time.monotonic() - start, 1)
            self.progress["labels"].setdefault(kind, {})[name] = facts
            self.save()
            log(
                f"  {kind} {name}: {facts['n_labelled']}/{facts['n_in']} labelled in {facts['seconds']} s "
                f"({self.labelled_count()} frames in all)"
            )

    def label_initial(self) -> None:
        self._label("molecules", "molecules", read_frames(self.data / "molecules.extxyz.gz"))
        for name in self.progress["frameworks"]:
            if not self.label_target("initial", name).is_file():
                self._label("initial", name, self.initial_frames(name))

    def initial_done(self) -> bool:
        return self.label_target("molecules", "molecules").is_file() and all(
            self.label_target("initial", n).is_file() for n in self.progress["frameworks"]
        )

    # --- stage: bootstrap model ---------------------------------------------------------------------
    def bootstrap_model(self) -> Path:
        return self.data / "bootstrap" / "bootstrap.model"

    def make_bootstrap(self) -> None:
        """A small MACE on a sample of the initial labels of every framework: it only drives the MD that
        samples each framework (held-out ones too, so it must know their elements); the foundation itself
        never sees a frame of a held-out framework."""
        frames = []
        for name in self.progress["frameworks"]:
            frames += read_frames(self.label_target("initial", name))
        frames += read_frames(self.label_target("molecules", "molecules"))
        rng = self.rng("bootstrap")
        n = min(len(frames), self.plan["bootstrap_frames"])
        frames = [frames[i] for i in sorted(rng.choice(len(frames), n, replace=False))]
        settings = {**self.plan["bootstrap"], "name": "bootstrap"}
        model = train(frames, self.work / "bootstrap", settings, self.seed, self.e0s(), 0.1)
        self.bootstrap_model().parent.mkdir(parents=True, exist_ok=True)
        model.replace(self.bootstrap_model())

    def e0s(self) -> dict[str, float]:
        return json.loads((self.data / "e0s.json").read_text())

    # --- stage: MD with the bootstrap model, and its labels ---------------------------------------
    def md_frames(self, name: str) -> list[Atoms]:
        """MD frames of every cell of ``name`` at every temperature (runs cached in the work folder)."""
        from .md import md_run

        cells = self.cells_of(name)
        folder = self.work / "md" / file_stem(name)
        folder.mkdir(parents=True, exist_ok=True)
        write_frames(cells, folder / "cells.extxyz")
        jobs = []
        for c in range(len(cells)):
            for t, temperature in enumerate(self.plan["temperatures"]):
                jobs.append(
                    {
                        "cells": str(folder / "cells.extxyz"),
                        "index": c,
                        "model": str(self.bootstrap_model()),
                        "temperature": temperature,
                        "seed": int(self.rng("md", name, c, t).integers(2**31)),
                        "n_frames": self.plan["md_frames"],
                        "stride": self.plan["md_stride"],
                        "equilibrate": self.plan["md_equilibrate"],
                        "out": str(folder / f"run_{c:02d}_{t}.extxyz"),
                    }
                )
        todo = [job for job in jobs if not Path(job["out"]).is_file()]
        notes = self.progress["md"].setdefault(name, {})
        if todo:
            context = multiprocessing.get_context("spawn")
            with context.Pool(max(1, min(self.workers, len(todo)))) as pool:
                for result in pool.imap_unordered(md_run, todo):
                    notes[Path(result["out"]).stem] = f"{result['n']} frames, {result['status']}"
            self.save()
        return [atoms for job in jobs for atoms in read_frames(job["out"])]

    def md_and_labels(self) -> None:
        for name in self.progress["frameworks"]:
            if not self.label_target("md", name).is_file():
                self._label("md", name, self.md_frames(name))

    def md_done(self) -> bool:
        return all(self.label_target("md", n).is_file() for n in self.progress["frameworks"])

    # --- counts -----------------------------------------------------------------------------------
    def labelled_count(self) -> int:
        return sum(
            f["n_labelled"] for per_kind in self.progress["labels"].values() for f in per_kind.values()
        )

    def labelled(self, *roles: str) -> list[Atoms]:
        """Every labelled frame of the frameworks of ``roles`` (``molecules`` adds the isolated guests)."""
        frames = []
        for name in self.frameworks_by_role(*roles):
            for kind in ("initial", "md"):
                if self.label_target(kind, name).is_file():
                    frames += read_frames(self.label_target(kind, name))
        if "molecules" in roles:
            frames += read_frames(self.label_target("molecules", "molecules"))
        return frames

    def model_path(self) -> Path:
        """The trained foundation (work folder; ``package`` copies it out)."""
        return self.work / "foundation" / f"{MODEL_NAME}.model"

    def machine(self) -> str:
        return f"{platform.node() or 'host'}: {os.cpu_count()} CPU cores, {self.workers} workers"


def train(
    frames: list[Atoms],
    folder: Path,
    settings: dict[str, Any],
    seed: int,
    e0s: dict[str, float],
    valid_fraction: float,
    device: str = "cpu",
    keep: Path | None = None,
) -> Path:
    """A MACE trained from scratch on ``frames`` (energy, forces, stress) with the labelling method's E0s.

    Resumes from mace's checkpoints in ``folder`` after an interruption; with ``keep`` (a folder of the
    data folder) the newest checkpoint is also copied there while training runs, and brought back into an
    empty ``folder``, so that training resumes on another machine.
    """
    from aiida_mofmlp.engines.mace.foundation import train_foundation

    folder.mkdir(parents=True, exist_ok=True)
    train_file = folder / "train.extxyz"
    if not train_file.is_file():
        write_frames(frames, train_file)
    symbols = sorted({s for atoms in frames for s in atoms.symbols})
    config = {
        "train_file": str(train_file),
        "name": settings.get("name", "model"),
        "valid_fraction": valid_fraction,
        "num_interactions": 2,
        "correlation": 2,
        "batch_size": settings.get("batch_size", 4),
        "lr": 0.01,
        "seed": seed,
        "E0s": {s: e0s[s] for s in symbols},
        "energy_weight": 1.0,
        "forces_weight": 10.0,
        "stress_weight": 10.0,
        "device": device,
        **{k: settings[k] for k in ("num_channels", "max_L", "max_num_epochs", "r_max")},
    }
    with CheckpointKeeper(folder / "mace" / "checkpoints", keep) if keep else contextlib.nullcontext():
        summary = train_foundation(config, folder)
    if summary["status"] != "ok":
        raise RuntimeError(f"training in {folder} {summary['status']}: see {folder / summary['log']}")
    return folder / f"{config['name']}.model"


class CheckpointKeeper(threading.Thread):
    """While training runs, copy mace's newest epoch checkpoint from ``source`` to ``keep`` (every
    ``interval`` seconds and at the end); on entry, bring ``keep``'s checkpoint into an empty ``source``."""

    def __init__(self, source: Path, keep: Path, interval: float = 120.0):
        super().__init__(name="checkpoint-keeper", daemon=True)
        self.source, self.keep, self.interval = Path(source), Path(keep), interval
        self.stopped = threading.Event()

    @staticmethod
    def newest(folder: Path) -> Path | None:
        def epoch(path: Path) -> int:
            match = re.search(r"_epoch-(\d+)\.pt$", path.name)
            return int(match.group(1)) if match else -1

        found = sorted(folder.glob("*_epoch-*.pt"), key=epoch) if folder.is_dir() else []
        return found[-1] if found else None

    def sync(self) -> None:
        newest = self.newest(self.source)
        if newest is None:
            return
        kept = self.keep / newest.name
        # mace numbers a resumed run's epochs from its checkpoint's, so one name can be written twice
        if kept.is_file() and kept.stat().st_mtime >= newest.stat().st_mtime:
            return
        self.keep.mkdir(parents=True, exist_ok=True)
        partial = self.keep / (newest.name + ".partial")
        shutil.copyfile(newest, partial)
        partial.replace(self.keep / newest.name)
        for old in self.keep.glob("*_epoch-*.pt"):
            if old.name != newest.name:
                old.unlink()
        log(f"  checkpoint {newest.name} kept in {self.keep}")

    def __enter__(self) -> CheckpointKeeper:
        kept = self.newest(self.keep)
        if kept is not None and self.newest(self.source) is None:
            self.source.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(kept, self.source / kept.name)
            log(f"  resuming from the kept checkpoint {kept.name}")
        self.start()
        return self

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.sync()

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.join()
        self.sync()


__all__ = ["METHOD", "MODEL_NAME", "STAGES", "Campaign", "CheckpointKeeper", "train"]
