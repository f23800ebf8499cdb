"""The loop's last step: the chosen properties on its final ensemble, as a ``PropertiesWorkChain`` it calls.

With the input ``properties`` (keys or labels of the property registry) the loop ends by running
:class:`~aiida_mofmlp.workflows.properties.selected.PropertiesWorkChain` on its final ensemble with its own
framework, guest, starting and validation frames, codes (``property_codes`` adds kinds the loop does not
have, such as ``widom`` or ``phonons``), protocol and trust window, so every property result is a descendant
of the loop. Properties that fail leave the ensemble and the other properties in place (exit 412).
"""

from __future__ import annotations

from collections.abc import Mapping

from aiida import orm

from aiida_mofmlp.workflows.properties.registry import property_problems
from aiida_mofmlp.workflows.properties.selected import LOOP_CODE_NAMESPACES, validate_property_names

#: loop exit statuses after which the ensemble is still used for properties (not converged, no candidates)
USABLE_EXITS = (410, 411)


def define_properties_spec(spec) -> None:
    """Inputs ``properties``, ``property_codes``, ``property_overrides``; exit code 412."""
    spec.input(
        "properties",
        valid_type=orm.List,
        required=False,
        validator=validate_property_names,
        help="Properties to run on the final ensemble as the loop's last step (a PropertiesWorkChain it "
        "calls): adsorption, diffusion, thermal_expansion, melt_quench, phonons, model_card.",
    )
    spec.input_namespace(
        "property_codes",
        valid_type=orm.AbstractCode,
        required=False,
        dynamic=True,
        help="Codes by kind for the properties beyond the loop's own (e.g. widom, phonons).",
    )
    spec.input(
        "property_overrides",
        valid_type=orm.Dict,
        required=False,
        help="Per property key, overrides of that property's protocol inputs.",
    )
    spec.exit_code(
        412,
        "WARNING_PROPERTIES_FAILED",
        message="The final ensemble is in the outputs, but properties failed: {detail}",
    )


def codes_in_inputs(inputs: Mapping) -> dict[str, orm.AbstractCode]:
    """The codes among a loop's inputs by kind (``md``, ``deviation``, ``raspa``, ``xtb``, ...)."""
    codes: dict[str, orm.AbstractCode] = {}

    def walk(value, kind):
        if isinstance(value, orm.AbstractCode):
            codes.setdefault(kind, value)
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item, kind)

    for namespace, kind in LOOP_CODE_NAMESPACES.items():
        if namespace in inputs:
            walk(inputs[namespace], kind)
    return codes


def property_codes(inputs: Mapping) -> dict[str, orm.AbstractCode]:
    """The loop's codes with ``property_codes`` added (a kind given there replaces the loop's)."""
    return {**codes_in_inputs(inputs), **dict(inputs.get("property_codes", {}) or {})}


def validate_properties_inputs(inputs: Mapping, loadings: list[int]) -> str | None:
    """Codes, guest and loaded frames that the chosen properties need, before the loop runs."""
    if "properties" not in inputs or validate_property_names(inputs["properties"]):
        return None
    overrides = inputs["property_overrides"].get_dict() if "property_overrides" in inputs else None
    problems = property_problems(
        inputs["properties"].get_list(),
        property_codes(inputs),
        has_guest="guest" in inputs,
        has_loaded_frame="guest" in inputs and any(int(n) > 0 for n in loadings),
        overrides=overrides,
        overrides_name="property_overrides",
    )
    return "; ".join(f"properties: {problem}" for problem in problems) or None


class PropertiesStep:
    """Mixin of ActiveLearningWorkChain: run, then inspect, the properties on the final ensemble."""

    def should_run_properties(self) -> bool:
        """Properties were asked for and the loop ended with an ensemble worth using."""
        if "properties" not in self.inputs or not self.ctx.models:
            return False
        final = self.ctx.get("final_exit")
        return final is None or final.status in USABLE_EXITS

    def run_properties(self):
        """Submit ``PropertiesWorkChain`` on the final ensemble with the loop's data, codes and trust."""
        from aiida_mofmlp.common.trust import TrustWindow
        from aiida_mofmlp.workflows.properties.selected import PropertiesWorkChain

        builder = PropertiesWorkChain.get_builder()
        builder.structure = self.inputs.structure
        builder.models = dict(self.ctx.models)
        if "guest" in self.inputs:
            builder.guest = self.inputs.guest
        if self.ctx.starting_frames is not None:
            builder.starting_frames = self.ctx.starting_frames
        if "validation_frames" in self.outputs:
            builder.validation_frames = self.outputs["validation_frames"]
        builder.properties = self.inputs.properties
        builder.codes = property_codes(self.inputs)
        if self.ctx.params.get("protocol"):
            builder.protocol = orm.Str(self.ctx.params["protocol"])
        if "property_overrides" in self.inputs:
            builder.overrides = self.inputs.property_overrides
        builder.trust_window = orm.Dict(TrustWindow.from_mapping(self.ctx.params["trust"]).as_dict())
        builder.metadata.call_link_label = "properties"
        node = self.submit(builder)
        self.report(f"properties {self.inputs.properties.get_list()}: PropertiesWorkChain<{node.pk}>")
        self.to_context(properties_run=node)

    def inspect_properties(self):
        """A failed property makes the loop end with 412 (unless it already ends with a warning)."""
        node = self.ctx.properties_run
        if not node.is_finished_ok and self.ctx.get("final_exit") is None:
            detail = node.exit_message or f"PropertiesWorkChain<{node.pk}> exit status {node.exit_status}"
            self.ctx.final_exit = self.exit_codes.WARNING_PROPERTIES_FAILED.format(detail=detail)
