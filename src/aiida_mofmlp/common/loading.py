"""Put whole guest molecules into a framework's unit cell (plain ASE; no AiiDA).

RASPA snapshots are supercells (the box must be twice the cutoff wide); DFT labels and the MLP work on the
framework's own cell. Because the framework is periodic, a guest's position modulo the unit cell is an
equally valid site, so guests are folded back into the unit cell one at a time, skipping any that would
sit on top of an atom already placed.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.geometry import find_mic, get_distances

from aiida_mofmlp.common.frames import GUEST_ID_KEY, guest_ids

#: closest allowed distance (Angstrom) between a placed guest atom and any other atom
MIN_CONTACT = 2.0


def with_guest_ids(atoms: Atoms, ids) -> Atoms:
    """``atoms`` with the per-atom ``guest_id`` array set to ``ids`` (0 framework, k >= 1 guest k)."""
    atoms.set_array(GUEST_ID_KEY, np.asarray(ids, dtype=int))
    return atoms


def empty_framework(framework: Atoms) -> Atoms:
    """A copy of ``framework`` with every atom marked as framework (``guest_id`` 0)."""
    return with_guest_ids(framework.copy(), np.zeros(len(framework), dtype=int))


def _min_distance(atoms: Atoms, first, second) -> float:
    _, dist = get_distances(atoms.positions[first], atoms.positions[second], cell=atoms.cell, pbc=True)
    return float(dist.min())


def _add_guest(loaded: Atoms, symbols, positions, min_contact: float) -> Atoms | None:
    index = int(guest_ids(loaded).max(initial=0)) + 1
    guest = with_guest_ids(Atoms(symbols, positions=positions), np.full(len(symbols), index))
    trial = loaded + guest
    new = np.arange(len(loaded), len(trial))
    if _min_distance(trial, new, np.arange(len(loaded))) < min_contact:
        return None
    return trial


def fold_guests(framework: Atoms, snapshot: Atoms, n_guests: int, min_contact: float = MIN_CONTACT):
    """The ``framework`` unit cell with ``n_guests`` whole guests of the supercell ``snapshot`` folded in.

    Guests are taken in the order of their ``guest_id``; one closer than ``min_contact`` (Angstrom) to an
    atom already placed is skipped. Returns None when fewer than ``n_guests`` fit.
    """
    ids = guest_ids(snapshot)
    loaded = empty_framework(framework)
    if n_guests == 0:
        return loaded
    placed = 0
    for gid in sorted(set(ids.tolist()) - {0}):
        molecule = snapshot[ids == gid]
        offsets, _ = find_mic(molecule.positions - molecule.positions[0], snapshot.cell, pbc=True)
        positions = molecule.positions[0] + offsets  # whole molecule across the supercell boundary
        frac = np.linalg.solve(framework.cell.array.T, positions.mean(axis=0))
        positions = positions - np.floor(frac) @ framework.cell.array
        trial = _add_guest(loaded, molecule.get_chemical_symbols(), positions, min_contact)
        if trial is None:
            continue
        loaded, placed = trial, placed + 1
        if placed == n_guests:
            return loaded
    return None


def place_guests(
    framework: Atoms, guest: Atoms, n_guests: int, grid: int = 12, min_contact: float = MIN_CONTACT
) -> Atoms | None:
    """``n_guests`` copies of ``guest``, each at the grid point of the cell farthest from every atom so far.

    The fallback when RASPA guests cannot be folded into the unit cell. Returns None when a guest cannot
    be placed ``min_contact`` (Angstrom) away from everything else.
    """
    axes = (np.arange(grid) + 0.5) / grid
    frac = np.stack(np.meshgrid(axes, axes, axes, indexing="ij"), axis=-1).reshape(-1, 3)
    points = frac @ framework.cell.array
    loaded = empty_framework(framework)
    for _ in range(n_guests):
        _, dist = get_distances(points, loaded.positions, cell=loaded.cell, pbc=True)
        spot = points[int(np.argmax(dist.min(axis=1)))]
        positions = guest.positions - guest.positions.mean(axis=0) + spot
        trial = _add_guest(loaded, guest.get_chemical_symbols(), positions, min_contact)
        if trial is None:
            return None
        loaded = trial
    return loaded
