"""RASPA output parsing (``parse_raw.raspa``) and the ``mofmlp.raspa`` parser plugin, on real RASPA2 outputs.

The outputs in ``raspa_outputs/`` come from short runs of the real ``simulate`` (CO2 in MIL-47, see
``raspa_outputs/generate.py``); the numbers below are read from those files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aiida_mofmlp.parsers.parse_raw import raspa as raw

DATA = Path(__file__).parent / "raspa_outputs"
GCMC_BLOCKS = [10.7, 12.8, 8.5, 6.8, 8.9]  # molecules in the 3x1x2 box, 'Number of molecules' section
MOL_KG_FACTOR = 1.0819864405  # 'Conversion factor molecules/unit cell -> mol/kg'


def _text(case: str, folder: str) -> str:
    (path,) = (DATA / case / folder / "System_0").iterdir()
    return path.read_text()


def _retrieved(case: str, folders: tuple[str, ...] = ("Output", "Restart")) -> dict[str, str]:
    files = {}
    for folder in folders:
        for path in (DATA / case / folder / "System_0").iterdir():
            files[f"{folder}/System_0/{path.name}"] = path.read_text()
    return files


# --- parse_raw: AiiDA-free ----------------------------------------------------------------------------


def test_gcmc_loading_blocks_units_and_drift():
    text = _text("gcmc", "Output")
    assert raw.component_names(text) == ["CO2"]
    assert raw.unit_cells(text) == [3, 1, 2]
    assert raw.mol_kg_factors(text) == [MOL_KG_FACTOR]
    assert raw.loading_blocks(text) == GCMC_BLOCKS
    loadings = raw.parse_loadings(text)["CO2"]
    assert loadings["molecules_per_box"] == GCMC_BLOCKS
    assert loadings["molecules_per_cell"] == pytest.approx([value / 6 for value in GCMC_BLOCKS])
    assert loadings["mol_kg"] == pytest.approx([value / 6 * MOL_KG_FACTOR for value in GCMC_BLOCKS])
    # RASPA's own averages: 1.59 molecules/unit cell, 1.7203584405 mol/kg
    assert np.mean(loadings["molecules_per_cell"]) == pytest.approx(1.59)
    assert np.mean(loadings["mol_kg"]) == pytest.approx(1.7203584405)
    # (mean(6.8, 8.9) - mean(10.7, 12.8)) / 9.54
    assert loadings["relative_drift"] == pytest.approx((7.85 - 11.75) / 9.54)


def test_enthalpy_of_adsorption_of_real_runs():
    assert raw.enthalpy_of_adsorption(_text("gcmc", "Output")) == (
        pytest.approx(-18.80421),
        pytest.approx(2.135658),
    )
    # an empty box (Widom) prints nan, a canonical run shorter than the blocks prints -inf
    assert raw.enthalpy_of_adsorption(_text("widom", "Output")) == (None, None)
    assert raw.enthalpy_of_adsorption(_text("nvt", "Output")) == (None, None)
    # a single component has no per-component section
    assert raw.enthalpy_of_adsorption(_text("gcmc", "Output"), component=0) == (None, None)


def test_final_guest_positions_from_the_restart_file():
    restart = _text("nvt", "Restart")
    components = raw.restart_components(restart)
    assert list(components) == [0]
    sites = components[0]
    assert sites.shape == (6, 3, 3)
    assert sites[0, 0] == pytest.approx([16.369862960640, 3.276703082026, 4.429371924542])
    # rigid TraPPE CO2: both O sites at 1.16 Angstrom from C, on a line
    bonds = np.linalg.norm(sites[:, 1:] - sites[:, :1], axis=-1)
    assert bonds == pytest.approx(np.full((6, 2), 1.16), abs=1e-6)
    assert raw.restart_guest_sites(restart, 3).shape == (6, 3, 3)
    with pytest.raises(ValueError, match="guest has 2"):
        raw.restart_guest_sites(restart, 2)
    # the Widom run ends with an empty box
    assert raw.restart_components(_text("widom", "Restart")) == {}
    assert raw.restart_guest_sites(_text("widom", "Restart"), 3).shape == (0, 3, 3)


def test_text_without_the_sections_gives_empty_results():
    assert raw.parse_loadings("nothing") == {}
    assert raw.unit_cells("nothing") is None
    assert raw.component_names("nothing") == []


# --- the parser plugin ----------------------------------------------------------------------------------


@pytest.fixture
def parse_case(generate_calc_job_node):
    """Return a function parsing a stored case (or given retrieved files) with ``mofmlp.raspa``."""
    from aiida import orm

    from aiida_mofmlp.parsers.raspa import RaspaParser

    def _parse(case: str, retrieved: dict[str, str] | None = None):
        parameters = json.loads((DATA / case / "parameters.json").read_text())
        node = generate_calc_job_node(
            "raspa",
            inputs={"parameters": orm.Dict(parameters)},
            retrieved=_retrieved(case) if retrieved is None else retrieved,
        )
        node.base.extras.set("system_order", sorted(parameters["System"]))
        return RaspaParser.parse_from_node(node, store_provenance=False)

    return _parse


def _rounded(value):
    if isinstance(value, float):
        return round(value, 10)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def test_gcmc_run_keeps_aiida_raspa_outputs_and_adds_blocks_and_enthalpy(parse_case, data_regression):
    results, calcfunction = parse_case("gcmc")
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    system = results["output_parameters"].get_dict()["framework"]
    # aiida-raspa's entries are still there
    component = system["components"]["CO2"]
    assert component["loading_absolute_average"] == pytest.approx(1.59)
    assert component["conversion_factor_molec_uc_to_mol_kg"] == pytest.approx(MOL_KG_FACTOR)
    assert "warnings" in results
    # a GCMC run has no final configuration
    assert "final_configuration" not in system
    data_regression.check(
        _rounded(
            {key: system[key] for key in ("loading_blocks", "enthalpy_of_adsorption")},
        )
    )


def test_canonical_run_adds_the_final_guest_configuration(parse_case):
    results, calcfunction = parse_case("nvt")
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    system = results["output_parameters"].get_dict()["framework"]
    configuration = system["final_configuration"]
    assert configuration["unit"] == "Angstrom"
    co2 = configuration["components"]["CO2"]
    assert co2["n_molecules"] == 6
    assert np.array(co2["site_positions"]) == pytest.approx(
        raw.restart_components(_text("nvt", "Restart"))[0]
    )
    assert system["enthalpy_of_adsorption"]["total"] == {"average": None, "dev": None}


def test_widom_run_parses_with_henry_coefficient(parse_case):
    results, calcfunction = parse_case("widom")
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    system = results["output_parameters"].get_dict()["framework"]
    assert system["components"]["CO2"]["henry_coefficient_average"] > 0
    assert system["loading_blocks"]["components"]["CO2"]["molecules_per_box"] == [0.0] * 5
    assert "final_configuration" not in system  # no molecule is created


@pytest.mark.parametrize(
    ("case", "folders", "missing"),
    [
        ("gcmc", (), "Output/System_0"),
        ("nvt", ("Output",), "Restart/System_0"),
    ],
)
def test_missing_file_gives_the_no_output_file_exit_code(parse_case, case, folders, missing):
    from aiida.plugins import CalculationFactory

    _, calcfunction = parse_case(case, retrieved=_retrieved(case, folders))
    expected = CalculationFactory("raspa").exit_codes.ERROR_NO_OUTPUT_FILE
    assert calcfunction.exit_status == expected.status
    assert missing in calcfunction.exit_message
    assert "found nothing" in calcfunction.exit_message


def test_gcmc_without_restart_file_is_fine(parse_case):
    _, calcfunction = parse_case("gcmc", retrieved=_retrieved("gcmc", ("Output",)))
    assert calcfunction.is_finished_ok


def test_truncated_output_is_a_timeout_and_unreadable_restart_a_named_error(parse_case):
    from aiida.plugins import CalculationFactory

    exit_codes = CalculationFactory("raspa").exit_codes
    files = _retrieved("gcmc")
    output = next(name for name in files if name.startswith("Output/"))
    files[output] = files[output].split("Simulation finished")[0]
    _, calcfunction = parse_case("gcmc", retrieved=files)
    assert calcfunction.exit_status == exit_codes.TIMEOUT.status

    files = _retrieved("nvt")
    restart = next(name for name in files if name.startswith("Restart/"))
    lines = files[restart].splitlines()
    files[restart] = "\n".join(line for line in lines if not line.startswith("Adsorbate-atom-position: 2 1"))
    _, calcfunction = parse_case("nvt", retrieved=files)
    assert calcfunction.exit_status == exit_codes.ERROR_NO_OUTPUT_FILE.status
    assert "unreadable restart file" in calcfunction.exit_message
