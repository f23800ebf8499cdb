"""Protocol loading shared by all work chains."""

import pytest

from aiida_mofmlp.common.protocols import deep_merge, load_protocol, read_protocol_file

PROTOCOL_FILES = ["cp2k.yaml", "mace.yaml", "md.yaml", "raspa.yaml", "selection.yaml"]


def test_deep_merge_keeps_unrelated_keys_and_copies():
    base = {"a": {"b": 1, "c": [1]}, "d": 2}
    merged = deep_merge(base, {"a": {"b": 5}, "e": 3})
    assert merged == {"a": {"b": 5, "c": [1]}, "d": 2, "e": 3}
    merged["a"]["c"].append(2)
    assert base["a"]["c"] == [1]


@pytest.mark.parametrize("filename", PROTOCOL_FILES)
def test_every_file_has_the_three_protocols_and_a_default(filename):
    data = read_protocol_file(filename)
    assert {"fast", "balanced", "stringent"} <= set(data["protocols"])
    assert data["default_protocol"] in data["protocols"]
    assert load_protocol(filename) == load_protocol(filename, data["default_protocol"])


def test_bad_protocol_and_overrides_are_named():
    with pytest.raises(ValueError, match="unknown MD protocol 'x'; valid protocols: fast"):
        load_protocol("md.yaml", "x")
    with pytest.raises(TypeError, match="`overrides` must be a dict"):
        load_protocol("md.yaml", "fast", ["not", "a", "dict"])
