"""Folding RASPA guests into the unit cell and placing guests at the emptiest spots."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from aiida_mofmlp.common.loading import fold_guests, place_guests


def _framework() -> Atoms:
    return Atoms("H2", positions=[[0, 0, 0], [0.8, 0, 0]], cell=[8.0, 8.0, 8.0], pbc=True)


def _co2(at) -> Atoms:
    return Atoms("CO2", positions=np.asarray(at, float) + np.array([[0, 0, 0], [1.16, 0, 0], [-1.16, 0, 0]]))


def test_fold_guests_wraps_whole_molecules_into_the_unit_cell():
    framework = _framework()
    supercell = framework.repeat((2, 1, 1))
    supercell.set_array("guest_id", np.zeros(len(supercell), dtype=int))
    # a molecule in the second image, straddling nothing; another one that would overlap the first once folded
    first, second = _co2([12.0, 4.0, 4.0]), _co2([4.1, 4.0, 4.0])
    for gid, molecule in ((1, first), (2, second)):
        molecule.set_array("guest_id", np.full(3, gid))
        supercell += molecule
    loaded = fold_guests(framework, supercell, 1)
    assert loaded is not None and len(loaded) == 5
    np.testing.assert_allclose(loaded.positions[2], [4.0, 4.0, 4.0], atol=1e-9)
    assert loaded.get_array("guest_id").tolist() == [0, 0, 1, 1, 1]
    assert fold_guests(framework, supercell, 2) is None  # the second lands on the first: no room


def test_free_spot_is_far_from_the_framework():
    loaded = place_guests(_framework(), _co2([0, 0, 0]), 1)
    centre = loaded.positions[loaded.get_array("guest_id") == 1].mean(axis=0)
    assert np.linalg.norm(centre - [4.4, 4.0, 4.0]) < 1.0  # opposite the H2 in the periodic box
