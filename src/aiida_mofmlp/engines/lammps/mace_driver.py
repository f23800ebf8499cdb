"""MACE energies, forces and virial for LAMMPS through ``fix external`` (no AiiDA imports).

LAMMPS runs with ``pair_style zero`` and ``fix ID all external pf/callback 1 1``; at every force call
LAMMPS hands the positions of its local atoms to :class:`MaceCallback`, which evaluates the MACE model
and writes the forces back, and sets the global energy and virial so that thermo output, barostats and
``fix gcmc full_energy`` see them. Atoms whose mask lacks bit 1 (group ``all``) are excluded: that is
how ``fix gcmc`` hides a molecule during a trial deletion.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms


def lammps_cell(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the lower-triangular LAMMPS cell for ``cell`` and the rotation taking old to new vectors.

    LAMMPS needs a = (lx, 0, 0), b = (xy, ly, 0), c = (xz, yz, lz); positions in the LAMMPS frame are
    ``positions @ rotation``.
    """
    cell = np.asarray(cell, dtype=float)
    a, b, c = cell
    lx = np.linalg.norm(a)
    xy = b @ a / lx
    ly = math.sqrt(max(b @ b - xy**2, 0.0))
    xz = c @ a / lx
    yz = (b @ c - xy * xz) / ly
    lz = math.sqrt(max(c @ c - xz**2 - yz**2, 0.0))
    new = np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])
    rotation = np.linalg.solve(cell, new)  # cell @ rotation = new
    return new, rotation


def to_lammps_frame(atoms: Atoms) -> Atoms:
    """A copy of ``atoms`` rotated so that its cell is lower-triangular (LAMMPS convention)."""
    new_cell, rotation = lammps_cell(atoms.cell.array)
    rotated = atoms.copy()
    rotated.set_cell(new_cell, scale_atoms=False)
    rotated.positions = atoms.positions @ rotation
    return rotated


def ase_to_lammps_virial(stress: np.ndarray, volume: float) -> list[float]:
    """LAMMPS virial (eV; xx yy zz xy xz yz) from an ASE Voigt stress (eV/A^3; xx yy zz yz xz xy)."""
    s = np.asarray(stress, dtype=float)
    return [float(-volume * s[i]) for i in (0, 1, 2, 5, 4, 3)]


def box_to_cell(lmp) -> tuple[np.ndarray, np.ndarray]:
    """Current LAMMPS box as (cell rows, boxlo)."""
    boxlo, boxhi, xy, yz, xz, _periodicity, _box_change = lmp.extract_box()
    lx, ly, lz = (boxhi[i] - boxlo[i] for i in range(3))
    cell = np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])
    return cell, np.asarray(boxlo, dtype=float)


class MaceModel:
    """A MACE model evaluated through mace's own ASE calculator (same code path as ASE MD)."""

    def __init__(
        self, model_path: str | Path, head: str | None = None, device: str = "cpu", dtype: str = "float64"
    ) -> None:
        from aiida_mofmlp.engines.mace.common import mace_calculator

        kwargs = {"head": head} if head else {}
        self.calculator = mace_calculator(model_path, device=device, default_dtype=dtype, **kwargs)
        self.r_max = float(self.calculator.r_max)
        z_table = getattr(self.calculator, "z_table", None)
        self.atomic_numbers = sorted(int(z) for z in z_table.zs) if z_table is not None else None
        self.n_calls = 0
        self.seconds = 0.0

    def evaluate(
        self, numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray, pbc: bool = True
    ) -> tuple[float, np.ndarray, np.ndarray | None]:
        """Energy (eV), forces (eV/A) and Voigt stress (eV/A^3, None without pbc) of one configuration."""
        start = time.perf_counter()
        atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=pbc)
        properties = ["energy", "forces", "stress"] if pbc else ["energy", "forces"]
        self.calculator.calculate(atoms, properties, [])
        results = self.calculator.results
        energy = float(results["energy"])
        forces = np.asarray(results["forces"], dtype=float)
        stress = np.asarray(results["stress"], dtype=float) if pbc else None
        self.n_calls += 1
        self.seconds += time.perf_counter() - start
        return energy, forces, stress

    def isolated_energy(self, symbols: list[str], positions: np.ndarray) -> float:
        """Energy of an isolated molecule (no periodic images)."""
        atoms = Atoms(symbols=symbols, positions=positions)
        return self.evaluate(atoms.numbers, atoms.positions, np.zeros((3, 3)), pbc=False)[0]


@dataclass
class EvaluationRecord:
    """What the callback computed at one call: used by the GCMC tests to check trial energies."""

    step: int
    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    energy: float


@dataclass
class MaceCallback:
    """The ``fix external`` callback: MACE forces into LAMMPS, plus energy and virial.

    Attributes after each call: ``energy``, ``forces`` (by atom id), ``stress``, ``nan`` (True once a
    non-finite value was seen), ``min_distance`` is computed on demand by the engine.
    """

    lmp: object
    fix_id: str
    model: MaceModel
    type_numbers: dict[int, int]
    record: list[EvaluationRecord] | None = None
    energy: float = 0.0
    stress: np.ndarray | None = None
    nan: bool = False
    n_calls: int = 0
    last: dict = field(default_factory=dict)

    def __call__(self, _caller, ntimestep, nlocal, tag, x, f) -> None:
        lmp = self.lmp
        types = np.asarray(lmp.numpy.extract_atom("type"))[:nlocal]
        mask = np.asarray(lmp.numpy.extract_atom("mask"))[:nlocal]
        active = (mask & 1) == 1  # fix gcmc moves a molecule under trial deletion out of group all
        f[:] = 0.0
        cell, boxlo = box_to_cell(lmp)
        if not active.any():
            self._set(0.0, np.zeros(6))
            return
        numbers = np.array([self.type_numbers[int(t)] for t in types[active]])
        positions = np.array(x[:nlocal][active]) - boxlo
        energy, forces, stress = self.model.evaluate(numbers, positions, cell)
        self.n_calls += 1
        if not (math.isfinite(energy) and np.isfinite(forces).all() and np.isfinite(stress).all()):
            self.nan = True
            forces = np.nan_to_num(forces, nan=0.0, posinf=0.0, neginf=0.0)
            energy = 0.0 if not math.isfinite(energy) else energy
            stress = np.zeros(6)
        f[np.flatnonzero(active)] = forces
        volume = abs(np.linalg.det(cell))
        self._set(energy, np.asarray(ase_to_lammps_virial(stress, volume)))
        self.stress = stress
        self.last = {
            "step": int(ntimestep),
            "ids": np.array(tag[:nlocal][active], dtype=int),
            "forces": np.array(forces),
            "energy": energy,
        }
        if self.record is not None:
            self.record.append(EvaluationRecord(int(ntimestep), numbers, positions, cell, energy))

    def _set(self, energy: float, virial: np.ndarray) -> None:
        self.energy = energy
        self.lmp.fix_external_set_energy_global(self.fix_id, float(energy))
        self.lmp.fix_external_set_virial_global(self.fix_id, [float(v) for v in virial])
