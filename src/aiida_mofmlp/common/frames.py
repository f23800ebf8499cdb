"""The extxyz conventions shared by data nodes, engines and tools (no AiiDA imports).

A frame is an :class:`ase.Atoms`. Labels and metadata live under fixed keys so that every layer,
and ``mace_run_train`` itself (``--energy_key REF_energy --forces_key REF_forces
--stress_key REF_stress``), reads the same file unchanged:

* ``atoms.info["REF_energy"]``  total energy, eV
* ``atoms.arrays["REF_forces"]`` forces, eV/Angstrom, shape (n_atoms, 3)
* ``atoms.info["REF_stress"]``  stress, eV/Angstrom^3, Voigt order xx yy zz yz xz xy
* ``atoms.arrays["guest_id"]``   0 for framework atoms, k >= 1 for atoms of the k-th guest molecule
* ``atoms.info[key]`` for key in :data:`METADATA_KEYS` (source, temperature, loading, iteration, ...)

Model predictions (MD trajectories) use ``MACE_energy``, ``MACE_forces``, ``MACE_stress`` instead.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import numpy as np
from ase import Atoms
from ase.io import iread, write

ENERGY_KEY = "REF_energy"
FORCES_KEY = "REF_forces"
STRESS_KEY = "REF_stress"
GUEST_ID_KEY = "guest_id"
LABEL_KEYS = (ENERGY_KEY, FORCES_KEY, STRESS_KEY)

#: Keys of model predictions (e.g. MD trajectories); never mixed with the reference labels above.
PREDICTED_ENERGY_KEY = "MACE_energy"
PREDICTED_FORCES_KEY = "MACE_forces"
PREDICTED_STRESS_KEY = "MACE_stress"

#: Per-frame metadata understood by the plugin (all optional).
METADATA_KEYS = (
    "source",  # e.g. "md", "raspa", "aimd", "cif"
    "temperature",  # K
    "pressure",  # bar
    "loading",  # guest molecules per cell
    "iteration",  # active-learning iteration that produced the frame
    "config_type",  # free text, passed on to MACE
    "calc_uuid",  # UUID of the calculation that produced the labels
    "parent_index",  # index of the frame in the set it was taken from
)


def set_labels(
    atoms: Atoms,
    energy: float | None = None,
    forces: np.ndarray | None = None,
    stress: np.ndarray | None = None,
) -> Atoms:
    """Attach labels (eV, eV/Angstrom, eV/Angstrom^3 Voigt) to ``atoms`` in place and return it."""
    if energy is not None:
        atoms.info[ENERGY_KEY] = float(energy)
    if forces is not None:
        forces = np.asarray(forces, dtype=float)
        if forces.shape != (len(atoms), 3):
            raise ValueError(f"forces must have shape ({len(atoms)}, 3), got {forces.shape}")
        atoms.arrays[FORCES_KEY] = forces
    if stress is not None:
        atoms.info[STRESS_KEY] = voigt_stress(stress)
    return atoms


def voigt_stress(stress: np.ndarray | Iterable[float]) -> np.ndarray:
    """Return a stress as 6 Voigt components (xx yy zz yz xz xy) from a 3x3 matrix or 6 values."""
    stress = np.asarray(stress, dtype=float)
    if stress.shape == (3, 3):
        return np.array([stress[0, 0], stress[1, 1], stress[2, 2], stress[1, 2], stress[0, 2], stress[0, 1]])
    if stress.shape == (6,):
        return stress
    raise ValueError(f"stress must be 3x3 or 6 Voigt components, got shape {stress.shape}")


def get_energy(atoms: Atoms) -> float | None:
    """The reference energy of a frame in eV, or None when unlabelled."""
    value = atoms.info.get(ENERGY_KEY)
    return None if value is None else float(value)


def get_forces(atoms: Atoms) -> np.ndarray | None:
    """The reference forces of a frame in eV/Angstrom, or None when unlabelled."""
    return atoms.arrays.get(FORCES_KEY)


def guest_ids(atoms: Atoms) -> np.ndarray:
    """Per-atom guest molecule index (0 = framework); all zeros when the frame has none recorded."""
    if GUEST_ID_KEY in atoms.arrays:
        return np.asarray(atoms.arrays[GUEST_ID_KEY], dtype=int)
    return np.zeros(len(atoms), dtype=int)


def n_guests(atoms: Atoms) -> int:
    """Number of guest molecules in a frame."""
    return len(set(guest_ids(atoms).tolist()) - {0})


def _is_gzip_path(target: object) -> bool:
    return isinstance(target, str | Path) and str(target).endswith(".gz")


def write_frames(frames: Iterable[Atoms], target: str | Path | IO[str]) -> int:
    """Write frames as extxyz to a path (gzip-compressed when it ends in ``.gz``) or text handle.

    Returns the number written.
    """
    frames = list(frames)
    for atoms in frames:
        atoms.calc = None  # labels live under REF_* keys, never in a calculator
    if _is_gzip_path(target):
        with gzip.open(target, "wt") as handle:
            write(handle, frames, format="extxyz")
    else:
        write(target, frames, format="extxyz")
    return len(frames)


def iter_frames(source: str | Path | IO[str]) -> Iterator[Atoms]:
    """Iterate over frames of an extxyz file (gzip when it ends in ``.gz``) or handle, one at a time."""
    if _is_gzip_path(source):
        with gzip.open(source, "rt") as handle:
            yield from iter_frames(handle)
        return
    for atoms in iread(source, format="extxyz"):
        atoms.calc = None
        yield atoms


def read_frames(source: str | Path | IO[str]) -> list[Atoms]:
    """Read all frames of an extxyz file (gzip when it ends in ``.gz``) or handle."""
    return list(iter_frames(source))


def frames_to_text(frames: Iterable[Atoms]) -> str:
    """Serialise frames to extxyz text."""
    handle = io.StringIO()
    write_frames(frames, handle)
    return handle.getvalue()


def sha256_of_file(path: str | Path | IO[bytes], chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    if isinstance(path, (str, Path)):
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(chunk), b""):
                digest.update(block)
    else:
        for block in iter(lambda: path.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def composition_e0s(frames: Iterable[Atoms]) -> dict[str, float]:
    """Least-squares isolated-atom energies (eV) from labelled frames: energy ~ sum_i count_i * e0_i.

    With few distinct compositions the system is underdetermined and the minimum-norm solution is returned;
    it reproduces the energies of those compositions, which is what a model's E0s need for them.
    """
    frames = list(frames)
    species = sorted({symbol for atoms in frames for symbol in atoms.get_chemical_symbols()})
    counts = np.array([[atoms.get_chemical_symbols().count(s) for s in species] for atoms in frames], float)
    energies = np.array([get_energy(atoms) for atoms in frames], float)
    e0, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return {symbol: float(value) for symbol, value in zip(species, e0, strict=True)}
