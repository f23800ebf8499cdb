"""Pore volume and surface area with Zeo++ (through pyzeo): probe-accessible values of one frame."""

from __future__ import annotations

import contextlib
import os
import re
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


def pore_geometry(atoms: Atoms, probe_radius: float = 1.86, samples_per_atom: int = 2000) -> dict:
    """Accessible pore volume (Angstrom^3, cm^3/g, fraction) and surface area (Angstrom^2, m^2/g)."""
    from pyzeo.extension import AtomNetwork, surface_area, volume

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frame.cif"
        write(path, atoms)
        with _quiet_stdout():
            network = AtomNetwork.read_from_CIF(str(path))
            volume_text = volume(network, probe_radius, probe_radius, samples_per_atom)
            area_text = surface_area(network, probe_radius, probe_radius, samples_per_atom)
    volume_text = volume_text.decode() if isinstance(volume_text, bytes) else str(volume_text)
    area_text = area_text.decode() if isinstance(area_text, bytes) else str(area_text)
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
