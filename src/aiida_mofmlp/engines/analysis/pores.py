"""Pore volume and surface area with Zeo++ (through pyzeo): probe-accessible values of one frame."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from ase import Atoms
from ase.io import write

#: probe radius (Angstrom) of N2-like accessibility, and Monte Carlo samples per atom
PORE_DEFAULTS = {"probe_radius": 1.86, "samples_per_atom": 2000}


@contextlib.contextmanager
def _quiet_stdout():
    """Silence Zeo++'s C++ output on file descriptor 1."""
    saved = os.dup(1)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def _value(text: str, key: str) -> float:
    match = re.search(rf"{re.escape(key)}:\s*([-+0-9.eE]+)", text)
    if match is None:
        raise ValueError(f"Zeo++ output lacks {key!r}: {text!r}")
    return float(match.group(1))


def _zeo_texts(cif: str, probe_radius: float, samples_per_atom: int) -> tuple[str, str]:
    """Zeo++'s volume and surface-area reports of the CIF file ``cif`` (run in this process)."""
    from pyzeo.extension import AtomNetwork, surface_area, volume

    with _quiet_stdout():
        network = AtomNetwork.read_from_CIF(cif)
        volume_text = volume(network, probe_radius, probe_radius, samples_per_atom)
        area_text = surface_area(network, probe_radius, probe_radius, samples_per_atom)
    texts = [text.decode() if isinstance(text, bytes) else str(text) for text in (volume_text, area_text)]
    return texts[0], texts[1]


def pore_geometry(atoms: Atoms, probe_radius: float = 1.86, samples_per_atom: int = 2000) -> dict:
    """Accessible pore volume (Angstrom^3, cm^3/g, fraction) and surface area (Angstrom^2, m^2/g).

    Zeo++ runs in a child process: pyzeo's objects have aborted the calling Python process when freed by
    the garbage collector (seen twice in CI, in a test worker that had run LAMMPS and MACE jobs), and a
    crash there must not take a calcfunction or the daemon with it.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frame.cif"
        write(path, atoms)
        command = [
            sys.executable,
            "-m",
            __name__,
            str(path),
            repr(float(probe_radius)),
            str(int(samples_per_atom)),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(
            f"Zeo++ (pyzeo) failed on a frame of {len(atoms)} atoms (exit {done.returncode}): "
            f"{done.stderr.strip()[-500:]}"
        )
    volume_text, area_text = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "probe_radius": float(probe_radius),
        "pore_volume": _value(volume_text, "AV_A^3"),
        "pore_volume_cm3_per_g": _value(volume_text, "AV_cm^3/g"),
        "void_fraction": _value(volume_text, "AV_Volume_fraction"),
        "surface_area": _value(area_text, "ASA_A^2"),
        "surface_area_m2_per_g": _value(area_text, "ASA_m^2/g"),
        "units": {
            "probe_radius": "Angstrom",
            "pore_volume": "Angstrom^3",
            "surface_area": "Angstrom^2",
        },
    }


if __name__ == "__main__":  # the child process of pore_geometry: CIF path, probe radius, samples per atom
    print(json.dumps(_zeo_texts(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]))))
