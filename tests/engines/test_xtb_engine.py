"""mofmlp-xtb: GFN1-xTB labels from tblite, checked against finite differences of its own energy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from aiida_mofmlp.common.errors import InputError
from aiida_mofmlp.common.frames import ENERGY_KEY, FORCES_KEY, STRESS_KEY, read_frames, write_frames
from aiida_mofmlp.engines.xtb.label import (
    FAILURES_FILE,
    LABELLED_FILE,
    SUMMARY_FILE,
    label_frame,
    load_settings,
    main,
    run,
)


def small_cell() -> Atoms:
    """CO2 and H2O in a 7 Angstrom periodic box (6 atoms: fast enough for finite differences)."""
    co2 = molecule("CO2")
    water = molecule("H2O")
    water.translate([0.0, 3.1, 0.4])
    atoms = co2 + water
    atoms.set_cell([7.0, 7.2, 6.8])
    atoms.pbc = True
    atoms.center()
    atoms.rattle(0.05, seed=1)
    return atoms


@pytest.fixture(scope="module")
def settings():
    return load_settings({"compute_stress": True, "charges": True})


def test_forces_are_minus_the_energy_gradient(settings):
    atoms = small_cell()
    result = label_frame(atoms, settings)
    step = 1e-3
    for atom, axis in [(0, 0), (1, 2), (4, 1)]:
        energies = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions[atom, axis] += sign * step
            energies.append(label_frame(moved, settings)["energy"])
        numeric = -(energies[0] - energies[1]) / (2 * step)
        assert result["forces"][atom, axis] == pytest.approx(numeric, abs=2e-3)


def test_stress_is_the_strain_derivative(settings):
    atoms = small_cell()
    result = label_frame(atoms, settings)
    volume = atoms.get_volume()
    eps = 1e-4
    energies = []
    for sign in (1, -1):
        strained = atoms.copy()
        strain = np.eye(3)
        strain[0, 0] += sign * eps
        strained.set_cell(atoms.cell @ strain, scale_atoms=True)
        energies.append(label_frame(strained, settings)["energy"])
    numeric_xx = (energies[0] - energies[1]) / (2 * eps) / volume
    assert result["stress"][0] == pytest.approx(numeric_xx, abs=2e-5)


def test_charges_sum_to_zero(settings):
    result = label_frame(small_cell(), settings)
    assert abs(result["charges"].sum()) < 1e-6


def test_run_writes_labels_and_summary(tmp_path):
    frames = [small_cell(), small_cell()]
    frames[1].positions[0] += 0.1
    frames[0].info["loading"] = 1
    write_frames(frames, tmp_path / "frames.extxyz")
    (tmp_path / "input.json").write_text(json.dumps({"frames": "frames.extxyz", "compute_stress": True}))
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["input.json"]) == 0
    finally:
        os.chdir(cwd)
    labelled = read_frames(tmp_path / LABELLED_FILE)
    assert [atoms.info["parent_index"] for atoms in labelled] == [0, 1]
    assert labelled[0].info["loading"] == 1
    assert labelled[0].info["label_method"] == "GFN1-xTB"
    for atoms in labelled:
        assert np.isfinite(atoms.info[ENERGY_KEY])
        assert atoms.arrays[FORCES_KEY].shape == (6, 3)
        assert len(atoms.info[STRESS_KEY]) == 6
    assert labelled[0].info[ENERGY_KEY] != labelled[1].info[ENERGY_KEY]
    assert json.loads((tmp_path / FAILURES_FILE).read_text()) == []
    summary = json.loads((tmp_path / SUMMARY_FILE).read_text())
    assert summary["n_labelled"] == 2 and summary["program"] == "tblite"


def test_non_periodic_frame_is_refused(tmp_path):
    atoms = molecule("CO2")
    write_frames([small_cell(), atoms], tmp_path / "frames.extxyz")
    with pytest.raises(InputError, match="frame 1 is not periodic"):
        run({"frames": "frames.extxyz"}, tmp_path)


def test_elements_beyond_radon_are_refused(tmp_path):
    atoms = small_cell()
    atoms[0].symbol = "U"
    write_frames([atoms], tmp_path / "frames.extxyz")
    with pytest.raises(InputError, match=r"elements \['U'\]"):
        run({"frames": "frames.extxyz"}, tmp_path)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"method": "GFN0-xTB"}, "valid: GFN1-xTB, GFN2-xTB"),
        ({"accuracy": -1}, "accuracy=-1 must be a positive number"),
        ({"retry": {"max_iterations": 0}}, "retry.max_iterations=0"),
        ({"retry": {"smearing": 1}}, "retry: unknown keys"),
        ({"temperature": 300}, "unknown keys"),
    ],
)
def test_bad_settings_are_named(raw, message):
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace(".", r"\.")):
        load_settings(raw)
