"""Handlers of Cp2kSinglePointWorkChain for scheduler faults, on fake finished Cp2kCalculation nodes.

The real faults (a Slurm time limit, ``scancel``, a node set down) are provoked in the other tests of this
folder; these check the handlers' decisions on nodes with those exit codes without running CP2K.
"""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.plugins import CalculationFactory
from ase import Atoms

from aiida_mofmlp.workflows.cp2k.base import Cp2kSinglePointWorkChain

CALC_CODES = CalculationFactory("cp2k").exit_codes


@pytest.fixture
def single_point(generate_workchain, aiida_localhost):
    """An instantiated Cp2kSinglePointWorkChain (fast protocol, 1800 s jobs) after ``setup()``."""
    code = orm.InstalledCode(
        label="cp2k-faults",
        computer=aiida_localhost,
        filepath_executable="/usr/bin/cp2k.psmp",
        default_calc_job_plugin="cp2k",
    ).store()
    water = Atoms("OH2", positions=[[2.5, 2.5, 2.5], [3.257, 3.086, 2.5], [1.743, 3.086, 2.5]], cell=[5] * 3)
    water.pbc = True
    builder = Cp2kSinglePointWorkChain.get_builder_from_protocol(code, orm.StructureData(ase=water), "fast")
    process = generate_workchain(Cp2kSinglePointWorkChain, builder._inputs(prune=True))
    process.setup()
    return process


@pytest.mark.parametrize(
    "exit_code",
    [
        CALC_CODES.ERROR_OUTPUT_INCOMPLETE,
        CALC_CODES.ERROR_SCHEDULER_OUT_OF_WALLTIME,
        CALC_CODES.ERROR_OUT_OF_WALLTIME,
    ],
    ids=lambda code: code.status,
)
def test_walltime_restart_doubles_the_walltime(single_point, generate_calc_job_node, exit_code):
    walltime = single_point.ctx.inputs.metadata["options"]["max_wallclock_seconds"]
    assert single_point.ctx.parameters["GLOBAL"]["WALLTIME"] == "00:27:00"  # 0.9 of 1800 s
    report = single_point.handle_walltime(generate_calc_job_node("cp2k", exit_status=exit_code.status))
    assert report.do_break and report.exit_code.status == 0
    assert single_point.ctx.inputs.metadata["options"]["max_wallclock_seconds"] == 2 * walltime
    assert single_point.ctx.parameters["GLOBAL"]["WALLTIME"] == "00:54:00"
    assert single_point.ctx.parameters["FORCE_EVAL"]["DFT"]["SCF"]["SCF_GUESS"] == "RESTART"


def test_a_user_walltime_for_cp2k_is_kept(single_point, generate_calc_job_node):
    single_point.ctx.parameters["GLOBAL"]["WALLTIME"] = "00:10:00"
    single_point.handle_walltime(generate_calc_job_node("cp2k", exit_status=303))
    assert single_point.ctx.parameters["GLOBAL"]["WALLTIME"] == "00:10:00"


@pytest.mark.parametrize(
    "exit_code",
    [CALC_CODES.ERROR_OUTPUT_MISSING, CALC_CODES.ERROR_SCHEDULER_NODE_FAILURE],
    ids=lambda c: c.status,
)
def test_a_lost_job_is_resubmitted_once(single_point, generate_calc_job_node, exit_code):
    parameters = dict(single_point.ctx.parameters)
    first = generate_calc_job_node("cp2k", exit_status=exit_code.status)
    single_point.ctx.children = [first]
    assert single_point.handle_walltime(first) is None
    report = single_point.handle_lost_job(first)
    assert report.do_break and report.exit_code.status == 0
    assert single_point.ctx.parameters == parameters, "a lost job is resubmitted unchanged"

    second = generate_calc_job_node("cp2k", exit_status=exit_code.status)
    single_point.ctx.children = [first, second]
    report = single_point.handle_lost_job(second)
    assert report.exit_code.status == Cp2kSinglePointWorkChain.exit_codes.ERROR_UNRECOVERABLE_FAILURE.status
    assert "lost twice in a row" in report.exit_code.message
