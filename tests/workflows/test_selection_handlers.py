"""SelectionWorkChain's process handlers on fake finished SelectCalculation nodes."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import ProcessHandlerReport
from ase import Atoms

from aiida_mofmlp.calculations.select import SelectCalculation
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.selection.base import SelectionWorkChain

EXIT = SelectCalculation.exit_codes
OUT_OF_MEMORY = EXIT.ERROR_SCHEDULER_OUT_OF_MEMORY.status
OUT_OF_WALLTIME = EXIT.ERROR_SCHEDULER_OUT_OF_WALLTIME.status


@pytest.fixture
def generate_workchain_select(aiida_localhost, generate_workchain):
    """Return a function giving a set-up SelectionWorkChain with engine ``parameters`` and ``options``."""

    def _generate(parameters: dict | None = None, options: dict | None = None):
        pool = StructureSetData.from_frames(
            [Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7 + 0.01 * k]], cell=[6, 6, 6]) for k in range(3)]
        )
        select = {
            "code": orm.InstalledCode(
                label="select", computer=aiida_localhost, filepath_executable="/bin/true"
            ).store(),
            "pool": pool,
            "metadata": {"options": options or {}},
        }
        if parameters is not None:
            select["parameters"] = orm.Dict(parameters)
        process = generate_workchain(SelectionWorkChain, {"select": select})
        process.setup()
        return process

    return _generate


def test_no_frame_selected_stops_with_its_exit_code(generate_workchain_select, generate_calc_job_node):
    process = generate_workchain_select({"n_select": 2})
    node = generate_calc_job_node("mofmlp.select", exit_status=EXIT.ERROR_NO_FRAME_SELECTED.status)
    report = process.handle_no_frame_selected(node)
    assert isinstance(report, ProcessHandlerReport)
    assert report.do_break
    assert report.exit_code.status == SelectionWorkChain.exit_codes.ERROR_NO_FRAME_SELECTED.status


def test_walltime_doubles_and_turns_pca_on(generate_workchain_select, generate_calc_job_node):
    process = generate_workchain_select({"n_select": 2}, {"max_wallclock_seconds": 1800})
    report = process.handle_out_of_walltime(
        generate_calc_job_node("mofmlp.select", exit_status=OUT_OF_WALLTIME)
    )
    assert report.do_break and report.exit_code.status == 0
    assert process.ctx.inputs.metadata.options["max_wallclock_seconds"] == 3600
    assert process.ctx.inputs.parameters.get_dict() == {"n_select": 2, "pca_components": 50}


def test_walltime_keeps_a_chosen_pca(generate_workchain_select, generate_calc_job_node):
    process = generate_workchain_select({"n_select": 2, "pca_components": 10}, {"max_wallclock_seconds": 100})
    process.handle_out_of_walltime(generate_calc_job_node("mofmlp.select", exit_status=OUT_OF_WALLTIME))
    assert process.ctx.inputs.metadata.options["max_wallclock_seconds"] == 200
    assert process.ctx.inputs.parameters.get_dict() == {"n_select": 2, "pca_components": 10}


def test_out_of_memory_goes_to_float32_and_smaller_chunks_then_fails_cleanly(
    generate_workchain_select, generate_calc_job_node
):
    process = generate_workchain_select({"n_select": 2, "soap": {"r_cut": 5.0}})
    reports, soaps = [], []
    for _ in range(3):
        node = generate_calc_job_node("mofmlp.select", exit_status=OUT_OF_MEMORY)
        reports.append(process.handle_out_of_memory(node))
        soaps.append(process.ctx.inputs.parameters["soap"])
    assert soaps[0] == {"r_cut": 5.0, "dtype": "float32", "chunk_size": 16}
    assert soaps[1] == soaps[2] == {"r_cut": 5.0, "dtype": "float32", "chunk_size": 4}
    assert [report.exit_code.status for report in reports[:2]] == [0, 0]
    assert reports[2].do_break
    assert reports[2].exit_code.status == SelectionWorkChain.exit_codes.ERROR_OUT_OF_MEMORY.status
    assert "chunk_size 4" in reports[2].exit_code.message


def test_out_of_memory_ends_in_the_exit_code_through_inspect_process(
    generate_workchain_select, generate_calc_job_node
):
    process = generate_workchain_select({"soap": {"dtype": "float32", "chunk_size": 8}})
    process.ctx.children = [generate_calc_job_node("mofmlp.select", exit_status=OUT_OF_MEMORY)]
    process.ctx.iteration = 1
    assert process.inspect_process().status == SelectionWorkChain.exit_codes.ERROR_OUT_OF_MEMORY.status


def test_other_failures_are_not_handled(generate_workchain_select, generate_calc_job_node):
    process = generate_workchain_select({"n_select": 2})
    node = generate_calc_job_node("mofmlp.select", exit_status=EXIT.ERROR_INVALID_INPUT.status)
    for handler in (
        process.handle_no_frame_selected,
        process.handle_out_of_walltime,
        process.handle_out_of_memory,
    ):
        assert handler(node) is None
