"""Process handlers of Cp2kSinglePointWorkChain on fake finished Cp2kCalculation nodes (no CP2K run).

Each handler keys on an exit code that the ``mofmlp.cp2k`` parser sets (tests/parsers/test_cp2k_parser.py);
here the work chain is instantiated, set up, and each handler is called with a node of that exit status.
"""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import ProcessHandlerReport
from aiida.plugins import CalculationFactory
from ase import Atoms

from aiida_mofmlp.workflows.cp2k import inputs as ci
from aiida_mofmlp.workflows.cp2k.base import Cp2kSinglePointWorkChain

Cp2kCalculation = CalculationFactory("cp2k")
CALC_CODES = Cp2kCalculation.exit_codes
WC_CODES = Cp2kSinglePointWorkChain.exit_codes


@pytest.fixture
def cp2k_code(aiida_localhost):
    return orm.InstalledCode(
        label="cp2k-handlers",
        computer=aiida_localhost,
        filepath_executable="/usr/bin/cp2k.psmp",
        default_calc_job_plugin="cp2k",
    ).store()


@pytest.fixture
def water():
    atoms = Atoms("OH2", positions=[[2.5, 2.5, 2.5], [3.257, 3.086, 2.5], [1.743, 3.086, 2.5]], cell=[5] * 3)
    atoms.pbc = True
    return orm.StructureData(ase=atoms)


@pytest.fixture
def generate_single_point(generate_workchain, cp2k_code, water):
    """An instantiated Cp2kSinglePointWorkChain of protocol ``protocol`` after ``setup()``."""

    def _generate(protocol: str = "fast", drop_parser: bool = False):
        builder = Cp2kSinglePointWorkChain.get_builder_from_protocol(cp2k_code, water, protocol)
        inputs = builder._inputs(prune=True)
        if drop_parser:
            inputs["cp2k"]["metadata"]["options"].pop("parser_name")
        process = generate_workchain(Cp2kSinglePointWorkChain, inputs)
        process.setup()
        return process

    return _generate


@pytest.fixture
def calculation(generate_calc_job_node):
    """A fake finished Cp2kCalculation with ``exit_status`` (and an optional exit message)."""

    def _calculation(exit_status: int, message: str | None = None, remote_folder: bool = True):
        node = generate_calc_job_node("cp2k", exit_status=exit_status, remote_folder=remote_folder)
        if message is not None:
            node.set_exit_message(message)
        return node

    return _calculation


def scf(process) -> dict:
    return process.ctx.parameters["FORCE_EVAL"]["DFT"]["SCF"]


HANDLERS = ("handle_walltime", "handle_scf_not_converged", "handle_abort", "handle_missing_labels")


def test_setup_selects_parser_and_walltime(generate_single_point):
    process = generate_single_point(drop_parser=True)
    assert process.ctx.inputs.metadata["options"]["parser_name"] == "mofmlp.cp2k"
    # CP2K stops at 90% of the job's 1800 s
    assert process.ctx.parameters["GLOBAL"]["WALLTIME"] == "00:27:00"
    assert process.ctx.xtb is True and process.ctx.scf_stage == 0


def test_handlers_ignore_a_successful_calculation(generate_single_point, calculation):
    process = generate_single_point()
    node = calculation(0)
    for name in HANDLERS:
        assert getattr(process, name)(node) is None, name
    assert process.ctx.parameters == process.ctx.initial_parameters


@pytest.mark.parametrize(
    "exit_code",
    [CALC_CODES.ERROR_OUT_OF_WALLTIME, CALC_CODES.ERROR_OUTPUT_INCOMPLETE],
    ids=lambda c: c.status,
)
def test_walltime_restarts_from_wavefunction(generate_single_point, calculation, exit_code):
    process = generate_single_point()
    node = calculation(exit_code.status)
    for name in ("handle_scf_not_converged", "handle_abort", "handle_missing_labels"):
        assert getattr(process, name)(node) is None, name
    report = process.handle_walltime(node)
    assert isinstance(report, ProcessHandlerReport)
    assert report.do_break is True and report.exit_code.status == 0
    assert process.ctx.inputs.parent_calc_folder.uuid == node.outputs.remote_folder.uuid
    assert process.ctx.parameters["FORCE_EVAL"]["DFT"]["WFN_RESTART_FILE_NAME"] == ci.WFN_RESTART_FILE
    assert scf(process)["SCF_GUESS"] == "RESTART"


