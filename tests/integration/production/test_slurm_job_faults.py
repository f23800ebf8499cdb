"""A CP2K job cancelled by hand (``scancel``) or whose node goes down: recorded, handled, no hang.

A Cp2kSinglePointWorkChain (GFN1-xTB, water in a 5 Angstrom box) runs through the local Slurm and the
daemon; as soon as its job is RUNNING the fault is applied for real. The killed job's CalcJob ends with a
clear exit code (303: the output ends before CP2K's end; 210: no output, the job died before CP2K started)
and a restart handler resubmits it, or Slurm requeues the job itself; either way the work chain finishes
with the labels.
"""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

pytestmark = pytest.mark.integration

SUBMIT_SINGLE_POINT = """
import json
from ase import Atoms
from aiida.engine import submit
from aiida_mofmlp.workflows.cp2k.base import Cp2kSinglePointWorkChain

positions = [[2.5, 2.5, 2.5], [3.257, 3.086, 2.5], [1.743, 3.086, 2.5]]
water = Atoms("OH2", positions=positions, cell=[5.0, 5.0, 5.0], pbc=True)
builder = Cp2kSinglePointWorkChain.get_builder_from_protocol(
    orm.load_code("mofmlp-cp2k@localhost-slurm"), orm.StructureData(ase=water), "fast",
    options=OPTIONS,
)
print(json.dumps({"pk": submit(builder).pk}))
"""

CALCULATIONS = """
import json
node = orm.load_node({pk})
calcs = sorted((n for n in node.called if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime)
print(json.dumps([{{"exit_status": calc.exit_status, "exit_message": calc.exit_message,
                    "stderr": calc.get_scheduler_stderr() or "", "job_id": calc.get_job_id()}}
                  for calc in calcs]))
"""


def submit_single_point(profile, options: dict | None = None) -> int:
    options = options or {"max_wallclock_seconds": 600}
    return profile.python(SUBMIT_SINGLE_POINT.replace("OPTIONS", repr(options)))["pk"]


def run_with_fault(profile, poller_factory, fault) -> tuple[dict, list[dict]]:
    """Submit the single point, apply ``fault(job_id)`` once its job runs, wait for the end."""
    with poller_factory(interval=0.2) as poller:
        pk = submit_single_point(profile)
        deadline = time.monotonic() + 240
        while not any(state == "RUNNING" for state in poller.seen.values()):
            assert time.monotonic() < deadline, f"the job never ran: {poller.seen}"
            time.sleep(0.1)
        job_id = next(job for job, state in poller.seen.items() if state == "RUNNING")
        fault(job_id)
        state = profile.wait_terminated(pk, timeout=300)
    return state, profile.python(CALCULATIONS.format(pk=pk))


def test_scancel_is_recorded_and_restarted(production_profile, squeue_poller):
    def cancel(job_id):
        subprocess.run(["scancel", job_id], check=True, timeout=30)

    state, calcs = run_with_fault(production_profile, squeue_poller, cancel)
    assert state["exit_status"] == 0, (state, calcs)
    first = calcs[0]
    if first["exit_status"] == 0:
        pytest.fail(f"CP2K finished before scancel reached it: {calcs}")
    # 303: cancelled while CP2K ran (its output ends early); 210: cancelled before CP2K wrote anything
    assert first["exit_status"] in (210, 303), first
    if first["exit_status"] == 303:
        assert "CANCELLED" in first["stderr"], first["stderr"]
    assert len(calcs) == 2 and calcs[1]["exit_status"] == 0
    print(f"scancel: exit statuses {[calc['exit_status'] for calc in calcs]}")


def test_node_down_is_handled_without_a_hang(production_profile, squeue_poller):
    node = socket.gethostname().split(".")[0]

    def node_down(job_id):
        try:
            subprocess.run(
                ["scontrol", "update", f"nodename={node}", "state=down", "reason=mofmlp fault test"],
                check=True,
                timeout=30,
            )
            time.sleep(5)
        finally:
            subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], timeout=30)

    state, calcs = run_with_fault(production_profile, squeue_poller, node_down)
    assert state["exit_status"] == 0, (state, calcs)
    # Slurm either requeued the job (one CalcJob, finished) or it was killed and restarted by the handler
    assert calcs[-1]["exit_status"] == 0
    assert all(calc["exit_status"] in (0, 210, 303) for calc in calcs), calcs
    print(f"node down: {len(calcs)} CalcJob(s), exit statuses {[calc['exit_status'] for calc in calcs]}")


def test_walltime_beyond_the_partition_limit_pauses_with_slurms_reason(production_profile):
    """sbatch refuses 20 min on the 10 min partition `short`: the CalcJob is paused (not failed, not hanging
    in the queue) with Slurm's reason in its log; nothing computed is lost and the process can be killed."""
    profile = production_profile
    pk = submit_single_point(profile, {"max_wallclock_seconds": 1200, "queue_name": "short"})
    calc_pk = profile.python(
        f"""
        import json, time
        from aiida.manage import get_manager
        session = get_manager().get_profile_storage().get_session()
        for _ in range(120):
            session.rollback()
            called = orm.load_node({pk}).called
            if called:
                break
            time.sleep(1)
        print(json.dumps(called[0].pk if called else None))
        """
    )
    assert calc_pk is not None, "the work chain never launched its CalcJob"
    profile.wait_until(calc_pk, "node.paused", timeout=180)
    report = profile.verdi("process", "report", str(calc_pk)).stdout
    assert "Requested time limit is invalid" in report, report
    profile.verdi("process", "kill", str(pk), "--timeout", "60", timeout=180)
    state = profile.wait_terminated(pk, timeout=120)
    assert state["state"] == "killed", state
