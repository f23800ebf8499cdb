"""A throwaway production setup: Slurm, RabbitMQ, an AiiDA profile with a daemon, all in subprocesses.

The profile lives in a temporary ``AIIDA_PATH`` and is only ever loaded by child processes (``verdi``, small
Python scripts), so the test session's own profile is untouched. Slurm (``scripts/slurm.sh``) and RabbitMQ
(``scripts/broker.sh``) are started when they are not running and stopped afterwards only when these
fixtures started them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
PROFILE = "mofmlp-production"
COMPUTER = "localhost-slurm"


def _answers(command: list[str]) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _start_service(script: str, probe: list[str]):
    """Run ``scripts/<script> start``-style; returns whether it was already running before."""
    was_running = _answers(probe)
    command = ["bash", str(REPO / "scripts" / script)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        pytest.fail(f"scripts/{script} failed:\n{result.stdout}\n{result.stderr}")
    return was_running


@pytest.fixture(scope="session")
def slurm():
    """A running single-node Slurm (scripts/slurm.sh); stopped afterwards when it was not running before."""
    was_running = _start_service("slurm.sh", ["sinfo", "-h"])
    yield
    if not was_running:
        subprocess.run(["bash", str(REPO / "scripts" / "slurm.sh"), "stop"], capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def broker():
    """A running RabbitMQ (scripts/broker.sh); stopped afterwards when it was not running before."""
    was_running = _start_service("broker.sh", ["rabbitmqctl", "-q", "status"])
    yield
    if not was_running:
        command = ["bash", str(REPO / "scripts" / "broker.sh"), "stop"]
        subprocess.run(command, capture_output=True, timeout=120)


@dataclass
class ProductionProfile:
    """An AiiDA profile with a broker, driven from child processes: verdi, scripts, the daemon."""

    root: Path
    name: str = PROFILE
    env: dict = field(default_factory=dict)

    def verdi(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(BIN / "verdi"), "-p", self.name, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"verdi {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def python(self, code: str, timeout: float = 300):
        """Run ``code`` with the profile loaded; it ends by printing one JSON document, returned parsed."""
        script = f"from aiida import load_profile, orm\nload_profile({self.name!r})\n" + textwrap.dedent(code)
        result = subprocess.run(
            [sys.executable, "-c", script], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise AssertionError(f"script failed:\n{script}\n{result.stdout}\n{result.stderr}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    # --- the daemon -----------------------------------------------------------------------------------
    def start_daemon(self, workers: int = 2) -> None:
        self.verdi("daemon", "start", str(workers), timeout=120)

    def stop_daemon(self) -> None:
        self.verdi("daemon", "stop", timeout=120, check=False)

    def daemon_pids(self) -> list[int]:
        """The circus daemon and all its workers."""
        pid_file = self.root / ".aiida" / "daemon" / f"circus-{self.name}.pid"
        if not pid_file.exists():
            return []
        try:
            circus = psutil.Process(int(pid_file.read_text().strip()))
        except (psutil.NoSuchProcess, ValueError):
            return []
        return [circus.pid] + [child.pid for child in circus.children(recursive=True)]

    def kill_daemon(self) -> list[int]:
        """SIGKILL the daemon and its workers (as a crash or an OOM kill would); returns their pids."""
        pids = self.daemon_pids()
        assert pids, "the daemon is not running"
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired, psutil.AccessDenied):
                psutil.Process(pid).wait(timeout=30)
        return pids

    # --- processes ------------------------------------------------------------------------------------
    def wait_until(self, pk: int, condition: str, timeout: float, poll: float = 2.0) -> dict:
        """Wait (in one child process) until ``condition`` (Python, of ``node``) holds for process ``pk``."""
        state = self.python(
            f"""
            import json, time
            from aiida.manage import get_manager
            session = get_manager().get_profile_storage().get_session()
            deadline = time.monotonic() + {timeout}
            while True:
                session.rollback()  # end the read transaction: see what the daemon wrote since
                node = orm.load_node({pk})
                reached = bool({condition})
                if reached or time.monotonic() > deadline:
                    break
                time.sleep({poll})
            print(json.dumps({{"reached": reached, "state": node.process_state.value, "paused": node.paused,
                               "exit_status": node.exit_status, "exit_message": node.exit_message}}))
            """,
            timeout=timeout + 120,
        )
        if not state["reached"]:
            report = self.verdi("process", "report", str(pk), check=False).stdout
            raise AssertionError(f"process {pk}: not `{condition}` after {timeout} s: {state}\n{report}")
        return state

    def wait_terminated(self, pk: int, timeout: float) -> dict:
        """Wait until process ``pk`` is terminated; its state, exit status and message."""
        return self.wait_until(pk, "node.is_terminated", timeout)


@pytest.fixture(scope="session")
def production_profile(tmp_path_factory, slurm, broker):
    """A fresh profile (SQLite + RabbitMQ) from ``aiida-mofmlp setup --scheduler slurm``, daemon running."""
    root = tmp_path_factory.mktemp("aiida_production")
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"  # the daemon starts `verdi` from PATH
    env = {**os.environ, "AIIDA_PATH": str(root), "OMP_NUM_THREADS": "1", "PATH": path}
    env.pop("AIIDA_PROFILE", None)
    home = root / "home"  # the Slurm computer's work directory goes under this HOME
    home.mkdir()
    result = subprocess.run(
        [str(BIN / "aiida-mofmlp"), "setup", "--profile", PROFILE, "--scheduler", "slurm"],
        env={**env, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        pytest.fail(f"aiida-mofmlp setup --scheduler slurm failed:\n{result.stdout}\n{result.stderr}")
    profile = ProductionProfile(root=root, env=env)
    profile.setup_output = result.stdout
    broker_config = profile.verdi("profile", "show", PROFILE).stdout
    assert "core.rabbitmq" in broker_config, f"the profile has no RabbitMQ broker:\n{broker_config}"
    # a refused submission is retried twice, 1 s apart, before the process is paused (default: 5, from 20 s)
    profile.verdi("config", "set", "transport.task_retry_initial_interval", "1")
    profile.verdi("config", "set", "transport.task_maximum_attempts", "2")
    profile.start_daemon()
    yield profile
    profile.stop_daemon()


class SqueuePoller:
    """Polls ``squeue`` in a thread and records the jobs seen and the most running or pending at once."""

    #: program in a job's submit script -> kind of job
    PROGRAMS = {"cp2k.psmp": "cp2k", "mofmlp-train": "train", "mofmlp-md": "md", "simulate": "raspa",
                "mofmlp-deviation": "deviation", "mofmlp-select": "select", "mofmlp-xtb": "xtb"}  # fmt: skip

    def __init__(self, workdir_prefix: str, interval: float = 0.5):
        self.workdir_prefix = workdir_prefix
        self.interval = interval
        self.max_jobs = 0
        self.seen: dict[str, str] = {}  # job id -> last state
        self.kinds: dict[str, str] = {}  # job id -> cp2k, train, md, ... (from its submit script)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def jobs(self) -> dict[str, str]:
        result = subprocess.run(
            ["squeue", "-h", "-o", "%i|%T|%Z"], capture_output=True, text=True, timeout=30, check=False
        )
        jobs = {}
        for line in result.stdout.splitlines():
            job_id, state, workdir = [*line.split("|"), "", ""][:3]
            if workdir.startswith(self.workdir_prefix):
                jobs[job_id] = state
                if job_id not in self.kinds:
                    self.kinds[job_id] = self._kind(Path(workdir))
        return jobs

    def _kind(self, workdir: Path) -> str:
        try:
            script = (workdir / "_aiidasubmit.sh").read_text()
        except OSError:
            return "unknown"
        return next((kind for program, kind in self.PROGRAMS.items() if f"/{program}'" in script), "unknown")

    def seen_of(self, kind: str) -> list[str]:
        """Job ids of ``kind`` seen so far."""
        return [job_id for job_id in self.seen if self.kinds.get(job_id) == kind]

    def _run(self) -> None:
        while not self._stop.is_set():
            jobs = self.jobs()
            self.seen.update(jobs)
            self.max_jobs = max(self.max_jobs, len(jobs))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)


@pytest.fixture
def squeue_poller(production_profile):
    """A :class:`SqueuePoller` restricted to the jobs of the production profile's Slurm computer."""
    return lambda interval=0.5: SqueuePoller(str(production_profile.root / "home"), interval)
