"""Cell widths and the supercell a cutoff needs (no AiiDA imports).

With periodic boundaries and the minimum-image convention, a pair interaction of cutoff ``r_cut`` sees
each neighbour once only if every perpendicular width of the box (distance between opposite faces) is
at least ``2 * r_cut``; MLP receptive fields and the RASPA Lennard-Jones cutoff both follow this rule.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["perpendicular_widths", "supercell_for_cutoff"]


def perpendicular_widths(cell: np.ndarray) -> np.ndarray:
    """Distances between opposite faces of the cell (Angstrom), along a, b, c.

    ``cell`` holds the lattice vectors as rows (a 3x3 array or an ASE ``Cell``); the width along ``a``
    is volume / |b x c|, and likewise for ``b`` and ``c``.
    """
    matrix = np.asarray(cell, dtype=float)
    if matrix.shape != (3, 3):
        raise ValueError(f"cell must be a 3x3 array of lattice vectors (rows), got shape {matrix.shape}")
    volume = abs(float(np.linalg.det(matrix)))
    a, b, c = matrix
    areas = np.linalg.norm([np.cross(b, c), np.cross(c, a), np.cross(a, b)], axis=1)
    if volume <= 0.0 or not np.all(areas > 0.0):
        raise ValueError(f"cell has no volume (lattice vectors {matrix.tolist()}); give a 3D cell")
    return volume / areas


def supercell_for_cutoff(cell: np.ndarray, cutoff: float) -> tuple[int, int, int]:
    """Smallest repeat (na, nb, nc) of ``cell`` whose perpendicular widths are all >= ``2 * cutoff``.

    ``cutoff`` in Angstrom; a cell already wide enough gives (1, 1, 1).
    """
    if not cutoff > 0.0:
        raise ValueError(f"cutoff must be a positive distance in Angstrom, got {cutoff!r}")
    widths = perpendicular_widths(cell)
    return tuple(max(1, math.ceil(2.0 * cutoff / width - 1e-9)) for width in widths)  # type: ignore[return-value]
