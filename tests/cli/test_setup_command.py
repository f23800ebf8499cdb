"""`aiida-mofmlp setup` in a fresh AiiDA configuration: creates, then reuses; other profiles untouched."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).parent / "aiida-mofmlp")
VERDI = str(Path(sys.executable).parent / "verdi")


def _run(args, env):
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def fresh_config(tmp_path):
    env = {**os.environ, "AIIDA_PATH": str(tmp_path)}
    env.pop("AIIDA_PROFILE", None)
    return env


def test_setup_creates_then_reuses_and_keeps_the_default_profile(fresh_config):
    mine = _run([VERDI, "presto", "--profile-name", "users-own", "--non-interactive"], fresh_config)
    assert mine.returncode == 0, mine.stderr

    first = _run([CLI, "setup", "--profile", "mofmlp-test"], fresh_config)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "profile 'mofmlp-test': created" in first.stdout
    assert "code mofmlp-cp2k@localhost" in first.stdout

    second = _run([CLI, "setup", "--profile", "mofmlp-test"], fresh_config)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "exists, reused" in second.stdout

    profiles = _run([VERDI, "profile", "list"], fresh_config).stdout
    assert "* users-own" in profiles, profiles
    codes = _run([VERDI, "-p", "users-own", "code", "list", "-A"], fresh_config).stdout
    assert "mofmlp-" not in codes, "setup must not add codes to another profile"


def test_setup_on_a_machine_with_no_profile(fresh_config):
    result = _run([CLI, "setup", "--profile", "first"], fresh_config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "profile 'first': created" in result.stdout
