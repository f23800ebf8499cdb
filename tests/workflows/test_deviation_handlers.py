"""DeviationBaseWorkChain's process handler on fake finished DeviationCalculation nodes."""

from __future__ import annotations

import io

import pytest
from aiida import orm
from aiida.engine import ProcessHandlerReport
from ase import Atoms

from aiida_mofmlp.calculations.deviation import DeviationCalculation
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.mace.deviation import DeviationBaseWorkChain

OUT_OF_MEMORY = DeviationCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_MEMORY.status


@pytest.fixture
def generate_workchain_deviation(aiida_localhost, generate_workchain):
    """Return a function giving a set-up DeviationBaseWorkChain with deviation ``parameters``."""

    def _generate(parameters: dict | None = None):
        code = orm.InstalledCode(
            label="deviation", computer=aiida_localhost, filepath_executable="/bin/true"
        ).store()
        models = {
            f"model_{k}": MaceModelData(io.BytesIO(b"not a model"), filename=f"m{k}.model") for k in range(2)
        }
        inputs = {
            "deviation": {
                "code": code,
                "frames": StructureSetData.from_frames([Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])]),
                "models": models,
            }
        }
        if parameters is not None:
            inputs["deviation"]["parameters"] = orm.Dict(parameters)
        process = generate_workchain(DeviationBaseWorkChain, inputs)
        process.setup()
        return process

    return _generate


def test_out_of_memory_halves_the_batch(generate_workchain_deviation, generate_calc_job_node):
    process = generate_workchain_deviation({"batch_size": 8, "dtype": "float64"})
    node = generate_calc_job_node("mofmlp.deviation", exit_status=OUT_OF_MEMORY)
    report = process.handle_out_of_memory(node)
    assert isinstance(report, ProcessHandlerReport)
    assert report.do_break and report.exit_code.status == 0
    assert process.ctx.inputs.parameters.get_dict() == {"batch_size": 4, "dtype": "float64"}


def test_out_of_memory_without_parameters_starts_from_the_engine_default(
    generate_workchain_deviation, generate_calc_job_node
):
    from aiida_mofmlp.engines.mace.deviation import DEVIATION_DEFAULTS

    process = generate_workchain_deviation()
    node = generate_calc_job_node("mofmlp.deviation", exit_status=OUT_OF_MEMORY)
    process.handle_out_of_memory(node)
    assert process.ctx.inputs.parameters["batch_size"] == DEVIATION_DEFAULTS["batch_size"] // 2


def test_out_of_memory_at_one_frame_per_batch_fails_cleanly(
    generate_workchain_deviation, generate_calc_job_node
):
    process = generate_workchain_deviation({"batch_size": 1})
    node = generate_calc_job_node("mofmlp.deviation", exit_status=OUT_OF_MEMORY)
    report = process.handle_out_of_memory(node)
    assert isinstance(report, ProcessHandlerReport)
    assert report.do_break
    assert report.exit_code.status == DeviationBaseWorkChain.exit_codes.ERROR_OUT_OF_MEMORY.status
    assert "batch_size 1" in report.exit_code.message
    assert process.ctx.inputs.parameters.get_dict() == {"batch_size": 1}


def test_other_failures_are_not_handled(generate_workchain_deviation, generate_calc_job_node):
    process = generate_workchain_deviation({"batch_size": 8})
    status = DeviationCalculation.exit_codes.ERROR_NONFINITE_DEVIATION.status
    node = generate_calc_job_node("mofmlp.deviation", exit_status=status)
    assert process.handle_out_of_memory(node) is None


def test_out_of_memory_ends_in_the_exit_code_through_inspect_process(
    generate_workchain_deviation, generate_calc_job_node
):
    """As the work chain runs it: batch 2 -> 1 and a restart, then a clean failure (no AttributeError)."""
    process = generate_workchain_deviation({"batch_size": 2})
    process.ctx.children = []
    statuses = []
    for iteration in (1, 2):
        process.ctx.children.append(generate_calc_job_node("mofmlp.deviation", exit_status=OUT_OF_MEMORY))
        process.ctx.iteration = iteration
        statuses.append(process.inspect_process().status)
    assert statuses == [0, DeviationBaseWorkChain.exit_codes.ERROR_OUT_OF_MEMORY.status]
    assert process.ctx.inputs.parameters["batch_size"] == 1
