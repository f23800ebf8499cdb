"""ReferenceCheckWorkChain: does each model reproduce the labelling method's properties?

Runs :class:`ReferenceCheckCalculation` jobs at the same time, one for the reference (GFN-xTB through
tblite) and one per model of ``check.models`` (relaxed volume and lattice, relaxed-ion bulk modulus, guest
binding energy on loaded frames, Gamma phonons of small cells), joins their results, then
:func:`compare_with_reference` against the protocol's tolerances. Outputs the ``table`` (one row per
property and model plus the ensemble's, with pass/fail) and, when a property fails, the reference-labelled
frames behind it as ``untrusted_frames``, ready for the next training set. A disagreement is a result, not a
failure: the work chain finishes with exit status 0 and says so. The CP2K path (the DFT protocols'
reference) is not built yet; this check uses the xTB labels' method.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from aiida import orm
from aiida.engine import (
    BaseRestartWorkChain,
    ProcessHandlerReport,
    ToContext,
    WorkChain,
    process_handler,
    while_,
)

from aiida_mofmlp.calculations.reference_check import ReferenceCheckCalculation
from aiida_mofmlp.common.frames import guest_ids
from aiida_mofmlp.common.protocols import deep_merge
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.functions.reference import (
    compare_with_reference,
    merge_reference_results,
    tolerance_problems,
    untrusted_check_frames,
)
from aiida_mofmlp.workflows.protocols.utils import ProtocolMixin
from aiida_mofmlp.workflows.restart import expose_calcjob_outputs, more_walltime


def validate_tolerances(tolerances: orm.Dict | None, _ctx=None) -> str | None:
    """Known tolerance keys with positive values, at least one."""
    if tolerances is None:
        return None
    values = tolerances.get_dict()
    if not values:
        return "tolerances: give at least one (e.g. volume_percent: 1.0)"
    problems = tolerance_problems(values)
    return problems[0] if problems else None


def validate_workchain_inputs(inputs, ctx=None) -> str | None:
    """At least one model (unless the models port is not there: exposed by a work chain that fills it)."""
    if ctx is not None and ("check" not in ctx or "models" not in ctx["check"]):
        return None
    models = inputs.get("check", {}).get("models", {})
    if not models:
        return "check.models: give at least one MaceModelData to compare with the reference method"
    return None


class ReferenceCheckBaseWorkChain(BaseRestartWorkChain):
    """One ``mofmlp-reference-check`` job (the reference method, or some models); a job stopped by the
    scheduler for time runs again with ``WALLTIME_FACTOR`` times the walltime."""

    _process_class = ReferenceCheckCalculation

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(ReferenceCheckCalculation, namespace="check")
        spec.outline(
            cls.setup, while_(cls.should_run_process)(cls.run_process, cls.inspect_process), cls.results
        )
        expose_calcjob_outputs(spec, ReferenceCheckCalculation)

    def setup(self):
        super().setup()
        self.ctx.inputs = self.exposed_inputs(ReferenceCheckCalculation, "check")

    @process_handler(
        priority=600, exit_codes=[ReferenceCheckCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME]
    )
    def handle_out_of_walltime(self, node):
        """Run again with ``WALLTIME_FACTOR`` times the walltime."""
        walltime, longer = more_walltime(self.ctx.inputs)
        self.report(
            f"{node.process_label}<{node.pk}> ran out of walltime ({walltime} s): retrying with {longer} s"
        )
        return ProcessHandlerReport(True)


class ReferenceCheckWorkChain(ProtocolMixin, WorkChain):
    """Each model's V0, bulk modulus, binding energy and Gamma frequencies against the reference method.

    The reference and every model run as separate jobs at the same time (one ``ReferenceCheckBaseWorkChain``
    each); :func:`merge_reference_results` joins their results before the comparison.
    """

    _protocol_file = "reference_check.yaml"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(ReferenceCheckBaseWorkChain, exclude=("metadata",))
        spec.input(
            "tolerances",
            valid_type=orm.Dict,
            validator=validate_tolerances,
            help="volume_percent, bulk_modulus_percent, binding_energy_kj_mol, gamma_thz (see the protocol).",
        )
        spec.inputs.validator = validate_workchain_inputs
        spec.outline(cls.run_checks, cls.inspect_checks, cls.compare)
        spec.output("results", valid_type=orm.Dict, help="Every task's values per calculator, seconds.")
        spec.output(
            "check_frames",
            valid_type=StructureSetData,
            help="The reference-labelled frames behind each property (info check_task).",
        )
        spec.output("table", valid_type=orm.Dict, help="Reference, each model, ensemble, difference, pass.")
        spec.output(
            "untrusted_frames",
            valid_type=StructureSetData,
            required=False,
            help="Reference-labelled frames behind the failed properties (absent when all pass).",
        )
        spec.exit_code(401, "ERROR_CHECK_JOB_FAILED", message="A reference-check job failed: {detail}")

    def run_checks(self):
        """One job for the reference method and one per model, all at once."""
        inputs = self.exposed_inputs(ReferenceCheckBaseWorkChain)
        check = dict(inputs["check"])
        parameters = check["parameters"].get_dict() if "parameters" in check else {}
        models = dict(check.get("models", {}))
        jobs = {"reference": {}}
        jobs.update({label: {label: model} for label, model in sorted(models.items())})
        running = {}
        for label, job_models in jobs.items():
            job = {**inputs, "check": {**check, "models": job_models}}
            job["check"]["parameters"] = orm.Dict({**parameters, "run_reference": label == "reference"})
            job["metadata"] = {"call_link_label": f"check_{label}"}
            running[f"check_{label}"] = self.submit(ReferenceCheckBaseWorkChain, **job)
        self.report(f"reference check: {len(running)} jobs ({', '.join(jobs)})")
        return ToContext(**running)

    def inspect_checks(self):
        """Every job must have given its results; the reference job also its check frames."""
        failed = [
            f"{key}: {node.process_label}<{node.pk}> exit {node.exit_status}"
            for key, node in self.ctx.items()
            if key.startswith("check_") and not node.is_finished_ok
        ]
        if failed:
            return self.exit_codes.ERROR_CHECK_JOB_FAILED.format(detail="; ".join(failed))
        results = {
            key.removeprefix("check_"): node.outputs.results
            for key, node in self.ctx.items()
            if key.startswith("check_")
        }
        self.out("results", merge_reference_results(**results))
        self.out("check_frames", self.ctx.check_reference.outputs.check_frames)
        return None

    def compare(self):
        """The table against the tolerances, and the frames behind what failed."""
        table = compare_with_reference(self.outputs["results"], self.inputs.tolerances)
        self.out("table", table)
        values = table.get_dict()
        for row in values["rows"]:
            if row["model"] == "ensemble":
                self.report(
                    f"{row['property']}: reference {row['reference']:.4g}, ensemble {row['value']:.4g} "
                    f"{row['unit']} (difference {row['difference']:.3g}; "
                    f"{'pass' if row['passed'] else 'FAIL'})"
                )
        if values["failed"]:
            self.out("untrusted_frames", untrusted_check_frames(self.outputs["check_frames"], table))
            self.report(f"properties outside their tolerance: {', '.join(values['failed'])}")

    @classmethod
    def get_builder_from_protocol(
        cls,
        structure: orm.StructureData,
        models: MaceModelData | list[MaceModelData] | dict[str, MaceModelData],
        codes: Mapping[str, orm.AbstractCode | None],
        protocol: str | None = None,
        overrides: Mapping | str | os.PathLike | None = None,
        trust: Mapping | None = None,
        *,
        options: dict | None = None,
        guest=None,
        validation_frames: StructureSetData | None = None,
    ):
        """A builder checking ``models`` on ``structure`` with the ``reference`` code.

        ``validation_frames`` (or any frames of this framework with guests marked by ``guest_id``) give
        the binding-energy configurations; without them the binding_energy task is left out. ``trust`` and
        ``guest`` are accepted for the one signature of property work chains (the guest is in the frames).
        ``overrides`` is shaped like the inputs, e.g. ``{"tolerances": {"bulk_modulus_percent": 5.0}}``.
        """
        inputs = cls.get_protocol_inputs(protocol, overrides)
        unknown = sorted(set(inputs) - {"max_iterations", "check", "tolerances"})
        if unknown:
            raise ValueError(
                f"overrides: unknown inputs {unknown} of {cls.__name__}; "
                "valid: max_iterations, check, tolerances"
            )
        if isinstance(models, MaceModelData):
            models = [models]
        if not isinstance(models, dict):
            models = {f"model_{index}": model for index, model in enumerate(models)}
        parameters = dict(inputs["check"]["parameters"])
        if validation_frames is not None and not any(
            (guest_ids(atoms) > 0).any() for atoms in validation_frames.iter_frames()
        ):
            validation_frames = None  # no loaded frame: nothing to bind
        if validation_frames is None:
            parameters["tasks"] = [task for task in parameters["tasks"] if task != "binding_energy"]
        builder = cls.get_builder()
        builder.check.code = codes["reference"]
        builder.check.structure = structure
        builder.check.models = models
        builder.check.parameters = orm.Dict(parameters)
        builder.check.metadata.options = deep_merge(inputs["check"]["metadata"]["options"], options)
        if validation_frames is not None:
            builder.check.frames = validation_frames
        builder.tolerances = orm.Dict(inputs["tolerances"])
        builder.max_iterations = orm.Int(inputs["max_iterations"])
        return builder
