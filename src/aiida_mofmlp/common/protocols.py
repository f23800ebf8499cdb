"""Protocol files (``workflows/protocols/*.yaml``): loading and deep-merging user overrides."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from importlib import resources

import yaml

#: how each protocol file's kind is named in messages
KINDS = {
    "cp2k.yaml": "CP2K",
    "mace.yaml": "MACE",
    "md.yaml": "MD",
    "raspa.yaml": "RASPA",
    "selection.yaml": "selection",
}


def deep_merge(base: Mapping, overrides: Mapping | None) -> dict:
    """A copy of ``base`` with ``overrides`` merged in: mappings key by key, anything else replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in (overrides or {}).items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@cache
def read_protocol_file(filename: str) -> dict:
    """The parsed protocol file ``filename`` of ``aiida_mofmlp/workflows/protocols`` (cached)."""
    text = resources.files("aiida_mofmlp.workflows").joinpath("protocols", filename).read_text()
    return yaml.safe_load(text)


def load_protocol(filename: str, protocol: str | None = None, overrides: Mapping | None = None) -> dict:
    """Protocol ``protocol`` of ``filename`` (default: the file's ``default_protocol``), overrides merged in.

    Raises:
        ValueError: naming the valid protocols when ``protocol`` is not one of them.
        TypeError: when ``overrides`` is not a mapping.
    """
    data = read_protocol_file(filename)
    name = protocol or data["default_protocol"]
    if name not in data["protocols"]:
        kind = KINDS.get(filename, filename.removesuffix(".yaml"))
        raise ValueError(f"unknown {kind} protocol {name!r}; valid protocols: {', '.join(data['protocols'])}")
    if overrides is not None and not isinstance(overrides, Mapping):
        raise TypeError(f"`overrides` must be a dict, got {type(overrides).__name__}")
    return deep_merge(data["protocols"][name], overrides)
