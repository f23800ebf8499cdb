"""One protocol mechanism for every public work chain.

A protocol file ``workflows/protocols/<name>.yaml`` holds::

    default_protocol: balanced
    default_inputs:            # shaped like the work chain's input ports (values in plain Python types)
      ...
    protocols:
      fast:
        description: one line a person reads when choosing
        ...                    # only what differs from default_inputs, deep-merged over it
      balanced: {description: ...}

A work chain declares its file with ``_protocol_file`` and inherits :class:`ProtocolMixin`;
``get_protocol_inputs(protocol, overrides)`` returns ``default_inputs`` with the protocol's delta and then
``overrides`` (a dict, or the path of a YAML file holding one) deep-merged in. ``get_builder_from_protocol``
of each work chain turns that dict into a builder; composed work chains call their children's
``get_builder_from_protocol`` with the matching part of the overrides.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import yaml

from aiida_mofmlp.common.protocols import deep_merge

#: where the package keeps ready-made overrides files (``overrides/<name>.yaml``)
OVERRIDES_FOLDER = "overrides"


@cache
def read_protocol_file(filename: str) -> dict:
    """The parsed protocol file ``filename`` of this folder (cached; callers must not modify it)."""
    text = resources.files(__package__).joinpath(filename).read_text()
    return yaml.safe_load(text)


def packaged_overrides_path(name: str) -> Path:
    """Path of the packaged overrides file ``overrides/<name>.yaml`` (e.g. ``demo``, ``tiny``)."""
    path = Path(str(resources.files(__package__).joinpath(OVERRIDES_FOLDER, f"{name}.yaml")))
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ValueError(f"no packaged overrides {name!r}; available: {', '.join(available)}")
    return path


def load_overrides(overrides: Mapping | str | os.PathLike | None) -> dict:
    """``overrides`` as a dict: a mapping is copied, a path is read as YAML (it must hold a mapping).

    Raises:
        FileNotFoundError: the path does not exist.
        TypeError: ``overrides`` is neither a mapping nor a path, or the file does not hold a mapping.
    """
    if overrides is None:
        return {}
    if isinstance(overrides, Mapping):
        return copy.deepcopy(dict(overrides))
    if isinstance(overrides, str | os.PathLike):
        path = Path(overrides)
        if not path.is_file():
            raise FileNotFoundError(f"overrides file {path} does not exist")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, Mapping):
            raise TypeError(f"overrides file {path} must hold a mapping, got {type(data).__name__}")
        return dict(data)
    raise TypeError(f"`overrides` must be a dict or the path of a YAML file, got {type(overrides).__name__}")


class ProtocolMixin:
    """Protocol handling for a work chain whose protocols live in ``workflows/protocols/<_protocol_file>``."""

    #: file name of the protocol YAML in ``aiida_mofmlp/workflows/protocols``
    _protocol_file: ClassVar[str] = ""

    @classmethod
    def _protocol_data(cls) -> dict:
        if not cls._protocol_file:
            raise NotImplementedError(f"{cls.__name__} does not name its protocol file (_protocol_file)")
        return read_protocol_file(cls._protocol_file)

    @classmethod
    def get_default_protocol(cls) -> str:
        """Name of the protocol used when none is given."""
        return cls._protocol_data()["default_protocol"]

    @classmethod
    def get_available_protocols(cls) -> dict[str, dict[str, Any]]:
        """Each protocol's name with its ``description``."""
        return {
            name: {"description": values.get("description", "")}
            for name, values in cls._protocol_data()["protocols"].items()
        }

    @classmethod
    def get_protocol_inputs(
        cls, protocol: str | None = None, overrides: Mapping | str | os.PathLike | None = None
    ) -> dict[str, Any]:
        """``default_inputs`` with protocol ``protocol`` and then ``overrides`` deep-merged in.

        Raises:
            ValueError: ``protocol`` is not one of :meth:`get_available_protocols`.
            TypeError / FileNotFoundError: see :func:`load_overrides`.
        """
        data = cls._protocol_data()
        name = protocol or data["default_protocol"]
        if name not in data["protocols"]:
            valid = ", ".join(data["protocols"])
            raise ValueError(f"unknown protocol {name!r} for {cls.__name__}; valid protocols: {valid}")
        delta = {key: value for key, value in data["protocols"][name].items() if key != "description"}
        inputs = deep_merge(data.get("default_inputs") or {}, delta)
        return deep_merge(inputs, load_overrides(overrides))
