"""The active-learning loop through Slurm and the daemon, with the daemon SIGKILLed twice mid-iteration.

The tiny loop (overrides ``tiny``: DMOF-1 + CO2, two iterations, CP2K GFN1-xTB labels) runs on the
``localhost-slurm`` computer. The daemon and its workers are killed with SIGKILL while CP2K labels are in
Slurm, restarted, killed again while a MACE training job is in Slurm, and restarted: the loop finishes, no
CP2K label that had finished before a kill is computed again (CalcJobs counted per frame) and every node
made before a kill is still there.

It takes about 6 minutes on two idle cores (355 s and 369 s measured), so it runs only with
``MOFMLP_LOOP_FAULTS=1``.
"""

from __future__ import annotations

import os
import time

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("MOFMLP_LOOP_FAULTS") != "1",
        reason="the loop with two daemon kills takes about 6 minutes: set MOFMLP_LOOP_FAULTS=1 to run it",
    ),
]

SUBMIT_LOOP = """
import json, tempfile
from pathlib import Path
from aiida.engine import submit
from aiida_mofmlp.cli.demo import demo_builder
from aiida_mofmlp.common.codes import CODES

codes = {kind: orm.load_code(f"{label}@localhost-slurm") for kind, (label, _, _) in CODES.items()}
builder = demo_builder(codes, Path(tempfile.mkdtemp()), "tiny")
print(json.dumps({"pk": submit(builder).pk}))
"""

SNAPSHOT = """
import json
from aiida.common.links import LinkType
node = orm.load_node({pk})
labels = []
for calc in node.called_descendants:
    if isinstance(calc, orm.CalcJobNode) and calc.process_type == "aiida.calculations:cp2k":
        single_point = calc.caller
        frame = single_point.base.links.get_incoming(link_type=LinkType.CALL_WORK).one().link_label
        labels.append({{"labelling": single_point.caller.uuid, "frame": frame, "uuid": calc.uuid,
                        "ok": calc.is_finished_ok}})
print(json.dumps({{
    "labels": labels,
    "calcjobs": sum(isinstance(n, orm.CalcJobNode) for n in node.called_descendants),
    "nodes": orm.QueryBuilder().append(orm.Node, project="uuid").all(flat=True),
}}))
"""


def wait_for_job(poller, kind: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(poller.seen_of(kind)) < count:
        assert time.monotonic() < deadline, f"not {count} {kind} jobs after {timeout} s: {poller.kinds}"
        time.sleep(0.5)


def calcs_per_frame(snapshot: dict) -> dict[tuple[str, str], set[str]]:
    """The CP2K CalcJobs of each (labelling, frame) in a snapshot."""
    frames: dict[tuple[str, str], set[str]] = {}
    for label in snapshot["labels"]:
        frames.setdefault((label["labelling"], label["frame"]), set()).add(label["uuid"])
    return frames


def kill_and_restart(profile, pk: int) -> dict:
    """SIGKILL the daemon, snapshot the CP2K labels and nodes, start the daemon again."""
    assert profile.kill_daemon()
    snapshot = profile.python(SNAPSHOT.format(pk=pk))
    profile.start_daemon()
    return snapshot


def test_loop_survives_daemon_kills_during_labelling_and_training(production_profile, squeue_poller):
    profile = production_profile
    with squeue_poller(interval=0.5) as poller:
        pk = profile.python(SUBMIT_LOOP)["pk"]
        wait_for_job(poller, "cp2k", count=3, timeout=1200)  # the second wave of the first labelling
        during_labelling = kill_and_restart(profile, pk)
        trained_before = len(poller.seen_of("train"))
        wait_for_job(poller, "train", count=trained_before + 1, timeout=1200)
        during_training = kill_and_restart(profile, pk)
        state = profile.wait_terminated(pk, timeout=2400)
    final = profile.python(SNAPSHOT.format(pk=pk))

    # the tiny loop ends unconverged (410) by design; any other failure is a real one
    assert state["exit_status"] in (0, 410), state
    for snapshot in (during_labelling, during_training):
        assert set(snapshot["nodes"]) <= set(final["nodes"]), "nodes made before a kill disappeared"

    # no CalcJob of a frame whose label had finished is made after the kill; CalcJobs made before it stay
    # (a failed attempt, e.g. SCF not converged (450), restarted by a handler; a duplicate of an earlier kill)
    per_frame = calcs_per_frame(final)
    finished_before = [label for label in during_labelling["labels"] if label["ok"]]
    assert finished_before, "no CP2K label had finished before the first kill: nothing was provoked"
    for snapshot in (during_labelling, during_training):
        at_kill = calcs_per_frame(snapshot)
        for label in filter(lambda label: label["ok"], snapshot["labels"]):
            key = (label["labelling"], label["frame"])
            new = per_frame[key] - at_kill[key]
            assert not new, f"{key} was labelled before a kill and computed again: {sorted(new)}"
    ok = {label["uuid"] for label in final["labels"] if label["ok"]}
    twice = sum(len(uuids & ok) > 1 for uuids in per_frame.values())
    failed = len(final["labels"]) - len(ok)
    print(
        f"loop with two daemon SIGKILLs: exit {state['exit_status']}, {final['calcjobs']} CalcJobs, "
        f"{len(final['labels'])} CP2K CalcJobs: {twice} frames labelled twice, {failed} failed attempts "
        f"(restarted by a handler), "
        f"{len(finished_before)} finished before the first kill"
    )