def test_walltime_without_remote_folder_is_unrecoverable(generate_single_point, calculation):
    process = generate_single_point()
    report = process.handle_walltime(
        calculation(CALC_CODES.ERROR_OUT_OF_WALLTIME.status, remote_folder=False)
    )
    assert report.do_break is True
    assert report.exit_code.status == WC_CODES.ERROR_UNRECOVERABLE_FAILURE.status
    assert "walltime and no remote folder" in report.exit_code.message


@pytest.mark.parametrize("protocol", ["fast", "stringent"])
def test_scf_stages_then_failure(generate_single_point, calculation, protocol):
    """Three stages of stronger SCF settings, then ERROR_SCF_NOT_CONVERGED of the work chain."""
    process = generate_single_point(protocol)
    xtb = protocol == "fast"
    node = calculation(CALC_CODES.ERROR_SCF_NOT_CONVERGED.status)
    for name in ("handle_walltime", "handle_abort", "handle_missing_labels"):
        assert getattr(process, name)(node) is None, name

    report = process.handle_scf_not_converged(node)
    assert report.do_break is True and report.exit_code.status == 0
    assert process.ctx.scf_stage == 1
    assert scf(process)["MAX_SCF"] == (200 if xtb else 100)
    assert scf(process)["SCF_GUESS"] == "RESTART"
    assert process.ctx.parameters["FORCE_EVAL"]["DFT"]["WFN_RESTART_FILE_NAME"] == ci.WFN_RESTART_FILE
    assert process.ctx.inputs.parent_calc_folder.uuid == node.outputs.remote_folder.uuid
    if not xtb:
        assert scf(process)["OUTER_SCF"]["MAX_SCF"] == 40

    report = process.handle_scf_not_converged(calculation(CALC_CODES.ERROR_SCF_NOT_CONVERGED.status))
    assert report.exit_code.status == 0 and process.ctx.scf_stage == 2
    assert scf(process)["SMEAR"]["METHOD"] == "FERMI_DIRAC"
    assert scf(process)["MIXING"] == {"METHOD": "BROYDEN_MIXING", "ALPHA": 0.1, "NBROYDEN": 8}
    assert scf(process)["ADDED_MOS"] == (-1 if xtb else 50)
    assert scf(process)["SCF_GUESS"] == "ATOMIC" and "OT" not in scf(process)
    assert "WFN_RESTART_FILE_NAME" not in process.ctx.parameters["FORCE_EVAL"]["DFT"]

    report = process.handle_scf_not_converged(calculation(CALC_CODES.ERROR_SCF_NOT_CONVERGED.status))
    assert report.exit_code.status == 0 and process.ctx.scf_stage == 3
    assert scf(process)["MIXING"]["ALPHA"] == 0.03 and scf(process)["MAX_SCF"] == 600

    report = process.handle_scf_not_converged(calculation(CALC_CODES.ERROR_SCF_NOT_CONVERGED.status))
    assert report.do_break is True
    assert report.exit_code.status == WC_CODES.ERROR_SCF_NOT_CONVERGED.status
    assert report.exit_code.message == "the SCF did not converge after all 3 stages of stronger settings"


def test_abort_is_unrecoverable_with_cp2k_message(generate_single_point, calculation):
    process = generate_single_point()
    message = "CP2K aborted: Use the LSD option for an odd number of electrons"
    node = calculation(CALC_CODES.ERROR_OUTPUT_CONTAINS_ABORT.status, message)
    for name in ("handle_walltime", "handle_scf_not_converged", "handle_missing_labels"):
        assert getattr(process, name)(node) is None, name
    report = process.handle_abort(node)
    assert report.do_break is True
    assert report.exit_code.status == WC_CODES.ERROR_UNRECOVERABLE_FAILURE.status
    assert report.exit_code.message == f"CP2K failed with an error the handlers cannot repair: {message}"
    assert process.ctx.parameters == process.ctx.initial_parameters


def test_missing_labels_fail(generate_single_point, calculation):
    process = generate_single_point()
    node = calculation(
        CALC_CODES.ERROR_OUTPUT_PARSE.status,
        "The output file could not be parsed: CP2K finished but aiida.out has no forces",
    )
    for name in ("handle_walltime", "handle_scf_not_converged", "handle_abort"):
        assert getattr(process, name)(node) is None, name
    report = process.handle_missing_labels(node)
    assert report.do_break is True
    assert report.exit_code.status == WC_CODES.ERROR_NO_LABELS.status
    assert process.ctx.parameters == process.ctx.initial_parameters
