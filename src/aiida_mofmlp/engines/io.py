"""Input handling shared by the engines (no AiiDA imports)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiida_mofmlp.common.errors import InputError

#: the file the CalcJobs send an engine's standard error to; its parser reads the engine's error lines there
STDERR_FILENAME = "stderr.txt"


def read_input(path: str | Path) -> dict[str, Any]:
    """Read an engine input file: JSON for ``*.json``, YAML otherwise; it must hold a mapping."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file {path} does not exist")
    text = path.read_text()
    if path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise InputError(f"input file {path} must hold a mapping of keys, got {type(data).__name__}")
    return data


def threads_from_environment() -> int:
    """Use ``OMP_NUM_THREADS`` threads (one when unset): what the job was given, never all the machine's.

    Torch otherwise takes every core, so two engine jobs side by side oversubscribe a node; the CalcJobs set
    ``OMP_NUM_THREADS`` from their resources (``calculations.base.engine_threads``).
    """
    import os
    import sys

    threads = max(1, int(os.environ.get("OMP_NUM_THREADS") or 1))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:  # imported already: its pool is sized; resize it
        sys.modules["torch"].set_num_threads(threads)
    return threads
