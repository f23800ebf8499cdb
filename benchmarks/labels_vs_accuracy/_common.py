"""Shared settings and small helpers of the labels-vs-accuracy benchmark."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

#: the small MACE model every strategy starts from (engines.foundation.make_small_model keywords)
MODEL_SETTINGS: dict[str, Any] = {"r_max": 4.5, "num_channels": 16, "max_L": 0}


def write_gz(frames: list, path: str | Path) -> int:
    """Write frames as gzip-compressed extxyz."""
    from aiida_mofmlp.common.frames import write_frames

    with gzip.open(path, "wt") as handle:
        return write_frames(frames, handle)


def read_gz(path: str | Path) -> list:
    """Read frames from a gzip-compressed extxyz."""
    from aiida_mofmlp.common.frames import read_frames

    with gzip.open(path, "rt") as handle:
        return read_frames(handle)
