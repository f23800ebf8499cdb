"""Orchestration overhead of the active-learning loop: AiiDA daemon + scheduler vs the jobs' own run times.

Runs the tiny loop (``fast`` protocol with the ``tiny`` overrides: DMOF-1 + CO2, two iterations, CP2K
GFN1-xTB labels, final validation) in a throwaway profile, submitted to the daemon, once per scheduler
(Slurm through ``localhost-slurm`` and/or the direct scheduler on ``localhost``). Every submit script
records the wall-clock start and end of its job (the computer's prepend/append text), so the run's wall
time splits into

* time covered by at least one running job (the work itself),
* per CalcJob: creation -> job start (upload, submission, queueing) and job end -> CalcJob sealed
  (scheduler poll, retrieval, parsing),
* calcfunctions (provenance steps run inside the daemon worker),
* the rest: work-chain steps, the daemon's scheduling of processes.

    .venv/bin/python benchmarks/orchestration/bench_orchestration.py                  # both schedulers
    .venv/bin/python benchmarks/orchestration/bench_orchestration.py --scheduler slurm

Starts Slurm (scripts/slurm.sh) and RabbitMQ (scripts/broker.sh) when they are not running. Writes
``results_<scheduler>.json`` next to this file; RESULTS.md holds the measured numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BIN = Path(sys.executable).parent
PROFILE = "mofmlp-bench-orchestration"
COMPUTERS = {"slurm": "localhost-slurm", "direct": "localhost"}
START_FILE, END_FILE = "_mofmlp_job_start", "_mofmlp_job_end"

SUBMIT = """
import json, tempfile
from pathlib import Path
from aiida.engine import submit
from aiida_mofmlp.cli.demo import demo_builder
from aiida_mofmlp.common.codes import CODES

computer = orm.load_computer({computer!r})
computer.set_prepend_text("date +%s.%N > {start}")
computer.set_append_text("date +%s.%N > {end}")
codes = {{kind: orm.load_code(f"{{label}}@{computer}") for kind, (label, _, _) in CODES.items()}}
builder = demo_builder(codes, Path(tempfile.mkdtemp()), "tiny")
print(json.dumps({{"pk": submit(builder).pk}}))
"""

WAIT = """
import json, time
from aiida.manage import get_manager
session = get_manager().get_profile_storage().get_session()
while True:
    session.rollback()
    node = orm.load_node({pk})
    if node.is_terminated:
        break
    time.sleep(5)
print(json.dumps({{"exit_status": node.exit_status, "state": node.process_state.value}}))
"""

ANALYSE = """
import json
from pathlib import Path
node = orm.load_node({pk})
jobs, functions = [], []
for child in node.called_descendants:
    if isinstance(child, orm.CalcFunctionNode):
        functions.append((child.mtime - child.ctime).total_seconds())
    if not isinstance(child, orm.CalcJobNode) or "remote_folder" not in child.outputs:
        continue
    folder = Path(child.outputs.remote_folder.get_remote_path())
    try:
        start = float((folder / {start!r}).read_text())
        end = float((folder / {end!r}).read_text())
    except (OSError, ValueError):
        continue
    jobs.append({{"label": child.process_label, "created": child.ctime.timestamp(), "start": start,
                 "end": end, "sealed": child.mtime.timestamp()}})
print(json.dumps({{"ctime": node.ctime.timestamp(), "mtime": node.mtime.timestamp(),
                  "exit_status": node.exit_status, "jobs": jobs, "calcfunctions": functions}}))
