"""Protocol files and :class:`ProtocolMixin` (``workflows/protocols/utils.py``) shared by all work chains."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from aiida_mofmlp.common.protocols import deep_merge
from aiida_mofmlp.workflows.protocols.utils import (
    ProtocolMixin,
    load_overrides,
    packaged_overrides_path,
    read_protocol_file,
)

PROTOCOL_FILES = sorted(
    path.name
    for path in resources.files("aiida_mofmlp.workflows.protocols").iterdir()
    if path.name.endswith(".yaml")
)


def mixin_for(filename: str) -> type[ProtocolMixin]:
    """A bare class reading ``filename`` with the mixin (no work chain needed)."""
    return type(f"Protocols_{filename.removesuffix('.yaml')}", (ProtocolMixin,), {"_protocol_file": filename})


class MdProtocols(ProtocolMixin):
    _protocol_file = "md.yaml"


def test_deep_merge_keeps_unrelated_keys_and_copies():
    base = {"a": {"b": 1, "c": [1]}, "d": 2}
    merged = deep_merge(base, {"a": {"b": 5}, "e": 3})
    assert merged == {"a": {"b": 5, "c": [1]}, "d": 2, "e": 3}
    merged["a"]["c"].append(2)
    assert base["a"]["c"] == [1]


def test_the_work_chain_protocol_files_are_all_there():
    assert {"cp2k.yaml", "mace.yaml", "md.yaml", "raspa.yaml", "selection.yaml"} <= set(PROTOCOL_FILES)


@pytest.mark.parametrize("filename", PROTOCOL_FILES)
def test_every_file_has_the_three_protocols_and_a_default_that_exists(filename):
    protocols = mixin_for(filename)
    data = read_protocol_file(filename)
    available = protocols.get_available_protocols()
    assert {"fast", "balanced", "stringent"} <= set(available)
    assert protocols.get_default_protocol() == data["default_protocol"]
    assert protocols.get_default_protocol() in available
    assert all(entry["description"] for entry in available.values())
    assert protocols.get_protocol_inputs() == protocols.get_protocol_inputs(data["default_protocol"])


@pytest.mark.parametrize("filename", ["mace.yaml", "md.yaml", "selection.yaml"])
def test_new_style_files_hold_inputs_and_deltas(filename):
    data = read_protocol_file(filename)
    assert isinstance(data["default_inputs"], dict) and data["default_inputs"]
    inputs = mixin_for(filename).get_protocol_inputs("fast")
    assert "description" not in inputs
    assert set(inputs) == set(data["default_inputs"])  # a protocol only changes values of the same ports


def test_protocol_delta_is_deep_merged_over_the_default_inputs():
    fast = MdProtocols.get_protocol_inputs("fast")
    stringent = MdProtocols.get_protocol_inputs("stringent")
    assert fast["md"]["parameters"]["steps"] == 2000
    assert stringent["md"]["parameters"]["steps"] == 100000
    # from default_inputs, untouched by the deltas
    assert fast["md"]["parameters"]["safety"] == {"min_distance": 0.5, "check_interval": 10}
    assert fast["md"]["metadata"]["options"]["resources"] == {
        "num_machines": 1,
        "num_mpiprocs_per_machine": 1,
    }
    assert fast["timestep_factor"] == stringent["timestep_factor"] == 0.5


def test_overrides_as_dict_and_as_yaml_path_give_the_same_inputs(tmp_path):
    overrides = {"md": {"parameters": {"temperature": 500.0, "safety": {"min_distance": 0.4}}}}
    path = tmp_path / "overrides.yaml"
    path.write_text(yaml.safe_dump(overrides))
    from_dict = MdProtocols.get_protocol_inputs("fast", overrides)
    assert from_dict == MdProtocols.get_protocol_inputs("fast", path)
    assert from_dict == MdProtocols.get_protocol_inputs("fast", str(path))
    assert from_dict["md"]["parameters"]["temperature"] == 500.0
    assert from_dict["md"]["parameters"]["safety"] == {"min_distance": 0.4, "check_interval": 10}
    assert overrides == {"md": {"parameters": {"temperature": 500.0, "safety": {"min_distance": 0.4}}}}


def test_protocol_inputs_are_copies():
    inputs = MdProtocols.get_protocol_inputs("fast")
    inputs["md"]["parameters"]["steps"] = 1
    assert MdProtocols.get_protocol_inputs("fast")["md"]["parameters"]["steps"] == 2000


def test_unknown_protocol_is_named_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown protocol 'x' for MdProtocols; valid protocols: fast"):
        MdProtocols.get_protocol_inputs("x")


def test_bad_overrides_are_named(tmp_path):
    with pytest.raises(TypeError, match="`overrides` must be a dict or the path of a YAML file, got list"):
        MdProtocols.get_protocol_inputs("fast", ["not", "a", "dict"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        MdProtocols.get_protocol_inputs("fast", tmp_path / "missing.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(TypeError, match="must hold a mapping, got list"):
        MdProtocols.get_protocol_inputs("fast", path)


def test_load_overrides_of_nothing_and_of_an_empty_file(tmp_path):
    assert load_overrides(None) == {}
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_overrides(path) == {}


def test_a_class_without_protocol_file_says_so():
    class NoFile(ProtocolMixin):
        pass

    with pytest.raises(NotImplementedError, match="NoFile does not name its protocol file"):
        NoFile.get_default_protocol()


def test_unknown_packaged_overrides_are_named():
    with pytest.raises(ValueError, match="no packaged overrides 'no-such-overrides'; available:"):
        packaged_overrides_path("no-such-overrides")
