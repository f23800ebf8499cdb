"""DiffusionWorkChain end to end: real LAMMPS + tiny MACE ensemble on a toy framework with two CO2 guests.

Tiny random models give unphysical numbers; the test checks the machinery: D per temperature with an
error and a fitted window, guest RDFs, the Arrhenius fit, the ensemble's trust and the figure.
"""

from __future__ import annotations

import numpy as np
import pytest
from aiida.engine import run_get_node

from aiida_mofmlp.engines.mace.toy import TOY_SPECIES, build_tiny_model, toy_frame

pytestmark = pytest.mark.integration

TINY_MD = {
    "md": {
        "md": {
            "parameters": {
                "steps": 120,
                "dump_interval": 3,
                "thermo_interval": 20,
                "thermostat_damping_fs": 20.0,
            }
        }
    }
}


@pytest.fixture
def ensemble(aiida_profile, tmp_path):
    from aiida_mofmlp.data.mace_model import MaceModelData

    return [
        MaceModelData.from_file(build_tiny_model(list(TOY_SPECIES), tmp_path / f"m{seed}.model", seed=seed))
        for seed in (0, 1)
    ]


def test_diffusion_workchain_gives_d_rdf_arrhenius_and_trust(require_code, ensemble, tmp_path):
    from aiida_mofmlp.data.structure_set import StructureSetData
    from aiida_mofmlp.tools.plots_dynamics import plot_diffusion
    from aiida_mofmlp.workflows.properties.diffusion import DiffusionWorkChain

    structure = StructureSetData.from_frames([toy_frame(n_guests=2, rattle=0.0)])
    overrides = {**TINY_MD, "temperatures": [300.0, 600.0], "analysis": {"equilibration_ps": 0.01}}
    builder = DiffusionWorkChain.get_builder_from_protocol(
        structure,
        ensemble,
        {"md": require_code("md"), "deviation": require_code("deviation")},
        protocol="fast",
        overrides=overrides,
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    assert sorted(results["diffusion"]) == ["T300", "T600"]
    for key, result in results["diffusion"].items():
        assert result["n_particles"] == 2
        if result["linear_regime_found"]:  # a 0.06 ps toy run may or may not reach the diffusive regime
            assert np.isfinite(result["D"]) and result["D_error"] > 0 and 1 <= result["dimensionality"] <= 3
        else:  # then no D is reported, and the reason is
            assert result["D"] is None and "no linear (diffusive) regime" in result["no_D_reason"]
        assert 0 <= result["fit_start_ps"] < result["fit_stop_ps"] <= 0.06
        assert result["units"]["D"] == "Angstrom^2/ps"
        curves = results["curves"][key]
        assert abs(curves.get_array("msd")[0]) < 1e-9 and curves.get_array("msd")[-1] > 0
        assert result["framework_guest_first_peak"] is not None  # framework atoms around the guests
    # the engine wrote image flags: the frames the analysis saw carry them
    md = next(c for c in node.called if c.process_label == "LammpsMdBaseWorkChain")
    assert "image" in md.outputs.trajectory.get_frame(-1).arrays
    assert md.inputs.md.parameters["write_images"] is True
    if all(r["D"] is not None and r["D"] > 0 for r in results["diffusion"].values()):
        assert "arrhenius" in results and np.isfinite(results["arrhenius"]["Ea_kJ_per_mol"])
    trust = results["trust"]
    assert trust["assessed"] and trust["all"]["n_frames"] == 2 * 41
    plot = plot_diffusion(node, tmp_path / "diffusion.png")
    assert plot.path.is_file() and set(plot.data["D"]) == {300.0, 600.0}
