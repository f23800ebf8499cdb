"""CP2K labelling through a real Slurm and the AiiDA daemon: concurrency limit, a SIGKILLed daemon, bad input.

Everything runs for real: Slurm 22.05 from Debian (scripts/slurm.sh), RabbitMQ, ``verdi daemon`` with two
workers, CP2K GFN1-xTB single points on water in a 5 Angstrom box (a few seconds each).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
COMPUTER = "localhost-slurm"  # the computer `aiida-mofmlp setup --scheduler slurm` creates

SUBMIT_LABELLING = """
import json
from ase import Atoms
from aiida.engine import submit
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.cp2k.labelling import LabellingWorkChain

def water(shift):
    positions = [[2.5, 2.5, 2.5], [3.257 + shift, 3.086, 2.5], [1.743, 3.086 - shift, 2.5]]
    atoms = Atoms("OH2", positions=positions, cell=[5.0, 5.0, 5.0], pbc=True)
    atoms.info["source"] = "production-test"
    return atoms

structures = StructureSetData.from_frames([water(0.02 * i) for i in range({n_frames})])
builder = LabellingWorkChain.get_builder_from_protocol(
    orm.load_code("mofmlp-cp2k@{computer}"), structures, protocol="fast", max_concurrent={max_concurrent},
    options={{"max_wallclock_seconds": 600}},
)
print(json.dumps({{"pk": submit(builder).pk}}))
"""

CALCJOBS = """
import json
from aiida.common.links import LinkType
node = orm.load_node({pk})
calcs = []
for calc in node.called_descendants:
    if isinstance(calc, orm.CalcJobNode):
        frame = calc.caller.base.links.get_incoming(link_type=LinkType.CALL_WORK).one().link_label
        calcs.append({{"uuid": calc.uuid, "frame": frame, "ok": calc.is_finished_ok,
                       "job_id": calc.get_job_id(), "exit_status": calc.exit_status,
                       "state": calc.process_state.value if calc.process_state else None}})
