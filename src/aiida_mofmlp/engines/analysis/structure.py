"""Radial distribution functions, their first peaks, and coordination numbers.

Pair distances come from ``ase.neighborlist.neighbor_list`` (periodic, any cell size, so no supercell is
needed below ``r_max``); peaks from ``scipy.signal.find_peaks``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list
from scipy.signal import find_peaks

#: metal-ligand coordination cutoff in Angstrom (Zn-N of ZIF-4: Castel et al., Digital Discovery 2024,
#: DOI 10.1039/d3dd00236e)
DEFAULT_COORDINATION_CUTOFF = 2.5


def _pair_distances(cell, pbc, points_a: np.ndarray, points_b: np.ndarray | None, r_max: float) -> np.ndarray:
    """Distances below ``r_max`` from points A to points B (to A itself, no self pairs, without B)."""
    if points_b is None:
        atoms = Atoms(numbers=[1] * len(points_a), positions=points_a, cell=cell, pbc=pbc)
        return neighbor_list("d", atoms, r_max)
    n_a = len(points_a)
    atoms = Atoms(
        numbers=[1] * n_a + [2] * len(points_b), positions=np.vstack([points_a, points_b]), cell=cell, pbc=pbc
    )
    i, j, d = neighbor_list("ijd", atoms, r_max)
    return d[(i < n_a) & (j >= n_a)]


def radial_distribution(
    cells: Sequence[np.ndarray],
    points_a: Sequence[np.ndarray],
    points_b: Sequence[np.ndarray] | None = None,
    r_max: float = 6.0,
    n_bins: int = 300,
) -> dict:
    """g(r) between point sets A and B averaged over frames (B = A when ``points_b`` is None).

    ``cells``: per-frame 3x3 cells; ``points_*``: per-frame (n, 3) positions in Angstrom. Returns ``r``
    (bin centres, Angstrom), ``g`` and the running coordination number ``n`` (B around A).
    """
    edges = np.linspace(0.0, r_max, n_bins + 1)
    counts = np.zeros(n_bins)
    density = 0.0
    n_a_total = 0
    for k, cell in enumerate(cells):
        a = np.asarray(points_a[k], dtype=float)
        b = None if points_b is None else np.asarray(points_b[k], dtype=float)
        volume = abs(np.linalg.det(cell))
        n_b = len(a) - 1 if b is None else len(b)
        if len(a) == 0 or n_b <= 0:
            continue
        counts += np.histogram(_pair_distances(cell, True, a, b, r_max), bins=edges)[0]
        density += len(a) * n_b / volume
        n_a_total += len(a)
    if n_a_total == 0:
        raise ValueError("the RDF needs at least one A point and one B point in some frame")
    shells = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    g = counts / (density * shells)
    return {
        "r": 0.5 * (edges[1:] + edges[:-1]),
        "g": g,
        "n": np.cumsum(counts) / n_a_total,
        "units": {"r": "Angstrom"},
    }


def element_rdf(
    frames: Sequence[Atoms], a: Iterable[str], b: Iterable[str] | None = None, r_max: float = 6.0, n_bins=300
) -> dict:
    """g(r) between atoms of elements ``a`` and elements ``b`` (all of ``a`` when ``b`` is None)."""
    a, b = set(a), None if b is None else set(b)
    masks_a = [np.isin(f.get_chemical_symbols(), list(a)) for f in frames]
    same = b is None or b == a
    points_b = None if same else [f.positions[np.isin(f.get_chemical_symbols(), list(b))] for f in frames]
    return radial_distribution(
        [f.cell.array for f in frames],
        [f.positions[m] for m, f in zip(masks_a, frames, strict=True)],
        points_b,
        r_max,
        n_bins,
    )


def first_peaks(r: np.ndarray, g: np.ndarray, n_peaks: int = 1, min_prominence: float = 0.1) -> list[float]:
    """Positions (Angstrom) of the first ``n_peaks`` maxima of g(r) with prominence >= ``min_prominence``
    of the highest maximum, refined by a parabola through the top three bins."""
    g = np.asarray(g, dtype=float)
    if not np.isfinite(g).all() or g.max() <= 0:
        return []
    indices, _ = find_peaks(np.concatenate([[0.0], g, [0.0]]), prominence=min_prominence * g.max())
    peaks = []
    for index in indices[:n_peaks] - 1:
        position = float(r[index])
        if 0 < index < len(g) - 1:
            left, centre, right = g[index - 1 : index + 2]
            curvature = left - 2 * centre + right
            if curvature < 0:
                position += 0.5 * (left - right) / curvature * (r[1] - r[0])
        peaks.append(position)
    return peaks


def coordination_numbers(
    atoms: Atoms, centres: Iterable[str], ligands: Iterable[str], cutoff: float = DEFAULT_COORDINATION_CUTOFF
) -> np.ndarray:
    """Number of ``ligands`` atoms within ``cutoff`` (Angstrom) of each ``centres`` atom (in index order)."""
    symbols = np.array(atoms.get_chemical_symbols())
    centre_index = np.flatnonzero(np.isin(symbols, list(centres)))
    ligand_mask = np.isin(symbols, list(ligands))
    i, j = neighbor_list("ij", atoms, cutoff)
    keep = ligand_mask[j]
    counts = np.bincount(i[keep], minlength=len(atoms))
    return counts[centre_index]
