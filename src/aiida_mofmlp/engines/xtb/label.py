"""Label periodic frames with GFN1-xTB or GFN2-xTB in-process through tblite (``mofmlp-xtb``).

Energies (eV), forces (eV/Angstrom) and, when asked, the stress (eV/Angstrom^3, ASE sign, Voigt order)
of a batch of periodic frames, one tblite calculation each. A frame whose SCF fails is tried once more
with the ``retry`` settings (a higher electronic temperature and stronger damping); a frame that still
fails is recorded with its reason and the batch goes on.

Input file of ``mofmlp-xtb`` (JSON or YAML)::

    frames: frames.extxyz
    method: GFN1-xTB                 # or GFN2-xTB
    compute_stress: false
    charges: false                   # also store the Mulliken charges (array ``xtb_charges``, e)
    electronic_temperature: 300.0    # K
    accuracy: 1.0
    max_iterations: 250
    mixer_damping: 0.4
    retry: {electronic_temperature: 1000.0, mixer_damping: 0.2, max_iterations: 500}

Outputs in the working directory: ``labelled.extxyz`` (the labelled frames under the REF_* keys, with
``parent_index`` = the frame's index in the input and ``label_method``), ``failures.json`` (index and
reason of each frame that could not be labelled) and ``summary.json`` (method, tblite version, counts,
seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from aiida_mofmlp.common.errors import InputError
from aiida_mofmlp.common.frames import iter_frames, set_labels, voigt_stress, write_frames
from aiida_mofmlp.common.serialise import dumps
from aiida_mofmlp.engines.io import read_input

METHODS = ("GFN1-xTB", "GFN2-xTB")
#: the GFN1-/GFN2-xTB parametrisations cover H to Rn
MAX_ATOMIC_NUMBER = 86
LABELLED_FILE = "labelled.extxyz"
FAILURES_FILE = "failures.json"
SUMMARY_FILE = "summary.json"
CHARGES_KEY = "xtb_charges"
EXIT_BAD_INPUT = 2

DEFAULTS: dict[str, Any] = {
    "frames": "frames.extxyz",
    "method": "GFN1-xTB",
    "compute_stress": False,
    "charges": False,
    "electronic_temperature": 300.0,
    "accuracy": 1.0,
    "max_iterations": 250,
    "mixer_damping": 0.4,
    "retry": {"electronic_temperature": 1000.0, "mixer_damping": 0.2, "max_iterations": 500},
}
_POSITIVE = ("electronic_temperature", "accuracy", "max_iterations", "mixer_damping")


def load_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` over :data:`DEFAULTS`, checked.

    Raises:
        InputError: naming the bad key, its value and what is valid.
    """
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise InputError(f"unknown keys {unknown}; valid keys: {sorted(DEFAULTS)}")
    settings = copy.deepcopy(DEFAULTS)
    for key, value in raw.items():
        if key == "retry" and isinstance(value, dict):
            settings["retry"].update(value)
        else:
            settings[key] = value
    if settings["method"] not in METHODS:
        raise InputError(f"method={settings['method']!r} is not an xTB method; valid: {', '.join(METHODS)}")
    if settings["retry"] is not None and not isinstance(settings["retry"], dict):
        raise InputError(f"retry={settings['retry']!r} must be a mapping of settings or null")
    for scope, values in (("", settings), ("retry.", settings["retry"] or {})):
        unknown = sorted(set(values) - set(_POSITIVE)) if scope else []
        if unknown:
            raise InputError(f"retry: unknown keys {unknown}; valid: {list(_POSITIVE)}")
        for key in _POSITIVE:
            if key in values and (not isinstance(values[key], int | float) or values[key] <= 0):
                raise InputError(f"{scope}{key}={values[key]!r} must be a positive number")
    return settings


def check_frame(atoms: Atoms, index: int) -> None:
    """Raise :class:`InputError` when frame ``index`` is not periodic or has an element xTB lacks."""
    if not np.all(atoms.pbc) or atoms.cell.rank < 3:
        raise InputError(
            f"frame {index} is not periodic in all three directions (pbc={atoms.pbc.tolist()}, "
            f"cell rank {atoms.cell.rank}); mofmlp-xtb labels periodic frames only: give each frame a cell"
        )
    missing = sorted({s for s in atoms.get_chemical_symbols() if atomic_numbers[s] > MAX_ATOMIC_NUMBER})
    if missing:
        raise InputError(f"frame {index} has elements {missing} that GFN-xTB does not cover (H to Rn only)")


def unsupported_elements(symbols: Iterable[str]) -> list[str]:
    """The elements of ``symbols`` without GFN1/GFN2-xTB parameters (beyond Rn)."""
    return sorted({s for s in symbols if atomic_numbers.get(s, 999) > MAX_ATOMIC_NUMBER})


