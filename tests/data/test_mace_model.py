"""MaceModelData: facts read from a real (tiny) MACE model file; lookup by hash."""

import pytest

from aiida_mofmlp.data import MaceModelData

pytest.importorskip("mace")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from aiida_mofmlp.engines.mace.foundation import make_small_model

    return make_small_model(["H", "C", "O"], tmp_path_factory.mktemp("model") / "tiny.model", r_max=4.0)


def test_attributes_from_model(aiida_profile, tiny_model):
    node = MaceModelData.from_file(tiny_model, parent_sha256="abc").store()
    assert node.species == ["H", "C", "O"]
    assert node.r_max == pytest.approx(4.0)
    assert node.heads and node.head == node.heads[-1]
    assert node.parent_sha256 == "abc"
    assert len(node.sha256) == 64
    assert "MACE" in node.architecture


def test_same_file_is_found_by_hash(aiida_profile, tiny_model):
    first = MaceModelData.get_or_create(tiny_model)
    second = MaceModelData.get_or_create(tiny_model)
    assert first.pk == second.pk
    assert first.pk in {node.pk for node in MaceModelData.find_by_hash(first.sha256)}


def test_bad_inputs_are_named(aiida_profile, tiny_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        MaceModelData.from_file(tmp_path / "missing.model")
    not_a_model = tmp_path / "notes.model"
    not_a_model.write_text("hello")
    with pytest.raises(ValueError, match="not a loadable MACE model"):
        MaceModelData.from_file(not_a_model)
    with pytest.raises(ValueError, match="valid heads"):
        MaceModelData.from_file(tiny_model, head="nonexistent")
