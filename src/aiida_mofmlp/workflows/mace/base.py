"""MaceTrainBaseWorkChain: restart work chain around :class:`MaceTrainCalculation`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

from aiida import orm
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, process_handler, while_

from aiida_mofmlp.calculations.mace_train import MaceTrainCalculation
from aiida_mofmlp.common.protocols import deep_merge
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.mace.train import TRAIN_DEFAULTS
from aiida_mofmlp.workflows.protocols.utils import ProtocolMixin, load_overrides
from aiida_mofmlp.workflows.restart import expose_calcjob_outputs


class MaceProtocolMixin(ProtocolMixin):
    """Protocols of ``mace.yaml``, which holds one section of inputs per MACE work chain."""

    _protocol_file = "mace.yaml"
    #: the section of ``mace.yaml`` holding this work chain's inputs
    _protocol_section: ClassVar[str] = ""

    @classmethod
    def get_protocol_sections(cls, protocol: str | None = None) -> dict[str, Any]:
        """Every section of ``mace.yaml`` (``training``, ``ensemble``, ``deviation``) for ``protocol``."""
        return super().get_protocol_inputs(protocol)

    @classmethod
    def get_protocol_inputs(
        cls, protocol: str | None = None, overrides: Mapping | str | os.PathLike | None = None
    ) -> dict[str, Any]:
        """This work chain's section of ``protocol`` with ``overrides`` (shaped like its inputs) merged in."""
        return deep_merge(
            cls.get_protocol_sections(protocol)[cls._protocol_section], load_overrides(overrides)
        )


def reject_unknown_inputs(inputs: Mapping, valid: set[str], where: str) -> None:
    """Raise naming the keys of ``inputs`` (protocol plus overrides) that are not among ``valid``."""
    unknown = sorted(set(inputs) - valid)
    if unknown:
        raise ValueError(f"overrides: unknown inputs {unknown} of {where}; valid: {', '.join(sorted(valid))}")


class MaceTrainBaseWorkChain(MaceProtocolMixin, BaseRestartWorkChain):
    """Fine-tune a MACE model; on divergence (NaN loss) retry with the learning rates scaled down."""

    _process_class = MaceTrainCalculation
    _protocol_section = "training"

    defaults = {"lr_factor": 0.5, "min_lr": 1e-6}

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(MaceTrainCalculation, namespace="train")
        expose_calcjob_outputs(spec, MaceTrainCalculation)
        spec.input(
            "lr_factor",
            valid_type=orm.Float,
            default=lambda: orm.Float(cls.defaults["lr_factor"]),
            help="Factor applied to lr and stage-two lr after a diverged training.",
        )
        spec.outline(
            cls.setup, while_(cls.should_run_process)(cls.run_process, cls.inspect_process), cls.results
        )
        spec.exit_code(
            410, "ERROR_TRAINING_DIVERGED", message="Training diverged even at the lowest learning rate."
        )

    def setup(self):
        super().setup()
        self.ctx.inputs = self.exposed_inputs(MaceTrainCalculation, "train")

    @process_handler(priority=500, exit_codes=[MaceTrainCalculation.exit_codes.ERROR_TRAINING_DIVERGED])
    def handle_diverged(self, node):
        """Scale ``lr`` and ``stage_two_lr`` by ``lr_factor`` (default: halve them) and train again."""
        params = self.ctx.inputs.parameters.get_dict() if "parameters" in self.ctx.inputs else {}
        factor = float(self.inputs.lr_factor.value)
        lr = float(params.get("lr", TRAIN_DEFAULTS["lr"])) * factor
        if lr < self.defaults["min_lr"]:
            self.report(
                f"training diverged with lr {lr / factor:g}; not going below {self.defaults['min_lr']:g}"
            )
            return ProcessHandlerReport(True, self.exit_codes.ERROR_TRAINING_DIVERGED)
        params["lr"] = lr
        params["stage_two_lr"] = float(params.get("stage_two_lr", TRAIN_DEFAULTS["stage_two_lr"])) * factor
        self.ctx.inputs.parameters = orm.Dict(params)
        self.report(f"{node.process_label}<{node.pk}> diverged: retrying with lr {lr:g}")
        return ProcessHandlerReport(True)

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
        seed: int = 0,
    ):
        """A builder fine-tuning ``foundation_model`` on ``training_set`` with protocol ``protocol``.

        ``overrides`` (a dict or the path of a YAML file) is shaped like this work chain's inputs, e.g.
        ``{"max_iterations": 5, "train": {"parameters": {"lr": 0.005}}}``, and deep-merged over the
        ``training`` section of ``mace.yaml``; ``options`` is deep-merged into ``train.metadata.options``.
        Without ``replay_set`` the mode falls back to naive unless the overrides ask for a mode.
        """
        overrides = load_overrides(overrides)
        inputs = cls.get_protocol_inputs(protocol, overrides)
        reject_unknown_inputs(inputs, {"max_iterations", "lr_factor", "train"}, cls.__name__)
        train = inputs["train"]
        reject_unknown_inputs(train, {"parameters", "metadata"}, f"{cls.__name__}.train")
        parameters = train["parameters"]
        asked_mode = ((overrides.get("train") or {}).get("parameters") or {}).get("mode")
        if replay_set is None and not asked_mode:
            parameters["mode"] = "naive"  # multihead replay needs the foundation's data (`replay_set`)
        builder = cls.get_builder()
        builder.train.code = code
        builder.train.training_set = training_set
        builder.train.foundation_model = foundation_model
        builder.train.parameters = orm.Dict(parameters)
        builder.train.seed = orm.Int(seed)
        builder.train.metadata.options = deep_merge(train["metadata"]["options"], options)
        if validation_set is not None:
            builder.train.validation_set = validation_set
        if replay_set is not None:
            builder.train.replay_set = replay_set
        builder.max_iterations = orm.Int(inputs["max_iterations"])
        if "lr_factor" in inputs:
            builder.lr_factor = orm.Float(inputs["lr_factor"])
        return builder


def get_protocol(protocol: str | None = None, overrides: dict | None = None) -> dict:
    """``mace.yaml``'s protocol as one flat dict, ``overrides`` (same shape) deep-merged in.

    Keys: ``description``, ``ensemble_size``, ``train`` and ``deviation`` (engine parameters) and
    ``options`` (of the training).

    Kept for the active-learning builder; work chains use their ``get_protocol_inputs``.
    """
    sections = MaceTrainBaseWorkChain.get_protocol_sections(protocol)
    name = protocol or MaceTrainBaseWorkChain.get_default_protocol()
    flat = {
        "description": MaceTrainBaseWorkChain.get_available_protocols()[name]["description"],
        "ensemble_size": sections["ensemble"]["ensemble_size"],
        "train": sections["training"]["train"]["parameters"],
        "deviation": sections["deviation"]["deviation"]["parameters"],
        "options": sections["training"]["train"]["metadata"]["options"],
    }
    return deep_merge(flat, overrides)
