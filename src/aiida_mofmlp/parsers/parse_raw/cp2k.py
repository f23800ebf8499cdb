"""Text parsers of CP2K's outputs (no AiiDA imports); results in eV, Angstrom, eV/Angstrom, eV/Angstrom^3.

CP2K prints the energy in Hartree (``ENERGY| Total FORCE_EVAL``), forces in Hartree/Bohr (``ATOMIC FORCES
in [a.u.]``) and the stress tensor in GPa (``STRESS| Analytical stress tensor [GPa]``) with CP2K's sign
convention (positive = compressive, the opposite of ASE's). The xyz trajectories of an MD run
(``<project>-pos-1.xyz``, ``<project>-frc-1.xyz``) hold positions in Angstrom, forces in Hartree/Bohr and
the potential energy ``E`` (Hartree) of each step in their comment lines. :func:`parse_single_point` and
:func:`parse_md_trajectory` convert all of them, the stress to ASE's sign.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from aiida_mofmlp.common.units import (
    GPA_TO_EV_PER_ANGSTROM3,
    HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM,
    HARTREE_TO_EV,
)

#: CP2K's standard output as aiida-cp2k names it
OUTPUT_FILENAME = "aiida.out"
#: per-step positions and forces of an MD run (project ``aiida``, MOTION/PRINT TRAJECTORY and FORCES in XYZ)
POSITIONS_FILE = "aiida-pos-1.xyz"
FORCES_FILE = "aiida-frc-1.xyz"
#: per-step cell of an MD run (written by CP2K when the cell can change, e.g. NPT)
CELL_FILE = "aiida-1.cell"

#: what CP2K 2023.1 prints, without stopping, when an SCF reached MAX_SCF before EPS_SCF
SCF_NOT_CONVERGED = "SCF run NOT converged"
#: what CP2K prints when it stops at GLOBAL/WALLTIME
WALLTIME_EXCEEDED = "exceeded requested execution time"
#: the last lines of a CP2K run that ended normally
PROGRAM_STOPPED = "PROGRAM STOPPED IN"

_ENERGY_RE = re.compile(r"^ ENERGY\| Total FORCE_EVAL \( \w+ \) energy \[a\.u\.\]:\s+(\S+)", re.MULTILINE)
_STRESS_RE = re.compile(r"^ STRESS\|\s+([xyz])\s+(\S+)\s+(\S+)\s+(\S+)\s*$", re.MULTILINE)
_RUN_TYPE_RE = re.compile(r"^ GLOBAL\| Run type\s+(\S+)\s*$", re.MULTILINE)
_SOURCE_LOCATION_RE = re.compile(r"\w+\.F:\d+")
#: CP2K's RESP/REPEAT charge file (project ``aiida``, &PROPERTIES/&RESP/&PRINT/&RESP_CHARGES_TO_FILE)
RESP_CHARGES_FILE = "aiida-RESP_CHARGES.resp"
_RESP_FIT_RE = {
    "fit_rms": re.compile(r"Root-mean-square \(RMS\) error of RESP fit:\s+(\S+)"),
    "fit_rrms": re.compile(r"Relative root-mean-square \(RRMS\) error of RESP fit:\s+(\S+)"),
}


def _parse_forces(text: str) -> np.ndarray | None:
    """The last ``ATOMIC FORCES in [a.u.]`` block of a CP2K output, in Hartree/Bohr."""
    start = text.rfind("ATOMIC FORCES in [a.u.]")
    if start < 0:
        return None
    rows = []
    for line in text[start:].splitlines()[1:]:
        parts = line.split()
        if not parts or parts[0] == "#":
            continue
        if parts[0] == "SUM":
            break
        rows.append([float(value) for value in parts[3:6]])
    return np.array(rows, dtype=float) if rows else None


def _parse_stress(text: str) -> np.ndarray | None:
    """The last analytical/numerical stress tensor of a CP2K output, in GPa (CP2K's sign)."""
    start = text.rfind("STRESS| Analytical stress tensor [GPa]")
    if start < 0:
        start = text.rfind("STRESS| Numerical stress tensor [GPa]")
    if start < 0:
        return None
    rows: dict[str, list[float]] = {}
    for match in _STRESS_RE.finditer(text[start:]):
        if match.group(1) in rows:  # the eigenvector table that follows reuses the x/y/z row labels
            break
        rows[match.group(1)] = [float(match.group(i)) for i in (2, 3, 4)]
    if set(rows) != {"x", "y", "z"}:
        return None
    return np.array([rows["x"], rows["y"], rows["z"]])


def abort_message(text: str) -> str:
    """The message of CP2K's ``[ABORT]`` box in an output (the text right of the ASCII art), or ''."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "[ABORT]" in line), None)
    if start is None:
        return ""
    words = []
    for line in lines[start + 1 :]:
        if set(line.strip()) <= {"*"}:
            break
        words.extend(
            word for word in line[20:].strip(" *").split() if not _SOURCE_LOCATION_RE.fullmatch(word)
        )
    return " ".join(words)[:300]


def run_type(text: str) -> str | None:
    """CP2K's ``GLOBAL| Run type`` (``ENERGY_FORCE``, ``MD``, ...) from the output header, or None."""
    match = _RUN_TYPE_RE.search(text)
    return match.group(1) if match else None


def parse_single_point(text: str) -> dict[str, Any]:
    """Energy (eV), forces (eV/Angstrom), stress (eV/Angstrom^3, ASE sign) and status of a CP2K output.

    Keys: ``energy`` (float or None), ``forces`` (array or None), ``stress`` (3x3 array or None),
    ``scf_converged`` (False when CP2K warned that an SCF did not converge), ``walltime_exceeded``,
    ``completed`` (CP2K reached its normal end), ``aborted`` (CP2K stopped with an error) and its
    ``abort_message``, ``run_type`` (from the output header, None when not printed).
    """
    energies = _ENERGY_RE.findall(text)
    forces = _parse_forces(text)
    stress = _parse_stress(text)
    return {
        "energy": float(energies[-1]) * HARTREE_TO_EV if energies else None,
        "forces": None if forces is None else forces * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM,
        "stress": None if stress is None else -stress * GPA_TO_EV_PER_ANGSTROM3,
        "scf_converged": SCF_NOT_CONVERGED not in text,
        "walltime_exceeded": WALLTIME_EXCEEDED in text,
        "completed": PROGRAM_STOPPED in text,
        "aborted": "ABORT" in text,
        "abort_message": abort_message(text),
        "run_type": run_type(text),
    }


def read_xyz_frames(text: str) -> list[tuple[dict[str, float], list[str], np.ndarray]]:
    """Frames of a CP2K xyz trajectory: (comment fields such as ``i``, ``time``, ``E``), symbols, vectors.

    Raises ValueError when the text is not a sequence of complete xyz frames.
    """
    lines = text.splitlines()
    frames, position = [], 0
    while position < len(lines) and lines[position].strip():
        count = int(lines[position])
        if position + 2 + count > len(lines):
            raise ValueError(f"truncated xyz frame at line {position + 1}: {count} atoms announced")
        fields = {}
        for part in lines[position + 1].split(","):
            if "=" in part:
                key, value = part.split("=", 1)
                fields[key.strip()] = float(value)
        body = [line.split() for line in lines[position + 2 : position + 2 + count]]
        frames.append((fields, [row[0] for row in body], np.array([row[1:4] for row in body], dtype=float)))
        position += 2 + count
    return frames


def read_cell_trajectory(text: str) -> dict[int, np.ndarray]:
    """Cells (Angstrom, rows = lattice vectors) per MD step of a CP2K ``.cell`` file, keyed by step."""
    cells = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        values = [float(value) for value in parts]
        if len(values) < 11:
            raise ValueError(f"cell file line has {len(values)} columns, expected step, time, 9 components")
        cells[int(values[0])] = np.array(values[2:11]).reshape(3, 3)
    return cells


def parse_md_trajectory(positions_text: str, forces_text: str) -> dict[str, Any]:
    """Per-step data of a CP2K MD run from its xyz position and force trajectories.

    Returns ``symbols``, ``steps`` (CP2K's step index ``i``), ``times`` (fs), ``energies`` (potential
    energy, eV), ``positions`` (Angstrom) and ``forces`` (eV/Angstrom) for the steps present in both files
    (an interrupted run may have written one more position than force frame). Raises ValueError when the
    files disagree on the atoms or a step, or hold no frame.
    """
    positions = read_xyz_frames(positions_text)
    forces = {
        int(fields.get("i", -1)): (symbols, xyz) for fields, symbols, xyz in read_xyz_frames(forces_text)
    }
    if not positions or not forces:
        raise ValueError(f"no complete MD frame: {len(positions)} position and {len(forces)} force frames")
    symbols = positions[0][1]
    steps, times, energies, coordinates, vectors = [], [], [], [], []
    for fields, frame_symbols, xyz in positions:
        step = int(fields.get("i", -1))
        if step not in forces:
            continue
        if frame_symbols != symbols or forces[step][0] != symbols:
            raise ValueError(f"step {step}: the atoms differ from those of the first frame")
        steps.append(step)
        times.append(fields.get("time", float("nan")))
        energies.append(fields.get("E", float("nan")) * HARTREE_TO_EV)
        coordinates.append(xyz)
        vectors.append(forces[step][1] * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM)
    if not steps:
        raise ValueError("the position and force trajectories have no step in common")
    return {
        "symbols": symbols,
        "steps": np.array(steps, dtype=int),
        "times": np.array(times, dtype=float),
        "energies": np.array(energies, dtype=float),
        "positions": np.array(coordinates, dtype=float),
        "forces": np.array(vectors, dtype=float),
    }


__all__ = [
    "CELL_FILE",
    "FORCES_FILE",
    "OUTPUT_FILENAME",
    "POSITIONS_FILE",
    "abort_message",
    "parse_md_trajectory",
    "parse_single_point",
    "read_cell_trajectory",
    "read_xyz_frames",
    "run_type",
]


def parse_resp_charges(text: str) -> tuple[list[str], np.ndarray]:
    """Kind names and charges (e), in atom order, of CP2K's RESP charge file (``RESP <index> <kind> <q>``).

    Raises ValueError when the file has no charge lines or the atom indices are not 1..N.
    """
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "RESP" and parts[1].isdigit():
            rows.append((int(parts[1]), parts[2], float(parts[3])))
    if not rows:
        raise ValueError("no 'RESP <index> <kind> <charge>' lines in the RESP charge file")
    rows.sort()
    if [row[0] for row in rows] != list(range(1, len(rows) + 1)):
        raise ValueError(f"RESP charge file: atom indices are not 1..{len(rows)}")
    return [row[1] for row in rows], np.array([row[2] for row in rows], dtype=float)


def parse_resp_fit(text: str) -> dict[str, float]:
    """The RESP fit's errors CP2K printed in its output: ``fit_rms`` (a.u.) and ``fit_rrms`` (relative)."""
    errors = {}
    for key, pattern in _RESP_FIT_RE.items():
        found = pattern.findall(text)
        if found:
            errors[key] = float(found[-1])
    return errors
