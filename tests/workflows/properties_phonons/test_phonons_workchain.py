"""PhononsWorkChain / PhononsCalculation: input validation before any job, protocols and restart handlers."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import ProcessHandlerReport
from ase.build import bulk, molecule

from aiida_mofmlp.calculations.phonons import PhononsCalculation, model_lacks_stress
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.workflows.properties.phonons import PhononsWorkChain, validate_workchain_inputs


@pytest.fixture
def foundation(aiida_profile):
    return MaceModelData.small_mof_foundation()


@pytest.fixture
def mgo():
    return orm.StructureData(ase=bulk("MgO", "rocksalt", a=4.09))


def _inputs(structure, model, **parameters):
    return {
        "models": {"model_0": model},
        "phonons": {"structure": structure, "parameters": orm.Dict(parameters)},
    }


def test_valid_inputs_pass(foundation, mgo):
    assert validate_workchain_inputs(_inputs(mgo, foundation, tasks=["relax", "phonons"])) is None


def test_non_periodic_structure_is_refused(foundation):
    water = molecule("H2O")
    water.cell = [10, 10, 10]
    water.pbc = [True, True, False]
    message = validate_workchain_inputs(_inputs(orm.StructureData(ase=water), foundation))
    assert "structure" in message and "not periodic in three dimensions" in message


def test_supercell_too_small_suggests_one_that_fits(foundation, mgo):
    message = validate_workchain_inputs(_inputs(mgo, foundation, phonons={"supercell": [2, 2, 2]}))
    assert "parameters.phonons.supercell: [2, 2, 2] is too small" in message
    assert "cutoff 5 A" in message and "use [5, 5, 5]" in message


def test_stress_eos_needs_a_model_trained_on_stress(foundation, mgo, tmp_path):
    assert model_lacks_stress(foundation) is None  # trained with a stress loss (its card)
    no_stress = MaceModelData.from_file(_copy(foundation, tmp_path), stress_trained=False).store()
    message = validate_workchain_inputs(
        _inputs(mgo, no_stress, tasks=["relax", "eos"], eos={"method": "stress"})
    )
    assert "eos.method: 'stress' needs a model trained on stress" in message
    assert "use eos.method 'energy'" in message
    assert validate_workchain_inputs(_inputs(mgo, no_stress, tasks=["eos"], eos={"method": "energy"})) is None


def _copy(model, tmp_path):
    path = tmp_path / "copy.model"
    path.write_bytes(model.base.repository.get_object_content(model.filename, mode="rb"))
    return path


def test_unknown_parameters_and_missing_task_inputs(foundation, mgo):
    assert "unknown keys ['phonon']" in validate_workchain_inputs(_inputs(mgo, foundation, phonon={}))
    assert "unknown keys ['mesh_size']" in validate_workchain_inputs(
        _inputs(mgo, foundation, phonons={"mesh_size": 3})
    )
    assert "guest" in validate_workchain_inputs(_inputs(mgo, foundation, tasks=["host_guest"]))
    assert "at least one" in validate_workchain_inputs({"models": {}, "phonons": {"structure": mgo}})


@pytest.mark.parametrize("protocol", ["fast", "balanced", "stringent"])
def test_builder_from_protocol(foundation, mgo, mofmlp_codes, protocol):
    code = mofmlp_codes["phonons"]
    codes = {"phonons": code}
    builder = PhononsWorkChain.get_builder_from_protocol(mgo, foundation, codes, protocol=protocol)
    params = builder.phonons.parameters.get_dict()
    assert params["tasks"][:3] == ["relax", "phonons", "eos"]
    assert ("qha" in params["tasks"]) == (protocol != "fast")
    assert params["eos"]["strain"] == 0.02 and params["phonons"]["rattle_sigma"] == 0.01
    assert builder.models["model_0"].uuid == foundation.uuid
    assert validate_workchain_inputs(builder._inputs(prune=True)) is None
    with pytest.raises(ValueError, match="unknown inputs"):
        PhononsWorkChain.get_builder_from_protocol(mgo, foundation, codes, overrides={"phonon": {}})


def test_handlers_retry_imaginary_modes_once_then_give_up(
    foundation, mgo, mofmlp_codes, generate_workchain, generate_calc_job_node
):
    code = mofmlp_codes["phonons"]
    builder = PhononsWorkChain.get_builder_from_protocol(mgo, foundation, {"phonons": code}, protocol="fast")
    process = generate_workchain(PhononsWorkChain, builder._inputs(prune=True))
    process.setup()
    relaxed = orm.StructureData(ase=bulk("MgO", "rocksalt", a=4.1))
    exit_status = PhononsCalculation.exit_codes.ERROR_IMAGINARY_MODES.status
    node = generate_calc_job_node(
        "mofmlp.phonons",
        exit_status,
        outputs={"relaxed_structure": relaxed, "results": orm.Dict({"phonons": {"status": "imaginary"}})},
    )
    report = process.handle_imaginary_modes(node)
    assert isinstance(report, ProcessHandlerReport) and report.exit_code.status == 0
    params = process.ctx.inputs.parameters.get_dict()
    assert params["phonons"]["max_attempts"] == 2  # fast: 1 -> 2
    assert params["relax"]["fmax"] == pytest.approx(0.025)
    assert process.ctx.inputs.structure.uuid == relaxed.uuid
    second = process.handle_imaginary_modes(node)
    assert second.exit_code.status == PhononsWorkChain.exit_codes.ERROR_IMAGINARY_MODES.status
    assert "results" in process.outputs  # the last outputs are kept for the caller


def test_handler_continues_an_unconverged_relaxation(
    foundation, mgo, mofmlp_codes, generate_workchain, generate_calc_job_node
):
    builder = PhononsWorkChain.get_builder_from_protocol(
        mgo, foundation, {"phonons": mofmlp_codes["phonons"]}, protocol="fast"
    )
    process = generate_workchain(PhononsWorkChain, builder._inputs(prune=True))
    process.setup()
    relaxed = orm.StructureData(ase=bulk("MgO", "rocksalt", a=4.1))
    node = generate_calc_job_node(
        "mofmlp.phonons",
        PhononsCalculation.exit_codes.ERROR_RELAXATION_NOT_CONVERGED.status,
        outputs={"relaxed_structure": relaxed},
    )
    report = process.handle_relaxation(node)
    assert report.exit_code.status == 0
    assert process.ctx.inputs.parameters.get_dict()["relax"]["steps"] == 400  # fast: 200 -> 400
    assert process.ctx.inputs.structure.uuid == relaxed.uuid
