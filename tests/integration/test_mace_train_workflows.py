"""MaceTrain/Ensemble/Deviation calculations and work chains run for real (mofmlp-train, mofmlp-deviation).

The engines (``mofmlp-train``, ``mofmlp-deviation``) run as codes on localhost with real mace-torch on a tiny
toy set labelled by a random 'teacher' MACE model.
"""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_mofmlp.engines.mace.foundation import make_small_model
from aiida_mofmlp.engines.mace.toy import TOY_SPECIES, label_with_model, toy_frames

pytestmark = pytest.mark.integration

E0S = {"H": -1.0, "C": -2.0, "O": -3.0, "Zn": -4.0}
FAST = {"max_num_epochs": 3, "batch_size": 4, "lr": 0.01, "mode": "naive"}


@pytest.fixture
def nodes(aiida_profile, tmp_path):
    from aiida_mofmlp.data.mace_model import MaceModelData
    from aiida_mofmlp.data.structure_set import StructureSetData

    teacher = make_small_model(TOY_SPECIES, tmp_path / "teacher.model", seed=7, scale=5.0, e0s=E0S)
    foundation = make_small_model(TOY_SPECIES, tmp_path / "foundation.model", seed=0, e0s=E0S)
    return {
        "training_set": StructureSetData.from_frames(label_with_model(toy_frames(16, seed=1), teacher)),
        "validation_set": StructureSetData.from_frames(label_with_model(toy_frames(6, seed=2), teacher)),
        "foundation_model": MaceModelData.from_file(foundation),
    }


def test_restart_after_divergence(nodes, require_code):
    from aiida_mofmlp.calculations.mace_train import MaceTrainCalculation
    from aiida_mofmlp.workflows.mace.base import MaceTrainBaseWorkChain

    builder = MaceTrainBaseWorkChain.get_builder_from_protocol(
        require_code("train"),
        nodes["training_set"],
        nodes["foundation_model"],
        protocol="fast",
        # a real NaN loss in the first run
        overrides={"train": {"parameters": {**FAST, "lr": 1e12, "stage_two": False}}},
        validation_set=nodes["validation_set"],
        seed=3,
    )
    builder.lr_factor = orm.Float(1e-14)  # 1e12 -> 0.01 on the retry
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    calcs = sorted(node.called, key=lambda child: child.ctime)
    assert calcs[0].exit_status == MaceTrainCalculation.exit_codes.ERROR_TRAINING_DIVERGED.status
    assert calcs[1].is_finished_ok
    assert calcs[1].inputs.parameters["lr"] == pytest.approx(0.01)
    model = results["model"]
    assert model.parent_sha256 == nodes["foundation_model"].sha256
    assert model.head == "Default"
    assert model.base.attributes.get("seed") == 3
    metrics = results["metrics"].get_dict()
    assert metrics["valid"]["mae_f"] > 0 and np.isfinite(metrics["valid"]["mae_f"])
    assert len(results["curves"].get_array("epoch")) >= 2


def test_ensemble_and_deviation(nodes, require_code):
    from aiida_mofmlp.data.structure_set import StructureSetData
    from aiida_mofmlp.engines.mace.deviation import compute_deviation
    from aiida_mofmlp.workflows.mace.deviation import DeviationBaseWorkChain
    from aiida_mofmlp.workflows.mace.ensemble import EnsembleTrainingWorkChain

    builder = EnsembleTrainingWorkChain.get_builder_from_protocol(
        require_code("train"),
        nodes["training_set"],
        nodes["foundation_model"],
        protocol="fast",
        overrides={"train": {"train": {"parameters": {**FAST, "max_num_epochs": 2}}}},
        validation_set=nodes["validation_set"],
        first_seed=10,
    )
    assert builder.ensemble_size.value == 2
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    models = results["models"]
    assert sorted(models) == ["model_0", "model_1"]
    assert models["model_0"].sha256 != models["model_1"].sha256  # different seeds, different weights
    assert [row["seed"] for row in results["summary"]["members"]] == [10, 11]

    frames = StructureSetData.from_frames(toy_frames(5, seed=4))
    builder = DeviationBaseWorkChain.get_builder_from_protocol(
        require_code("deviation"),
        frames,
        [models["model_0"], models["model_1"]],
        protocol="fast",
        overrides={"deviation": {"parameters": {"dtype": "float64"}}},
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    sigma = results["deviation"].get_array("sigma_max")
    assert sigma.shape == (5,)
    # same numbers as the engine called directly on the model files
    paths = []
    for label in ("model_0", "model_1"):
        with models[label].as_path() as path:
            paths.append(path.read_bytes())
    direct_paths = []
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        for index, content in enumerate(paths):
            (Path(tmp) / f"m{index}.model").write_bytes(content)
            direct_paths.append(Path(tmp) / f"m{index}.model")
        direct = compute_deviation(direct_paths, toy_frames(5, seed=4))
    np.testing.assert_allclose(sigma, direct["sigma_max"], atol=1e-8)
    assert results["summary"]["n_frames"] == 5
