"""Run a module of the package in a short-lived child process that cannot reach the profile.

Used to open what comes from outside (a trusted model pickle, an uploaded CIF) without letting it run code in,
stall or exhaust the caller (the app's kernel, the daemon): the child gets a clean environment (no
``AIIDA_PATH``, a temporary ``HOME``, working folder and ``TMPDIR``, one thread), limits on CPU time and
address space, its own session, and is killed after ``timeout`` seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass


@dataclass
class IsolatedResult:
    """What the child did: exit status, its output, and whether the timeout killed it."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def last_error_line(self) -> str:
        """The child's last line on stderr (or stdout), or its exit status when it said nothing."""
        lines = (self.stderr or self.stdout).strip().splitlines()
        return lines[-1] if lines else f"exit status {self.returncode}"


def _limit_resources(seconds: int, memory: int) -> None:  # pragma: no cover - runs in the child
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    os.setsid()


def clean_environment(home: str) -> dict[str, str]:
    """The child's environment: ``PATH`` kept, everything else (``AIIDA_PATH``, tokens, ...) left out."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "PYTHONNOUSERSITE": "1",
    }


def run_module_isolated(module: str, args: list[str], timeout: float, memory: int) -> IsolatedResult:
    """Run ``python -m module *args`` isolated (module docstring); a failing child does not raise."""
    seconds = max(1, int(timeout) + 1)
    with tempfile.TemporaryDirectory(prefix="mofmlp-isolated-") as home:
        try:
            done = subprocess.run(
                [sys.executable, "-m", module, *args],
                cwd=home,
                env=clean_environment(home),
                capture_output=True,
                text=True,
                timeout=timeout,
                preexec_fn=lambda: _limit_resources(seconds, memory),
            )
        except subprocess.TimeoutExpired as error:
            return IsolatedResult(-9, _text(error.stdout), _text(error.stderr), timed_out=True)
    return IsolatedResult(done.returncode, done.stdout, done.stderr)


def _text(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value or ""
