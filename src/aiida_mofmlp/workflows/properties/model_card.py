"""ModelCardWorkChain: a fine-tuned MACE model and its foundation side by side on one framework.

The task set follows MOFSimBench (Krass, Huang, Moosavi, 2025) at this plugin's scale: relaxation volume
change, NPT stability (volume drift of a short LAMMPS run), bulk modulus (Birch-Murnaghan over +-2 %),
heat capacity at 300 K, host-guest interaction energy of the guest at its best site and errors on the
validation frames; with a ``reference`` code, the reference check (V0, relaxed-ion B, binding energy on the
loaded validation frames, Gamma phonons) puts the labelling method beside both models. Each model runs
one :class:`PhononsWorkChain` (relax, phonons, eos [, host_guest] [, errors]) and, with the ``npt`` inputs,
one :class:`LammpsMdBaseWorkChain` from its relaxed structure; :func:`make_model_card` turns the results
into the ``card`` Dict.

Finding the card of a model: the card is the ``card`` output of this work chain, whose ``models``
namespace holds the model; the card names the models' SHA-256 (``sha256``). :meth:`cards_of` runs that
query.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from aiida import orm
from aiida.engine import ToContext, WorkChain, if_

from aiida_mofmlp.common.protocols import deep_merge
from aiida_mofmlp.data.guest import GuestMoleculeData
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.functions.phonons import make_model_card
from aiida_mofmlp.workflows.lammps.base import LammpsMdBaseWorkChain
from aiida_mofmlp.workflows.properties.phonons import (
    PhononsWorkChain,
    driving_model,
    validate_workchain_inputs,
)
from aiida_mofmlp.workflows.properties.reference_check import ReferenceCheckWorkChain
from aiida_mofmlp.workflows.properties.trust import PropertyTrustMixin, define_trust_spec, fill_trust_inputs
from aiida_mofmlp.workflows.protocols.utils import ProtocolMixin

FINE_TUNED = "fine_tuned"
FOUNDATION = "foundation"


def validate_card_inputs(inputs, ctx=None) -> str | None:
    """The phonon checks (periodic structure, supercell, stress, species) for every model of the card."""
    models = dict(inputs.get("models", {}))
    if (ctx is None or "models" in ctx) and not models:
        return "models: give the fine-tuned model (or its ensemble; model_0 is the one on the card)"
    candidates = {FINE_TUNED: driving_model(models)}
    if inputs.get("foundation") is not None:
        candidates[FOUNDATION] = inputs["foundation"]
    phonons = dict(inputs.get("phonons", {}).get("phonons", {}))
    phonons["structure"] = inputs.get("structure")
    for label, model in candidates.items():
        if model is None:
            continue
        message = validate_workchain_inputs({"models": {"model_0": model}, "phonons": phonons})
        if message:
            return f"{label} model: {message}"
    return None


class ModelCardWorkChain(PropertyTrustMixin, ProtocolMixin, WorkChain):
    """The model card of a fine-tuned model (or ensemble) and its foundation on a framework."""

    _protocol_file = "model_card.yaml"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("structure", valid_type=orm.StructureData, help="The framework (periodic).")
        spec.input_namespace(
            "models",
            valid_type=MaceModelData,
            dynamic=True,
            help="The fine-tuned model or ensemble; model_0 is the one on the card, all of them judge trust.",
        )
        spec.input(
            "foundation",
            valid_type=MaceModelData,
            required=False,
            help="The foundation model; default: the stored model whose SHA-256 is model_0's parent_sha256.",
        )
        spec.input(
            "guest", valid_type=GuestMoleculeData, required=False, help="Guest of the host-guest task."
        )
        spec.input(
            "validation_frames",
            valid_type=StructureSetData,
            required=False,
            help="Labelled frames (REF_energy, REF_forces) for the error rows of the card.",
        )
        spec.expose_inputs(
            PhononsWorkChain,
            namespace="phonons",
            exclude=(
                "models",
                "phonons.structure",
                "phonons.guest",
                "phonons.validation_frames",
                "deviation",
                "trust_window",
            ),
        )
        spec.expose_inputs(
            ReferenceCheckWorkChain,
            namespace="reference",
            exclude=("check.structure", "check.models", "check.frames"),
            namespace_options={
                "required": False,
                "populate_defaults": False,
                "help": "The reference check (mofmlp-reference-check): the labelling method beside them.",
            },
        )
        spec.expose_inputs(
            LammpsMdBaseWorkChain,
            namespace="npt",
            exclude=("md.structure", "md.model"),
            namespace_options={"required": False, "populate_defaults": False},
        )
        define_trust_spec(spec)
        spec.inputs.validator = validate_card_inputs
        spec.outline(
            cls.setup,
            cls.run_phonons,
            cls.inspect_phonons,
            if_(cls.should_check_reference)(cls.run_reference_check, cls.inspect_reference_check),
            if_(cls.should_run_npt)(cls.run_npt, cls.inspect_npt),
            cls.run_trust_check,
            cls.inspect_trust,
            cls.make_card,
        )
        spec.output("card", valid_type=orm.Dict, help="The model card: one column per model, units, hashes.")
        spec.output_namespace(
            "results", valid_type=orm.Dict, dynamic=True, help="The phonon-engine results of each model."
        )
        spec.output(
            "reference_table",
            valid_type=orm.Dict,
            required=False,
            help="The reference check's table: the labelling method, fine-tuned and foundation per property.",
        )
        spec.exit_code(401, "ERROR_PHONONS_FAILED", message="No model gave phonon-engine results: {detail}")

    def setup(self):
        """Resolve the foundation (input, or by the fine-tuned model's parent_sha256)."""
        fine_tuned = driving_model(self.inputs.models)
        self.ctx.models = {FINE_TUNED: fine_tuned}
        foundation = self.inputs.get("foundation")
        if foundation is None and fine_tuned.parent_sha256:
            found = MaceModelData.find_by_hash(fine_tuned.parent_sha256)
            foundation = found[0] if found else None
        if foundation is None:
            self.report("no foundation model given or found by parent_sha256: the card has one column")
        else:
            self.ctx.models[FOUNDATION] = foundation

    def run_phonons(self):
        """One PhononsWorkChain per model."""
        running = {}
        for label, model in self.ctx.models.items():
            inputs = self.exposed_inputs(PhononsWorkChain, namespace="phonons")
            phonons = dict(inputs["phonons"])
            phonons["structure"] = self.inputs.structure
            parameters = phonons["parameters"].get_dict() if "parameters" in phonons else {}
            tasks = list(parameters.get("tasks", ["relax", "phonons", "eos"]))
            if "guest" in self.inputs:
                phonons["guest"] = self.inputs.guest
                tasks.append("host_guest")
            if "validation_frames" in self.inputs:
                phonons["validation_frames"] = self.inputs.validation_frames
                tasks.append("errors")
            parameters["tasks"] = list(dict.fromkeys(tasks))
            phonons["parameters"] = orm.Dict(parameters)
            inputs.update({"phonons": phonons, "models": {"model_0": model}})
            inputs["metadata"] = {"call_link_label": f"phonons_{label}"}
            running[f"phonons_{label}"] = self.submit(PhononsWorkChain, **inputs)
        self.report(f"phonons, bulk modulus and card tasks for {', '.join(self.ctx.models)}")
        return ToContext(**running)

    def inspect_phonons(self):
        """Keep the results of every model that gave them (a run with imaginary modes still does)."""
        self.ctx.results = {}
        failed = []
        for label in self.ctx.models:
            child = self.ctx[f"phonons_{label}"]
            if "results" in child.outputs:
                self.ctx.results[label] = child.outputs.results
                self.out(f"results.{label}", child.outputs.results)
            else:
                failed.append(f"{label}: {child.process_label}<{child.pk}> exit {child.exit_status}")
        if failed:
            self.report(f"phonons failed for {'; '.join(failed)}")
        if not self.ctx.results:
            return self.exit_codes.ERROR_PHONONS_FAILED.format(detail="; ".join(failed))
        return None

    def should_check_reference(self) -> bool:
        return "reference" in self.inputs and "code" in self.inputs.reference.get("check", {})

    def run_reference_check(self):
        """Both models against the labelling method (the loaded validation frames give binding energies)."""
        inputs = self.exposed_inputs(ReferenceCheckWorkChain, namespace="reference")
        check = {**inputs["check"], "structure": self.inputs.structure, "models": dict(self.ctx.models)}
        if "validation_frames" in self.inputs and "binding_energy" in check["parameters"]["tasks"]:
            check["frames"] = self.inputs.validation_frames
        inputs.update({"check": check, "metadata": {"call_link_label": "reference_check"}})
        return ToContext(reference_check=self.submit(ReferenceCheckWorkChain, **inputs))

    def inspect_reference_check(self):
        """Keep the table; a failed check leaves the card without its reference column."""
        node = self.ctx.reference_check
        if node.is_finished_ok:
            self.out("reference_table", node.outputs.table)
        else:
            self.report(f"reference check {node.process_label}<{node.pk}> failed: {node.exit_message}")

    def should_run_npt(self) -> bool:
        return "npt" in self.inputs and "md" in self.inputs.npt and "code" in self.inputs.npt.md

    def run_npt(self):
        """A short NPT run of each model from its relaxed structure."""
        running = {}
        for label in self.ctx.results:
            child = self.ctx[f"phonons_{label}"]
            if "relaxed_structure" not in child.outputs:
                continue
            inputs = self.exposed_inputs(LammpsMdBaseWorkChain, namespace="npt")
            inputs["md"] = {
                **inputs["md"],
                "structure": child.outputs.relaxed_structure,
                "model": self.ctx.models[label],
            }
            inputs["metadata"] = {"call_link_label": f"npt_{label}"}
            running[f"npt_{label}"] = self.submit(LammpsMdBaseWorkChain, **inputs)
        return ToContext(**running)

    def inspect_npt(self):
        """Collect the thermo of the NPT runs; a blown-up run is a result (status), not a failure."""
        self.ctx.npt = {}
        for label in self.ctx.results:
            child = self.ctx.get(f"npt_{label}")
            if child is None:
                continue
            if "thermo" in child.outputs:
                self.ctx.npt[label] = child
            else:
                self.report(f"NPT of {label}: {child.process_label}<{child.pk}> exit {child.exit_status}")

    def run_trust_check(self):
        """The ensemble's deviation on the fine-tuned model's NPT trajectory."""
        npt = self.ctx.get("npt", {}).get(FINE_TUNED)
        if npt is None or "trajectory" not in npt.outputs or self.trust_skip_reason() is not None:
            return self.run_trust({})
        return self.run_trust({"npt": npt.outputs.trajectory})

    def make_card(self):
        """The card Dict (calcfunction) from the results of every model."""
        nodes = {f"results_{label}": node for label, node in self.ctx.results.items()}
        for label, child in self.ctx.get("npt", {}).items():
            nodes[f"thermo_{label}"] = child.outputs.thermo
            nodes[f"npt_{label}"] = child.outputs.results
        if "reference_table" in self.outputs:
            nodes["reference_table"] = self.outputs["reference_table"]
        card_info = {
            "framework": self.inputs.structure.get_formula(),
            "framework_uuid": self.inputs.structure.uuid,
            "sha256": {label: model.sha256 for label, model in self.ctx.models.items()},
            "model_uuid": {label: model.uuid for label, model in self.ctx.models.items()},
            "guest": self.inputs.guest.name if "guest" in self.inputs else None,
            "n_validation_frames": self.inputs.validation_frames.count
            if "validation_frames" in self.inputs
            else 0,
        }
        card = make_model_card(orm.Dict(card_info), **nodes)
        self.out("card", card)
        self.report(f"model card {card.pk} for {', '.join(self.ctx.results)}")

    @classmethod
    def cards_of(cls, model: MaceModelData) -> list[orm.Dict]:
        """The ``card`` outputs of every finished ModelCardWorkChain that had ``model`` in ``models``."""
        query = orm.QueryBuilder()
        query.append(MaceModelData, filters={"attributes.sha256": model.sha256}, tag="model")
        query.append(cls, with_incoming="model", tag="card_run", filters={"attributes.exit_status": 0})
        query.append(orm.Dict, with_incoming="card_run", edge_filters={"label": "card"}, project="*")
        query.order_by({orm.Dict: {"ctime": "asc"}}).distinct()
        return [row[0] for row in query.all()]

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
        foundation: MaceModelData | None = None,
        guest: GuestMoleculeData | None = None,
        validation_frames: StructureSetData | None = None,
    ):
        """A builder for the card of ``models`` (model_0 on the card) and ``foundation`` on ``structure``.

        ``overrides`` (a dict or a YAML path) is shaped like ``model_card.yaml``: ``phonons`` holds overrides
        of PhononsWorkChain's protocol, ``npt`` of LammpsMdBaseWorkChain's, ``reference`` of
        ReferenceCheckWorkChain's. Without ``codes['md']`` the NPT stability row is left out; with
        ``codes['reference']`` the card puts the labelling method (GFN1-xTB) beside both models. The one
        signature of every property work chain
        (``workflows/properties/registry.py``): ``codes`` by kind (``phonons``, ``md``; ``deviation``:
        mofmlp-deviation, turns on the ensemble's trust), ``trust`` the window ``lo``/``hi`` (eV/Å).
        """
        inputs = cls.get_protocol_inputs(protocol, overrides)
        unknown = sorted(set(inputs) - {"phonons", "npt", "reference"})
        if unknown:
            raise ValueError(
                f"overrides: unknown inputs {unknown} of {cls.__name__}; valid: phonons, npt, reference"
            )
        if isinstance(models, MaceModelData):
            models = [models]
        if not isinstance(models, dict):
            models = {f"model_{index}": model for index, model in enumerate(models)}
        phonons_code, md_code = codes["phonons"], codes.get("md")
        phonons = PhononsWorkChain.get_builder_from_protocol(
            structure,
            driving_model(models),
            {"phonons": phonons_code},
            protocol,
            inputs["phonons"],
            options=options,
        )
        builder = cls.get_builder()
        builder.structure = structure
        builder.models = models
        builder.phonons.phonons.code = phonons_code
        builder.phonons.phonons.parameters = phonons.phonons.parameters
        builder.phonons.phonons.metadata.options = dict(phonons.phonons.metadata.options)
        builder.phonons.max_iterations = phonons.max_iterations
        if md_code is not None:
            npt = LammpsMdBaseWorkChain.get_builder_from_protocol(
                md_code, structure, driving_model(models), protocol, inputs["npt"], options
            )
            builder.npt.md.code = md_code
            builder.npt.md.parameters = npt.md.parameters
            builder.npt.md.metadata.options = deep_merge(dict(npt.md.metadata.options), None)
            builder.npt.timestep_factor = npt.timestep_factor
            builder.npt.min_timestep_fs = npt.min_timestep_fs
        reference_code = codes.get("reference")
        if reference_code is not None:
            check = ReferenceCheckWorkChain.get_builder_from_protocol(
                structure,
                driving_model(models),
                {"reference": reference_code},
                protocol,
                inputs.get("reference"),
                options=options,
                validation_frames=validation_frames,
            )
            builder.reference.check.code = reference_code
            builder.reference.check.parameters = check.check.parameters
            builder.reference.check.metadata.options = dict(check.check.metadata.options)
            builder.reference.tolerances = check.tolerances
            builder.reference.max_iterations = check.max_iterations
        if foundation is not None:
            builder.foundation = foundation
        if guest is not None:
            builder.guest = guest
        if validation_frames is not None:
            builder.validation_frames = validation_frames
        fill_trust_inputs(builder, codes.get("deviation"), protocol, options, trust)
        return builder
