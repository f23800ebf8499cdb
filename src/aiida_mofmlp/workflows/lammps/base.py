"""LammpsMdBaseWorkChain: LammpsMdCalculation with restarts at a smaller time step after a blow-up."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ExitCode, ProcessHandlerReport, process_handler, while_

from aiida_mofmlp.calculations.lammps_md import UNSTABLE_EXIT_CODES, LammpsMdCalculation
from aiida_mofmlp.common.protocols import deep_merge
from aiida_mofmlp.engines.lammps.md_settings import DEFAULTS, load_settings
from aiida_mofmlp.workflows.protocols.utils import ProtocolMixin
from aiida_mofmlp.workflows.restart import expose_calcjob_outputs


def scale_timestep(parameters: dict, factor: float) -> dict:
    """Parameters with the time step times ``factor`` and every step count divided by it (same physical time).

    The GCMC attempt interval stays in MD steps (the recipe is one attempt every N MD steps).
    """
    new = copy.deepcopy(parameters)
    stretch = 1.0 / factor

    def steps(value):
        return max(1, round(int(value) * stretch))

    new["timestep_fs"] = float(parameters.get("timestep_fs", DEFAULTS["timestep_fs"])) * factor
    for key in ("steps", "dump_interval", "thermo_interval"):
        new[key] = steps(parameters.get(key, DEFAULTS[key]))
    if new.get("segments"):
        segments = []
        for segment in new["segments"]:
            segment = {**segment, "steps": steps(segment["steps"])}
            if "timestep_fs" in segment:  # a segment's own time step (e.g. the hot part of a melt-quench)
                segment["timestep_fs"] = float(segment["timestep_fs"]) * factor
            segments.append(segment)
        new["segments"] = segments
    safety = dict(new.get("safety") or {})
    safety["check_interval"] = steps(safety.get("check_interval", 10))
    new["safety"] = safety
    if new.get("uncertainty"):
        new["uncertainty"] = {**new["uncertainty"], "interval": steps(new["uncertainty"].get("interval", 50))}
    if new.get("gcmc"):
        gcmc = dict(new["gcmc"])
        for key in ("equilibration_steps", "production_steps"):
            if key in gcmc:
                gcmc[key] = steps(gcmc[key])
        new["gcmc"] = gcmc
    return new


class LammpsMdBaseWorkChain(ProtocolMixin, BaseRestartWorkChain):
    """Run a LammpsMdCalculation; after a blow-up rerun from the start with a smaller time step."""

    _process_class = LammpsMdCalculation
    _protocol_file = "md.yaml"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(LammpsMdCalculation, namespace="md")
        spec.input(
            "timestep_factor",
            valid_type=orm.Float,
            default=lambda: orm.Float(0.5),
            help="Factor applied to the time step after a blow-up (0 < factor < 1).",
        )
        spec.input(
            "min_timestep_fs",
            valid_type=orm.Float,
            default=lambda: orm.Float(0.1),
            help="No restart below this time step (fs).",
        )
        spec.input(
            "keep_frames_on_blowup",
            valid_type=orm.Bool,
            default=lambda: orm.Bool(False),
            help="After a blow-up, finish with the frames written so far instead of restarting at a smaller "
            "time step. For active learning: a young model, not the integrator, is usually at fault, and the "
            "frames before the blow-up are the ones worth labelling. `results.status` names the stop.",
        )
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(cls.run_process, cls.inspect_process),
            cls.results,
        )
        expose_calcjob_outputs(spec, LammpsMdCalculation)
        spec.exit_code(
            450, "ERROR_MD_UNSTABLE", message="The MD kept blowing up down to the minimum time step: {detail}"
        )

    def setup(self):
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(LammpsMdCalculation, "md"))
        self.ctx.parameters = self.ctx.inputs.parameters.get_dict() if "parameters" in self.ctx.inputs else {}

    @process_handler(priority=500)
    def handle_unstable(self, node):
        """NaN, atoms too close, temperature runaway or lost atoms: halve the time step and start again."""
        if node.exit_status not in UNSTABLE_EXIT_CODES:
            return None
        if self.inputs.keep_frames_on_blowup.value:
            if "trajectory" not in node.outputs:
                self.report(f"{node.process_label}<{node.pk}> blew up before writing any frame")
                return ProcessHandlerReport(
                    True, self.exit_codes.ERROR_MD_UNSTABLE.format(detail=node.exit_message or "no frames")
                )
            self.report(f"{node.process_label}<{node.pk}> blew up ({node.exit_message}); keeping its frames")
            self.ctx.is_finished = True
            self.results()
            return ProcessHandlerReport(True, ExitCode(0))
        factor = float(self.inputs.timestep_factor.value)
        current = float(self.ctx.parameters.get("timestep_fs", DEFAULTS["timestep_fs"]))
        new_timestep = current * factor
        if not 0 < factor < 1 or new_timestep < float(self.inputs.min_timestep_fs.value):
            self.report(
                f"{node.process_label}<{node.pk}> blew up at {current} fs; not going below the minimum"
            )
            return ProcessHandlerReport(
                True,
                self.exit_codes.ERROR_MD_UNSTABLE.format(detail=node.exit_message or str(node.exit_status)),
            )
        self.ctx.parameters = scale_timestep(self.ctx.parameters, factor)
        load_settings(self.ctx.parameters)  # fail here, loudly, rather than in the next job
        self.ctx.inputs.parameters = orm.Dict(self.ctx.parameters)
        self.report(
            f"{node.process_label}<{node.pk}> blew up ({node.exit_message}); restarting at {new_timestep} fs"
        )
        return ProcessHandlerReport(False)

    @process_handler(priority=400, exit_codes=[LammpsMdCalculation.exit_codes.ERROR_MD_UNCERTAIN])
    def handle_uncertain(self, node):
        """An uncertainty stop is a result for active learning: finish with the frames so far."""
        self.report(f"{node.process_label}<{node.pk}> stopped on sigma_max; keeping its frames")
        self.ctx.is_finished = True
        self.results()
        return ProcessHandlerReport(True, ExitCode(0))

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        structure: orm.Data,
        model: orm.SinglefileData,
        protocol: str | None = None,
        overrides: Mapping | str | os.PathLike | None = None,
        options: dict | None = None,
        guest: orm.Data | None = None,
    ):
        """A builder for MD of ``structure`` with ``model``, protocol ``protocol`` (fast/balanced/stringent).

        ``overrides`` (a dict or the path of a YAML file) is shaped like this work chain's inputs, e.g.
        ``{"md": {"parameters": {"temperature": 500, "ensemble": "npt"}}, "min_timestep_fs": 0.2}``, and
        deep-merged over the protocol; a ``gcmc`` block in ``md.parameters`` needs ``guest``. ``options``
        is deep-merged into ``md.metadata.options``.
        """
        inputs = cls.get_protocol_inputs(protocol, overrides)
        valid = {"md", "timestep_factor", "min_timestep_fs", "keep_frames_on_blowup", "max_iterations"}
        unknown = sorted(set(inputs) - valid)
        if unknown:
            raise ValueError(
                f"overrides: unknown inputs {unknown} of {cls.__name__}; valid: {', '.join(sorted(valid))}"
            )
        md = inputs["md"]
        unknown = sorted(set(md) - {"parameters", "metadata"})
        if unknown:
            raise ValueError(
                f"overrides: unknown inputs {unknown} of {cls.__name__}.md; valid: metadata, parameters"
            )
        parameters = md["parameters"]
        if parameters.get("gcmc") is not None:
            parameters.pop("steps", None)
        check = dict(parameters)
        if check.get("gcmc") is not None:
            check["gcmc"] = {**check["gcmc"], "guest": "guest.json"}
        load_settings(check)
        builder = cls.get_builder()
        builder.md.code = code
        builder.md.structure = structure
        builder.md.model = model
        builder.md.parameters = orm.Dict(parameters)
        builder.md.metadata.options = deep_merge(md["metadata"]["options"], options)
        if guest is not None:
            builder.md.guest = guest
        builder.timestep_factor = orm.Float(inputs["timestep_factor"])
        builder.min_timestep_fs = orm.Float(inputs["min_timestep_fs"])
        if "keep_frames_on_blowup" in inputs:
            builder.keep_frames_on_blowup = orm.Bool(inputs["keep_frames_on_blowup"])
        if "max_iterations" in inputs:
            builder.max_iterations = orm.Int(inputs["max_iterations"])
        return builder


def get_protocol(protocol: str | None = None, overrides: dict | None = None) -> dict:
    """``md.yaml``'s protocol as one flat dict, ``overrides`` (same shape) deep-merged in.

    Keys: ``description``, engine ``parameters``, ``restart`` (``timestep_factor``, ``min_timestep_fs``) and
    ``options``.

    A flat view for callers of the former API; work chains use ``get_protocol_inputs``.
    """
    available = LammpsMdBaseWorkChain.get_available_protocols()
    if protocol is not None and protocol not in available:
        raise ValueError(f"unknown MD protocol {protocol!r}; valid protocols: {', '.join(available)}")
    inputs = LammpsMdBaseWorkChain.get_protocol_inputs(protocol)
    name = protocol or LammpsMdBaseWorkChain.get_default_protocol()
    flat = {
        "description": available[name]["description"],
        "parameters": inputs["md"]["parameters"],
        "restart": {key: inputs[key] for key in ("timestep_factor", "min_timestep_fs")},
        "options": inputs["md"]["metadata"]["options"],
    }
    return deep_merge(flat, overrides)
