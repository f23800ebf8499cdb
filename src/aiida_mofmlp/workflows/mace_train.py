"""MaceTrainBaseWorkChain: restart work chain around :class:`MaceTrainCalculation`."""

from __future__ import annotations

from aiida import orm
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, process_handler, while_

from aiida_mofmlp.calculations.mace_train import MaceTrainCalculation
from aiida_mofmlp.common.protocols import load_protocol
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.mace_train import TRAIN_DEFAULTS


def get_protocol(protocol: str | None = None, overrides: dict | None = None) -> dict:
    """The MACE protocol ``protocol`` (fast / balanced / stringent) with ``overrides`` deep-merged in."""
    return load_protocol("mace.yaml", protocol, overrides)


class MaceTrainBaseWorkChain(BaseRestartWorkChain):
    """Fine-tune a MACE model; on divergence (NaN loss) retry with the learning rates scaled down."""

    _process_class = MaceTrainCalculation

    defaults = {"lr_factor": 0.5, "min_lr": 1e-6}

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(MaceTrainCalculation, namespace="train")
        spec.expose_outputs(MaceTrainCalculation)
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
        overrides: dict | None = None,
        validation_set: StructureSetData | None = None,
        replay_set: StructureSetData | None = None,
        seed: int = 0,
        options: dict | None = None,
    ):
        """A builder fine-tuning ``foundation_model`` on ``training_set`` with a protocol of ``mace.yaml``.

        ``overrides`` is deep-merged into the protocol's ``train`` parameters, ``options`` into its options.
        Without ``replay_set`` the mode falls back to naive unless the overrides ask for multihead.
        """
        settings = get_protocol(protocol, {"train": overrides or {}, "options": options or {}})
        params = settings["train"]
        if replay_set is None and not (overrides or {}).get("mode"):
            params["mode"] = "naive"
        builder = cls.get_builder()
        builder.train.code = code
        builder.train.training_set = training_set
        builder.train.foundation_model = foundation_model
        builder.train.parameters = orm.Dict(params)
        builder.train.seed = orm.Int(seed)
        builder.train.metadata.options = settings["options"]
        if validation_set is not None:
            builder.train.validation_set = validation_set
        if replay_set is not None:
            builder.train.replay_set = replay_set
        builder.max_iterations = orm.Int(3)
        return builder
