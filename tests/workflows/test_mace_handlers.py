"""MaceTrainBaseWorkChain's process handler on fake finished MaceTrainCalculation nodes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from aiida import orm
from aiida.engine import ProcessHandlerReport
from ase import Atoms

from aiida_mofmlp.calculations.mace_train import MaceTrainCalculation
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.mace.train import TRAIN_DEFAULTS
from aiida_mofmlp.workflows.mace.base import MaceTrainBaseWorkChain

DIVERGED = MaceTrainCalculation.exit_codes.ERROR_TRAINING_DIVERGED.status


@pytest.fixture
def generate_workchain_train(aiida_localhost, generate_workchain):
    """Return a function giving a set-up MaceTrainBaseWorkChain with training ``parameters``."""

    def _generate(parameters: dict, lr_factor: float | None = None):
        atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
        atoms.info["REF_energy"] = -1.0
        atoms.arrays["REF_forces"] = np.zeros((2, 3))
        inputs = {
            "train": {
                "code": orm.InstalledCode(
                    label="train", computer=aiida_localhost, filepath_executable="/bin/true"
                ).store(),
                "training_set": StructureSetData.from_frames([atoms]),
                "foundation_model": MaceModelData(io.BytesIO(b"not a model"), filename="foundation.model"),
                "parameters": orm.Dict(parameters),
            }
        }
        if lr_factor is not None:
            inputs["lr_factor"] = orm.Float(lr_factor)
        process = generate_workchain(MaceTrainBaseWorkChain, inputs)
        process.setup()
        return process

    return _generate


def test_diverged_halves_both_learning_rates(generate_workchain_train, generate_calc_job_node):
    process = generate_workchain_train({"mode": "naive", "lr": 0.01, "stage_two_lr": 0.002})
    node = generate_calc_job_node("mofmlp.mace_train", exit_status=DIVERGED)
    report = process.handle_diverged(node)
    assert isinstance(report, ProcessHandlerReport)
    assert report.do_break and report.exit_code.status == 0
    assert process.ctx.inputs.parameters.get_dict() == {"mode": "naive", "lr": 0.005, "stage_two_lr": 0.001}


def test_diverged_without_learning_rates_scales_the_engine_defaults(
    generate_workchain_train, generate_calc_job_node
):
    process = generate_workchain_train({"mode": "naive"}, lr_factor=0.1)
    node = generate_calc_job_node("mofmlp.mace_train", exit_status=DIVERGED)
    process.handle_diverged(node)
    parameters = process.ctx.inputs.parameters.get_dict()
    assert parameters["lr"] == pytest.approx(TRAIN_DEFAULTS["lr"] * 0.1)
    assert parameters["stage_two_lr"] == pytest.approx(TRAIN_DEFAULTS["stage_two_lr"] * 0.1)


def test_diverged_below_the_lowest_learning_rate_fails_cleanly(
    generate_workchain_train, generate_calc_job_node
):
    floor = MaceTrainBaseWorkChain.defaults["min_lr"]
    process = generate_workchain_train({"mode": "naive", "lr": floor})
    node = generate_calc_job_node("mofmlp.mace_train", exit_status=DIVERGED)
    report = process.handle_diverged(node)
    assert report.do_break
    assert report.exit_code.status == MaceTrainBaseWorkChain.exit_codes.ERROR_TRAINING_DIVERGED.status
    assert process.ctx.inputs.parameters.get_dict() == {"mode": "naive", "lr": floor}


def test_repeated_divergence_ends_in_the_exit_code(generate_workchain_train, generate_calc_job_node):
    """Through inspect_process, as the work chain runs it: halve until the floor, then fail cleanly."""
    process = generate_workchain_train({"mode": "naive", "lr": 4e-6})
    process.ctx.children = []
    lrs = []
    for iteration in range(1, 4):
        node = generate_calc_job_node("mofmlp.mace_train", exit_status=DIVERGED)
        process.ctx.children.append(node)
        process.ctx.iteration = iteration
        result = process.inspect_process()
        lrs.append(process.ctx.inputs.parameters["lr"])
        if result.status:  # 0: restart
            break
    assert lrs == [pytest.approx(2e-6), pytest.approx(1e-6), pytest.approx(1e-6)]
    assert result.status == MaceTrainBaseWorkChain.exit_codes.ERROR_TRAINING_DIVERGED.status


def test_other_failures_are_not_handled(generate_workchain_train, generate_calc_job_node):
    process = generate_workchain_train({"mode": "naive"})
    status = MaceTrainCalculation.exit_codes.ERROR_TRAINING_FAILED.status
    assert process.handle_diverged(generate_calc_job_node("mofmlp.mace_train", exit_status=status)) is None
