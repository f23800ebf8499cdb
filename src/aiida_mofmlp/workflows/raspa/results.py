"""Guest snapshots from RASPA's final configuration: whole molecules placed in the framework supercell.

No AiiDA imports and no file access: site positions (as parsed by ``aiida_mofmlp.parsers.raspa``) and ASE
in, frames out. The calcfunction ``collect_snapshots`` of ``isotherm.py`` calls these.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from aiida_mofmlp.common.frames import GUEST_ID_KEY


def _kabsch(reference: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotation R minimising |reference @ R.T - target| for centred point sets."""
    h = reference.T @ target
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


def place_guest(
    site_reference: np.ndarray,
    atom_reference: np.ndarray,
    sites: np.ndarray,
    cell: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Atom positions of one guest whose force-field sites sit at ``sites`` (Angstrom).

    The molecule's sites are made whole across periodic boundaries, the reference sites are fitted onto
    them (rotation + translation, Kabsch), and the same transform is applied to the reference atoms. A
    single-site guest (united atom) gets a random orientation at the site.
    """
    sites = np.array(sites, dtype=float)
    inverse = np.linalg.inv(cell)
    for k in range(1, len(sites)):  # unwrap each site to the image nearest the first one
        delta = (sites[k] - sites[0]) @ inverse
        sites[k] -= np.round(delta) @ cell
    site_centre = site_reference.mean(axis=0)
    if len(sites) == 1:
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        rotation = q * np.sign(np.diag(r))
        if np.linalg.det(rotation) < 0:
            rotation[:, 0] *= -1
    else:
        rotation = _kabsch(site_reference - site_centre, sites - sites.mean(axis=0))
    return (atom_reference - site_centre) @ rotation.T + sites.mean(axis=0)


def build_snapshot(
    framework: Atoms,
    unit_cells: list[int],
    guest_symbols: list[str],
    atom_reference: np.ndarray,
    site_reference: np.ndarray,
    guest_sites: np.ndarray,
    seed: int = 0,
) -> Atoms:
    """Framework supercell plus whole guests (``guest_id`` 1..N per molecule, 0 for framework atoms).

    Each guest's centre of mass is wrapped into the cell; its atoms stay together (they may stick out).
    """
    atoms = framework.repeat(unit_cells)
    atoms.arrays[GUEST_ID_KEY] = np.zeros(len(atoms), dtype=int)
    cell = np.asarray(atoms.cell)
    rng = np.random.default_rng(seed)
    for index, sites in enumerate(guest_sites, start=1):
        positions = place_guest(site_reference, atom_reference, sites, cell, rng)
        molecule = Atoms(symbols=guest_symbols, positions=positions, cell=atoms.cell, pbc=True)
        centre = molecule.get_center_of_mass()
        shift = centre - (np.linalg.solve(cell.T, centre) % 1.0) @ cell
        molecule.positions -= shift
        molecule.arrays[GUEST_ID_KEY] = np.full(len(molecule), index, dtype=int)
        atoms += molecule
    return atoms


def min_guest_contact(atoms: Atoms, cutoff: float = 4.0) -> float | None:
    """Shortest distance (Angstrom) from a guest atom to an atom of another molecule or of the framework.

    None when there is no guest or no such contact within ``cutoff``. Small values flag over-filled cells.
    """
    from ase.neighborlist import neighbor_list

    ids = np.asarray(atoms.arrays.get(GUEST_ID_KEY, np.zeros(len(atoms), dtype=int)))
    if not (ids > 0).any():
        return None
    first, second, distance = neighbor_list("ijd", atoms, cutoff)
    mask = (ids[first] > 0) & (ids[first] != ids[second])
    return float(distance[mask].min()) if mask.any() else None
