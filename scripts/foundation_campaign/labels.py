"""GFN1-xTB labels (tblite, through the plugin's ``mofmlp-xtb`` engine) in cached chunks, and E0s."""

from __future__ import annotations

import json
import multiprocessing
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ase import Atoms

from aiida_mofmlp.common.frames import read_frames, write_frames

METHOD = "GFN1-xTB"


def log(message: str) -> None:
    print(f"[build_foundation] {message}", flush=True)


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[k : k + size] for k in range(0, len(items), size)]


def _label_chunk(folder: str) -> dict:
    from aiida_mofmlp.engines.xtb.label import run

    config = {"frames": "frames.extxyz", "method": METHOD, "compute_stress": True}
    return run(config, folder)


def label_frames(frames: list[Atoms], folder: Path, chunk: int, workers: int) -> tuple[list[Atoms], dict]:
    """GFN1-xTB labels (energy, forces, stress) of ``frames`` in chunks cached under ``folder``.

    A chunk with a ``summary.json`` is done; an interrupted run labels only the chunks without one.
    Failed frames are left out and counted.
    """
    folder.mkdir(parents=True, exist_ok=True)
    dirs = []
    for k, part in enumerate(_chunks(frames, chunk)):
        sub = folder / f"chunk_{k:03d}"
        if not (sub / "summary.json").is_file():
            sub.mkdir(exist_ok=True)
            write_frames([a.copy() for a in part], sub / "frames.extxyz")
        dirs.append(sub)
    todo = [str(d) for d in dirs if not (d / "summary.json").is_file()]
    if todo:
        context = multiprocessing.get_context("spawn")
        with context.Pool(max(1, min(workers, len(todo)))) as pool:
            for _ in pool.imap_unordered(_label_chunk, todo):
                pass
    labelled, failed, version, seconds = [], 0, None, 0.0
    for k, sub in enumerate(dirs):
        summary = json.loads((sub / "summary.json").read_text())
        failed += summary["n_failed"]
        version = summary["program_version"]
        seconds += float(summary.get("seconds", 0.0))
        for atoms in read_frames(sub / "labelled.extxyz"):
            atoms.info["frame_index"] = k * chunk + int(atoms.info.pop("parent_index"))
            atoms.info.pop("label_method", None)
            labelled.append(atoms)
    return labelled, {"n_failed": failed, "tblite_version": version, "label_seconds": round(seconds, 1)}


def label_once(frames: list[Atoms], target: Path, scratch: Path, chunk: int, workers: int) -> dict:
    """Label ``frames`` into the compressed file ``target`` unless it exists; facts of the labelling.

    ``scratch`` holds the chunks while they are labelled (removed once ``target`` is written).
    """
    if target.is_file():
        return {}
    labelled, facts = label_frames(frames, scratch, chunk, workers)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial.gz")
    write_frames(labelled, partial)
    partial.replace(target)
    shutil.rmtree(scratch, ignore_errors=True)
    return {"n_in": len(frames), "n_labelled": len(labelled), **facts}


def isolated_atom_energies(symbols: Sequence[str]) -> dict[str, float]:
    """GFN1-xTB energy (eV) of each element as an isolated neutral atom (non-periodic, tblite defaults of
    the labels: 300 K electronic temperature): the E0s of the foundation, so that per-element energies
    are those of the labelling method and not a least-squares fit."""
    import contextlib
    import io

    from tblite.ase import TBLite

    energies = {}
    for symbol in sorted(set(symbols)):
        atom = Atoms(symbol, positions=[(0.0, 0.0, 0.0)], pbc=False)
        atom.calc = TBLite(method=METHOD, electronic_temperature=300.0, verbosity=0)
        with contextlib.redirect_stdout(io.StringIO()):
            energies[symbol] = float(atom.get_potential_energy())
    return energies
