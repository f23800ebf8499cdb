"""Fuzzing the loop's parameters: a wrong type or value anywhere gives the validator's message naming the key,
never a bare TypeError/AttributeError (which would surface as a traceback after submission)."""

from __future__ import annotations

import math

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from aiida_mofmlp.engines.selection.select import DEFAULT_PARAMETERS as SELECTION_DEFAULTS  # noqa: E402
from aiida_mofmlp.engines.selection.select import validate_parameters as validate_selection  # noqa: E402
from aiida_mofmlp.workflows.active_learning.settings import default_parameters, validate_parameters  # noqa: E402

WRONG_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),  # JSON (the Dict node) holds no NaN/inf
    st.text(max_size=12),
    st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=3), st.none()), max_size=4),
    st.dictionaries(st.text(max_size=6), st.integers(-3, 3), max_size=3),
)


def _paths(tree: dict, prefix: tuple = ()) -> list[tuple]:
    paths = []
    for key, value in tree.items():
        paths.append((*prefix, key))
        if isinstance(value, dict):
            paths += _paths(value, (*prefix, key))
    return paths


PATHS = _paths(default_parameters())


def _set(path: tuple, value) -> dict:
    tree: dict = {}
    node = tree
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return tree


class _Node:
    """What the validator reads of an orm.Dict (no profile needed)."""

    def __init__(self, value: dict):
        self.value = value

    def get_dict(self) -> dict:
        return self.value


_SETTINGS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


@settings(max_examples=1000, **_SETTINGS)
@given(path=st.sampled_from(PATHS), value=WRONG_VALUES)
def test_any_wrong_parameter_gives_a_message_naming_it(path, value):
    if isinstance(value, float):
        assert math.isfinite(value)
    message = validate_parameters(_Node(_set(path, value)))
    if message is not None:
        assert isinstance(message, str) and message
        assert any(str(key) in message for key in path), (path, value, message)


@settings(max_examples=400, **_SETTINGS)
@given(path=st.sampled_from(_paths(SELECTION_DEFAULTS)), value=WRONG_VALUES)
def test_any_wrong_selection_parameter_gives_a_value_error_naming_it(path, value):
    try:
        validate_selection(_set(path, value))
    except ValueError as error:
        assert any(str(key) in str(error) for key in path), (path, value, str(error))
