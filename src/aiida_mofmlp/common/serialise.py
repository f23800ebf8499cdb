"""Plain JSON-safe copies of nested results (no AiiDA imports).

Engines, parsers and tools write numbers that may be NumPy scalars or arrays and may be NaN or infinite
(an empty group, a diverged training). JSON has no NaN and AiiDA cannot store it in a ``Dict``, so every
writer goes through :func:`to_jsonable`: a missing or non-finite number becomes ``None`` (``null``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any

import numpy as np

__all__ = ["dumps", "to_jsonable"]


def to_jsonable(value: Any, fallback: Callable[[Any], Any] | None = None) -> Any:
    """A copy of ``value`` made of dict, list, str, int, float, bool and None only.

    Mappings become dicts with string keys; lists, tuples and NumPy arrays become lists; sets become lists
    sorted by their string form; NumPy scalars become Python numbers; NaN and +/-inf become ``None``;
    paths become strings. Any other object is passed to ``fallback`` (e.g. ``str``) when one is given,
    else kept as it is (``json.dumps`` then reports it).
    """
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item, fallback) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item, fallback) for item in value]
    if isinstance(value, set | frozenset):
        return sorted((to_jsonable(item, fallback) for item in value), key=str)
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist(), fallback)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int):  # bool is an int
        return value
    if isinstance(value, PurePath):
        return str(value)
    if fallback is not None:
        return to_jsonable(fallback(value))
    return value


def dumps(value: Any, fallback: Callable[[Any], Any] | None = None, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`to_jsonable` (``value``); strict JSON: never writes NaN or Infinity."""
    return json.dumps(to_jsonable(value, fallback), allow_nan=False, **kwargs)