labelled = node.outputs.labelled if "labelled" in node.outputs else None
print(json.dumps({{
    "calcs": calcs,
    "nodes": orm.QueryBuilder().append(orm.Node, project="uuid").all(flat=True),
    "label_calcs": sorted(a.info["calc_uuid"] for a in labelled.iter_frames()) if labelled else None,
}}))
"""


def submit_labelling(profile, n_frames: int, max_concurrent: int) -> int:
    code = SUBMIT_LABELLING.format(n_frames=n_frames, max_concurrent=max_concurrent, computer=COMPUTER)
    return profile.python(code)["pk"]


def calcs_per_frame(calcs: list[dict], only_ok: bool = False) -> dict[str, set[str]]:
    """The CalcJobs (uuids) of each frame; with ``only_ok`` those that finished ok."""
    frames: dict[str, set[str]] = {}
    for calc in calcs:
        if calc["ok"] or not only_ok:
            frames.setdefault(calc["frame"], set()).add(calc["uuid"])
    return frames


def slurm_cpus() -> int:
    result = subprocess.run(["sinfo", "-h", "-o", "%C"], capture_output=True, text=True, check=True)
    return int(result.stdout.split("/")[-1])  # allocated/idle/other/total


def test_setup_created_the_slurm_computer_and_codes(production_profile):
    assert f"computer {COMPUTER!r}: ready" in production_profile.setup_output
    assert f"code mofmlp-cp2k@{COMPUTER}" in production_profile.setup_output
    shown = production_profile.verdi("computer", "show", COMPUTER).stdout
    assert "core.slurm" in shown and "core.local" in shown


def test_setup_refuses_clearly_when_slurm_does_not_answer(production_profile, tmp_path):
    """A Slurm client whose controller does not answer: a clear message, no computer created."""
    # the machine's own slurm.conf with the controller on a port where nothing listens
    conf = tmp_path / "slurm.conf"
    text = Path("/etc/slurm/slurm.conf").read_text()
    conf.write_text(f"{text}\nSlurmctldPort=6999\n")
    env = {**production_profile.env, "SLURM_CONF": str(conf)}
    result = subprocess.run(
        [str(BIN / "aiida-mofmlp"), "setup", "--profile", production_profile.name, "--scheduler", "slurm",
         "--computer", "no-slurm-here"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Slurm is not running" in result.stderr and "scripts/slurm.sh" in result.stderr, result.stderr
    computers = production_profile.verdi("computer", "list", "-a").stdout
    assert "no-slurm-here" not in computers


def test_labelling_through_slurm_respects_max_concurrent(production_profile, squeue_poller):
    """Three frames, max_concurrent=1, on a node with room for two jobs: squeue never shows more than one."""
    assert slurm_cpus() >= 2, "the test needs a node with room for more jobs than max_concurrent"
    with squeue_poller() as poller:
        pk = submit_labelling(production_profile, n_frames=3, max_concurrent=1)
        state = production_profile.wait_terminated(pk, timeout=300)
    assert state["exit_status"] == 0, state
    result = production_profile.python(CALCJOBS.format(pk=pk))
    calcs = result["calcs"]
    assert len(calcs) == 3 and all(calc["ok"] for calc in calcs)
    assert poller.max_jobs == 1, f"squeue showed {poller.max_jobs} jobs at once"
    # every CalcJob went through Slurm, and the poller saw each of them
    assert {calc["job_id"] for calc in calcs} <= set(poller.seen), (calcs, poller.seen)
    assert len(result["label_calcs"]) == 3


def test_daemon_killed_during_labelling_recomputes_no_finished_label(production_profile, squeue_poller):
    """SIGKILL the daemon while the second wave is in Slurm; restart it: the labelling finishes, the labels
    finished before the kill are not recomputed and every node made before the kill is still there.

    One duplicate is allowed, and only for a frame whose CalcJob was not finished at the kill: aiida-core
    checkpoints a work chain between its steps, so when the kill falls after the step that launches a CalcJob
    stored the CalcJob node but before the work chain saved its checkpoint, the restarted work chain runs that
    step again and launches a second CalcJob for the frame (seen in 1 of 10 kills here, and once in CI).
    """
    n_frames = 4
    with squeue_poller(interval=0.2) as poller:
        pk = submit_labelling(production_profile, n_frames=n_frames, max_concurrent=2)
        deadline = time.monotonic() + 240
        while len(poller.seen) < 3:  # the second wave has reached Slurm
            assert time.monotonic() < deadline, f"the second wave never reached Slurm: {poller.seen}"
            time.sleep(0.2)
        killed = production_profile.kill_daemon()
        in_slurm_after_kill = poller.jobs()
    assert killed and not production_profile.daemon_pids()

    before = production_profile.python(CALCJOBS.format(pk=pk))
    finished_before = {calc["frame"]: calc["uuid"] for calc in before["calcs"] if calc["ok"]}
    unfinished_before = {  # frames without a finished label at the kill: a CalcJob state
        calc["frame"]: calc["state"] for calc in before["calcs"] if calc["frame"] not in finished_before
    }
    assert finished_before, "no frame had finished before the kill: the test provoked nothing"

    production_profile.start_daemon()
    state = production_profile.wait_terminated(pk, timeout=300)
    if state["exit_status"] != 0:  # say which frame failed and how, for whoever reads the CI log
        report = production_profile.verdi("process", "report", str(pk), check=False).stdout
        tree = production_profile.verdi("process", "status", str(pk), check=False).stdout
        raise AssertionError(f"{state}\n{report}\n{tree}\nCalcJobs at the kill: {before['calcs']}")

    after = production_profile.python(CALCJOBS.format(pk=pk))
    assert set(before["nodes"]) <= set(after["nodes"]), "nodes made before the kill have disappeared"
    at_kill, now = calcs_per_frame(before["calcs"]), calcs_per_frame(after["calcs"])
    labels = calcs_per_frame(after["calcs"], only_ok=True)
    assert len(labels) == n_frames, labels
    for frame in finished_before:  # no CalcJob made for a frame after its label had finished
        assert now[frame] == at_kill[frame], f"{frame} was labelled before the kill and computed again"
    duplicated = {frame: len(uuids) - 1 for frame, uuids in labels.items() if len(uuids) > 1}
    for frame, extra in duplicated.items():
        assert frame in unfinished_before and extra == 1, (
            f"{frame} was computed {extra + 1} times; CalcJobs at the kill: {before['calcs']}, "
            f"after the restart: {after['calcs']}"
        )
    assert len(after["label_calcs"]) == n_frames
    assert set(finished_before.values()) <= set(after["label_calcs"])
    print(
        f"daemon SIGKILL during labelling: {len(finished_before)} labels finished before, unfinished "
        f"CalcJobs {unfinished_before}, {len(in_slurm_after_kill)} jobs in Slurm just after the kill, "
        f"{sum(duplicated.values())} CalcJobs run twice"
    )


@pytest.fixture(autouse=True)
def _single_thread():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
