"""DeviationBaseWorkChain: restart work chain around :class:`DeviationCalculation`."""

from __future__ import annotations

import os
from collections.abc import Mapping

from aiida import orm
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, process_handler, while_

from aiida_mofmlp.calculations.deviation import DeviationCalculation
from aiida_mofmlp.common.protocols import deep_merge
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.mace.deviation import DEVIATION_DEFAULTS
from aiida_mofmlp.workflows.mace.base import MaceProtocolMixin, reject_unknown_inputs
from aiida_mofmlp.workflows.restart import expose_calcjob_outputs


class DeviationBaseWorkChain(MaceProtocolMixin, BaseRestartWorkChain):
    """Ensemble deviation of a structure set; on memory exhaustion retry with smaller batches."""

    _process_class = DeviationCalculation
    _protocol_section = "deviation"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(DeviationCalculation, namespace="deviation")
        expose_calcjob_outputs(spec, DeviationCalculation)
        spec.outline(
            cls.setup, while_(cls.should_run_process)(cls.run_process, cls.inspect_process), cls.results
        )
        spec.exit_code(
            410,
            "ERROR_OUT_OF_MEMORY",
            message="The deviation job ran out of memory even with batch_size 1 (one frame per forward "
            "pass): {detail}",
        )

    def setup(self):
        super().setup()
        self.ctx.inputs = self.exposed_inputs(DeviationCalculation, "deviation")

    @process_handler(priority=500, exit_codes=[DeviationCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_MEMORY])
    def handle_out_of_memory(self, node):
        """Halve the batch size; out of memory at one frame per batch is a failure."""
        params = self.ctx.inputs.parameters.get_dict() if "parameters" in self.ctx.inputs else {}
        batch = int(params.get("batch_size", DEVIATION_DEFAULTS["batch_size"]))
        if batch <= 1:
            self.report(f"{node.process_label}<{node.pk}> ran out of memory at batch_size 1: giving up")
            return ProcessHandlerReport(
                True, self.exit_codes.ERROR_OUT_OF_MEMORY.format(detail=f"{node.process_label}<{node.pk}>")
            )
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
        overrides: Mapping | str | os.PathLike | None = None,
        options: dict | None = None,
    ):
        """A builder evaluating ``models`` on ``frames`` with protocol ``protocol`` of ``mace.yaml``.

        ``overrides`` (a dict or the path of a YAML file) is shaped like this work chain's inputs, e.g.
        ``{"deviation": {"parameters": {"dtype": "float64"}}}``, and deep-merged over the ``deviation``
        section; ``options`` is deep-merged into ``deviation.metadata.options``. A list of ``models`` is
        labelled ``model_0``, ``model_1``, ...
        """
        inputs = cls.get_protocol_inputs(protocol, overrides)
        reject_unknown_inputs(inputs, {"max_iterations", "deviation"}, cls.__name__)
        deviation = inputs["deviation"]
        reject_unknown_inputs(deviation, {"parameters", "metadata"}, f"{cls.__name__}.deviation")
        if not isinstance(models, dict):
            models = {f"model_{index}": model for index, model in enumerate(models)}
        builder = cls.get_builder()
        builder.deviation.code = code
        builder.deviation.frames = frames
        builder.deviation.models = models
        builder.deviation.parameters = orm.Dict(deviation["parameters"])
        builder.deviation.metadata.options = deep_merge(deviation["metadata"]["options"], options)
        builder.max_iterations = orm.Int(inputs["max_iterations"])
        return builder
