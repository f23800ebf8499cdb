"""Every protocol of the dynamics property work chains gives a valid builder with the MD settings merged."""

from __future__ import annotations

import pytest
from aiida import orm

from aiida_mofmlp.engines.lammps.md_settings import load_settings
from aiida_mofmlp.engines.mace.toy import TOY_SPECIES, build_tiny_model, toy_frame

PROTOCOLS = ("fast", "balanced", "stringent")


@pytest.fixture
def setup(aiida_profile, require_code, tmp_path):
    from aiida_mofmlp.data.mace_model import MaceModelData
    from aiida_mofmlp.data.structure_set import StructureSetData

    path = build_tiny_model(list(TOY_SPECIES), tmp_path / "m.model")
    models = [MaceModelData.from_file(path, stress_weight=1.0) for _ in range(2)]
    loaded = StructureSetData.from_frames([toy_frame(n_guests=1)])
    return require_code("md"), require_code("deviation"), models, loaded


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_builders_of_every_protocol(setup, protocol):
    from aiida_mofmlp.workflows.properties.diffusion import DiffusionWorkChain
    from aiida_mofmlp.workflows.properties.melt_quench import MeltQuenchWorkChain, melt_quench_segments
    from aiida_mofmlp.workflows.properties.thermal_expansion import ThermalExpansionWorkChain

    md_code, deviation_code, models, loaded = setup
    framework = orm.StructureData(ase=toy_frame(n_guests=0))
    diffusion = DiffusionWorkChain.get_builder_from_protocol(
        loaded, models, {"md": md_code, "deviation": deviation_code}, protocol=protocol
    )
    parameters = diffusion.md.md.parameters.get_dict()
    load_settings(parameters)
    assert parameters["ensemble"] == "nvt" and parameters["steps"] >= 10000
    assert diffusion.deviation.deviation.code.pk == deviation_code.pk  # the trust is set up
    assert sorted(diffusion.models) == ["model_0", "model_1"]
    expansion = ThermalExpansionWorkChain.get_builder_from_protocol(
        framework, models, {"md": md_code}, protocol=protocol
    )
    assert (
        expansion.md.md.parameters["ensemble"] == "npt" and expansion.md.md.parameters["barostat"] == "aniso"
    )
    assert len(expansion.temperatures.get_list()) >= 2
    melt = MeltQuenchWorkChain.get_builder_from_protocol(
        framework, models, {"md": md_code}, protocol=protocol
    )
    segments = melt_quench_segments(melt.program.get_dict())
    assert [s["label"] for s in segments][-1] == "glass"
    assert max(max(s["temperature"]) for s in segments) == 1500.0
    assert melt.checks["cutoff"] == 2.5  # Zn-N cutoff of the published check


def test_overrides_reach_the_md_and_analysis(setup):
    from aiida_mofmlp.workflows.properties.diffusion import DiffusionWorkChain

    md_code, _, models, loaded = setup
    overrides = {
        "temperatures": [77.0],
        "analysis": {"equilibration_ps": 2.0},
        "md": {"md": {"parameters": {"timestep_fs": 1.0}}, "min_timestep_fs": 0.3},
    }
    builder = DiffusionWorkChain.get_builder_from_protocol(
        loaded, models, {"md": md_code}, "fast", overrides=overrides
    )
    assert builder.temperatures.get_list() == [77.0]
    assert builder.analysis["equilibration_ps"] == 2.0 and builder.analysis["tolerance"] == 0.25
    assert builder.md.md.parameters["timestep_fs"] == 1.0 and builder.md.min_timestep_fs.value == 0.3
