"""DeviationBaseWorkChain: restart work chain around :class:`DeviationCalculation`."""

from __future__ import annotations

from aiida import orm
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, process_handler, while_

from aiida_mofmlp.calculations.deviation import DeviationCalculation
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.deviation import DEVIATION_DEFAULTS
from aiida_mofmlp.workflows.mace_train import get_protocol


class DeviationBaseWorkChain(BaseRestartWorkChain):
    """Ensemble deviation of a structure set; on memory exhaustion retry with smaller batches."""

    _process_class = DeviationCalculation

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(DeviationCalculation, namespace="deviation")
        spec.expose_outputs(DeviationCalculation)
        spec.outline(
            cls.setup, while_(cls.should_run_process)(cls.run_process, cls.inspect_process), cls.results
        )

    def setup(self):
        super().setup()
        self.ctx.inputs = self.exposed_inputs(DeviationCalculation, "deviation")

    @process_handler(priority=500, exit_codes=[DeviationCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_MEMORY])
    def handle_out_of_memory(self, node):
        """Halve the batch size (down to one frame per forward pass)."""
        params = self.ctx.inputs.parameters.get_dict() if "parameters" in self.ctx.inputs else {}
        batch = int(params.get("batch_size", DEVIATION_DEFAULTS["batch_size"]))
        if batch <= 1:
            return ProcessHandlerReport(True, self.exit_codes.ERROR_UNRECOVERABLE_FAILURE)
        params["batch_size"] = batch // 2
        self.ctx.inputs.parameters = orm.Dict(params)
        self.report(
            f"{node.process_label}<{node.pk}> ran out of memory: retrying with batch_size {batch // 2}"
        )
        return ProcessHandlerReport(True)

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        frames: StructureSetData,
        models: list[MaceModelData] | dict[str, MaceModelData],
        protocol: str | None = None,
        overrides: dict | None = None,
        options: dict | None = None,
    ):
        """A builder evaluating ``models`` on ``frames`` with the ``deviation`` settings of ``mace.yaml``."""
        settings = get_protocol(protocol, {"deviation": overrides or {}, "options": options or {}})
        if not isinstance(models, dict):
            models = {f"model_{index}": model for index, model in enumerate(models)}
        builder = cls.get_builder()
        builder.deviation.code = code
        builder.deviation.frames = frames
        builder.deviation.models = models
        builder.deviation.parameters = orm.Dict(settings["deviation"])
        builder.deviation.metadata.options = settings["options"]
        builder.max_iterations = orm.Int(3)
        return builder
