"""MdPropertyWorkChain: the common base of the dynamics property work chains (diffusion, thermal
expansion, melt-quench): structure, models, the exposed MD inputs, the ensemble's trust, one MD run per
condition. Not a public entry point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiida import orm
from aiida.engine import WorkChain

from aiida_mofmlp.common.protocols import deep_merge
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.lammps.md_settings import load_settings
from aiida_mofmlp.workflows.lammps.base import LammpsMdBaseWorkChain
from aiida_mofmlp.workflows.properties.trust import PropertyTrustMixin, define_trust_spec
from aiida_mofmlp.workflows.protocols.utils import ProtocolMixin

#: inputs of LammpsMdBaseWorkChain set by the property work chains, not by the user
MD_EXCLUDED = ("md.structure", "md.model")


def validate_models(models: Mapping, _ctx=None) -> str | None:
    """``models`` must hold ``model_0`` (it drives the dynamics)."""
    if "model_0" not in (models or {}):
        return f"models: need `model_0` (the model that drives the MD), got {sorted(models)}"
    return None


class MdPropertyWorkChain(ProtocolMixin, PropertyTrustMixin, WorkChain):
    """Base of the dynamics property work chains: inputs, MD per condition, trust. Not a public entry."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            "structure",
            valid_type=(orm.StructureData, StructureSetData),
            help="Starting configuration (frame 0 of a set keeps the per-atom guest_id of guests).",
        )
        spec.input_namespace(
            "models",
            valid_type=MaceModelData,
            dynamic=True,
            validator=validate_models,
            help="The ensemble: model_0 drives the MD; all of them give the trust.",
        )
        spec.expose_inputs(LammpsMdBaseWorkChain, namespace="md", exclude=MD_EXCLUDED)
        define_trust_spec(spec)
        spec.exit_code(401, "ERROR_MD_FAILED", message="The MD run {label} failed: {detail}")
        spec.exit_code(402, "ERROR_ANALYSIS_FAILED", message="The analysis of {label} failed: {detail}")

    # ---------------------------------------------------------------- helpers
    def md_parameters(self) -> dict:
        """The exposed MD parameters (the engine's settings) as a dict."""
        inputs = self.exposed_inputs(LammpsMdBaseWorkChain, namespace="md")
        return inputs["md"]["parameters"].get_dict() if "parameters" in inputs["md"] else {}

    def submit_md(self, key: str, parameters: dict):
        """Submit one LammpsMdBaseWorkChain on the input structure with model_0 and ``parameters``."""
        inputs = self.exposed_inputs(LammpsMdBaseWorkChain, namespace="md")
        inputs["md"] = {
            **inputs["md"],
            "structure": self.inputs.structure,
            "model": self.inputs.models["model_0"],
            "parameters": orm.Dict(parameters),
        }
        inputs["metadata"] = {"call_link_label": f"md_{key}"}
        return self.submit(LammpsMdBaseWorkChain, **inputs)

    def finished_trajectories(self, keys: Sequence[str]):
        """``{key: trajectory}`` of the MD runs in the context, or the exit code of the first failed one."""
        trajectories = {}
        for key in keys:
            child = self.ctx[f"md_{key}"]
            if not child.is_finished_ok or "trajectory" not in child.outputs:
                return self.exit_codes.ERROR_MD_FAILED.format(
                    label=key,
                    detail=f"{child.process_label}<{child.pk}> exit {child.exit_status}: "
                    f"{child.exit_message}",
                )
            status = child.outputs.results.get("status")
            if status != "completed":
                return self.exit_codes.ERROR_MD_FAILED.format(
                    label=key, detail=f"{child.process_label}<{child.pk}> stopped early ({status})"
                )
            trajectories[key] = child.outputs.trajectory
        return trajectories

    @classmethod
    def md_builder_inputs(cls, builder, code, protocol, md_overrides: Mapping, options: dict | None) -> None:
        """Fill ``builder.md`` from LammpsMdBaseWorkChain's protocol with ``md_overrides`` merged in."""
        md = deep_merge(LammpsMdBaseWorkChain.get_protocol_inputs(protocol), dict(md_overrides or {}))
        parameters = md["md"]["parameters"]
        load_settings(parameters)
        builder.md.md.code = code
        builder.md.md.parameters = orm.Dict(parameters)
        builder.md.md.metadata.options = deep_merge(md["md"]["metadata"]["options"], options)
        builder.md.timestep_factor = orm.Float(md["timestep_factor"])
        builder.md.min_timestep_fs = orm.Float(md["min_timestep_fs"])

    def run_trust_step(self):
        """The ensemble's trust on every trajectory the MD steps put in ``ctx.trajectories``."""
        return self.run_trust(self.ctx.trajectories)

    @staticmethod
    def models_dict(models) -> dict:
        """``models`` (a list or a dict of MaceModelData) as ``{"model_<i>": node}``."""
        if isinstance(models, Mapping):
            return dict(models)
        return {f"model_{k}": model for k, model in enumerate(models)}
