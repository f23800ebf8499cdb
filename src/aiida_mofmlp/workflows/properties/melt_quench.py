"""MeltQuenchWorkChain: a glass by melt-quench MD, checked frame by frame for framework integrity.

One NVT run (LAMMPS + MACE model 0) with a temperature program: heat at a rate to ``melt_temperature``,
hold a plateau, quench at a rate to ``final_temperature``, equilibrate there; segments above
``small_timestep_above`` use ``small_timestep_fs``. Every frame is checked against the starting crystal
(linker bonds broken, metal-N/O coordination); melting must be confirmed at the plateau before the quench
is trusted. Outputs: the glass, RDFs and coordination of crystal vs glass, pore volume and surface area of
both (Zeo++), the integrity timeline. The recipe follows Castel et al., Digital Discovery 2024,
DOI 10.1039/d3dd00236e (amorphous ZIF-4: 300 -> 1500 K at 20 K/ps, 50 ps plateau, quench at 20 K/ps,
100 ps at 300 K; 0.5 fs, 0.25 fs above 1500 K; Zn-N cutoff 2.5 A).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from aiida import orm
from aiida.engine import ToContext

from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.analysis.integrity import INTEGRITY_DEFAULTS
from aiida_mofmlp.workflows.functions.dynamics import analyse_melt_quench
from aiida_mofmlp.workflows.properties.md_base import MdPropertyWorkChain
from aiida_mofmlp.workflows.properties.trust import fill_trust_inputs

PROGRAM_DEFAULTS = {
    "start_temperature": 300.0,
    "melt_temperature": 1500.0,
    "heating_rate": 20.0,
    "plateau_ps": 50.0,
    "quench_rate": 20.0,
    "final_temperature": 300.0,
    "equilibration_ps": 100.0,
    "timestep_fs": 0.5,
    "small_timestep_fs": 0.25,
    "small_timestep_above": 1500.0,
}
PROGRAM_UNITS = {
    "temperature": "K",
    "heating_rate": "K/ps",
    "quench_rate": "K/ps",
    "plateau_ps": "ps",
    "equilibration_ps": "ps",
    "timestep_fs": "fs",
    "small_timestep_above": "K",
}
CHECK_DEFAULTS = {
    **INTEGRITY_DEFAULTS,
    "require_melting": True,
    "rdf_r_max": 6.0,
    "rdf_bins": 120,
    "probe_radius": 1.86,
    "samples_per_atom": 2000,
}


def _ramp(label: str, t0: float, t1: float, rate: float, program: dict) -> list[dict]:
    """Ramp segments from t0 to t1 at ``rate`` (K/ps), split where the small time step starts."""
    threshold = float(program["small_timestep_above"])
    pieces = [(t0, t1)]
    if min(t0, t1) < threshold < max(t0, t1):
        pieces = [(t0, threshold), (threshold, t1)]
    segments = []
    for k, (a, b) in enumerate(pieces):
        hot = max(a, b) > threshold or (min(a, b) >= threshold)
        timestep = float(program["small_timestep_fs"] if hot else program["timestep_fs"])
        duration_fs = abs(b - a) / rate * 1000.0
        segments.append(
            {
                "label": f"{label}{k if len(pieces) > 1 else ''}",
                "temperature": [a, b],
                "steps": round(duration_fs / timestep),
                "timestep_fs": timestep,
            }
        )
    return segments


def melt_quench_segments(program: Mapping) -> list[dict]:
    """The engine's temperature segments (with their time steps) of a melt-quench ``program``.

    Raises ValueError naming the program entry when a temperature is not positive, a rate or duration is
    not positive, or a segment would get no MD steps.
    """
    p = {**PROGRAM_DEFAULTS, **dict(program)}
    unknown = sorted(set(p) - set(PROGRAM_DEFAULTS))
    if unknown:
        raise ValueError(f"program: unknown keys {unknown}; valid: {', '.join(PROGRAM_DEFAULTS)}")
    for key in (
        "start_temperature",
        "melt_temperature",
        "final_temperature",
        "heating_rate",
        "quench_rate",
        "plateau_ps",
        "equilibration_ps",
        "timestep_fs",
        "small_timestep_fs",
    ):
        if not float(p[key]) > 0:
            raise ValueError(f"program: {key} must be > 0, got {p[key]!r}")
    if not float(p["melt_temperature"]) > max(float(p["start_temperature"]), float(p["final_temperature"])):
        raise ValueError(
            f"program: melt_temperature {p['melt_temperature']} K must exceed start_temperature and "
            f"final_temperature ({p['start_temperature']}, {p['final_temperature']} K)"
        )
    melt = float(p["melt_temperature"])
    hot = melt >= float(p["small_timestep_above"])
    plateau_dt = float(p["small_timestep_fs"] if hot else p["timestep_fs"])
    segments = _ramp("heat", float(p["start_temperature"]), melt, float(p["heating_rate"]), p)
    segments.append(
        {
            "label": "plateau",
            "temperature": [melt, melt],
            "timestep_fs": plateau_dt,
            "steps": round(float(p["plateau_ps"]) * 1000.0 / plateau_dt),
        }
    )
    segments += _ramp("quench", melt, float(p["final_temperature"]), float(p["quench_rate"]), p)
    final = float(p["final_temperature"])
    segments.append(
        {
            "label": "glass",
            "temperature": [final, final],
            "timestep_fs": float(p["timestep_fs"]),
            "steps": round(float(p["equilibration_ps"]) * 1000.0 / float(p["timestep_fs"])),
        }
    )
    empty = [s["label"] for s in segments if s["steps"] < 1]
    if empty:
        raise ValueError(
            f"program: segments {empty} get no MD steps (rates too high or durations too short for the time "
            f"step); program {dict(program)}"
        )
    return segments


def validate_program(value: orm.Dict, _ctx=None) -> str | None:
    """The program must give MD steps in every segment."""
    try:
        melt_quench_segments(value.get_dict())
    except (ValueError, TypeError) as error:
        return str(error)
    return None


def validate_checks(value: orm.Dict, _ctx=None) -> str | None:
    """Integrity settings: known keys, positive cutoff and factors with break_factor > bond_factor."""
    settings = {**CHECK_DEFAULTS, **value.get_dict()}
    unknown = sorted(set(settings) - set(CHECK_DEFAULTS))
    if unknown:
        return f"checks: unknown keys {unknown}; valid: {', '.join(CHECK_DEFAULTS)}"
    if not float(settings["cutoff"]) > 0:
        return f"checks: cutoff must be > 0 Angstrom, got {settings['cutoff']}"
    if not float(settings["break_factor"]) > float(settings["bond_factor"]) > 0:
        return (
            f"checks: need break_factor > bond_factor > 0, got {settings['break_factor']} and "
            f"{settings['bond_factor']}"
        )
    return None


class MeltQuenchWorkChain(MdPropertyWorkChain):
    """Melt-quench amorphisation with per-frame integrity, melting check, glass structure and pores."""

    _protocol_file = "melt_quench.yaml"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            "program",
            valid_type=orm.Dict,
            default=lambda: orm.Dict(PROGRAM_DEFAULTS),
            validator=validate_program,
            help="Temperatures (K), heating/quench rates (K/ps), plateau and equilibration (ps), time "
            "steps (fs) and the temperature above which the small one is used.",
        )
        spec.input(
            "checks",
            valid_type=orm.Dict,
            default=lambda: orm.Dict({}),
            validator=validate_checks,
            help="Integrity: bond_factor, break_factor (x covalent radii), cutoff (A), ligands, "
            "lindemann, require_melting; rdf_r_max, rdf_bins; probe_radius (A), samples_per_atom.",
        )
        spec.outline(cls.run_md, cls.analyse, cls.run_trust_step, cls.inspect_trust)
        spec.output(
            "glass", valid_type=StructureSetData, help="The last frame: the glass at final_temperature."
        )
        spec.output(
            "integrity",
            valid_type=orm.Dict,
            help="Broken linker bonds, coordination, melting check, crystal vs glass structure.",
        )
        spec.output(
            "timeline",
            valid_type=orm.ArrayData,
            help="Per frame: step, time (ps), T (K), broken bonds, metal coordination.",
        )
        spec.output("structure", valid_type=orm.ArrayData, help="Metal-ligand RDFs of crystal and glass.")
        spec.output(
            "pores",
            valid_type=orm.Dict,
            help="Pore volume (A^3, cm^3/g) and surface area (A^2, m^2/g) of crystal and glass.",
        )
        spec.exit_code(
            410,
            "ERROR_LINKERS_BROKEN",
            message="Framework integrity failed: linker bonds broke in {n} frames (first at "
            "step {step}); those frames are in `untrusted_frames`.",
        )
        spec.exit_code(
            411,
            "ERROR_NOT_MELTED",
            message="Melting was not confirmed at the plateau: {detail}; the quench is not a glass.",
        )

    def run_md(self):
        segments = melt_quench_segments(self.inputs.program.get_dict())
        self.ctx.segments = segments
        parameters = {**self.md_parameters(), "ensemble": "nvt", "segments": segments, "write_images": True}
        parameters.pop("steps", None)
        parameters.pop("temperature", None)
        parameters["timestep_fs"] = float(
            {**PROGRAM_DEFAULTS, **self.inputs.program.get_dict()}["timestep_fs"]
        )
        total = sum(s["steps"] for s in segments)
        self.report(f"melt-quench MD: {len(segments)} segments, {total} steps")
        return ToContext(md_melt_quench=self.submit_md("melt_quench", parameters))

    def _step_range(self, labels: Sequence[str]) -> list[int]:
        start = 0
        ranges = []
        for segment in self.ctx.segments:
            if segment["label"] in labels:
                ranges.append((start, start + segment["steps"]))
            start += segment["steps"]
        return [min(r[0] for r in ranges), max(r[1] for r in ranges)]

    def analyse(self):
        trajectories = self.finished_trajectories(["melt_quench"])
        if not isinstance(trajectories, dict):
            return trajectories
        trajectory = trajectories["melt_quench"]
        self.ctx.trajectories = trajectories
        checks = {**CHECK_DEFAULTS, **self.inputs.checks.get_dict()}
        parameters = {
            **{k: v for k, v in checks.items() if k != "require_melting"},
            "plateau_steps": self._step_range(["plateau"]),
            "glass_steps": self._step_range(["glass"]),
        }
        try:
            outputs = analyse_melt_quench(
                trajectory,
                self.inputs.structure,
                orm.Dict(parameters),
                metadata={"call_link_label": "analyse_melt_quench"},
            )
        except ValueError as error:
            return self.exit_codes.ERROR_ANALYSIS_FAILED.format(label="melt_quench", detail=str(error))
        for name in ("glass", "integrity", "timeline", "structure", "pores"):
            self.out(name, outputs[name])
        integrity = outputs["integrity"]
        melting = integrity["melting"]
        self.report(
            f"integrity: {len(integrity['broken_frames'])}/{integrity['n_frames']} frames with broken linker "
            f"bonds; coordination {integrity['reference_coordination_mean']:.2f} -> "
            f"{integrity['final_coordination_mean']:.2f}; plateau Lindemann ratio {melting['ratio']:.3g}"
        )
        if "broken_frames" in outputs:
            self.out("untrusted_frames", outputs["broken_frames"])
            steps = outputs["timeline"].get_array("step")
            first = int(steps[integrity["broken_frames"][0]])
            return self.exit_codes.ERROR_LINKERS_BROKEN.format(n=len(integrity["broken_frames"]), step=first)
        if checks["require_melting"] and not melting["melted"]:
            detail = (
                f"metal RMS displacement {melting.get('rms_displacement', float('nan')):.3g} A over the "
                f"plateau is {melting['ratio']:.3g} of the metal spacing (needs > {melting.get('lindemann')})"
            )
            return self.exit_codes.ERROR_NOT_MELTED.format(detail=detail)
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
        """A builder for a melt-quench of ``structure`` (the crystal) with ``models`` (model_0 drives).

        The one signature of every property work chain (``workflows/properties/registry.py``): ``codes``
        by kind (``md``; ``deviation``: mofmlp-deviation, turns on the ensemble's trust), ``trust`` the
        window ``lo``/``hi`` (eV/Å; default the protocol's).

        ``overrides`` is shaped like the inputs, e.g. ``{"program": {"melt_temperature": 1200, "plateau_ps":
        20}, "checks": {"cutoff": 2.6}}``. Bad programs raise ValueError here, before any job runs.
        """
        inputs = cls.get_protocol_inputs(protocol, overrides)
        program = inputs.get("program", {})
        melt_quench_segments(program)
        builder = cls.get_builder()
        builder.structure = structure
        builder.models = cls.models_dict(models)
        builder.program = orm.Dict(program)
        builder.checks = orm.Dict(inputs.get("checks", {}))
        cls.md_builder_inputs(builder, codes["md"], protocol, inputs.get("md", {}), options)
        levels = trust if trust is not None else inputs.get("trust_window")
        fill_trust_inputs(builder, codes.get("deviation"), protocol, options, levels)
        return builder
