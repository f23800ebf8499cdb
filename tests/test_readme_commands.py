"""The README's commands as a new user runs them: from a shell where no environment is activated.

`bash scripts/app.sh` once stopped at the daemon there (aiida-core looks `verdi` up on PATH); the app
itself is started through scripts/app.sh from such a shell by the browser test (tests/app/conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def test_clean_environment_has_no_venv(tmp_path, clean_environment):
    env = clean_environment(tmp_path)
    assert str(VENV_BIN) not in env["PATH"].split(os.pathsep)
    assert "VIRTUAL_ENV" not in env
    found = subprocess.run(
        ["bash", "-c", "command -v verdi || true"], env=env, capture_output=True, text=True
    )
    assert Path(found.stdout.strip() or "/nonexistent").parent != VENV_BIN


def test_demo_command_first_steps_twice_from_a_clean_shell(tmp_path, clean_environment):
    """`bash scripts/demo.sh` installs (every step skipped: installed), makes the profile and codes, then
    starts the demo (here only its --help); a second run reuses everything."""
    env = clean_environment(tmp_path / "aiida")
    command = ["bash", str(ROOT / "scripts" / "demo.sh"), "--help"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "profile 'mofmlp': created" in first.stdout
    assert "code mofmlp-xtb@localhost" in first.stdout
    assert "Usage: aiida-mofmlp demo" in first.stdout
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    for line in ("exists (Python", f"torch {'2.13.0'} is installed", "RASPA2 is installed", "exists, reused"):
        assert line in second.stdout, f"{line!r} not in the re-run's output:\n{second.stdout[-3000:]}"
    assert "building the RASPA2 wheel" not in second.stdout


def test_cli_lets_the_daemon_client_find_verdi_with_nothing_activated(tmp_path, clean_environment):
    """The CLI puts the environment's bin on PATH before aiida-core's daemon client reads it (at import)."""
    code = "import aiida_mofmlp.cli; import aiida.engine.daemon.client as client; print(client.VERDI_BIN)"
    env = clean_environment(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == str(VENV_BIN / "verdi")


def test_app_lets_the_daemon_client_find_verdi_with_nothing_activated(tmp_path, clean_environment):
    """A kernel started without the environment on PATH (AiiDAlab, a plain Jupyter) loads the app's profile
    and can then check and start the daemon."""
    env = clean_environment(tmp_path, MOFMLP_PROFILE="app-test")
    presto = [str(VENV_BIN / "verdi"), "presto", "--profile-name", "app-test", "--non-interactive"]
    made = subprocess.run(presto, env=env, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    code = (
        "from aiida_mofmlp.app.controller.app import load_app_profile; print(load_app_profile()); "
        "import aiida.engine.daemon.client as client; print(client.VERDI_BIN)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-2:] == ["app-test", str(VENV_BIN / "verdi")]
