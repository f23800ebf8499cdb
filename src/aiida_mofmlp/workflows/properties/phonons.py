"""PhononsWorkChain: restart work chain around :class:`PhononsCalculation`, with the ensemble's trust.

Model ``model_0`` of ``models`` runs the engine; with two or more models and the ``deviation`` inputs the
ensemble's deviation on the relaxed structure (and the host-guest complex) is reported as ``trust``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, process_handler, while_

from aiida_mofmlp.calculations.phonons import PhononsCalculation, validate_inputs
from aiida_mofmlp.common.protocols import deep_merge
from aiida_mofmlp.data.guest import GuestMoleculeData
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.phonons.run import PHONONS_DEFAULTS
from aiida_mofmlp.workflows.functions.phonons import structures_to_frames
from aiida_mofmlp.workflows.properties.trust import PropertyTrustMixin, define_trust_spec, fill_trust_inputs
from aiida_mofmlp.workflows.protocols.utils import ProtocolMixin
from aiida_mofmlp.workflows.restart import expose_calcjob_outputs

#: the label of the model that drives the engine
DRIVING_MODEL = "model_0"


def driving_model(models: Mapping[str, MaceModelData]) -> MaceModelData | None:
    """``model_0`` when present, else the first label in sorted order."""
    if not models:
        return None
    return models.get(DRIVING_MODEL) or models[sorted(models)[0]]


def validate_workchain_inputs(inputs, ctx=None) -> str | None:
    """At least one model; then the PhononsCalculation checks with the driving model."""
    models = inputs.get("models", {})
    if (ctx is None or "models" in ctx) and not models:
        return "models: give at least one MaceModelData (model_0 runs the phonon engine)"
    phonons = dict(inputs.get("phonons", {}))
    model = driving_model(models)
    if model is not None:
        phonons["model"] = model
    return validate_inputs(phonons)


class PhononsWorkChain(PropertyTrustMixin, ProtocolMixin, BaseRestartWorkChain):
    """Relaxation, phonons, thermal properties, bulk modulus and QHA of a framework with a MACE model.

    Handlers: imaginary modes left (410) -> once more from the last structure with twice the rattle
    attempts and a tighter relaxation, then give up with the outputs attached; relaxation not converged
    (420) -> continue from the last structure with twice the steps.
    """

    _process_class = PhononsCalculation
    _protocol_file = "phonons.yaml"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(PhononsCalculation, namespace="phonons", exclude=("model",))
        spec.input_namespace(
            "models",
            valid_type=MaceModelData,
            dynamic=True,
            help="The model (model_0 drives the engine) or the ensemble (for the trust check).",
        )
        define_trust_spec(spec)
        spec.inputs.validator = validate_workchain_inputs
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(cls.run_process, cls.inspect_process),
            cls.results,
            cls.run_trust_check,
            cls.inspect_trust,
        )
        expose_calcjob_outputs(spec, PhononsCalculation)
        spec.exit_code(
            410,
            "ERROR_IMAGINARY_MODES",
            message="Imaginary modes remain after the rattle-and-relax retries; the outputs are attached: "
            "{detail}",
        )

    def setup(self):
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(PhononsCalculation, "phonons"))
        self.ctx.inputs.model = driving_model(self.inputs.models)
        self.ctx.imaginary_retried = False

    def _parameters(self) -> dict:
        return self.ctx.inputs.parameters.get_dict() if "parameters" in self.ctx.inputs else {}

    @process_handler(priority=500, exit_codes=[PhononsCalculation.exit_codes.ERROR_IMAGINARY_MODES])
    def handle_imaginary_modes(self, node):
        """Retry once from the last structure with twice the rattle attempts and a 2x tighter fmax."""
        if self.ctx.imaginary_retried:
            self.report(f"{node.process_label}<{node.pk}>: imaginary modes remain after the retry; giving up")
            self._attach_outputs(node)
            return ProcessHandlerReport(
                True, self.exit_codes.ERROR_IMAGINARY_MODES.format(detail=node.exit_message or "")
            )
        params = self._parameters()
        phonons = {**PHONONS_DEFAULTS["phonons"], **(params.get("phonons") or {})}
        relax = {**PHONONS_DEFAULTS["relax"], **(params.get("relax") or {})}
        phonons["max_attempts"] = max(1, 2 * int(phonons["max_attempts"]))
        relax["fmax"] = float(relax["fmax"]) / 2.0
        params.update({"phonons": phonons, "relax": relax})
        self.ctx.inputs.parameters = orm.Dict(params)
        self.ctx.inputs.structure = node.outputs.relaxed_structure
        self.ctx.imaginary_retried = True
        self.report(
            f"{node.process_label}<{node.pk}>: imaginary modes; retrying from its structure with "
            f"max_attempts {phonons['max_attempts']} and fmax {relax['fmax']:g} eV/A"
        )
        return ProcessHandlerReport(True)

    @process_handler(priority=400, exit_codes=[PhononsCalculation.exit_codes.ERROR_RELAXATION_NOT_CONVERGED])
    def handle_relaxation(self, node):
        """Continue from the last structure with twice the relaxation steps."""
        params = self._parameters()
        relax = {**PHONONS_DEFAULTS["relax"], **(params.get("relax") or {})}
        relax["steps"] = 2 * int(relax["steps"])
        params["relax"] = relax
        self.ctx.inputs.parameters = orm.Dict(params)
        self.ctx.inputs.structure = node.outputs.relaxed_structure
        self.report(
            f"{node.process_label}<{node.pk}>: relaxation not converged; continuing with {relax['steps']}"
        )
        return ProcessHandlerReport(True)

    def run_trust_check(self):
        """The ensemble's deviation on the relaxed structure (and the host-guest complex)."""
        if self.trust_skip_reason() is not None:
            return self.run_trust({})
        structures = {"relaxed": self.outputs["relaxed_structure"]}
        if "host_guest_structure" in self.outputs:
            structures["host_guest"] = self.outputs["host_guest_structure"]
        return self.run_trust({"relaxed": structures_to_frames(**structures)})

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
        guest: GuestMoleculeData | None = None,
        validation_frames: StructureSetData | None = None,
    ):
        """A builder for ``structure`` with ``models`` (one model, a list or a dict; the first drives).

        ``overrides`` (a dict or the path of a YAML file) is shaped like this work chain's inputs, e.g.
        ``{"phonons": {"parameters": {"tasks": ["relax", "phonons"], "phonons": {"supercell": [2, 2, 2]}}}}``
        and deep-merged over the protocol of ``phonons.yaml``; ``options`` is deep-merged into
        ``phonons.metadata.options``. ``guest`` adds the host_guest task's molecule, ``validation_frames``
        the errors task's frames.
        The one signature of every property work chain (``workflows/properties/registry.py``): ``codes``
        by kind (``phonons``; ``deviation``: mofmlp-deviation, turns on the ensemble's trust), ``trust`` the
        window ``lo``/``hi`` (eV/Å; default the protocol's).
        """
        inputs = cls.get_protocol_inputs(protocol, overrides)
        unknown = sorted(set(inputs) - {"max_iterations", "phonons", "trust_window"})
        if unknown:
            raise ValueError(
                f"overrides: unknown inputs {unknown} of {cls.__name__}; valid: max_iterations, phonons"
            )
        if isinstance(models, MaceModelData):
            models = [models]
        if not isinstance(models, dict):
            models = {f"model_{index}": model for index, model in enumerate(models)}
        builder = cls.get_builder()
        builder.models = models
        builder.phonons.code = codes["phonons"]
        builder.phonons.structure = structure
        builder.phonons.parameters = orm.Dict(inputs["phonons"]["parameters"])
        builder.phonons.metadata.options = deep_merge(inputs["phonons"]["metadata"]["options"], options)
        if guest is not None:
            builder.phonons.guest = guest
        if validation_frames is not None:
            builder.phonons.validation_frames = validation_frames
        builder.max_iterations = orm.Int(inputs["max_iterations"])
        levels = trust if trust is not None else inputs.get("trust_window")
        fill_trust_inputs(builder, codes.get("deviation"), protocol, options, levels)
        return builder
