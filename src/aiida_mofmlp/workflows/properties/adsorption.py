"""AdsorptionWorkChain (``mofmlp.properties.adsorption``): adsorption properties from a trained MACE ensemble.

Model 0 of the ensemble drives every run; the whole ensemble judges the frames afterwards (trust).

1. MLP MD-GCMC isotherm: one LAMMPS run per pressure (NVT at 0.5 fs, one insertion/deletion attempt
   every 5 MD steps as in Jin et al., Chem. Sci. 2026, DOI 10.1039/D5SC09058J); fugacity = pressure up to
   ``settings.gcmc.peng_robinson_above`` bar, Peng-Robinson above. The loading's equilibration is detected
   (pymbar), its error from block averages of the production part.
2. Classical isotherm at the same conditions with :class:`~aiida_mofmlp.workflows.raspa.isotherm.
   IsothermWorkChain` (RASPA, rigid framework), when ``codes.raspa`` is given.
3. Framework charges for RASPA (``framework_charges``): GFN-xTB Mulliken charges (tblite); REPEAT charges
   (Campana, Mussard, Woo, J. Chem. Theory Comput. 2009, DOI 10.1021/ct9003405; CP2K's periodic
   implementation: Golze, Hutter, Iannuzzi, Phys. Chem. Chem. Phys. 2015, DOI 10.1039/C4CP05838C) or
   plain RESP charges fitted to the electrostatic potential of a CP2K GPW DFT single point (``repeat`` /
   ``resp``, CP2K protocol ``settings.cp2k.protocol``, PBE-D3 by default); computed charges are made
   exactly neutral. Or the charges of a CIF; ``none`` leaves the framework uncharged.
4. Heat of adsorption from NVT MD energies (Eq. 2 of the paper above) at ``loadings``, with errors from the
   statistical inefficiency of each series, beside RASPA's fluctuation enthalpy.
5. MLP Widom insertion on the framework NVT snapshots: Henry coefficient and <dU> with errors.
6. Trust: the ensemble's sigma_max on every MD-GCMC and NVT trajectory (shared trust helper).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from aiida import orm
from aiida.engine import ToContext, WorkChain, if_

from aiida_mofmlp.calculations.widom import WidomCalculation
from aiida_mofmlp.calculations.xtb import XtbCalculation
from aiida_mofmlp.common.protocols import deep_merge
from aiida_mofmlp.data.guest import GuestMoleculeData
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.parsers.parse_raw.cp2k import RESP_CHARGES_FILE
from aiida_mofmlp.workflows.cp2k.base import Cp2kSinglePointWorkChain
from aiida_mofmlp.workflows.cp2k.inputs import check_elements, is_xtb
from aiida_mofmlp.workflows.functions.adsorption import (
    CP2K_CHARGE_METHODS,
    assemble_isotherm,
    compute_heat_of_adsorption,
    framework_charges_from_cp2k,
    framework_charges_from_xtb,
    framework_frame,
    gas_phase_guest,
    loaded_framework,
    max_guests_that_fit,
)
from aiida_mofmlp.workflows.lammps.base import LammpsMdBaseWorkChain
from aiida_mofmlp.workflows.properties.trust import PropertyTrustMixin, define_trust_spec, fill_trust_inputs
from aiida_mofmlp.workflows.protocols.utils import ProtocolMixin, load_overrides
from aiida_mofmlp.workflows.raspa.isotherm import IsothermWorkChain

#: framework charge methods
CHARGE_METHODS = ("xtb", "repeat", "resp", "cif", "none")
#: the methods whose charges the work chain computes (and hands to RASPA as a charged CIF)
COMPUTED_CHARGE_METHODS = ("xtb", *CP2K_CHARGE_METHODS)
#: engine keys of the gcmc block that the work chain sets itself or that are not engine keys
_GCMC_CHAIN_KEYS = ("timestep_fs", "thermo_interval", "dump_interval", "peng_robinson_above")


def _set_options(builder, options: Mapping) -> None:
    """Set ``options`` one by one on a CalcJob builder (options left out keep the CalcJob's defaults)."""
    for key, value in options.items():
        builder.metadata.options[key] = value


def _model_species(models: Mapping) -> dict[str, list[str]]:
    return {label: sorted(model.species) for label, model in models.items()}


def resp_section(method: str, extra: Mapping | None = None) -> dict:
    """CP2K's ``&FORCE_EVAL/&PROPERTIES/&RESP`` for ``method`` (repeat | resp), ``extra`` deep-merged in.

    ``repeat`` fits the variance of the periodic electrostatic potential (``USE_REPEAT_METHOD``) without
    restraints; ``resp`` is the plain fit with heavy atoms restrained to zero (CP2K's default). Both
    constrain the total charge to an integer and print :data:`RESP_CHARGES_FILE`. ``extra`` holds the
    sampling (``SPHERE_SAMPLING`` by default, ``settings.cp2k.resp``) and any other &RESP keyword.
    """
    repeat = method == "repeat"
    section = {
        "USE_REPEAT_METHOD": repeat,
        "RESTRAIN_HEAVIES_TO_ZERO": not repeat,
        "INTEGER_TOTAL_CHARGE": True,
    }
    section = deep_merge(section, dict(extra or {}))
    section["PRINT"] = deep_merge(section.get("PRINT") or {}, {"RESP_CHARGES_TO_FILE": {}})
    return section


def _cp2k_protocol(settings: Mapping) -> dict:
    """The CP2K protocol of the charge calculation (``settings.cp2k``: protocol and overrides)."""
    cp2k = settings.get("cp2k") or {}
    return Cp2kSinglePointWorkChain.get_protocol_inputs(cp2k.get("protocol"), cp2k.get("overrides") or None)


def _check_cp2k_charges(method: str, settings: Mapping, structure: orm.StructureData | None) -> str | None:
    """Why the CP2K charge calculation of ``method`` cannot run with ``settings``, or None."""
    try:
        protocol = _cp2k_protocol(settings)
    except ValueError as exc:
        return f"settings.cp2k: {exc}"
    if protocol.get("method") == "xtb" or is_xtb(protocol.get("parameters") or {}):
        return (
            f"framework_charges: '{method}' fits charges to the electrostatic potential of a GPW DFT single "
            f"point, but CP2K protocol {protocol['name']!r} of settings.cp2k is GFN1-xTB; use 'xtb' charges "
            "for the xTB protocol, or a DFT protocol (settings.cp2k.protocol 'balanced' or 'stringent', "
            "PBE-D3)"
        )
    if structure is not None:
        message = check_elements(protocol, structure.get_symbols_set())
        if message:
            return f"structure: {message}"
    return None


def cp2k_charges_builder(
    code: orm.AbstractCode,
    structure: orm.StructureData,
    method: str,
    cp2k: Mapping,
    options: Mapping | None = None,
):
    """Builder of the CP2K charge calculation: a Cp2kSinglePointWorkChain of ``structure`` under CP2K
    protocol ``cp2k["protocol"]`` (``cp2k["overrides"]`` merged in) with the &RESP section of ``method``
    (:func:`resp_section`, ``cp2k["resp"]`` merged in) and CP2K's charge file added to the retrieved files.

    Raises ValueError for an xTB protocol or elements the protocol does not cover.
    """
    message = _check_cp2k_charges(method, {"cp2k": cp2k}, structure)
    if message:
        raise ValueError(message)
    resp = resp_section(method, cp2k.get("resp"))
    overrides = deep_merge(
        cp2k.get("overrides") or {}, {"parameters": {"FORCE_EVAL": {"PROPERTIES": {"RESP": resp}}}}
    )
    builder = Cp2kSinglePointWorkChain.get_builder_from_protocol(
        code, structure, protocol=cp2k.get("protocol"), overrides=overrides, options=options
    )
    builder.cp2k.settings = orm.Dict({"additional_retrieve_list": [RESP_CHARGES_FILE]})
    return builder


def validate_inputs(inputs, _ctx=None) -> str | None:
    """Everything that can be checked before any job runs (see the module documentation)."""
    models = inputs.get("models", {})
    if not models:
        return "models: give at least one MACE model (model_0 drives; more models give the trust)"
    species = _model_species(models)
    distinct = {tuple(value) for value in species.values()}
    if len(distinct) > 1:
        listing = "; ".join(f"{label}: {', '.join(value)}" for label, value in sorted(species.items()))
        return f"models: the ensemble mixes species ({listing}); every model must know the same elements"
    known = set(next(iter(species.values())))
    guest, structure = inputs.get("guest"), inputs.get("structure")
    if known and guest is not None:
        missing = sorted(set(guest.symbols) - known)
        if missing:
            return (
                f"guest: elements {missing} of {guest.name} are missing from the models' species "
                f"{sorted(known)}"
            )
    if known and structure is not None:
        missing = sorted(set(structure.get_symbols_set()) - known)
        if missing:
            return f"structure: elements {missing} are missing from the models' species {sorted(known)}"
    pressures = list(inputs["pressures"].get_list()) if "pressures" in inputs else []
    if not pressures or any(not float(p) > 0 for p in pressures):
        return f"pressures: give one or more pressures > 0 bar, got {pressures}"
    if "temperature" in inputs and not float(inputs["temperature"].value) > 0:
        return f"temperature: must be > 0 K, got {inputs['temperature'].value}"
    loadings = list(inputs["loadings"].get_list()) if "loadings" in inputs else []
    if any(int(n) != n or int(n) < 1 for n in loadings):
        return f"loadings: guests per cell must be positive integers, got {loadings}"
    if loadings and guest is not None and structure is not None:
        limit = max_guests_that_fit(structure.get_ase(), list(guest.symbols))
        too_many = [int(n) for n in loadings if int(n) > limit]
        if too_many:
            return (
                f"loadings: {too_many} {guest.name} per cell do not fit in this cell (at most {limit} by "
                "free volume over the guest's van der Waals volume); give smaller loadings"
            )
    method = inputs["framework_charges"].value if "framework_charges" in inputs else "none"
    if method not in CHARGE_METHODS:
        return f"framework_charges: {method!r} is not valid; valid: {', '.join(CHARGE_METHODS)}"
    codes = inputs.get("codes", {})
    if method == "xtb" and "raspa" in codes and "xtb" not in codes:
        return "framework_charges: 'xtb' needs codes.xtb (mofmlp-xtb); give it or use 'none'"
    if method in CP2K_CHARGE_METHODS and "raspa" in codes and "cp2k" not in codes:
        return f"framework_charges: '{method}' needs codes.cp2k (mofmlp-cp2k); give it or use 'xtb' or 'none'"
    if method == "cif" and "framework_cif" not in inputs:
        return "framework_charges: 'cif' needs the `framework_cif` input (a CifData with _atom_site_charge)"
    settings = inputs["settings"].get_dict() if "settings" in inputs else {}
    if method in CP2K_CHARGE_METHODS:
        defaults = AdsorptionWorkChain.get_protocol_inputs(None)["settings"]
        message = _check_cp2k_charges(method, deep_merge(defaults, settings), structure)
        if message:
            return message
    above = float(settings.get("gcmc", {}).get("peng_robinson_above", 1.0))
    if guest is not None and any(float(p) > above for p in pressures):
        constants = (guest.critical_temperature, guest.critical_pressure, guest.acentric_factor)
        if None in constants:
            return (
                f"guest: {guest.name} lacks critical constants for the Peng-Robinson fugacity used above "
                f"{above} bar; give them or keep pressures <= {above} bar"
            )
    return None


class AdsorptionWorkChain(PropertyTrustMixin, ProtocolMixin, WorkChain):
    """Isotherm (MLP MD-GCMC and RASPA), heat of adsorption (MD, Widom, RASPA), Henry coefficient, trust."""

    _protocol_file = "adsorption.yaml"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("structure", valid_type=orm.StructureData, help="The framework (one cell).")
        spec.input("guest", valid_type=GuestMoleculeData, help="The adsorbate (rigid in GCMC and Widom).")
        spec.input_namespace(
            "models",
            valid_type=MaceModelData,
            dynamic=True,
            help="The MACE ensemble; model_0 (first label in sorted order) drives every run.",
        )
        spec.input("temperature", valid_type=orm.Float, default=lambda: orm.Float(298.0), help="K.")
        spec.input("pressures", valid_type=orm.List, help="Pressures (bar) of the isotherm.")
        spec.input(
            "loadings",
            valid_type=orm.List,
            default=lambda: orm.List([1]),
            help="Guests per cell of the NVT runs for the heat of adsorption.",
        )
        spec.input(
            "framework_charges",
            valid_type=orm.Str,
            default=lambda: orm.Str("none"),
            help="Charges of the framework in RASPA: xtb (GFN1-xTB Mulliken, codes.xtb) | repeat | resp "
            "(fitted to the electrostatic potential of a CP2K DFT single point, codes.cp2k, CP2K protocol "
            "settings.cp2k) | cif | none. Computed charges are made exactly neutral.",
        )
        spec.input(
            "framework_cif",
            valid_type=orm.CifData,
            required=False,
            help="CIF with _atom_site_charge, for framework_charges 'cif' (same atoms as `structure`).",
        )
        spec.input_namespace("codes", help="Codes of the jobs.")
        spec.input("codes.md", valid_type=orm.AbstractCode, help="mofmlp-md (LAMMPS + MACE).")
        spec.input("codes.widom", valid_type=orm.AbstractCode, help="mofmlp-widom.")
        spec.input(
            "codes.raspa", valid_type=orm.AbstractCode, required=False, help="RASPA2 (classical isotherm)."
        )
        spec.input("codes.xtb", valid_type=orm.AbstractCode, required=False, help="mofmlp-xtb (charges).")
        spec.input(
            "codes.cp2k",
            valid_type=orm.AbstractCode,
            required=False,
            help="CP2K (REPEAT / RESP charges, framework_charges repeat | resp).",
        )
        spec.input(
            "settings",
            valid_type=orm.Dict,
            default=lambda: orm.Dict({}),
            help="Sections gcmc, nvt, widom, raspa, xtb, cp2k (protocols/adsorption.yaml); missing keys "
            "take the defaults there.",
        )
        spec.input("options", valid_type=orm.Dict, required=False, help="metadata.options of every job.")
        define_trust_spec(spec)
        spec.inputs.validator = validate_inputs

        spec.outline(
            cls.setup,
            if_(cls.should_compute_charges)(cls.run_charges, cls.inspect_charges),
            cls.run_simulations,
            cls.inspect_simulations,
            cls.run_widom,
            cls.inspect_widom,
            cls.run_property_trust,
            cls.inspect_trust,
            cls.results,
        )
        spec.output(
            "isotherm",
            valid_type=orm.Dict,
            help="Per pressure (bar): MLP loading (mol/kg, molecules/cell) with block-average errors and "
            "detected equilibration time; RASPA's loadings with errors when run.",
        )
        spec.output(
            "heat_of_adsorption",
            valid_type=orm.Dict,
            help="kJ/mol with errors: MLP MD per loading (Eq. 2), MLP Widom, RASPA fluctuation formula.",
        )
        spec.output("widom", valid_type=orm.Dict, help="MLP Widom: Henry coefficient (mol/kg/Pa), <dU>.")
        spec.output(
            "framework_charges", valid_type=orm.ArrayData, required=False, help="Charges (e) used by RASPA."
        )
        spec.exit_code(
            310, "ERROR_CHARGES_FAILED", message="The framework charge calculation failed: {detail}"
        )
        spec.exit_code(410, "ERROR_MLP_RUN_FAILED", message="MLP runs failed: {detail}")
        spec.exit_code(420, "ERROR_WIDOM_FAILED", message="The MLP Widom insertion failed: {detail}")

    # --- builder -------------------------------------------------------------------------------------

    @classmethod
    def get_builder_from_protocol(
        cls,
        structure: orm.StructureData,
        models: Mapping[str, MaceModelData] | list[MaceModelData],
        codes: Mapping[str, orm.AbstractCode | None],
        protocol: str | None = None,
        overrides: Mapping | str | os.PathLike | None = None,
        trust: Mapping | None = None,
        *,
        options: dict | None = None,
        guest: GuestMoleculeData | str,
    ):
        """A builder from protocol ``fast`` / ``balanced`` / ``stringent`` of ``adsorption.yaml``.

        The one signature of every property work chain (``workflows/properties/registry.py``): ``codes``
        by kind (``md``, ``widom``, optional ``raspa``, ``xtb``, ``cp2k``; ``deviation``: mofmlp-deviation,
        turns on the ensemble's trust), ``trust`` the window ``lo``/``hi`` (eV/Å; default the protocol's);
        ``guest`` a GuestMoleculeData or a built-in name. ``models`` is the ensemble (a list is labelled
        ``model_0``, ...). ``overrides`` is shaped like the inputs, e.g. ``{"pressures": [0.5, 1.0],
        "settings": {"gcmc": {"production_steps": 400}}}``. Without an xTB code the ``xtb`` charges of the
        fast protocol fall back to ``none``.
        """
        inputs = cls.get_protocol_inputs(protocol, load_overrides(overrides))
        valid = {"temperature", "pressures", "loadings", "framework_charges", "settings", "options"}
        unknown = sorted(set(inputs) - valid)
        if unknown:
            raise ValueError(f"overrides: unknown inputs {unknown} of {cls.__name__}; valid: {sorted(valid)}")
        builder = cls.get_builder()
        builder.structure = structure
        builder.guest = GuestMoleculeData.builtin(guest) if isinstance(guest, str) else guest
        if not isinstance(models, Mapping):
            models = {f"model_{index}": model for index, model in enumerate(models)}
        builder.models = dict(models)
        for key, code in codes.items():
            if code is not None and key != "deviation":
                builder.codes[key] = code
        charges = inputs["framework_charges"]
        if charges == "xtb" and codes.get("xtb") is None:
            charges = "none"
        builder.temperature = orm.Float(inputs["temperature"])
        builder.pressures = orm.List([float(p) for p in inputs["pressures"]])
        builder.loadings = orm.List([int(n) for n in inputs["loadings"]])
        builder.framework_charges = orm.Str(charges)
        builder.settings = orm.Dict(inputs["settings"])
        builder.options = orm.Dict(deep_merge(inputs["options"], dict(options or {})))
        fill_trust_inputs(builder, codes.get("deviation"), protocol, dict(options or {}) or None, trust)
        return builder

    # --- steps ---------------------------------------------------------------------------------------

    def setup(self):
        """Resolve settings; pick model 0."""
        defaults = self.get_protocol_inputs(None)["settings"]
        self.ctx.settings = deep_merge(defaults, self.inputs.settings.get_dict())
        self.ctx.options = self.inputs.options.get_dict() if "options" in self.inputs else {}
        self.ctx.driver = self.inputs.models[sorted(self.inputs.models)[0]]
        self.ctx.temperature = float(self.inputs.temperature.value)
        self.ctx.pressures = {
            f"p{i}": float(p) for i, p in enumerate(sorted(self.inputs.pressures.get_list()))
        }
        self.ctx.raspa_structure = None

    def should_compute_charges(self):
        method = self.inputs.framework_charges.value
        if method in CP2K_CHARGE_METHODS:
            return "cp2k" in self.inputs.codes
        return method == "xtb" and "xtb" in self.inputs.codes

    def run_charges(self):
        """A GFN-xTB single point with Mulliken charges, or a CP2K DFT single point with a REPEAT/RESP fit."""
        method = self.inputs.framework_charges.value
        if method in CP2K_CHARGE_METHODS:
            return self._run_cp2k_charges(method)
        frames = framework_frame(self.inputs.structure)
        builder = XtbCalculation.get_builder()
        builder.code = self.inputs.codes.xtb
        builder.structures = frames
        builder.parameters = orm.Dict({**self.ctx.settings.get("xtb", {}), "charges": True})
        _set_options(builder, self.ctx.options)
        builder.metadata.call_link_label = "charges_xtb"
        return ToContext(charges=self.submit(builder))

    def _run_cp2k_charges(self, method: str):
        """Cp2kSinglePointWorkChain with &PROPERTIES/&RESP; the charge file comes back in ``retrieved``."""
        builder = cp2k_charges_builder(
            self.inputs.codes.cp2k,
            self.inputs.structure,
            method,
            self.ctx.settings.get("cp2k") or {},
            self.ctx.options or None,
        )
        builder.metadata.call_link_label = f"charges_{method}"
        return ToContext(charges=self.submit(builder))

    def inspect_charges(self):
        """Charges node (sums to zero) and the charged CIF for RASPA."""
        calc = self.ctx.charges
        method = self.inputs.framework_charges.value
        needed = "resp_charges" if method in CP2K_CHARGE_METHODS else "labelled"
        if not calc.is_finished_ok or needed not in calc.outputs:
            return self.exit_codes.ERROR_CHARGES_FAILED.format(
                detail=f"{calc.process_label}<{calc.pk}> exit {calc.exit_status}: {calc.exit_message}"
                + ("" if needed in calc.outputs else f" (no `{needed}` output)")
            )
        if method in CP2K_CHARGE_METHODS:
            result = framework_charges_from_cp2k(
                self.inputs.structure, calc.outputs.resp_charges, orm.Str(method)
            )
        else:
            result = framework_charges_from_xtb(self.inputs.structure, calc.outputs.labelled)
        self.out("framework_charges", result["charges"])
        self.ctx.raspa_structure = result["cif"]
        return None

    def _md_builder(self, structure, parameters: dict, label: str, guest: bool = False):
        builder = LammpsMdBaseWorkChain.get_builder()
        builder.md.code = self.inputs.codes.md
        builder.md.structure = structure
        builder.md.model = self.ctx.driver
        builder.md.parameters = orm.Dict(parameters)
        builder.md.metadata.options = deep_merge(
            {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}}, self.ctx.options
        )
        if guest:
            builder.md.guest = self.inputs.guest
        builder.metadata.call_link_label = label
        return builder

    def _gcmc_parameters(self, pressure: float, index: int) -> dict:
        gcmc = dict(self.ctx.settings["gcmc"])
        engine = {key: value for key, value in gcmc.items() if key not in _GCMC_CHAIN_KEYS}
        engine["pressures_bar"] = [pressure]
        engine["fugacity"] = "peng_robinson" if pressure > float(gcmc["peng_robinson_above"]) else "pressure"
        return {
            "ensemble": "nvt",
            "temperature": self.ctx.temperature,
            "timestep_fs": float(gcmc["timestep_fs"]),
            "thermo_interval": int(gcmc["thermo_interval"]),
            "dump_interval": int(gcmc["dump_interval"]),
            "seed": 1000 + index,
            "gcmc": engine,
        }

    def _nvt_parameters(self, seed: int) -> dict:
        nvt = self.ctx.settings["nvt"]
        return {
            "ensemble": "nvt",
            "temperature": self.ctx.temperature,
            "timestep_fs": float(nvt["timestep_fs"]),
            "steps": int(nvt["steps"]),
            "thermo_interval": int(nvt["thermo_interval"]),
            "dump_interval": int(nvt["dump_interval"]),
            "seed": seed,
        }

    def run_simulations(self):
        """MD-GCMC per pressure, NVT of the empty, loaded and gas-phase systems, and RASPA, all at once."""
        running = {}
        for index, (key, pressure) in enumerate(self.ctx.pressures.items()):
            builder = self._md_builder(
                self.inputs.structure, self._gcmc_parameters(pressure, index), f"gcmc_{key}", guest=True
            )
            running[f"gcmc_{key}"] = self.submit(builder)
        running["nvt_framework"] = self.submit(
            self._md_builder(self.inputs.structure, self._nvt_parameters(2000), "nvt_framework")
        )
        box = orm.Float(float(self.ctx.settings["nvt"]["gas_box"]))
        gas = gas_phase_guest(self.inputs.guest, box)
        running["nvt_gas"] = self.submit(self._md_builder(gas, self._nvt_parameters(2001), "nvt_gas"))
        self.ctx.loadings = sorted({int(n) for n in self.inputs.loadings.get_list()})
        for n in self.ctx.loadings:
            loaded = loaded_framework(self.inputs.structure, self.inputs.guest, orm.Int(n), orm.Int(3000 + n))
            running[f"nvt_n{n}"] = self.submit(
                self._md_builder(loaded, self._nvt_parameters(3000 + n), f"nvt_n{n}")
            )
        if "raspa" in self.inputs.codes:
            running["raspa"] = self.submit(self._raspa_builder())
        self.report(f"submitted {len(running)} runs: {', '.join(sorted(running))}")
        return ToContext(**running)

    def _raspa_builder(self):
        raspa = self.ctx.settings["raspa"]
        method = self.inputs.framework_charges.value
        structure = self.inputs.structure
        if method == "cif":
            structure = self.inputs.framework_cif
        elif method in COMPUTED_CHARGE_METHODS and self.ctx.raspa_structure is not None:
            structure = self.ctx.raspa_structure
        parameters = {
            **raspa.get("parameters", {}),
            "temperature": self.ctx.temperature,
            "pressures": list(self.ctx.pressures.values()),
            "framework_charges": "cif" if method in ("cif", *COMPUTED_CHARGE_METHODS) else "none",
        }
        builder = IsothermWorkChain.get_builder_from_protocol(
            self.inputs.codes.raspa,
            structure,
            self.inputs.guest,
            protocol=raspa.get("protocol"),
            overrides={"parameters": parameters},
            options=self.ctx.options or None,
        )
        builder.metadata.call_link_label = "raspa_isotherm"
        return builder

    def inspect_simulations(self):
        """Every MLP run must have finished; RASPA's outputs are used when present."""
        keys = [f"gcmc_{key}" for key in self.ctx.pressures] + ["nvt_framework", "nvt_gas"]
        keys += [f"nvt_n{n}" for n in self.ctx.loadings]
        failed = [
            f"{key} ({self.ctx[key].process_label}<{self.ctx[key].pk}> exit {self.ctx[key].exit_status})"
            for key in keys
            if not self.ctx[key].is_finished_ok
        ]
        if failed:
            return self.exit_codes.ERROR_MLP_RUN_FAILED.format(detail=", ".join(failed))
        raspa = self.ctx.get("raspa")
        if raspa is not None and not raspa.is_finished_ok:
            self.report(
                f"RASPA isotherm {raspa.process_label}<{raspa.pk}> exit {raspa.exit_status}; outputs kept"
            )
        return None

    def run_widom(self):
        """MLP Widom insertion into the framework NVT snapshots."""
        builder = WidomCalculation.get_builder()
        builder.code = self.inputs.codes.widom
        builder.frames = self.ctx.nvt_framework.outputs.trajectory
        builder.model = self.ctx.driver
        builder.guest = self.inputs.guest
        builder.parameters = orm.Dict({**self.ctx.settings["widom"], "temperature": self.ctx.temperature})
        _set_options(builder, self.ctx.options)
        builder.metadata.call_link_label = "widom"
        return ToContext(widom=self.submit(builder))

    def inspect_widom(self):
        calc = self.ctx.widom
        if not calc.is_finished_ok:
            return self.exit_codes.ERROR_WIDOM_FAILED.format(
                detail=f"{calc.process_label}<{calc.pk}> exit {calc.exit_status}: {calc.exit_message}"
            )
        self.out("widom", calc.outputs.widom)
        return None

    def run_property_trust(self):
        """Ensemble deviation on every MD-GCMC and NVT trajectory."""
        keys = [f"gcmc_{key}" for key in self.ctx.pressures] + ["nvt_framework"]
        keys += [f"nvt_n{n}" for n in self.ctx.loadings]
        return self.run_trust({key: self.ctx[key].outputs.trajectory for key in keys})

    def results(self):
        """Isotherm and heat of adsorption from the runs (calcfunctions)."""
        nodes = {}
        for key in self.ctx.pressures:
            run = self.ctx[f"gcmc_{key}"]
            nodes[f"thermo_{key}"] = run.outputs.thermo
            nodes[f"results_{key}"] = run.outputs.results
        nodes["widom"] = self.ctx.widom.outputs.widom  # the empty-box weight of each MD-GCMC loading
        raspa = self.ctx.get("raspa")
        if raspa is not None and "isotherm" in raspa.outputs:
            nodes["raspa_isotherm"] = raspa.outputs.isotherm
        parameters = orm.Dict(
            {"pressures": self.ctx.pressures, "n_blocks": int(self.ctx.settings["gcmc"]["n_blocks"])}
        )
        self.out("isotherm", assemble_isotherm(parameters, **nodes))
        energies = {
            "thermo_framework": self.ctx.nvt_framework.outputs.thermo,
            "thermo_gas": self.ctx.nvt_gas.outputs.thermo,
            "widom": self.ctx.widom.outputs.widom,
        }
        energies.update({f"thermo_n{n}": self.ctx[f"nvt_n{n}"].outputs.thermo for n in self.ctx.loadings})
        if "raspa_isotherm" in nodes:
            energies["raspa_isotherm"] = nodes["raspa_isotherm"]
        if raspa is not None and "widom" in raspa.outputs:
            energies["raspa_widom"] = raspa.outputs.widom
        heat = compute_heat_of_adsorption(self.inputs.temperature, **energies)
        self.out("heat_of_adsorption", heat)
        md = ", ".join(
            f"N={row['n_guests']}: {row['value']:.1f}+-{row['error']:.1f}" for row in heat["mlp_md"]
        )
        self.report(f"heat of adsorption (kJ/mol) MLP MD {md}; Widom {heat['mlp_widom']['value']:.1f}")
