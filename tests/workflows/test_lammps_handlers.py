"""LammpsMdBaseWorkChain's process handlers on fake finished LammpsMdCalculation nodes."""

from __future__ import annotations

import io

import pytest
from aiida import orm
from aiida.engine import ProcessHandlerReport
from ase import Atoms

from aiida_mofmlp.calculations.lammps_md import UNSTABLE_EXIT_CODES, LammpsMdCalculation
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.lammps.base import LammpsMdBaseWorkChain

RUNAWAY = LammpsMdCalculation.exit_codes.ERROR_MD_TEMPERATURE_RUNAWAY.status
UNCERTAIN = LammpsMdCalculation.exit_codes.ERROR_MD_UNCERTAIN.status
UNSTABLE = LammpsMdBaseWorkChain.exit_codes.ERROR_MD_UNSTABLE.status
PARAMETERS = {"timestep_fs": 0.5, "steps": 100, "dump_interval": 10, "thermo_interval": 5}


@pytest.fixture
def generate_workchain_md(aiida_localhost, generate_workchain):
    """Return a function giving a set-up LammpsMdBaseWorkChain with engine ``parameters`` and inputs."""

    def _generate(parameters: dict | None = None, **inputs):
        md = {
            "code": orm.InstalledCode(
                label="md", computer=aiida_localhost, filepath_executable="/bin/true"
            ).store(),
            "structure": orm.StructureData(
                ase=Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[6, 6, 6], pbc=True)
            ),
            "model": orm.SinglefileData(io.BytesIO(b"not a model"), filename="model.model"),
            "parameters": orm.Dict(PARAMETERS if parameters is None else parameters),
        }
        process = generate_workchain(LammpsMdBaseWorkChain, {"md": md, **inputs})
        process.setup()
        return process

    return _generate


def frames_and_results(status: str) -> dict:
    frames = StructureSetData.from_frames([Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[6, 6, 6])])
    return {"trajectory": frames, "results": orm.Dict({"status": status})}


@pytest.mark.parametrize("status", UNSTABLE_EXIT_CODES)
def test_blow_up_halves_the_time_step_and_keeps_the_simulated_time(
    generate_workchain_md, generate_calc_job_node, status
):
    process = generate_workchain_md()
    report = process.handle_unstable(generate_calc_job_node("mofmlp.lammps_md", exit_status=status))
    assert isinstance(report, ProcessHandlerReport)
    assert not report.do_break and report.exit_code.status == 0
    parameters = process.ctx.inputs.parameters.get_dict()
    assert parameters["timestep_fs"] == 0.25
    assert (parameters["steps"], parameters["dump_interval"], parameters["thermo_interval"]) == (200, 20, 10)
    assert parameters == process.ctx.parameters


def test_blow_ups_halve_down_to_the_floor_then_fail_cleanly(generate_workchain_md, generate_calc_job_node):
    process = generate_workchain_md(min_timestep_fs=orm.Float(0.1))
    timesteps, reports = [], []
    for _ in range(3):
        node = generate_calc_job_node("mofmlp.lammps_md", exit_status=RUNAWAY)
        reports.append(process.handle_unstable(node))
        timesteps.append(process.ctx.inputs.parameters["timestep_fs"])
    assert timesteps == [0.25, 0.125, 0.125]  # 0.0625 would be below the 0.1 fs floor
    assert [report.exit_code.status for report in reports] == [0, 0, UNSTABLE]
    assert reports[-1].do_break
    assert "temperature runaway" in reports[-1].exit_code.message


def test_a_factor_outside_zero_one_fails_instead_of_looping(generate_workchain_md, generate_calc_job_node):
    process = generate_workchain_md(timestep_factor=orm.Float(1.0))
    report = process.handle_unstable(generate_calc_job_node("mofmlp.lammps_md", exit_status=RUNAWAY))
    assert report.exit_code.status == UNSTABLE
    assert process.ctx.inputs.parameters["timestep_fs"] == 0.5


def test_keep_frames_on_blowup_finishes_with_the_frames(generate_workchain_md, generate_calc_job_node):
    process = generate_workchain_md(keep_frames_on_blowup=orm.Bool(True))
    node = generate_calc_job_node(
        "mofmlp.lammps_md", exit_status=RUNAWAY, outputs=frames_and_results("temperature_runaway")
    )
    process.ctx.children, process.ctx.iteration = [node], 1
    report = process.handle_unstable(node)
    assert report.do_break and report.exit_code.status == 0
    assert process.ctx.is_finished
    assert process.outputs["trajectory"].uuid == node.outputs.trajectory.uuid
    assert process.outputs["results"]["status"] == "temperature_runaway"
    assert process.ctx.inputs.parameters["timestep_fs"] == 0.5  # no restart at a smaller time step


def test_keep_frames_on_blowup_without_frames_fails_cleanly(generate_workchain_md, generate_calc_job_node):
    process = generate_workchain_md(keep_frames_on_blowup=orm.Bool(True))
    node = generate_calc_job_node("mofmlp.lammps_md", exit_status=RUNAWAY)
    report = process.handle_unstable(node)
    assert report.do_break and report.exit_code.status == UNSTABLE
    assert not process.ctx.get("is_finished")


def test_uncertainty_stop_finishes_with_the_frames(generate_workchain_md, generate_calc_job_node):
    process = generate_workchain_md()
    node = generate_calc_job_node(
        "mofmlp.lammps_md", exit_status=UNCERTAIN, outputs=frames_and_results("uncertain")
    )
    process.ctx.children, process.ctx.iteration = [node], 1
    report = process.handle_uncertain(node)
    assert report.do_break and report.exit_code.status == 0
    assert process.ctx.is_finished
    assert process.outputs["trajectory"].uuid == node.outputs.trajectory.uuid


@pytest.mark.parametrize("status", [0, LammpsMdCalculation.exit_codes.ERROR_LAMMPS_FAILED.status])
def test_other_outcomes_are_not_handled(generate_workchain_md, generate_calc_job_node, status):
    process = generate_workchain_md()
    node = generate_calc_job_node("mofmlp.lammps_md", exit_status=status)
    assert process.handle_unstable(node) is None
    assert process.handle_uncertain(node) is None
    assert process.ctx.inputs.parameters.get_dict() == PARAMETERS
