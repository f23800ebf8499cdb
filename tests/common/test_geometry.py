"""Perpendicular widths and the supercell a cutoff needs, with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_mofmlp.common.geometry import perpendicular_widths, supercell_for_cutoff


def test_orthorhombic_cell():
    cell = np.diag([5.0, 8.0, 13.0])
    np.testing.assert_allclose(perpendicular_widths(cell), [5.0, 8.0, 13.0])
    # 2 x 6 = 12 Angstrom: 3 x 5 = 15, 2 x 8 = 16, 1 x 13 = 13
    assert supercell_for_cutoff(cell, 6.0) == (3, 2, 1)
    # widths exactly 2 x cutoff are enough
    assert supercell_for_cutoff(cell, 4.0) == (2, 1, 1)
    assert supercell_for_cutoff(cell, 2.5) == (1, 1, 1)


def test_triclinic_cell_against_volume_over_face_area():
    cell = np.array([[9.0, 0.0, 0.0], [3.0, 7.5, 0.0], [-2.0, 1.5, 11.0]])
    a, b, c = cell
    volume = abs(np.dot(a, np.cross(b, c)))
    expected = [
        volume / np.linalg.norm(np.cross(b, c)),
        volume / np.linalg.norm(np.cross(c, a)),
        volume / np.linalg.norm(np.cross(a, b)),
    ]
    widths = perpendicular_widths(cell)
    np.testing.assert_allclose(widths, expected)
    # the width along c is the height of c above the ab plane: its z component
    assert widths[2] == pytest.approx(11.0)
    assert np.all(widths[:2] < np.linalg.norm(cell, axis=1)[:2])
    repeat = supercell_for_cutoff(cell, 10.0)
    assert np.all(perpendicular_widths(cell * np.asarray(repeat)[:, None]) >= 20.0 - 1e-9)
    smaller = [np.asarray(repeat) - np.eye(3, dtype=int)[axis] for axis in range(3) if repeat[axis] > 1]
    for fewer in smaller:  # one repeat fewer along any axis is too small: the repeat is the smallest
        assert np.any(perpendicular_widths(cell * fewer[:, None]) < 20.0)


def test_invalid_cells_and_cutoffs_are_rejected():
    with pytest.raises(ValueError, match="3x3"):
        perpendicular_widths(np.eye(2))
    with pytest.raises(ValueError, match="no volume"):
        perpendicular_widths(np.array([[1.0, 0, 0], [2.0, 0, 0], [0, 0, 1.0]]))
    with pytest.raises(ValueError, match="positive"):
        supercell_for_cutoff(np.eye(3), 0.0)
