"""DiffusionWorkChain: guest self-diffusion, guest RDFs and the Arrhenius activation energy.

NVT MD (LAMMPS + MACE model 0 of the ensemble) per temperature at the loading of the input structure;
guest centres of mass from unwrapped coordinates (image flags); the Einstein MSD with D and its error on
the automatically found linear regime; metal-guest and framework-guest RDFs with their first peaks; an
Arrhenius fit of D(T) giving Ea with its error. The recipe follows Liu et al. (H2 in Al-soc-MOF: MSD,
Ea 4.3 kJ/mol, metal-H2 first peak 2.73 A). The ensemble's trust on the trajectories comes from
:mod:`aiida_mofmlp.workflows.properties.trust`.

Its base, :class:`~aiida_mofmlp.workflows.properties.md_base.MdPropertyWorkChain`, is shared with the other
dynamics property work chains.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from aiida import orm
from aiida.engine import ToContext

from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.functions.dynamics import (
    analyse_diffusion,
    fit_arrhenius,
    temperature_key,
    validate_temperatures,
)
from aiida_mofmlp.workflows.properties.md_base import MdPropertyWorkChain
from aiida_mofmlp.workflows.properties.trust import fill_trust_inputs


def validate_diffusion_inputs(inputs, _ctx=None) -> str | None:
    """A guest-free structure cannot give guest diffusion."""
    structure = inputs.get("structure")
    if structure is None:
        return None
    if isinstance(structure, orm.StructureData):
        return (
            "structure: a StructureData carries no guest molecules; give a StructureSetData whose frame 0 "
            "has the per-atom `guest_id` (> 0 for guest atoms), e.g. an MD-GCMC snapshot"
        )
    frame = structure.get_frame(0)
    ids = frame.arrays.get("guest_id")
    if ids is None or not (ids > 0).any():
        return (
            f"structure: StructureSetData<{structure.pk}> frame 0 has no guest molecules (guest_id > 0); "
            "diffusion needs guests: load the framework first (e.g. an MD-GCMC snapshot)"
        )
    return None


class DiffusionWorkChain(MdPropertyWorkChain):
    """Guest self-diffusion D(T) with errors, guest RDFs and the Arrhenius Ea from NVT MD."""

    _protocol_file = "diffusion.yaml"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            "temperatures",
            valid_type=orm.List,
            validator=validate_temperatures,
            help="NVT temperatures in K; two or more give the Arrhenius fit.",
        )
        spec.input(
            "analysis",
            valid_type=orm.Dict,
            default=lambda: orm.Dict({}),
            help="equilibration_ps, tolerance and max_fraction of the linear-regime search, rdf_r_max "
            "(Angstrom), rdf_bins, metals (element list; default: the framework's metals).",
        )
        spec.inputs.validator = validate_diffusion_inputs
        spec.outline(cls.run_md, cls.analyse, cls.run_trust_step, cls.inspect_trust)
        spec.output_namespace(
            "diffusion",
            valid_type=orm.Dict,
            dynamic=True,
            help="Per temperature: D (Angstrom^2/ps) with error, fit window, RDF peaks.",
        )
        spec.output_namespace(
            "curves",
            valid_type=orm.ArrayData,
            dynamic=True,
            help="Per temperature: MSD (Angstrom^2) vs lag (ps) and guest RDFs.",
        )
        spec.output(
            "arrhenius",
            valid_type=orm.Dict,
            required=False,
            help="Ea (eV, kJ/mol) with error and the prefactor from D(T).",
        )

    def run_md(self):
        parameters = {**self.md_parameters(), "ensemble": "nvt", "write_images": True}
        self.ctx.run_keys = []
        running = {}
        for temperature in self.inputs.temperatures.get_list():
            key = temperature_key(temperature)
            self.ctx.run_keys.append(key)
            running[f"md_{key}"] = self.submit_md(key, {**parameters, "temperature": float(temperature)})
        self.report(f"NVT MD at {len(running)} temperatures")
        return ToContext(**running)

    def analyse(self):
        trajectories = self.finished_trajectories(self.ctx.run_keys)
        if not isinstance(trajectories, dict):
            return trajectories
        self.ctx.trajectories = trajectories
        analysis = self.inputs.analysis.get_dict()
        results = {}
        for key, temperature in zip(self.ctx.run_keys, self.inputs.temperatures.get_list(), strict=True):
            try:
                outputs = analyse_diffusion(
                    trajectories[key],
                    orm.Dict({**analysis, "temperature": float(temperature)}),
                    metadata={"call_link_label": f"analyse_{key}"},
                )
            except ValueError as error:
                return self.exit_codes.ERROR_ANALYSIS_FAILED.format(label=key, detail=str(error))
            self.out(f"diffusion.{key}", outputs["result"])
            self.out(f"curves.{key}", outputs["curves"])
            results[key] = outputs["result"]
            result = outputs["result"]
            if result["D"] is None:
                self.report(f"{key}: no D: {result['no_D_reason']}")
            else:
                self.report(
                    f"{key}: D = {result['D']:.4g} +- {result['D_error']:.2g} A^2/ps (fit "
                    f"{result['fit_start_ps']:.3g}-{result['fit_stop_ps']:.3g} ps); "
                    f"{result['dimensionality']}-dimensional, D along the mobile directions "
                    f"{result['D_mobile']:.4g} A^2/ps"
                )
        positive = {k: r for k, r in results.items() if r["D"] is not None and r["D"] > 0}
        if len(positive) >= 2:
            fit = fit_arrhenius(**positive, metadata={"call_link_label": "arrhenius"})
            self.out("arrhenius", fit)
            self.report(
                f"Arrhenius: Ea = {fit['Ea_kJ_per_mol']:.3g} +- {fit['Ea_error_kJ_per_mol']:.2g} kJ/mol"
            )
        elif len(results) >= 2:
            self.report("Arrhenius fit skipped: fewer than two temperatures with D > 0")
        return None

    @classmethod
    def get_builder_from_protocol(
        cls,
        structure: StructureSetData,
        models: Sequence[MaceModelData] | Mapping[str, MaceModelData],
        codes: Mapping[str, orm.AbstractCode | None],
        protocol: str | None = None,
        overrides: Mapping | str | os.PathLike | None = None,
        trust: Mapping | None = None,
        *,
        options: dict | None = None,
    ):
        """A builder for guest diffusion in ``structure`` (guests marked by guest_id) with ``models``.

        The one signature of every property work chain (``workflows/properties/registry.py``): ``codes``
        by kind (``md``; ``deviation``: mofmlp-deviation, turns on the ensemble's trust), ``trust`` the
        window ``lo``/``hi`` (eV/Å; default the protocol's).

        ``overrides`` is shaped like the inputs, e.g. ``{"temperatures": [77, 150], "md": {"md":
        {"parameters": {"steps": 4000}}}, "analysis": {"equilibration_ps": 1.0}}``; ``md`` is merged over
        LammpsMdBaseWorkChain's protocol of the same name..
        """
        inputs = cls.get_protocol_inputs(protocol, overrides)
        builder = cls.get_builder()
        builder.structure = structure
        builder.models = cls.models_dict(models)
        builder.temperatures = orm.List(list(inputs["temperatures"]))
        builder.analysis = orm.Dict(inputs.get("analysis", {}))
        cls.md_builder_inputs(builder, codes["md"], protocol, inputs.get("md", {}), options)
        levels = trust if trust is not None else inputs.get("trust_window")
        fill_trust_inputs(builder, codes.get("deviation"), protocol, options, levels)
        return builder
