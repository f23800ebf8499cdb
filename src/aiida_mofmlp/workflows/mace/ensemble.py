"""EnsembleTrainingWorkChain: N fine-tuned MACE models on the same data with different seeds, in parallel."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from aiida import orm
from aiida.engine import ToContext, WorkChain

from aiida_mofmlp.common.protocols import deep_merge
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.functions.training import summarise_ensemble
from aiida_mofmlp.workflows.mace.base import MaceProtocolMixin, MaceTrainBaseWorkChain, reject_unknown_inputs
from aiida_mofmlp.workflows.protocols.utils import load_overrides


class EnsembleTrainingWorkChain(MaceProtocolMixin, WorkChain):
    """Train ``ensemble_size`` models (default 4) with seeds ``first_seed + k``, all at once."""

    _protocol_section = "ensemble"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(MaceTrainBaseWorkChain, namespace="train")
        spec.input("ensemble_size", valid_type=orm.Int, default=lambda: orm.Int(4), help="Number of models.")
        spec.input("first_seed", valid_type=orm.Int, default=lambda: orm.Int(0), help="Seed of model 0.")
        spec.inputs.validator = cls.validate_inputs
        spec.outline(cls.run_training, cls.collect)
        spec.output_namespace(
            "models", valid_type=MaceModelData, dynamic=True, help="model_0 ... model_{N-1}."
        )
        spec.output_namespace("metrics", valid_type=orm.Dict, dynamic=True, help="Metrics of each model.")
        spec.output("summary", valid_type=orm.Dict, help="Seeds and validation errors of all models.")
        spec.exit_code(400, "ERROR_MEMBER_FAILED", message="Training of ensemble members failed: {detail}")

    @staticmethod
    def validate_inputs(inputs, _ctx=None) -> str | None:
        if "ensemble_size" in inputs and int(inputs["ensemble_size"].value) < 1:
            return f"ensemble_size must be >= 1, got {inputs['ensemble_size'].value}"
        return None

    def run_training(self):
        inputs = self.exposed_inputs(MaceTrainBaseWorkChain, "train")
        futures = {}
        for k in range(int(self.inputs.ensemble_size.value)):
            seed = int(self.inputs.first_seed.value) + k
            member = dict(inputs)
            member["train"] = {**inputs["train"], "seed": orm.Int(seed)}
            member["metadata"] = {"call_link_label": f"train_{k}"}
            future = self.submit(MaceTrainBaseWorkChain, **member)
            self.report(f"submitted model {k} (seed {seed}): {future.process_label}<{future.pk}>")
            futures[f"member_{k}"] = future
        return ToContext(**futures)

    def collect(self):
        failed, rows = [], []
        for k in range(int(self.inputs.ensemble_size.value)):
            node = self.ctx[f"member_{k}"]
            if not node.is_finished_ok:
                failed.append(f"model {k}: {node.process_label}<{node.pk}> exit {node.exit_status}")
                continue
            self.out(f"models.model_{k}", node.outputs.model)
            self.out(f"metrics.model_{k}", node.outputs.metrics)
            metrics = node.outputs.metrics.get_dict()
            rows.append({"index": k, "seed": metrics.get("seed"), "valid": metrics.get("valid")})
        self.out("summary", summarise_ensemble(orm.List(rows)))
        if failed:
            return self.exit_codes.ERROR_MEMBER_FAILED.format(detail="; ".join(failed))
        return None

    @classmethod
    def get_protocol_inputs(
        cls, protocol: str | None = None, overrides: Mapping | str | os.PathLike | None = None
    ) -> dict[str, Any]:
        """The ``ensemble`` section of ``protocol`` with ``train`` set to its ``training`` section, and
        ``overrides`` (shaped like this work chain's inputs) merged in."""
        sections = cls.get_protocol_sections(protocol)
        inputs = {**sections["ensemble"], "train": sections["training"]}
        return deep_merge(inputs, load_overrides(overrides))

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        training_set: StructureSetData,
        foundation_model: MaceModelData,
        protocol: str | None = None,
        overrides: Mapping | str | os.PathLike | None = None,
        options: dict | None = None,
        validation_set: StructureSetData | None = None,
        replay_set: StructureSetData | None = None,
        first_seed: int = 0,
    ):
        """A builder training the protocol's ``ensemble_size`` models on ``training_set``.

        ``overrides`` (a dict or the path of a YAML file) is shaped like this work chain's inputs, e.g.
        ``{"ensemble_size": 3, "train": {"max_iterations": 2, "train": {"parameters": {"lr": 0.005}}}}``;
        its ``train`` part goes to :meth:`MaceTrainBaseWorkChain.get_builder_from_protocol` together with
        ``options``, ``validation_set`` and ``replay_set`` (see there for the mode rule without replay).
        """
        overrides = load_overrides(overrides)
        if not isinstance(overrides.get("train", {}), Mapping):
            raise ValueError(
                f"overrides.train={overrides['train']!r} must be a mapping (the member's inputs)"
            )
        inputs = cls.get_protocol_inputs(protocol, overrides)
        reject_unknown_inputs(inputs, {"ensemble_size", "train"}, cls.__name__)
        size = inputs["ensemble_size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"ensemble_size={size!r} must be a whole number >= 1 (models in the ensemble)")
        member = MaceTrainBaseWorkChain.get_builder_from_protocol(
            code,
            training_set,
            foundation_model,
            protocol=protocol,
            overrides=overrides.get("train"),
            options=options,
            validation_set=validation_set,
            replay_set=replay_set,
        )
        builder = cls.get_builder()
        train = member._inputs(prune=True)
        train["train"].pop("seed", None)
        builder.train = train
        builder.ensemble_size = orm.Int(int(inputs["ensemble_size"]))
        builder.first_seed = orm.Int(first_seed)
        return builder
