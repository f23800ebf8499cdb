"""Value checks of an engine's settings against its defaults: one schema, used by the engine on the compute
node and by its CalcJob's validator before anything is submitted.

A setting must have the type of its default: a number (int or float, never a bool) where the default is a
number, true/false where it is a bool, text where it is text, a list where it is a list. A default of None
leaves the type open (``nullable`` lists settings that also take None although their default is not None).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from numbers import Real
from typing import Any


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, Real):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def type_problem(
    values: Mapping[str, Any],
    defaults: Mapping[str, Any],
    where: str = "parameters",
    nullable: Iterable[str] = (),
) -> str | None:
    """The first setting of ``values`` whose type differs from its default's, as a message naming it (the
    value and the expected kind); None when every known setting has the right kind. Unknown keys are not
    checked here."""
    nullable = set(nullable)
    for key, value in values.items():
        if key not in defaults or defaults[key] is None:
            continue
        if value is None and key in nullable:
            continue
        expected = _kind(defaults[key])
        if _kind(value) != expected:
            return f"{where}.{key}={value!r} must be {expected} (like the default {defaults[key]!r})"
    return None


def tree_type_problem(
    values: Mapping[str, Any],
    defaults: Mapping[str, Any],
    where: str = "parameters",
    nullable: Iterable[str] = (),
) -> str | None:
    """:func:`type_problem` through nested settings: a mapping default asks for a mapping, whose known keys
    are checked in turn (``nullable`` holds dotted paths below ``where``, e.g. ``"gcmc.pressures_bar"``)."""
    nullable = set(nullable)
    here = {key for key in nullable if "." not in key}
    message = type_problem(values, defaults, where, here)
    if message:
        return message
    for key, value in values.items():
        default = defaults.get(key)
        if isinstance(default, Mapping) and isinstance(value, Mapping):
            below = {path.split(".", 1)[1] for path in nullable if path.startswith(f"{key}.")}
            message = tree_type_problem(value, default, f"{where}.{key}", below)
            if message:
                return message
    return None