"""


def union_length(intervals: list[tuple[float, float]]) -> float:
    """Total length covered by at least one of ``intervals``."""
    total, current_start, current_end = 0.0, None, None
    for start, end in sorted(intervals):
        if current_end is None or start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += current_end - current_start
    return total


def summarise(raw: dict) -> dict:
    """Wall time of the loop split into jobs, per-job overheads, calcfunctions and the rest (seconds)."""
    wall = raw["mtime"] - raw["ctime"]
    jobs = raw["jobs"]
    busy = union_length([(job["start"], job["end"]) for job in jobs])
    before = [job["start"] - job["created"] for job in jobs]
    after = [job["sealed"] - job["end"] for job in jobs]
    per_kind: dict[str, dict] = {}
    for job, pre, post in zip(jobs, before, after, strict=True):
        entry = per_kind.setdefault(job["label"], {"n": 0, "run_s": 0.0, "before_s": 0.0, "after_s": 0.0})
        entry["n"] += 1
        entry["run_s"] += job["end"] - job["start"]
        entry["before_s"] += pre
        entry["after_s"] += post
    return {
        "exit_status": raw["exit_status"],
        "wall_s": wall,
        "n_calcjobs": len(jobs),
        "sum_job_run_s": sum(job["end"] - job["start"] for job in jobs),
        "job_busy_s": busy,
        "overhead_s": wall - busy,
        "overhead_fraction": (wall - busy) / wall,
        "mean_before_job_s": sum(before) / len(jobs),
        "mean_after_job_s": sum(after) / len(jobs),
        "n_calcfunctions": len(raw["calcfunctions"]),
        "calcfunctions_s": sum(raw["calcfunctions"]),
        "per_calcjob_kind": per_kind,
    }


class Profile:
    def __init__(self, root: Path):
        self.env = {**os.environ, "AIIDA_PATH": str(root), "OMP_NUM_THREADS": "1"}
        self.env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
        self.env.pop("AIIDA_PROFILE", None)
        self.env["HOME"] = str(root / "home")
        (root / "home").mkdir(exist_ok=True)

    def run(self, *command: str, timeout: float = 600, check: bool = True) -> str:
        try:
            result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            if check:
                raise
            return f"{' '.join(command)}: no answer after {timeout} s"
        if check and result.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def python(self, code: str, timeout: float = 600) -> dict:
        script = f"from aiida import load_profile, orm\nload_profile({PROFILE!r})\n" + textwrap.dedent(code)
        return json.loads(self.run(sys.executable, "-c", script, timeout=timeout).strip().splitlines()[-1])


def measure(scheduler: str, workers: int) -> dict:
    """Run the tiny loop on ``scheduler`` in a throwaway profile; the summary of its timings."""
    if scheduler == "slurm":
        subprocess.run(["bash", str(REPO / "scripts" / "slurm.sh")], check=True, capture_output=True)
    subprocess.run(["bash", str(REPO / "scripts" / "broker.sh")], check=True, capture_output=True)
    with tempfile.TemporaryDirectory(prefix="mofmlp-bench-") as root:
        profile = Profile(Path(root))
        print(f"[{scheduler}] profile and codes (aiida-mofmlp setup --scheduler {scheduler})", flush=True)
        profile.run(str(BIN / "aiida-mofmlp"), "setup", "--profile", PROFILE, "--scheduler", scheduler)
        profile.run(str(BIN / "verdi"), "-p", PROFILE, "daemon", "start", str(workers), timeout=120)
        try:
            started = time.monotonic()
            pk = profile.python(SUBMIT.format(computer=COMPUTERS[scheduler], start=START_FILE, end=END_FILE))
            print(f"[{scheduler}] submitted the tiny loop <{pk['pk']}>; waiting", flush=True)
            profile.python(WAIT.format(pk=pk["pk"]), timeout=7200)
            print(f"[{scheduler}] finished after {time.monotonic() - started:.0f} s", flush=True)
            raw = profile.python(ANALYSE.format(pk=pk["pk"], start=START_FILE, end=END_FILE))
            summary = {"scheduler": scheduler, "daemon_workers": workers, **summarise(raw), "raw": raw}
            (HERE / f"results_{scheduler}.json").write_text(json.dumps(summary, indent=1))
        finally:  # a daemon that does not answer the stop in time is not worth losing the numbers for
            verdi = str(BIN / "verdi")
            stopped = profile.run(verdi, "-p", PROFILE, "daemon", "stop", timeout=180, check=False).strip()
            print(f"[{scheduler}] daemon stop: {stopped.splitlines()[-1] if stopped else 'done'}", flush=True)
    return summary


def main(argv: list[str] | None = None) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--scheduler", choices=("slurm", "direct", "both"), default="both")
    parser.add_argument("--workers", type=int, default=2, help="daemon workers (default 2)")
    args = parser.parse_args(argv)
    for scheduler in ("slurm", "direct") if args.scheduler == "both" else (args.scheduler,):
        summary = measure(scheduler, args.workers)
        print(
            f"[{scheduler}] wall {summary['wall_s']:.0f} s, {summary['n_calcjobs']} CalcJobs running "
            f"{summary['job_busy_s']:.0f} s of it (sum of job times {summary['sum_job_run_s']:.0f} s); "
            f"overhead {summary['overhead_s']:.0f} s = {100 * summary['overhead_fraction']:.1f} %; per job "
            f"{summary['mean_before_job_s']:.1f} s before its start, "
            f"{summary['mean_after_job_s']:.1f} s after its end; "
            f"{summary['n_calcfunctions']} calcfunctions {summary['calcfunctions_s']:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
