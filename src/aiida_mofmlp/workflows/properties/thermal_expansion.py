"""ThermalExpansionWorkChain: lattice parameters against T (and P), expansion coefficients, vibrational DOS.

NPT MD (LAMMPS + MACE model 0) per temperature and pressure with the cell angles fixed (``aniso``
barostat by default); each lattice parameter's mean and error over the equilibrated part (detected);
linear and volumetric expansion coefficients at a chosen temperature from a fit of x(T); a vibrational DOS
from the velocity autocorrelation of an NVE run, normalised to 3N. The recipe follows Sharma & Sanvito,
npj Comput. Mater. 2024, DOI 10.1038/s41524-024-01427-y (MOF-5: -13.3e-6 /K against -13.1e-6 /K
measured). NPT needs a model trained with stress labels: without them the work chain warns, loudly.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence

from aiida import orm
from aiida.engine import ToContext

from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.functions.dynamics import (
    add_warnings,
    analyse_lattice,
    analyse_vdos,
    stress_warning,
    temperature_key,
    validate_temperatures,
)
from aiida_mofmlp.workflows.properties.md_base import MdPropertyWorkChain
from aiida_mofmlp.workflows.properties.trust import fill_trust_inputs

VDOS_DEFAULTS = {"temperature": 300.0, "steps": 2000, "dump_interval": 2}


def validate_pressures(value: orm.List, _ctx=None) -> str | None:
    """Pressures: a non-empty list of numbers in bar."""
    pressures = value.get_list()
    try:
        [float(p) for p in pressures]
    except (TypeError, ValueError):
        return f"pressures_bar: need numbers in bar, got {pressures}"
    if not pressures:
        return "pressures_bar: give at least one pressure in bar, e.g. [1.0]"
    return None


def validate_vdos(value: orm.Dict, _ctx=None) -> str | None:
    """The NVE run of the VDOS must give at least 8 frames at a temperature > 0 K."""
    settings = value.get_dict()
    if not settings.get("enabled", True):
        return None
    unknown = sorted(set(settings) - {*VDOS_DEFAULTS, "enabled"})
    if unknown:
        return f"vdos: unknown keys {unknown}; valid: enabled, {', '.join(VDOS_DEFAULTS)}"
    merged = {**VDOS_DEFAULTS, **settings}
    if not float(merged["temperature"]) > 0:
        return f"vdos: temperature must be > 0 K, got {merged['temperature']}"
    steps, interval = int(merged["steps"]), int(merged["dump_interval"])
    if interval < 1 or steps // interval < 8:
        return (
            f"vdos: steps {steps} with dump_interval {interval} give {steps // max(interval, 1)} frames; "
            "the velocity autocorrelation needs at least 8 (more steps or a smaller dump_interval)"
        )
    return None


class ThermalExpansionWorkChain(MdPropertyWorkChain):
    """Lattice vs T and P from NPT MD, expansion coefficients with errors, VDOS from an NVE run."""

    _protocol_file = "thermal_expansion.yaml"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            "temperatures",
            valid_type=orm.List,
            validator=validate_temperatures,
            help="NPT temperatures in K (two or more for expansion coefficients).",
        )
        spec.input(
            "pressures_bar",
            valid_type=orm.List,
            default=lambda: orm.List([1.0]),
            validator=validate_pressures,
            help="NPT pressures in bar; coefficients use the lowest.",
        )
        spec.input(
            "analysis",
            valid_type=orm.Dict,
            default=lambda: orm.Dict({}),
            help="at_temperature (K, default: middle of the range), degree (1 or 2) of the x(T) fit.",
        )
        spec.input(
            "vdos",
            valid_type=orm.Dict,
            default=lambda: orm.Dict(VDOS_DEFAULTS),
            validator=validate_vdos,
            help="NVE run for the VDOS: temperature (K), steps, dump_interval (steps); enabled: false "
            "skips it.",
        )
        spec.outline(cls.setup, cls.run_md, cls.analyse, cls.run_trust_step, cls.inspect_trust)
        spec.output(
            "lattice",
            valid_type=orm.ArrayData,
            help="Equilibrated a, b, c (Angstrom), angles (degree), volume (Angstrom^3) with errors vs T.",
        )
        spec.output(
            "expansion",
            valid_type=orm.Dict,
            help="Per run lattice statistics; linear and volumetric expansion coefficients (1/K).",
        )
        spec.output(
            "vdos",
            valid_type=orm.ArrayData,
            required=False,
            help="Vibrational DOS (states/THz, integral 3N) against frequency (THz, cm^-1).",
        )

    def setup(self):
        warning = stress_warning(self.inputs.models["model_0"])
        self.ctx.warnings = [warning] if warning else []
        if warning:
            self.report(f"WARNING: {warning}")

    def run_md(self):
        base = {**self.md_parameters(), "ensemble": "npt"}
        pressures = [float(p) for p in self.inputs.pressures_bar.get_list()]
        self.ctx.npt = {}
        running = {}
        for temperature in self.inputs.temperatures.get_list():
            for pressure in pressures:
                key = temperature_key(temperature)
                if len(pressures) > 1:
                    key += "_" + temperature_key(pressure).replace("T", "P", 1)
                self.ctx.npt[key] = (float(temperature), pressure)
                parameters = {**base, "temperature": float(temperature), "pressure_bar": pressure}
                running[f"md_{key}"] = self.submit_md(key, parameters)
        vdos = {**VDOS_DEFAULTS, **self.inputs.vdos.get_dict()}
        self.ctx.run_vdos = bool(vdos.pop("enabled", True))
        if self.ctx.run_vdos:
            parameters = {
                **self.md_parameters(),
                "ensemble": "nve",
                "write_velocities": True,
                "temperature": float(vdos["temperature"]),
                "steps": int(vdos["steps"]),
                "dump_interval": int(vdos["dump_interval"]),
            }
            parameters.pop("segments", None)
            running["md_nve"] = self.submit_md("nve", parameters)
        self.report(
            f"NPT MD for {len(self.ctx.npt)} conditions" + (", NVE for the VDOS" if self.ctx.run_vdos else "")
        )
        return ToContext(**running)

    def analyse(self):
        keys = list(self.ctx.npt) + (["nve"] if self.ctx.run_vdos else [])
        trajectories = self.finished_trajectories(keys)
        if not isinstance(trajectories, dict):
            return trajectories
        self.ctx.trajectories = trajectories
        parameters = {
            **self.inputs.analysis.get_dict(),
            "temperatures": {k: t for k, (t, _) in self.ctx.npt.items()},
            "pressures": {k: p for k, (_, p) in self.ctx.npt.items()},
        }
        try:
            outputs = analyse_lattice(
                orm.Dict(parameters),
                **{k: trajectories[k] for k in self.ctx.npt},
                metadata={"call_link_label": "analyse_lattice"},
            )
        except ValueError as error:
            return self.exit_codes.ERROR_ANALYSIS_FAILED.format(label="lattice", detail=str(error))
        self.out("lattice", outputs["lattice"])
        expansion = outputs["result"]
        if self.ctx.warnings:
            # the warning travels with the result: a calcfunction adds it to keep the provenance
            expansion = add_warnings(expansion, orm.List(self.ctx.warnings))
        self.out("expansion", expansion)
        coefficients = expansion["expansion"]
        if "volume" in coefficients:
            volume = coefficients["volume"]
            self.report(
                f"alpha_V = {volume['alpha']:.3g} +- {volume['alpha_error']:.2g} /K, mean linear alpha = "
                f"{coefficients['linear_mean']['alpha']:.3g} /K at {volume['at_temperature']:g} K"
            )
        if self.ctx.run_vdos:
            try:
                self.out(
                    "vdos", analyse_vdos(trajectories["nve"], metadata={"call_link_label": "analyse_vdos"})
                )
            except ValueError as error:
                return self.exit_codes.ERROR_ANALYSIS_FAILED.format(label="vdos", detail=str(error))
        return None

    @classmethod
    def get_builder_from_protocol(
        cls,
        structure: orm.StructureData | StructureSetData,
        models: Sequence[MaceModelData] | Mapping[str, MaceModelData],
        codes: Mapping[str, orm.AbstractCode | None],
        protocol: str | None = None,
        overrides: Mapping | str | os.PathLike | None = None,
        trust: Mapping | None = None,
        *,
        options: dict | None = None,
    ):
        """A builder for thermal expansion of ``structure`` with ``models`` (model_0 drives the NPT MD).

        The one signature of every property work chain (``workflows/properties/registry.py``): ``codes``
        by kind (``md``; ``deviation``: mofmlp-deviation, turns on the ensemble's trust), ``trust`` the
        window ``lo``/``hi`` (eV/Å; default the protocol's).

        ``overrides`` is shaped like the inputs, e.g. ``{"temperatures": [100, 200, 300], "vdos":
        {"enabled": False}}``. Warns (``UserWarning``) when model 0 was not trained with stress labels.
        """
        inputs = cls.get_protocol_inputs(protocol, overrides)
        builder = cls.get_builder()
        builder.structure = structure
        builder.models = cls.models_dict(models)
        warning = stress_warning(builder.models["model_0"])
        if warning:
            warnings.warn(warning, UserWarning, stacklevel=2)
        builder.temperatures = orm.List(list(inputs["temperatures"]))
        builder.pressures_bar = orm.List(list(inputs.get("pressures_bar", [1.0])))
        builder.analysis = orm.Dict(inputs.get("analysis", {}))
        builder.vdos = orm.Dict(inputs.get("vdos", VDOS_DEFAULTS))
        cls.md_builder_inputs(builder, codes["md"], protocol, inputs.get("md", {}), options)
        levels = trust if trust is not None else inputs.get("trust_window")
        fill_trust_inputs(builder, codes.get("deviation"), protocol, options, levels)
        return builder