def tblite_version() -> str:
    """Version of the tblite Python package."""
    from importlib.metadata import version

    return version("tblite")


def xtb_calculator(settings: dict[str, Any], overrides: dict[str, Any] | None = None):
    """A tblite ASE calculator with the checked ``settings`` (:func:`load_settings`), ``overrides`` on top."""
    from tblite.ase import TBLite

    values = {key: settings[key] for key in _POSITIVE}
    values.update(overrides or {})
    return TBLite(
        method=settings["method"],
        electronic_temperature=float(values["electronic_temperature"]),
        accuracy=float(values["accuracy"]),
        max_iterations=int(values["max_iterations"]),
        mixer_damping=float(values["mixer_damping"]),
        verbosity=0,
    )


def label_frame(atoms: Atoms, settings: dict[str, Any], overrides: dict[str, Any] | None = None) -> dict:
    """Energy, forces, stress (if asked) and charges (if asked) of one frame; raises on SCF failure."""
    work = atoms.copy()
    work.calc = xtb_calculator(settings, overrides)
    # tblite prints its SCF log to the C-level stdout at verbosity > 0; keep the engine's stdout clean
    with contextlib.redirect_stdout(io.StringIO()):
        energy = float(work.get_potential_energy())
        forces = np.array(work.get_forces(), dtype=float)
        stress = voigt_stress(work.get_stress(voigt=True)) if settings["compute_stress"] else None
        charges = np.array(work.get_charges(), dtype=float) if settings["charges"] else None
    if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
        raise RuntimeError("non-finite energy or forces")
    return {"energy": energy, "forces": forces, "stress": stress, "charges": charges}


def run(config: dict[str, Any], workdir: str | Path = ".") -> dict[str, Any]:
    """Label the frames of ``config`` and write the output files into ``workdir``; return the summary."""
    settings = load_settings(config)
    workdir = Path(workdir)
    source = workdir / settings["frames"]
    if not source.is_file():
        raise InputError(f"frames file {settings['frames']} not found in {workdir.resolve()}")
    frames = list(iter_frames(source))
    if not frames:
        raise InputError(f"frames file {settings['frames']} holds no frame")
    for index, atoms in enumerate(frames):
        check_frame(atoms, index)
    start = time.perf_counter()
    labelled, failures, retried = [], [], 0
    for index, atoms in enumerate(frames):
        try:
            result = label_frame(atoms, settings)
        except Exception as first:  # tblite raises a plain exception when its SCF fails
            if not settings["retry"]:
                failures.append({"index": index, "reason": f"{type(first).__name__}: {first}"[:300]})
                continue
            retried += 1
            try:
                result = label_frame(atoms, settings, settings["retry"])
            except Exception as second:
                reason = f"{type(second).__name__}: {second} (also with the retry settings)"
                failures.append({"index": index, "reason": reason[:300]})
                continue
        frame = atoms.copy()
        frame.calc = None
        set_labels(frame, energy=result["energy"], forces=result["forces"], stress=result["stress"])
        if result["charges"] is not None:
            frame.arrays[CHARGES_KEY] = result["charges"]
        frame.info["parent_index"] = index
        frame.info["label_method"] = settings["method"]
        labelled.append(frame)
    seconds = time.perf_counter() - start
    write_frames(labelled, workdir / LABELLED_FILE)
    (workdir / FAILURES_FILE).write_text(dumps(failures, indent=1))
    summary = {
        "method": settings["method"],
        "program": "tblite",
        "program_version": tblite_version(),
        "compute_stress": bool(settings["compute_stress"]),
        "electronic_temperature": float(settings["electronic_temperature"]),
        "n_frames": len(frames),
        "n_labelled": len(labelled),
        "n_failed": len(failures),
        "n_retried": retried,
        "seconds": seconds,
        "seconds_per_frame": seconds / len(frames),
        "threads": os.environ.get("OMP_NUM_THREADS", "unset"),
    }
    (workdir / SUMMARY_FILE).write_text(dumps(summary, indent=1))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry ``mofmlp-xtb INPUT``."""
    parser = argparse.ArgumentParser(prog="mofmlp-xtb", description=__doc__.splitlines()[0])
    parser.add_argument("input", help="JSON/YAML input file (see module docs)")
    args = parser.parse_args(argv)
    try:
        summary = run(read_input(args.input), ".")
    except InputError as error:
        print(f"mofmlp-xtb: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"mofmlp-xtb: {summary['n_labelled']} of {summary['n_frames']} frames labelled with "
        f"{summary['method']} in {summary['seconds']:.1f} s ({summary['n_failed']} failed)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
