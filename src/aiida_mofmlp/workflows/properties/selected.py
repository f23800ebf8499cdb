"""``PropertiesWorkChain``: the chosen property work chains on one ensemble, as one node of the graph.

Runs the properties named in ``properties`` (keys or labels of
:data:`~aiida_mofmlp.workflows.properties.registry.PROPERTIES`) side by side on ``models`` with one trust
window, each built by :func:`~aiida_mofmlp.workflows.properties.registry.property_builder`. Each property's
outputs come back under its key (``adsorption.isotherm``, ``phonons.free_energy``, ...). A property that fails
(or cannot be built) is named in exit code 400 while the others' outputs are kept. The active-learning loop
runs it as its last step (input ``properties``); it also runs on its own after an earlier loop
(:meth:`PropertiesWorkChain.get_builder_for_loop`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import WorkChain

from aiida_mofmlp.common.trust import TrustWindow
from aiida_mofmlp.data.guest import GuestMoleculeData
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.properties.registry import (
    PROPERTIES,
    loaded_frame_index,
    property_builder,
    property_key,
    property_problems,
)
from aiida_mofmlp.workflows.properties.trust import validate_trust_window

#: input namespace of ActiveLearningWorkChain -> code kind (:data:`aiida_mofmlp.common.codes.CODES`)
LOOP_CODE_NAMESPACES = {
    "md": "md",
    "deviation": "deviation",
    "raspa": "raspa",
    "xtb_labelling": "xtb",
    "labelling": "cp2k",
    "training": "train",
}


def loop_codes(loop: orm.ProcessNode) -> dict[str, orm.AbstractCode]:
    """The codes an active-learning loop ran with, by kind (``md``, ``deviation``, ...)."""
    codes: dict[str, orm.AbstractCode] = {}
    for link in loop.base.links.get_incoming(node_class=orm.AbstractCode).all():
        kind = LOOP_CODE_NAMESPACES.get(link.link_label.split("__")[0])
        if kind is not None:
            codes.setdefault(kind, link.node)
    return codes


def validate_property_names(names: orm.List, _ctx=None) -> str | None:
    """At least one property, each known once."""
    values = names.get_list()
    if not values:
        return f"properties: name at least one of {', '.join(PROPERTIES)}"
    try:
        keys = [property_key(str(name)) for name in values]
    except ValueError as error:
        return f"properties: {error}"
    if len(set(keys)) != len(keys):
        return f"properties: each property once, got {values}"
    return None


def validate_inputs(inputs, _ctx=None) -> str | None:
    """Codes, guest and frames that the chosen properties need; overrides only of chosen properties."""
    if "properties" not in inputs or validate_property_names(inputs["properties"]):
        return None  # the port's own validator says it
    names = inputs["properties"].get_list()
    problems = property_problems(
        names,
        dict(inputs.get("codes", {})),
        has_guest="guest" in inputs,
        has_loaded_frame="starting_frames" in inputs,
        overrides=inputs["overrides"].get_dict() if "overrides" in inputs else None,
    )
    return "; ".join(problems) or None


class PropertiesWorkChain(WorkChain):
    """Run the chosen property work chains on one ensemble; their outputs come back under each key."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("structure", valid_type=orm.StructureData, help="The framework (empty of guests).")
        spec.input_namespace(
            "models", valid_type=MaceModelData, dynamic=True, help="The ensemble; model_0 drives the MD."
        )
        spec.input("guest", valid_type=GuestMoleculeData, required=False, help="The adsorbate, if any.")
        spec.input(
            "starting_frames",
            valid_type=StructureSetData,
            required=False,
            help="Frames with guests (info['loading']); the most loaded one starts the diffusion MD.",
        )
        spec.input(
            "validation_frames",
            valid_type=StructureSetData,
            required=False,
            help="Labelled frames for the error rows of the model card.",
        )
        spec.input(
            "properties",
            valid_type=orm.List,
            validator=validate_property_names,
            help=f"Properties to run, by key or label: {', '.join(PROPERTIES)}.",
        )
        spec.input_namespace(
            "codes",
            valid_type=orm.AbstractCode,
            dynamic=True,
            help="Codes by kind (md, widom, raspa, xtb, phonons, deviation); see each property's needs.",
        )
        spec.input("protocol", valid_type=orm.Str, required=False, help="fast, balanced or stringent.")
        spec.input(
            "overrides",
            valid_type=orm.Dict,
            required=False,
            help="Per property key, overrides shaped like that work chain's protocol inputs.",
        )
        spec.input(
            "trust_window",
            valid_type=orm.Dict,
            required=False,
            validator=validate_trust_window,
            help="Trust window lo/hi of sigma_max (eV/Å) for every property (the loop passes its own).",
        )
        spec.inputs.validator = validate_inputs
        spec.outline(cls.run_properties, cls.collect)
        for key, entry in PROPERTIES.items():
            spec.output_namespace(key, dynamic=True, required=False, help=f"Outputs of the {entry.label}.")
        spec.exit_code(400, "ERROR_PROPERTIES_FAILED", message="Properties failed: {detail}")

    @classmethod
    def get_builder_for_loop(
        cls,
        loop: orm.ProcessNode,
        properties: Sequence[str],
        codes: Mapping[str, orm.AbstractCode] | None = None,
        protocol: str | None = None,
        overrides: Mapping | None = None,
        trust: Mapping | None = None,
    ):
        """A builder on the final ensemble of the ended active-learning ``loop``: its framework, guest,
        starting and validation frames, codes (``codes`` add or replace kinds), protocol and trust window."""
        if "models" not in loop.outputs or not len(loop.outputs.models):
            raise ValueError(f"{loop.process_label}<{loop.pk}> has no final ensemble (`models` outputs)")
        builder = cls.get_builder()
        builder.structure = loop.inputs.structure
        builder.models = dict(loop.outputs.models)
        if "guest" in loop.inputs:
            builder.guest = loop.inputs.guest
        history = loop.outputs.history if "history" in loop.outputs else {}
        if "starting_frames" in history:
            builder.starting_frames = history["starting_frames"]
        if "validation_frames" in loop.outputs:
            builder.validation_frames = loop.outputs.validation_frames
        builder.properties = orm.List([property_key(name) for name in properties])
        builder.codes = {**loop_codes(loop), **{k: c for k, c in dict(codes or {}).items() if c is not None}}
        parameters = loop.inputs.parameters.get_dict()
        protocol = protocol or parameters.get("protocol")
        if protocol:
            builder.protocol = orm.Str(protocol)
        if overrides:
            builder.overrides = orm.Dict({property_key(key): value for key, value in overrides.items()})
        trust = trust or parameters.get("trust")
        if trust:
            builder.trust_window = orm.Dict(TrustWindow.from_mapping(dict(trust)).as_dict())
        builder.metadata.label = f"properties on the final ensemble of {loop.process_label}<{loop.pk}>"
        return builder

    # --- steps ---------------------------------------------------------------------------------------
    def run_properties(self):
        """Build and submit every chosen property; one that cannot be built is recorded as failed."""
        inputs = self.inputs
        self.ctx.failed = {}
        self.ctx.chosen = [property_key(str(name)) for name in inputs.properties.get_list()]
        overrides = inputs.overrides.get_dict() if "overrides" in inputs else {}
        needs_frame = any(PROPERTIES[key].needs_loaded_frame for key in self.ctx.chosen)
        loaded = self._loaded_frame() if needs_frame else None
        for key in self.ctx.chosen:
            try:
                with warnings.catch_warnings(record=True) as caught:  # e.g. NPT with a model without stress
                    warnings.simplefilter("always", UserWarning)
                    builder = property_builder(
                        key,
                        inputs.structure,
                        dict(inputs.models),
                        dict(inputs.codes),
                        protocol=inputs.protocol.value if "protocol" in inputs else None,
                        overrides=overrides.get(key),
                        trust=inputs.trust_window.get_dict() if "trust_window" in inputs else None,
                        guest=inputs.get("guest"),
                        loaded_frame=loaded,
                        validation_frames=inputs.get("validation_frames"),
                    )
            except Exception as error:  # a protocol or override the property refuses: the others still run
                self.ctx.failed[key] = f"not built ({error})"
                self.report(f"{key}: {self.ctx.failed[key]}")
                continue
            for warning in caught:
                self.report(f"{key}: {warning.message}")
            builder.metadata.call_link_label = key
            node = self.submit(builder)
            self.report(f"{key}: submitted {node.process_label}<{node.pk}>")
            self.to_context(**{f"run_{key}": node})

    def _loaded_frame(self) -> StructureSetData | None:
        """The most loaded starting frame as a one-frame set (a calcfunction, so its origin is recorded)."""
        from aiida_mofmlp.workflows.functions.xtb import subset_frames

        frames = self.inputs.get("starting_frames")
        index = loaded_frame_index(frames) if frames is not None else None
        return subset_frames(frames, orm.List([index])) if index is not None else None

    def collect(self):
        """Each property's outputs under its key; exit 400 naming the ones that failed."""
        for key in self.ctx.chosen:
            if key in self.ctx.failed:
                continue
            node = self.ctx[f"run_{key}"]
            links = node.base.links.get_outgoing(link_type=(LinkType.CREATE, LinkType.RETURN)).all()
            for link in links:
                self.out(f"{key}.{link.link_label.replace('__', '.')}", link.node)
            if not node.is_finished_ok:
                self.ctx.failed[key] = f"{node.process_label}<{node.pk}> exit status {node.exit_status}"
        if self.ctx.failed:
            detail = "; ".join(f"{key}: {why}" for key, why in self.ctx.failed.items())
            return self.exit_codes.ERROR_PROPERTIES_FAILED.format(detail=detail)
        return None
