"""The trust of property runs (workflows/properties/trust.py): fractions, untrusted frames, the mixin."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import WorkChain, run_get_node

from aiida_mofmlp.common import frames as fr
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.mace.toy import TOY_SPECIES, build_tiny_model, toy_frames
from aiida_mofmlp.workflows.functions.trust import summarise_trust
from aiida_mofmlp.workflows.properties.trust import (
    PropertyTrustMixin,
    define_trust_spec,
    fill_trust_inputs,
    validate_trust_window,
)


def _deviation(sigma) -> orm.ArrayData:
    node = orm.ArrayData()
    node.set_array("sigma_max", np.asarray(sigma, dtype=float))
    return node


class _TrustOnly(PropertyTrustMixin, WorkChain):
    """A property work chain reduced to its trust: the trajectory is an input."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("trajectory", valid_type=StructureSetData)
        spec.input_namespace("models", valid_type=MaceModelData, dynamic=True)
        define_trust_spec(spec)
        spec.outline(cls.run_md, cls.inspect_trust)

    def run_md(self):
        return self.run_trust({"md_300K": self.inputs.trajectory})


def test_summarise_trust_counts_and_frames(aiida_profile):
    frames = toy_frames(5, seed=3)
    for atoms in frames:
        atoms.info[fr.PREDICTED_ENERGY_KEY] = -1.0
    first = StructureSetData.from_frames(frames[:3])
    second = StructureSetData.from_frames(frames[3:])
    results = summarise_trust(
        orm.Dict({"lo": 0.1, "hi": 0.5}),
        frames_a=first,
        deviation_a=_deviation([0.05, 0.2, 0.7]),
        frames_b=second,
        deviation_b=_deviation([0.01, 0.3]),
    )
    trust = results["trust"].get_dict()
    assert trust["assessed"] is True
    assert trust["per_trajectory"]["a"]["fraction_above_lo"] == pytest.approx(2 / 3)
    assert trust["per_trajectory"]["a"]["fraction_above_hi"] == pytest.approx(1 / 3)
    assert trust["per_trajectory"]["b"]["fraction_above_hi"] == 0.0
    assert trust["all"]["n_frames"] == 5
    assert trust["all"]["fraction_above_lo"] == pytest.approx(3 / 5)
    untrusted = results["untrusted_frames"].get_frames()
    assert [atoms.info["source"] for atoms in untrusted] == ["property:a", "property:a", "property:b"]
    assert [atoms.info["sigma_max"] for atoms in untrusted] == pytest.approx([0.2, 0.7, 0.3])
    assert all(fr.PREDICTED_ENERGY_KEY not in atoms.info for atoms in untrusted)
    np.testing.assert_allclose(untrusted[2].positions, frames[4].positions)


def test_summarise_trust_rejects_mismatched_lengths(aiida_profile):
    frames = StructureSetData.from_frames(toy_frames(2))
    with pytest.raises(ValueError, match="2 frames but 3 deviation values"):
        summarise_trust(orm.Dict({"lo": 0.1, "hi": 0.5}), frames_x=frames, deviation_x=_deviation([0, 0, 0]))


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        ({"lo": 0.3, "hi": 0.2}, "0 < lo < hi"),
        ({"lo": 0.1}, "needs numbers"),
        ({"lo": 1, "hi": 2, "x": 0}, "unknown keys"),
    ],
)
def test_trust_window_are_validated(aiida_profile, levels, message):
    assert message in validate_trust_window(orm.Dict(levels))


def test_single_model_reports_trust_not_assessed(aiida_profile, tmp_path):
    model = MaceModelData.from_file(build_tiny_model(list(TOY_SPECIES), tmp_path / "m.model"))
    trajectory = StructureSetData.from_frames(toy_frames(2))
    results, node = run_get_node(_TrustOnly, trajectory=trajectory, models={"model_0": model})
    assert node.is_finished_ok
    assert results["trust"]["assessed"] is False
    assert "at least 2" in results["trust"]["reason"]


@pytest.mark.integration
def test_ensemble_trust_from_the_real_deviation_code(aiida_profile, require_code, tmp_path):
    """Two different tiny models on toy frames: the fractions equal those recomputed from the deviation."""
    models = {
        f"model_{seed}": MaceModelData.from_file(
            build_tiny_model(list(TOY_SPECIES), tmp_path / f"m{seed}.model", seed=seed)
        )
        for seed in (0, 1)
    }
    trajectory = StructureSetData.from_frames(toy_frames(4, seed=1))
    builder = _TrustOnly.get_builder()
    builder.trajectory = trajectory
    builder.models = models
    fill_trust_inputs(builder, require_code("deviation"), protocol="fast", levels={"lo": 0.01, "hi": 10.0})
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    deviation = node.called[0].outputs.deviation.get_array("sigma_max")
    trust = results["trust"].get_dict()
    assert trust["all"]["fraction_above_lo"] == pytest.approx(float(np.mean(deviation >= 0.01)))
    assert trust["all"]["fraction_above_hi"] == 0.0
    n_untrusted = len(results["untrusted_frames"]) if "untrusted_frames" in results else 0
    assert n_untrusted == int(np.sum(deviation >= 0.01))
