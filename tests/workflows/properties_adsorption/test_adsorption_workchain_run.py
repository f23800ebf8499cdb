"""AdsorptionWorkChain on DMOF-1 + CO2 with a tiny two-model MACE ensemble: real LAMMPS, MACE, RASPA, tblite.

Checks: the MLP isotherm is non-decreasing within errors at three pressures; the MD heat of adsorption equals
a recomputation from the stored trajectory energies; the xTB charge node sums to zero; the trust fractions
follow from the stored deviation outputs; RASPA's isotherm sits beside the MLP one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from aiida.engine import run_get_node

from aiida_mofmlp.engines.adsorption.enthalpy import heat_of_adsorption
from aiida_mofmlp.workflows.properties.adsorption import AdsorptionWorkChain

pytestmark = pytest.mark.integration

#: the tiny random model barely binds CO2, so loadings follow the ideal gas in the pores: high pressures
#: (ideal-gas fugacity up to 1000 bar) give a few molecules per cell
OVERRIDES = {
    "pressures": [30.0, 120.0, 300.0],
    "loadings": [2],
    "framework_charges": "xtb",
    "settings": {
        "gcmc": {
            "equilibration_steps": 10,
            "production_steps": 20,
            "attempt_interval": 1,
            "exchanges_per_attempt": 4,
            "initial_loading": 1,
            "thermo_interval": 1,
            "dump_interval": 10,
            "n_blocks": 3,
            "peng_robinson_above": 1000.0,
        },
        "nvt": {"steps": 30, "thermo_interval": 2, "dump_interval": 2},
        "widom": {"insertions_per_frame": 10, "max_frames": 2},
        "raspa": {
            "protocol": "fast",
            "parameters": {
                "cutoff": 6.0,
                "widom_cycles": 20,
                "init_cycles": 10,
                "prod_cycles": 20,
                "equilibration_tolerance": None,
            },
        },
    },
}


@pytest.fixture(scope="module")
def adsorption_run(aiida_profile, dmof, tiny_models):
    from aiida_mofmlp.cli.setup import ensure_codes, ensure_localhost

    codes = ensure_codes(ensure_localhost())
    missing = [kind for kind in ("md", "widom", "raspa", "xtb", "deviation") if codes.get(kind) is None]
    if missing:
        pytest.fail(f"programs {missing} are not installed; run the README's test command to install them")
    builder = AdsorptionWorkChain.get_builder_from_protocol(
        dmof,
        [tiny_models["model_0"], tiny_models["model_1"]],
        {kind: codes[kind] for kind in ("md", "widom", "raspa", "xtb", "deviation")},
        protocol="fast",
        overrides=OVERRIDES,
        trust={"lo": 0.002, "hi": 0.5},
        guest="CO2",
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    return results, node


def _called(node, label: str):
    """The process that ``node`` called with link label ``label``."""
    return next(link.node for link in node.base.links.get_outgoing().all() if link.link_label == label)


def test_isotherm_is_non_decreasing_within_errors(adsorption_run):
    isotherm = adsorption_run[0]["isotherm"].get_dict()
    print(
        "isotherm:", {k: isotherm["mlp"][k] for k in ("mol_per_kg", "mol_per_kg_error", "molecules_per_cell")}
    )
    print("raspa:", isotherm.get("raspa"))
    assert isotherm["pressure"] == [30.0, 120.0, 300.0]
    loading, error = np.array(isotherm["mlp"]["mol_per_kg"]), np.array(isotherm["mlp"]["mol_per_kg_error"])
    assert np.all(np.diff(loading) > -2.0 * np.sqrt(error[1:] ** 2 + error[:-1] ** 2))
    assert loading[-1] > loading[0]
    assert all(t >= 0 for t in isotherm["mlp"]["equilibrated_from_ps"])
    assert isotherm["units"]["mol_per_kg"] == "mol/kg"
    assert len(isotherm["raspa"]["mol_per_kg"]) == 3  # RASPA at the same conditions, side by side
    # the empty box fix gcmc never visits, weighted back with the Widom K_H of the same model
    mlp = isotherm["mlp"]
    for mean, sampled, p_empty in zip(
        mlp["molecules_per_cell"],
        mlp["molecules_per_cell_sampled"],
        mlp["empty_box_probability"],
        strict=True,
    ):
        assert 0.0 <= p_empty < 1.0
        assert mean == pytest.approx(sampled * (1.0 - p_empty), rel=1e-12)


def test_heat_of_adsorption_equals_recomputation_from_stored_energies(adsorption_run):
    results, node = adsorption_run
    heat = results["heat_of_adsorption"].get_dict()
    print("heat of adsorption:", heat)

    def energies(label):
        trajectory = _called(node, label).outputs.trajectory
        return np.array([frame.info["MACE_energy"] for frame in trajectory.iter_frames()])

    loaded, framework, gas = energies("nvt_n2"), energies("nvt_framework"), energies("nvt_gas")
    expected = heat_of_adsorption(loaded, framework, gas, 2, 298.0)
    assert heat["mlp_md"][0]["n_guests"] == 2
    assert heat["mlp_md"][0]["value"] == pytest.approx(expected["heat_of_adsorption"], abs=1e-6)
    assert heat["mlp_md"][0]["error"] == pytest.approx(expected["heat_of_adsorption_error"], abs=1e-6)
    (differential,) = heat["mlp_md_differential"]  # one loading: from the empty framework = integral
    assert (differential["from_n"], differential["to_n"]) == (0, 2)
    assert differential["value"] == pytest.approx(heat["mlp_md"][0]["value"], abs=1e-9)
    widom = results["widom"].get_dict()
    assert heat["mlp_widom"]["value"] == pytest.approx(widom["isosteric_heat"])
    assert math.isfinite(widom["henry_coefficient"]) and widom["henry_coefficient"] > 0
    assert "raspa" in heat and len(heat["raspa"]["value"]) == 3


def test_xtb_charges_sum_to_zero_and_reach_raspa(adsorption_run):
    results, node = adsorption_run
    charges = results["framework_charges"].get_array("charges")
    assert abs(charges.sum()) < 1e-6
    assert np.ptp(charges) > 0.1  # a polar framework: Zn positive, O negative
    raspa = _called(node, "raspa_isotherm")
    assert raspa.outputs.force_field["framework_charges"] == "cif"


def test_trust_fractions_follow_from_the_deviation_outputs(adsorption_run):
    results, node = adsorption_run
    trust = results["trust"].get_dict()
    assert trust["assessed"] is True
    levels = trust["levels"]
    total, above_lo = 0, 0
    for key, entry in trust["per_trajectory"].items():
        run = _called(node, f"trust_{key}")
        sigma = run.outputs.deviation.get_array("sigma_max")
        assert entry["fraction_above_lo"] == pytest.approx(np.mean(sigma > levels["lo"]))
        assert entry["fraction_above_hi"] == pytest.approx(np.mean(sigma > levels["hi"]))
        total, above_lo = total + len(sigma), above_lo + int((sigma > levels["lo"]).sum())
    assert trust["all"]["n_frames"] == total
    assert trust["all"]["fraction_above_lo"] == pytest.approx(above_lo / total)
    print("trust:", trust["all"])
    if above_lo:
        assert len(results["untrusted_frames"]) == above_lo


def test_figure_of_the_run(adsorption_run, tmp_path):
    from aiida_mofmlp.tools.plots_adsorption import plot_adsorption

    results, node = adsorption_run
    plot = plot_adsorption(node, tmp_path / "adsorption.png", title="CO2 in DMOF-1 (tiny model)")
    assert plot.path.is_file()
    assert np.allclose(plot.data["mlp_loading"], results["isotherm"]["mlp"]["mol_per_kg"])
    assert len(plot.data["raspa_heat"]) == 3
    print("figure:", plot.path)
