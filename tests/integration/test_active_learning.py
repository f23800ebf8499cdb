"""The active-learning loop end to end: 2 iterations on DMOF-1 + CO2 with real RASPA, LAMMPS, MACE, CP2K."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import run_get_node

from aiida_mofmlp.common import frames as fr
from aiida_mofmlp.workflows.active_learning.workchain import ActiveLearningWorkChain

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _creator_inputs(node: orm.Node) -> dict[str, orm.Node]:
    """Input nodes of the process that created ``node``, by link label."""
    links = node.creator.base.links.get_incoming(link_type=(LinkType.INPUT_CALC, LinkType.INPUT_WORK))
    return {link.link_label: link.node for link in links.all()}


def _cp2k_calculations_behind(training_set: orm.Node) -> set[str]:
    """UUIDs of the Cp2kCalculations whose retrieved folders fed the labels of ``training_set``."""
    found, queue, seen = set(), [training_set], set()
    while queue:
        node = queue.pop()
        if node.uuid in seen or node.creator is None:
            continue
        seen.add(node.uuid)
        creator = node.creator
        if creator.process_label == "Cp2kCalculation":
            found.add(creator.uuid)
            continue
        queue.extend(_creator_inputs(node).values())
    return found


def _returned_outputs(process: orm.ProcessNode) -> dict[str, orm.Data]:
    """Every output node of ``process`` by its full link label (namespaces joined with ``__``)."""
    links = process.base.links.get_outgoing(link_type=LinkType.RETURN).all()
    return {link.link_label: link.node for link in links}


def test_every_output_is_made_by_a_calcfunction_or_a_calcjob(finished_al_run):
    outputs = _returned_outputs(finished_al_run)
    nested = {label for label in outputs if "__" in label}
    assert {"iterations", "training_set", "validation"} <= set(outputs)
    assert any(label.startswith("history__models_01__") for label in nested)  # namespaces are walked
    for label, node in outputs.items():
        creator = node.creator
        assert creator is not None, f"output {label} ({node.__class__.__name__}<{node.pk}>) has no creator"
        assert isinstance(creator, orm.CalcFunctionNode | orm.CalcJobNode), (
            f"output {label} was created by {creator.process_label}<{creator.pk}>, not a calcfunction/CalcJob"
        )
    assert outputs["iterations"].creator.process_label == "tabulate_iterations"


def test_two_iterations_run_to_the_end_with_outputs(finished_al_run):
    node = finished_al_run
    assert node.is_finished, node.exit_message
    # trust lo = 1e-4 eV/A: never converged, so the loop stops at max_iterations with the warning code
    assert node.exit_status == ActiveLearningWorkChain.exit_codes.WARNING_NOT_CONVERGED.status, (
        node.exit_message
    )
    table = node.outputs.iterations.get_dict()
    assert [row["iteration"] for row in table["rows"]] == [0, 1, 2]
    assert table["converged"] is False and table["n_iterations"] == 2
    history = node.outputs.history
    # the table of the iterations so far after every iteration (what a killed run leaves behind)
    for last in (0, 1, 2):
        running = history[f"iterations_{last:02d}"].get_dict()["rows"]
        assert [row["iteration"] for row in running] == list(range(last + 1))
        assert running == table["rows"][: last + 1]
    first, second = history.training_set_00, history.training_set_01
    row1 = table["rows"][1]
    assert row1["n_labelled"] >= 1 and len(second) == len(first) + row1["n_labelled"]
    assert table["rows"][2]["n_training"] == len(second)
    assert node.outputs.training_set.uuid == second.uuid
    assert len(node.outputs.models) == 2
    # the frames of iteration 1 are the ones labelled in iteration 1, all with energies and forces
    frames = second.get_frames()
    assert [atoms.info["iteration"] for atoms in frames].count(1) == row1["n_labelled"]
    assert all(fr.get_forces(atoms) is not None and np.isfinite(fr.get_energy(atoms)) for atoms in frames)
    # explored frames and their deviation line up; the selection picked candidates inside the window
    for tag in ("01", "02"):
        explored, deviation = history[f"explored_{tag}"], history[f"deviation_{tag}"]
        assert len(deviation.get_array("sigma_max")) == len(explored)
        assert {int(atoms.info["loading"]) for atoms in explored.iter_frames()} == {0, 1}
    assert history.selection_01["n_selected"] == row1["n_selected"] >= 1
    metrics = node.outputs.validation.get_dict()
    assert metrics["n_frames"] == len(node.outputs.validation_frames) >= 1
    assert set(metrics["per_loading"]) <= {"0", "1"}
    assert np.isfinite(metrics["mae_f"]) and metrics["rmse_f"] >= metrics["mae_f"]
    # the energy error left once each composition's constant offset is removed: never more than the whole
    composition = metrics["composition"]
    assert set(composition["offsets"]) == set(metrics["per_loading"])
    atoms = [len(frame) for frame in node.outputs.validation_frames.iter_frames()]
    assert composition["rmse_e_offset_removed"] <= metrics["rmse_e_per_atom"] * max(atoms) + 1e-12


def test_final_model_traces_back_to_the_cp2k_calculations_of_its_labels(finished_al_run):
    node = finished_al_run
    model = node.outputs.models.model_0
    training = model.creator  # the MaceTrainCalculation that wrote the model file
    assert training.process_label == "MaceTrainCalculation"
    training_set = training.inputs.training_set
    assert training_set.uuid == node.outputs.training_set.uuid
    # training set 1 = extend_training_set(previous = training set 0, labelled = iteration 1's labels)
    inputs = _creator_inputs(training_set)
    assert inputs["previous"].uuid == node.outputs.history.training_set_00.uuid
    assert inputs["labelled"].creator.process_label in ("label_frames", "merge_structure_sets")
    # every frame's calc_uuid is a CP2K calculation reachable through the graph from the training set
    behind = _cp2k_calculations_behind(training_set)
    claimed = {atoms.info["calc_uuid"] for atoms in training_set.iter_frames()}
    assert claimed and claimed <= behind
    for uuid in claimed:
        calculation = orm.load_node(uuid)
        assert calculation.process_label == "Cp2kCalculation" and calculation.is_finished_ok
        assert "parameters" in calculation.inputs  # the CP2K settings that produced the label
    # the work chain called every stage under a readable link label
    labels = {link.link_label for link in node.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all()}
    assert {"raspa_snapshots", "label_iteration_00", "train_iteration_01", "deviation_iteration_01"} <= labels
    assert {"label_iteration_01", "train_iteration_02", "label_validation"} <= labels


def test_restart_continues_from_the_outputs_without_new_labels(finished_al_run):
    previous = finished_al_run
    builder = ActiveLearningWorkChain.get_builder_restart(
        previous, overrides={"max_iterations": 3, "validation": {"enabled": False}}
    )
    params = builder.parameters.get_dict()
    assert params["first_iteration"] == 2 and params["initial_sampling"]["enabled"] is False
    assert builder.initial_training_set.uuid == previous.outputs.history.training_set_01.uuid
    assert {m.uuid for m in builder.initial_models.values()} == {
        m.uuid for m in previous.outputs.models.values()
    }
    _, node = run_get_node(builder)
    assert node.is_finished, node.exit_message
    called = [link.link_label for link in node.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all()]
    assert not any(label.startswith("train_iteration_02") for label in called)  # models reused
    assert any(label.startswith("label_iteration_02") for label in called)  # only the new candidates
    assert not any(label.startswith("label_iteration_00") or label == "raspa_snapshots" for label in called)
    table = node.outputs.iterations.get_dict()
    # the earlier rows head the table (iteration 2 is the restart's own); the running tables agree
    assert [row["iteration"] for row in table["rows"]] == [0, 1, 2, 3]
    assert [bool(row.get("previous_run")) for row in table["rows"]] == [True, True, False, False]
    assert table["continues"] == previous.outputs.iterations.uuid
    assert node.outputs.history.iterations_03.get_dict()["rows"] == table["rows"]
    assert len(node.outputs.training_set) > len(previous.outputs.training_set)
