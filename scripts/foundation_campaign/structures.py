"""Framework cells from RASPA2's CIFs, guest loading, rattles and strains."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import molecule
from ase.data import covalent_radii

from aiida_mofmlp.common.geometry import supercell_for_cutoff
from aiida_mofmlp.common.loading import empty_framework, place_guests


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


def guest_molecule(name: str, rng: np.random.Generator | None = None) -> Atoms:
    """The guest ``name`` (ASE's geometry) centred on its centre of mass, randomly rotated when ``rng``."""
    atoms = molecule(name)
    atoms.positions -= atoms.get_center_of_mass()
    if rng is not None:
        from scipy.spatial.transform import Rotation

        rotation = Rotation.random(random_state=int(rng.integers(2**31)))
        atoms.positions = rotation.apply(atoms.positions)
    return atoms


def loaded_cell(framework: Atoms, guest: str, n: int, rng: np.random.Generator) -> Atoms | None:
    """``framework`` with ``n`` randomly oriented ``guest`` molecules at its emptiest points
    (None: no room for them)."""
    loaded = None
    for _ in range(3):  # another orientation when the first does not fit
        loaded = place_guests(framework, guest_molecule(guest, rng), n, grid=10, min_contact=2.2)
        if loaded is not None:
            break
    if loaded is None:
        return None
    loaded.info.update({"framework": framework.info["framework"], "guest": guest, "loading": n})
    return loaded


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
