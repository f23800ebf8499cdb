"""A SIGKILLed daemon during training, then `verdi process kill` of the loop and ``get_builder_restart``.

The tiny loop (overrides ``tiny`` cut to one iteration, no final validation) runs through Slurm and the
daemon. While iteration 1's first MACE training job runs in Slurm the daemon and its workers are killed with
SIGKILL (as an OOM kill or a reboot of the login node would) and started again: the daemon finds the job it
had submitted and retrieves it, so each model is trained by exactly one CalcJob. As soon as iteration 1's
ensemble is trained (``history.models_01``) and its exploration MD is being
submitted, the loop is killed with ``verdi process kill``: the loop and its running children end killed and
their Slurm jobs are cancelled. The restart from ``get_builder_restart`` then continues from the last
training set with the ensemble already trained on it: no CP2K label and no training is computed again, every
node of the killed run is still there, and the restarted run's iteration table begins with the killed run's
rows.
"""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.integration

SUBMIT_LOOP = """
import json, tempfile
from pathlib import Path
from aiida.engine import submit
from aiida_mofmlp.cli.demo import demo_builder
from aiida_mofmlp.common.codes import CODES

codes = {kind: orm.load_code(f"{label}@localhost-slurm") for kind, (label, _, _) in CODES.items()}
extra = {"parameters": {"max_iterations": 1, "validation": {"enabled": False}}}
builder = demo_builder(codes, Path(tempfile.mkdtemp()), "tiny", extra)
print(json.dumps({"pk": submit(builder).pk}))
"""

RESTART = """
import json
from aiida.engine import submit
from aiida_mofmlp.workflows.active_learning.workchain import ActiveLearningWorkChain

builder = ActiveLearningWorkChain.get_builder_restart(orm.load_node({pk}))
print(json.dumps({{
    "pk": submit(builder).pk,
    "first_iteration": builder.parameters["first_iteration"],
    "initial_training_set": builder.initial_training_set.uuid,
    "initial_models": sorted(model.uuid for model in builder.initial_models.values()),
    "previous_iterations": builder.previous_iterations.uuid,
}}))
"""

SNAPSHOT = """
import json
node = orm.load_node({pk})
history = node.outputs.history if "history" in node.outputs else {{}}
descendants = node.called_descendants
calcjobs = [calc for calc in descendants if isinstance(calc, orm.CalcJobNode)]
print(json.dumps({{
    "state": node.process_state.value,
    "exit_status": node.exit_status,
    "history": sorted(history),
    "training_set_00": history["training_set_00"].uuid if "training_set_00" in history else None,
    "models_01": sorted(m.uuid for m in history["models_01"].values()) if "models_01" in history else [],
    "iterations_00": history["iterations_00"].uuid if "iterations_00" in history else None,
    "cp2k": [calc.uuid for calc in calcjobs if calc.process_type == "aiida.calculations:cp2k"],
    "train": {{calc.uuid: calc.get_job_id() for calc in calcjobs
               if calc.process_type == "aiida.calculations:mofmlp.mace_train"}},
    "children": {{calc.uuid: calc.process_state.value for calc in descendants}},
    "job_ids": [calc.get_job_id() for calc in calcjobs if calc.get_job_id()],
    "table": node.outputs.iterations.get_dict() if "iterations" in node.outputs else None,
    "training_set": node.outputs.training_set.uuid if "training_set" in node.outputs else None,
    "nodes": orm.QueryBuilder().append(orm.Node, project="uuid").all(flat=True),
}}))
"""

TRAINED = (
    "any(link.link_label.startswith('history__models_01') for link in node.base.links.get_outgoing().all())"
)


def test_killed_loop_is_continued_by_get_builder_restart_without_relabelling(
    production_profile, squeue_poller
):
    profile = production_profile
    with squeue_poller(interval=0.5) as poller:
        pk = profile.python(SUBMIT_LOOP)["pk"]
        deadline = time.monotonic() + 1500
        while not [job for job in poller.seen_of("train") if poller.seen[job] == "RUNNING"]:
            assert time.monotonic() < deadline, f"no training job ran in Slurm: {poller.kinds}"
            time.sleep(0.2)
        assert profile.kill_daemon()
        training_at_kill = {job for job in poller.jobs() if poller.kinds.get(job) == "train"}
        profile.start_daemon()
        profile.wait_until(pk, TRAINED, timeout=900)
        profile.verdi("process", "kill", str(pk), "--timeout", "120")
        profile.wait_terminated(pk, timeout=300)
        killed = profile.python(SNAPSHOT.format(pk=pk))
        deadline = time.monotonic() + 120  # the killed CalcJobs' Slurm jobs are cancelled
        while set(poller.jobs()) & set(killed["job_ids"]) and time.monotonic() < deadline:
            time.sleep(1)
        left_in_slurm = set(poller.jobs()) & set(killed["job_ids"])

        restart = profile.python(RESTART.format(pk=pk))
        state = profile.wait_terminated(restart["pk"], timeout=1200)
    continued = profile.python(SNAPSHOT.format(pk=restart["pk"]))
    final = profile.python(SNAPSHOT.format(pk=pk))

    assert killed["state"] == "killed", killed["state"]
    alive = [uuid for uuid, child in killed["children"].items() if child in ("running", "waiting", "created")]
    assert not alive, f"children of the killed loop still alive: {alive}"
    assert not left_in_slurm, f"Slurm jobs of the killed loop still queued: {left_in_slurm}"
    assert killed["cp2k"] and killed["models_01"], "the kill came before the labels and the training"
    # the daemon's SIGKILL during training: the job running then was retrieved, no model trained twice
    assert training_at_kill, "the training had left Slurm before the daemon was killed: nothing provoked"
    assert len(killed["train"]) == len(killed["models_01"]) == 2
    assert training_at_kill <= set(killed["train"].values())
    # the restart starts from what the killed run left: training set 0, the ensemble trained on it
    assert restart["first_iteration"] == 1
    assert restart["initial_training_set"] == killed["training_set_00"]
    assert restart["initial_models"] == killed["models_01"]
    assert restart["previous_iterations"] == killed["iterations_00"]
    # the loop ends as the tiny loop does (410: not converged at max_iterations); nothing recomputed
    assert state["exit_status"] in (0, 410), state
    assert continued["cp2k"] == [] and continued["train"] == {}
    assert continued["training_set"] == killed["training_set_00"]
    rows = continued["table"]["rows"]
    assert [row["iteration"] for row in rows] == [0, 1]
    assert [bool(row.get("previous_run")) for row in rows] == [True, False]
    assert rows[1]["n_explored"] >= 1 and rows[1]["n_training"] >= 1
    assert set(killed["nodes"]) <= set(final["nodes"]), "nodes of the killed run disappeared"
    print(
        f"daemon SIGKILL with training job(s) {sorted(training_at_kill)} in Slurm: 0 trained twice; "
        f"killed after iteration 1's training: {len(killed['children'])} processes in the killed run "
        f"({len(killed['cp2k'])} CP2K labels, {len(killed['train'])} training), restart: "
        f"{len(continued['children'])} processes, 0 CP2K labels and 0 trainings recomputed, exit "
        f"{state['exit_status']}"
    )
