"""Bad inputs of the dynamics property work chains fail with clear messages before any job runs."""

from __future__ import annotations

import pytest
from aiida import orm

from aiida_mofmlp.engines.mace.toy import TOY_SPECIES, build_tiny_model, toy_frame


@pytest.fixture
def setup(aiida_profile, require_code, tmp_path):
    from aiida_mofmlp.data.mace_model import MaceModelData

    model = MaceModelData.from_file(build_tiny_model(list(TOY_SPECIES), tmp_path / "m.model"))
    return require_code("md"), [model]


def test_diffusion_needs_guests_and_positive_temperatures(setup):
    from aiida.engine import run_get_node

    from aiida_mofmlp.data.structure_set import StructureSetData
    from aiida_mofmlp.workflows.properties.diffusion import DiffusionWorkChain

    code, models = setup
    empty = StructureSetData.from_frames([toy_frame(n_guests=0)])
    builder = DiffusionWorkChain.get_builder_from_protocol(empty, models, {"md": code}, protocol="fast")
    with pytest.raises(ValueError, match="frame 0 has no guest molecules"):
        run_get_node(builder)
    builder.structure = orm.StructureData(ase=toy_frame(n_guests=1))
    with pytest.raises(ValueError, match="a StructureData carries no guest molecules"):
        run_get_node(builder)
    with pytest.raises(ValueError, match=r"every temperature must be > 0 K, got \[-5.0\]"):
        builder.temperatures = orm.List([300.0, -5.0])
    with pytest.raises(ValueError, match="need `model_0`"):
        builder.models = {"other": models[0]}


def test_thermal_expansion_warns_without_stress_and_checks_the_vdos_run(setup):
    from aiida_mofmlp.workflows.properties.thermal_expansion import ThermalExpansionWorkChain

    code, models = setup
    framework = orm.StructureData(ase=toy_frame(n_guests=0))
    with pytest.warns(UserWarning, match="NPT with model .* no record of stress training"):
        builder = ThermalExpansionWorkChain.get_builder_from_protocol(
            framework, models, {"md": code}, protocol="fast"
        )
    assert builder.md.md.parameters["barostat"] == "aniso"  # cell angles fixed
    with pytest.raises(ValueError, match="give 2 frames; the velocity autocorrelation needs at least 8"):
        builder.vdos = orm.Dict({"steps": 10, "dump_interval": 5})
    with pytest.raises(ValueError, match="vdos: temperature must be > 0 K"):
        builder.vdos = orm.Dict({"temperature": 0})
    with pytest.raises(ValueError, match="must be > 0 K"):
        builder.temperatures = orm.List([0.0, 300.0])


def test_stress_trained_model_gives_no_warning(aiida_profile, tmp_path):
    from aiida_mofmlp.data.mace_model import MaceModelData
    from aiida_mofmlp.workflows.functions.dynamics import stress_warning

    path = build_tiny_model(list(TOY_SPECIES), tmp_path / "m.model")
    assert stress_warning(MaceModelData.from_file(path, stress_weight=1.0)) is None
    assert "trained without stress labels" in stress_warning(MaceModelData.from_file(path, stress_weight=0.0))


def test_melt_quench_program_without_steps_is_rejected(setup):
    from aiida_mofmlp.workflows.properties.melt_quench import MeltQuenchWorkChain, melt_quench_segments

    code, models = setup
    crystal = orm.StructureData(ase=toy_frame(n_guests=0))
    with pytest.raises(ValueError, match=r"program: segments \['plateau'\] get no MD steps"):
        MeltQuenchWorkChain.get_builder_from_protocol(
            crystal, models, {"md": code}, protocol="fast", overrides={"program": {"plateau_ps": 1e-5}}
        )
    with pytest.raises(ValueError, match="heating_rate must be > 0"):
        melt_quench_segments({"heating_rate": 0})
    with pytest.raises(ValueError, match=r"melt_temperature 250\.0 K must exceed"):
        melt_quench_segments({"melt_temperature": 250.0})
    builder = MeltQuenchWorkChain.get_builder_from_protocol(crystal, models, {"md": code}, protocol="fast")
    with pytest.raises(ValueError, match="break_factor > bond_factor"):
        builder.checks = orm.Dict({"break_factor": 1.0})


def test_melt_quench_program_follows_the_published_recipe():
    from aiida_mofmlp.workflows.properties.melt_quench import MeltQuenchWorkChain, melt_quench_segments

    program = MeltQuenchWorkChain.get_protocol_inputs("balanced")["program"]
    segments = melt_quench_segments({**program, "melt_temperature": 1600.0})
    by_label = {s["label"]: s for s in segments}
    # 300 -> 1500 K at 20 K/ps and 0.5 fs is 60 ps = 120000 steps; above 1500 K the 0.25 fs step
    assert by_label["heat0"]["steps"] == 120000 and by_label["heat0"]["timestep_fs"] == 0.5
    assert by_label["heat1"]["timestep_fs"] == 0.25 and by_label["heat1"]["temperature"] == [1500.0, 1600.0]
    assert by_label["plateau"]["steps"] * 0.25e-3 == pytest.approx(50.0)
    assert by_label["glass"]["steps"] * 0.5e-3 == pytest.approx(100.0)
    assert [s["label"] for s in segments] == ["heat0", "heat1", "plateau", "quench0", "quench1", "glass"]
