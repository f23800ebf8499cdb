"""Structure selection in the provenance graph (small pools in-process:
:func:`aiida_mofmlp.workflows.functions.selection.select_frames`, a calcfunction).

* :class:`SelectionWorkChain` — a restart work chain around :class:`SelectCalculation` for large pools
  run as a job (``mofmlp-select`` on a compute node), with protocols from ``protocols/selection.yaml``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from aiida import orm
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, process_handler, while_

from aiida_mofmlp.calculations.select import SelectCalculation
from aiida_mofmlp.common.protocols import deep_merge
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.selection import select as engine
from aiida_mofmlp.workflows.protocols.utils import ProtocolMixin, load_overrides
from aiida_mofmlp.workflows.restart import expose_calcjob_outputs


class SelectionWorkChain(ProtocolMixin, BaseRestartWorkChain):
    """Run :class:`SelectCalculation`, restarting on walltime or memory exhaustion with cheaper settings."""

    _process_class = SelectCalculation
    _protocol_file = "selection.yaml"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(SelectCalculation, namespace="select")
        expose_calcjob_outputs(spec, SelectCalculation)
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(cls.run_process, cls.inspect_process),
            cls.results,
        )
        spec.exit_code(
            400,
            "ERROR_NO_FRAME_SELECTED",
            message="No frame was selected: the candidates are all filtered out.",
        )
        spec.exit_code(
            410,
            "ERROR_OUT_OF_MEMORY",
            message="The selection job ran out of memory even with float32 SOAP descriptors in small chunks: "
            "{detail}",
        )

    def setup(self):
        super().setup()
        self.ctx.inputs = self.exposed_inputs(SelectCalculation, "select")

    def _parameters(self) -> dict:
        node = self.ctx.inputs.get("parameters")
        return node.get_dict() if node is not None else {}

    @process_handler(priority=600, exit_codes=[SelectCalculation.exit_codes.ERROR_NO_FRAME_SELECTED])
    def handle_no_frame_selected(self, node):
        """Nothing to select is an answer, not a failure to retry: stop with a clear exit code."""
        self.report(f"{node.process_label}<{node.pk}> selected no frame; nothing new to label")
        return ProcessHandlerReport(True, self.exit_codes.ERROR_NO_FRAME_SELECTED)

    @process_handler(priority=500, exit_codes=[SelectCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME])
    def handle_out_of_walltime(self, node):
        """Double the walltime; reduce descriptors to 50 principal components when no PCA was used."""
        options = dict(self.ctx.inputs.metadata.options)
        options["max_wallclock_seconds"] = int(options.get("max_wallclock_seconds") or 3600) * 2
        self.ctx.inputs.metadata.options = options
        params = self._parameters()
        if not params.get("pca_components"):
            params["pca_components"] = 50
            self.ctx.inputs.parameters = orm.Dict(params)
        self.report(f"walltime exceeded: retrying with {options['max_wallclock_seconds']} s and PCA")
        return ProcessHandlerReport(True)

    @process_handler(priority=400, exit_codes=[SelectCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_MEMORY])
    def handle_out_of_memory(self, node):
        """Store descriptors in float32 and stream in smaller chunks."""
        params = self._parameters()
        soap = dict(params.get("soap", {}))
        if soap.get("dtype") == "float32" and int(soap.get("chunk_size", 64)) <= 8:
            detail = f"{node.process_label}<{node.pk}> with chunk_size {soap.get('chunk_size', 64)}"
            self.report(f"out of memory with float32 descriptors: giving up ({detail})")
            return ProcessHandlerReport(True, self.exit_codes.ERROR_OUT_OF_MEMORY.format(detail=detail))
        soap.update(dtype="float32", chunk_size=max(1, int(soap.get("chunk_size", 64)) // 4))
        params["soap"] = soap
        self.ctx.inputs.parameters = orm.Dict(params)
        self.report("out of memory: retrying with float32 descriptors and smaller chunks")
        return ProcessHandlerReport(True)

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        pool: StructureSetData,
        protocol: str | None = None,
        overrides: Mapping | str | os.PathLike | None = None,
        options: dict | None = None,
        training_set: StructureSetData | None = None,
        sigma: orm.ArrayData | None = None,
    ):
        """A builder selecting from ``pool`` with protocol ``protocol`` (fast / balanced / stringent).

        ``overrides`` (a dict or the path of a YAML file) is shaped like this work chain's inputs, e.g.
        ``{"select": {"parameters": {"n_select": 20}}}``, and deep-merged over the protocol; ``options`` is
        deep-merged into ``select.metadata.options``. The sigma window stays off unless ``sigma`` is given
        and the parameters set it.
        """
        inputs = cls.get_protocol_inputs(protocol, overrides)
        unknown = sorted(set(inputs) - {"max_iterations", "select"})
        if unknown:
            raise ValueError(
                f"overrides: unknown inputs {unknown} of {cls.__name__}; valid: max_iterations, select"
            )
        select = inputs["select"]
        unknown = sorted(set(select) - {"parameters", "metadata"})
        if unknown:
            raise ValueError(
                f"overrides: unknown inputs {unknown} of {cls.__name__}.select; valid: metadata, parameters"
            )
        parameters = select["parameters"]
        engine.validate_parameters(parameters)
        builder = cls.get_builder()
        builder.select.code = code
        builder.select.pool = pool
        builder.select.parameters = orm.Dict(parameters)
        builder.select.metadata.options = deep_merge(select["metadata"]["options"], options)
        if training_set is not None:
            builder.select.training_set = training_set
        if sigma is not None:
            builder.select.sigma = sigma
        builder.max_iterations = orm.Int(inputs["max_iterations"])
        return builder


def get_parameters_from_protocol(
    protocol: str | None = None, overrides: Mapping | str | os.PathLike | None = None
) -> dict:
    """Engine parameters of a protocol with ``overrides`` (engine parameters, a dict or the path of a YAML
    file) deep-merged in, validated: for :func:`select_frames` and the active-learning loop."""
    available = SelectionWorkChain.get_available_protocols()
    if protocol is not None and protocol not in available:
        raise ValueError(f"unknown selection protocol {protocol!r}; valid protocols: {', '.join(available)}")
    inputs = SelectionWorkChain.get_protocol_inputs(
        protocol, {"select": {"parameters": load_overrides(overrides)}}
    )
    parameters = inputs["select"]["parameters"]
    engine.validate_parameters(parameters)
    return parameters
