"""XtbBaseWorkChain: restart work chain around :class:`~aiida_mofmlp.calculations.xtb.XtbCalculation`."""

from __future__ import annotations

import os
from collections.abc import Mapping

from aiida import orm
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, process_handler, while_

from aiida_mofmlp.calculations.xtb import XtbCalculation
from aiida_mofmlp.common.protocols import deep_merge
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.protocols.utils import ProtocolMixin, load_overrides
from aiida_mofmlp.workflows.restart import expose_calcjob_outputs, more_walltime


class XtbBaseWorkChain(ProtocolMixin, BaseRestartWorkChain):
    """Label a batch of frames with xTB; a job stopped by the scheduler for time runs again with more."""

    _process_class = XtbCalculation
    _protocol_file = "xtb.yaml"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(XtbCalculation, namespace="xtb")
        expose_calcjob_outputs(spec, XtbCalculation)
        spec.outline(
            cls.setup, while_(cls.should_run_process)(cls.run_process, cls.inspect_process), cls.results
        )
        spec.exit_code(
            410, "ERROR_NO_FRAME_LABELLED", message="No frame of the batch could be labelled: {detail}"
        )

    def setup(self):
        super().setup()
        self.ctx.inputs = self.exposed_inputs(XtbCalculation, "xtb")

    @process_handler(priority=600, exit_codes=[XtbCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME])
    def handle_out_of_walltime(self, node):
        """Run the batch again with ``WALLTIME_FACTOR`` times the walltime."""
        walltime, longer = more_walltime(self.ctx.inputs)
        self.report(
            f"{node.process_label}<{node.pk}> ran out of walltime ({walltime} s): retrying with {longer} s"
        )
        return ProcessHandlerReport(True)

    @process_handler(priority=500, exit_codes=[XtbCalculation.exit_codes.ERROR_NO_FRAME_LABELLED])
    def handle_no_frame_labelled(self, node):
        """Every frame failed even with the engine's retry settings: a repeat would fail the same way."""
        self.report(f"{node.process_label}<{node.pk}> labelled no frame: {node.exit_message}")
        return ProcessHandlerReport(
            True, self.exit_codes.ERROR_NO_FRAME_LABELLED.format(detail=node.exit_message or "")
        )

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        structures: StructureSetData,
        protocol: str | None = None,
        overrides: Mapping | str | os.PathLike | None = None,
        options: Mapping | None = None,
    ):
        """A builder labelling ``structures`` with protocol ``protocol`` of ``xtb.yaml``.

        ``overrides`` (a dict or a YAML path) is shaped like this work chain's inputs, e.g.
        ``{"xtb": {"parameters": {"method": "GFN2-xTB"}}}``; ``options`` is merged into the job's options.
        """
        section = cls.get_protocol_inputs(protocol)["xtb"]
        inputs = deep_merge(section, load_overrides(overrides))
        builder = cls.get_builder()
        builder.xtb.code = code
        builder.xtb.structures = structures
        builder.xtb.parameters = orm.Dict(inputs["xtb"]["parameters"])
        builder.xtb.metadata.options = deep_merge(inputs["xtb"]["metadata"]["options"], options or {})
        builder.max_iterations = orm.Int(int(inputs["max_iterations"]))
        return builder
