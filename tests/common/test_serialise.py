"""The one JSON sanitiser: NumPy to Python, non-finite to None, paths to str."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from aiida_mofmlp.common.serialise import dumps, to_jsonable


def test_numpy_and_nonfinite_values_become_plain_json():
    value = {
        "a": np.float64(1.5),
        "b": np.int64(3),
        "c": np.bool_(True),
        "nan": float("nan"),
        "inf": np.float32("inf"),
        "array": np.array([[1.0, np.nan], [-np.inf, 2.0]]),
        "ints": np.arange(3),
        "tuple": (1, np.float64(math.nan)),
        "path": Path("/tmp/model.model"),
        "set": {"b", "a"},
        3: "key becomes a string",
        "none": None,
        "text": "x",
    }
    plain = to_jsonable(value)
    assert plain == {
        "a": 1.5,
        "b": 3,
        "c": True,
        "nan": None,
        "inf": None,
        "array": [[1.0, None], [None, 2.0]],
        "ints": [0, 1, 2],
        "tuple": [1, None],
        "path": "/tmp/model.model",
        "set": ["a", "b"],
        "3": "key becomes a string",
        "none": None,
        "text": "x",
    }
    assert type(plain["a"]) is float and type(plain["b"]) is int and type(plain["c"]) is bool
    assert json.loads(json.dumps(plain, allow_nan=False)) == plain


def test_unknown_objects_use_the_fallback_or_are_kept():
    class Thing:
        def __str__(self) -> str:
            return "thing"

    thing = Thing()
    assert to_jsonable([thing]) == [thing]
    assert to_jsonable([thing], fallback=str) == ["thing"]
    with pytest.raises(TypeError):
        dumps({"x": thing})
    assert json.loads(dumps({"x": thing, "y": np.nan}, fallback=str)) == {"x": "thing", "y": None}


def test_dumps_never_writes_nan():
    text = dumps({"loss": [np.float64("nan"), 1.0]}, indent=1)
    assert "NaN" not in text
    assert json.loads(text) == {"loss": [None, 1.0]}
