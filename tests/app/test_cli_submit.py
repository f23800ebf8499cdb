"""`aiida-mofmlp run --submit` from a shell where nothing is activated: the daemon picks the run up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.mark.integration
def test_run_submit_is_picked_up_by_the_daemon(
    daemon_verdi, daemon_profile, raspa_share_dir, clean_environment
):
    cif = raspa_share_dir / "structures" / "cif" / "MIL-53(Cr)ht.cif"
    command = [
        str(Path(sys.executable).parent / "aiida-mofmlp"),
        "run",
        str(cif),
        "--sizes",
        "tiny",
        "--labels",
        "xtb",
        "--submit",
        "--profile",
        daemon_profile,
    ]
    env = clean_environment(os.environ["AIIDA_PATH"])
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    match = re.search(r"Submitted ActiveLearningWorkChain<(\d+)>", result.stdout)
    assert match, result.stdout
    pk = match.group(1)
    assert f"aiida-mofmlp runs show {pk}" in result.stdout
    try:
        deadline = time.monotonic() + 300
        report = ""
        while time.monotonic() < deadline:  # the daemon's first report line: it runs the loop
            report = daemon_verdi("process", "report", pk).stdout
            if re.search(r"\[\d+\|ActiveLearningWorkChain\|", report):
                break
            time.sleep(2)
        else:
            pytest.fail(f"the daemon did not start ActiveLearningWorkChain<{pk}> within 300 s:\n{report}")
    finally:
        daemon_verdi("process", "kill", "-F", pk)
