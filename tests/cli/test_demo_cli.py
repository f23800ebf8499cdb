"""Cheap checks of `aiida-mofmlp demo` (the full demo runs for minutes and is not part of the tests)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from click.testing import CliRunner

from aiida_mofmlp.cli import cli
from aiida_mofmlp.cli.demo import STEPS, composition_e0s, fold_guests, place_at_free_spot, validate_steps


def test_demo_help_lists_options():
    result = CliRunner().invoke(cli, ["demo", "--help"])
    assert result.exit_code == 0, result.output
    assert "--profile" in result.output and "--output-dir" in result.output
    assert "mofmlp-demo-output" in result.output


def test_step_list_is_valid():
    keys = validate_steps()
    assert keys[0] == "intake" and keys[-1] == "selection"
    assert len(keys) == len(STEPS) == 10
    with pytest.raises(ValueError, match="duplicate"):
        validate_steps((("a", "x"), ("a", "y")))


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
    loaded = place_at_free_spot(_framework(), _co2([0, 0, 0]))
    centre = loaded.positions[loaded.get_array("guest_id") == 1].mean(axis=0)
    assert np.linalg.norm(centre - [4.4, 4.0, 4.0]) < 1.0  # opposite the H2 in the periodic box


def test_composition_e0s_recovers_per_element_energies():
    frames = []
    for symbols in ("H2", "CO2", "H2CO", "CH4"):
        atoms = Atoms(symbols)
        energy = {"H": -13.6, "C": -1030.0, "O": -2040.0}
        atoms.info["REF_energy"] = sum(energy[s] for s in atoms.get_chemical_symbols())
        frames.append(atoms)
    e0s = composition_e0s(frames)
    assert e0s == pytest.approx({"C": -1030.0, "H": -13.6, "O": -2040.0})
