"""Unit tests of the ``mofmlp-md`` helpers and input validation (no LAMMPS run)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from aiida_mofmlp.engines.lammps.gcmc import (
    block_average,
    molecules_to_mol_per_kg,
    peng_robinson_fugacity_coefficient,
    read_guest,
)
from aiida_mofmlp.engines.lammps.mace_driver import ase_to_lammps_virial, lammps_cell
from aiida_mofmlp.engines.lammps.md import main
from aiida_mofmlp.engines.lammps.md_settings import InputError, load_settings, normalise_segments


def test_lammps_cell_is_lower_triangular_and_preserves_geometry():
    cell = np.array([[5.0, 1.0, 0.5], [0.3, 6.0, 0.2], [1.0, -0.4, 7.0]])
    new, rotation = lammps_cell(cell)
    assert np.allclose(np.triu(new, 1), 0.0)
    assert np.allclose(cell @ rotation, new)
    assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)  # a pure rotation
    assert np.isclose(abs(np.linalg.det(new)), abs(np.linalg.det(cell)))


def test_virial_order_and_sign():
    # ASE Voigt xx yy zz yz xz xy -> LAMMPS xx yy zz xy xz yz, virial = -stress * volume
    virial = ase_to_lammps_virial(np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), 2.0)
    assert virial == [-2.0, -4.0, -6.0, -12.0, -10.0, -8.0]


def test_peng_robinson_co2_fugacity_coefficient():
    # CO2 at 300 K: phi ~ 0.995 at 1 bar and ~0.95 at 10 bar; ideal limit at low pressure
    args = (304.1282, 7.3773e6, 0.22394)
    assert peng_robinson_fugacity_coefficient(300.0, 1.0e-4, *args) == pytest.approx(1.0, abs=1e-6)
    assert peng_robinson_fugacity_coefficient(300.0, 1.0, *args) == pytest.approx(0.995, abs=0.002)
    assert peng_robinson_fugacity_coefficient(300.0, 10.0, *args) == pytest.approx(0.95, abs=0.01)


def test_block_average_and_units():
    mean, error = block_average(np.array([1, 1, 2, 2, 3, 3], dtype=float), 3)
    assert mean == pytest.approx(2.0)
    assert error == pytest.approx(np.std([1, 2, 3], ddof=1) / np.sqrt(3))
    assert np.isnan(block_average(np.ones(4), 1)[1])
    assert molecules_to_mol_per_kg(2.0, 1000.0) == pytest.approx(2.0)


def test_read_guest_centres_and_validates(tmp_path):
    path = tmp_path / "guest.json"
    path.write_text(
        json.dumps({"symbols": ["C", "O", "O"], "positions": [[1, 1, 1], [1, 1, 2.16], [1, 1, -0.16]]})
    )
    guest = read_guest(path)
    assert np.allclose(guest.positions[0], 0.0, atol=1e-12)
    assert guest.molar_mass == pytest.approx(44.009, abs=0.01)
    with pytest.raises(ValueError, match="positions"):
        read_guest({"symbols": ["C", "O"]})


def test_segments_hold_and_ramp():
    segments = normalise_segments(
        [{"steps": 10, "temperature": 300}, {"steps": 5, "temperature": [300, 900]}], 0, 0
    )
    assert segments[0]["temperature"] == [300.0, 300.0]
    assert segments[1]["temperature"] == [300.0, 900.0]
    with pytest.raises(InputError, match="segment 0 temperature"):
        normalise_segments([{"steps": 10, "temperature": [300, 400, 500]}], 0, 0)


@pytest.mark.parametrize(
    ("given", "match"),
    [
        ({"ensemble": "nph"}, "ensemble 'nph' is not valid"),
        ({"coupling": "mace"}, "needs native_model"),
        ({"timestep_fs": 0}, "timestep_fs must be > 0"),
        ({"temperature_K": 300}, "unknown input keys"),
        ({"gcmc": {"guest": "g.json"}, "ensemble": "npt"}, "gcmc needs ensemble 'nvt'"),
        ({"gcmc": {"pressures_bar": [-1]}}, "pressures_bar"),
        ({"safety": {"min_dist": 1}}, "unknown safety keys"),
    ],
)
def test_invalid_settings_are_rejected(given, match):
    with pytest.raises(InputError, match=match):
        load_settings(given)


def test_gcmc_settings_make_one_segment_per_pressure():
    settings = load_settings(
        {"gcmc": {"pressures_bar": [0.1, 1.0], "equilibration_steps": 5, "production_steps": 10}}
    )
    assert [s["pressure_bar"] for s in settings["segments"]] == [0.1, 1.0]
    assert all(s["steps"] == 15 for s in settings["segments"])


def test_main_reports_bad_input(tmp_path, capsys):
    path = tmp_path / "input.yaml"
    path.write_text("ensemble: npx\n")
    assert main([str(path)]) == 1
    assert "ensemble 'npx' is not valid" in capsys.readouterr().err


def test_scale_timestep_keeps_simulated_time_and_validates():
    from aiida_mofmlp.workflows.lammps.base import get_protocol, scale_timestep

    parameters = get_protocol(
        "fast", {"parameters": {"segments": [{"steps": 100, "temperature": [300, 600]}]}}
    )["parameters"]
    scaled = scale_timestep(parameters, 0.5)
    assert scaled["timestep_fs"] == pytest.approx(0.25)
    assert scaled["segments"][0]["steps"] == 200
    assert scaled["dump_interval"] == 2 * parameters["dump_interval"]
    assert scaled["safety"]["check_interval"] == 2 * parameters["safety"]["check_interval"]
    load_settings(scaled)
    hot = scale_timestep({"segments": [{"steps": 40, "temperature": 1500, "timestep_fs": 0.25}]}, 0.5)
    assert hot["segments"][0]["steps"] * hot["segments"][0]["timestep_fs"] == pytest.approx(40 * 0.25)
    gcmc = scale_timestep({"gcmc": {"production_steps": 50, "attempt_interval": 5}}, 0.5)["gcmc"]
    assert gcmc == {"production_steps": 100, "attempt_interval": 5}  # still one attempt every 5 MD steps


@pytest.mark.parametrize("protocol", ["fast", "balanced", "stringent"])
def test_protocols_are_valid_engine_settings(protocol):
    from aiida_mofmlp.workflows.lammps.base import get_protocol

    settings = load_settings(get_protocol(protocol)["parameters"])
    assert settings["timestep_fs"] == 0.5
    assert settings["ensemble"] == "nvt"
    with pytest.raises(ValueError, match="unknown MD protocol"):
        get_protocol("quick")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"steps": "many"}, "input.steps='many' must be a number"),
        ({"write_images": "yes"}, "input.write_images='yes' must be true/false"),
        ({"safety": {"check_interval": "often"}}, "safety.check_interval='often' must be a number"),
        ({"gcmc": {"guest": "g.json", "n_blocks": [5]}}, "gcmc.n_blocks=[5] must be a number"),
    ],
)
def test_settings_of_the_wrong_type_are_named_before_any_run(given, expected):
    """The MD engine's settings have the types of their defaults: a wrong one is an InputError naming it
    (the CalcJob's validator returns the same message), never a ValueError deep in the run."""
    from aiida_mofmlp.common.errors import InputError
    from aiida_mofmlp.engines.lammps.md_settings import load_settings

    with pytest.raises(InputError, match=re.escape(expected)):
        load_settings(given)


def test_a_single_pressure_is_still_accepted():
    from aiida_mofmlp.engines.lammps.md_settings import load_settings

    settings = load_settings({"gcmc": {"guest": "g.json", "pressures_bar": 2.0}})
    assert settings["gcmc"]["pressures_bar"] is not None
