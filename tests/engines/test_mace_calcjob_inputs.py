"""Input validation of MaceTrainCalculation and DeviationCalculation (nodes only; nothing runs)."""

from __future__ import annotations

import pytest
from aiida import orm

from aiida_mofmlp.engines.mace.foundation import make_small_model
from aiida_mofmlp.engines.mace.toy import TOY_SPECIES, label_with_model, toy_frames


@pytest.fixture
def nodes(aiida_profile, tmp_path):
    from aiida_mofmlp.data.mace_model import MaceModelData
    from aiida_mofmlp.data.structure_set import StructureSetData

    full = make_small_model(TOY_SPECIES, tmp_path / "full.model")
    no_zn = make_small_model(["H", "C", "O"], tmp_path / "nozn.model")
    return {
        "labelled": StructureSetData.from_frames(label_with_model(toy_frames(3, seed=1), full)),
        "unlabelled": StructureSetData.from_frames(toy_frames(3, seed=2)),
        "full": MaceModelData.from_file(full),
        "no_zn": MaceModelData.from_file(no_zn),
    }


def test_train_validator(nodes):
    from aiida_mofmlp.calculations.mace_train import validate_inputs

    base = {"training_set": nodes["labelled"], "foundation_model": nodes["full"]}
    naive = orm.Dict({"mode": "naive"})
    assert validate_inputs({**base, "parameters": naive}) is None
    assert "needs a `replay_set`" in validate_inputs(base)  # default mode is multihead
    assert validate_inputs({**base, "replay_set": nodes["labelled"]}) is None
    message = validate_inputs({**base, "parameters": naive, "foundation_model": nodes["no_zn"]})
    assert "['Zn']" in message and "foundation model" in message
    assert "REF_energy" in validate_inputs({**base, "parameters": naive, "training_set": nodes["unlabelled"]})
    assert "set from the input nodes" in validate_inputs({**base, "parameters": orm.Dict({"seed": 3})})
    assert "unknown keys" in validate_inputs({**base, "parameters": orm.Dict({"epochs": 3})})
    assert "REF_stress" in validate_inputs(
        {**base, "parameters": orm.Dict({"mode": "naive", "stress_weight": 10})}
    )
    # the engine's own checks, before submission: types and extra_args' path flags
    wrong_type = validate_inputs({**base, "parameters": orm.Dict({"mode": "naive", "lr": "fast"})})
    assert wrong_type == "parameters.lr='fast' must be a number (like the default 0.001)"
    flags = orm.Dict({"mode": "naive", "extra_args": ["--checkpoints_dir=/tmp/x"]})
    assert "--checkpoints_dir names a file or folder" in validate_inputs({**base, "parameters": flags})
    assert (
        validate_inputs({**base, "parameters": orm.Dict({"mode": "naive", "lr": 5})}) is None
    )  # int is a number


def test_deviation_validator(nodes):
    from aiida_mofmlp.calculations.deviation import validate_inputs

    two = {"a": nodes["full"], "b": nodes["full"]}
    assert validate_inputs({"frames": nodes["unlabelled"], "models": two}) is None
    assert "at least 2" in validate_inputs({"frames": nodes["unlabelled"], "models": {"a": nodes["full"]}})
    message = validate_inputs({"frames": nodes["unlabelled"], "models": {**two, "c": nodes["no_zn"]}})
    assert "models.c" in message and "Zn" in message
    assert "dtype" in validate_inputs(
        {"frames": nodes["unlabelled"], "models": two, "parameters": orm.Dict({"dtype": "half"})}
    )
