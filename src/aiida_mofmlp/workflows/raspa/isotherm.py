"""Classical GCMC with RASPA: Widom insertion, an adsorption isotherm, and loading snapshots.

Rigid framework with UFF Lennard-Jones, rigid guest with its own sites (TraPPE for the built-in guests),
Lorentz-Berthelot mixing, Ewald summation when anything is charged; the number of unit cells follows from
the cutoff and the cell's perpendicular widths. Each pressure and each snapshot loading is its own RASPA
calculation, so a failure at one pressure keeps the others. The calculations are parsed by ``mofmlp.raspa``
(:class:`aiida_mofmlp.parsers.raspa.RaspaParser`); the work chain reads its ``output_parameters`` only.
Parameters and protocols: ``workflows/protocols/raspa.yaml``.
"""

from __future__ import annotations

import copy

import numpy as np
from aiida import orm
from aiida.engine import ToContext, WorkChain, if_
from aiida.plugins import CalculationFactory

from aiida_mofmlp.common.protocols import deep_merge
from aiida_mofmlp.data.guest import GuestMoleculeData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.functions.raspa import (
    FRAMEWORK_NAME,
    cif_charges,
    collect_snapshots,
    extract_widom,
    framework_atoms,
    merge_isotherm,
    prepare_framework,
    write_force_field,
)
from aiida_mofmlp.workflows.protocols.utils import ProtocolMixin, load_overrides, read_protocol_file
from aiida_mofmlp.workflows.raspa import forcefield as ff

RaspaCalculation = CalculationFactory("raspa")

BAR_TO_PA = 1.0e5
CHARGE_CHOICES = ("none", "cif")
PROTOCOL_FILE = "raspa.yaml"
#: the parser plugin of every RASPA calculation (loading blocks, enthalpy, final guest positions)
PARSER_NAME = "mofmlp.raspa"
#: input ports whose values a protocol holds; any other key of ``overrides`` is a parameter
PROTOCOL_PORTS = ("parameters", "options")


def default_parameters() -> dict:
    """The work chain's parameters with their defaults (``default_inputs.parameters`` of raspa.yaml)."""
    return copy.deepcopy(read_protocol_file(PROTOCOL_FILE)["default_inputs"]["parameters"])


#: the valid keys of the ``parameters`` input
PARAMETER_KEYS = frozenset(default_parameters())


def get_protocol(protocol: str | None = None) -> dict:
    """Parameters of a protocol (``fast``, ``balanced``, ``stringent``; default: the file's default)."""
    return IsothermWorkChain.get_protocol_inputs(protocol)["parameters"]


def validate_parameters(parameters: dict) -> str | None:
    """A message describing what is wrong with the work chain ``parameters``, or None when they are valid."""
    unknown = set(parameters) - PARAMETER_KEYS
    if unknown:
        return f"unknown parameters {sorted(unknown)}; valid: {sorted(PARAMETER_KEYS)}"
    p = {**default_parameters(), **parameters}
    if p["framework_charges"] not in CHARGE_CHOICES:
        extra = (
            " (EQeq needs pyeqeq, which is not available in this installation)"
            if p["framework_charges"] == "eqeq"
            else ""
        )
        value = p["framework_charges"]
        return f"framework_charges={value!r} is not valid; choose one of {CHARGE_CHOICES}{extra}"
    for key in ("temperature", "cutoff"):
        if not isinstance(p[key], (int, float)) or p[key] <= 0:
            return f"{key}={p[key]!r} must be a positive number"
    pressures = p["pressures"]
    if p["run_isotherm"] and (
        not pressures or any(not isinstance(x, (int, float)) or x <= 0 for x in pressures)
    ):
        return f"pressures={pressures!r} must be a non-empty list of positive pressures in bar"
    loadings = p["snapshot_loadings"]
    if p["run_snapshots"] and (not loadings or any(not isinstance(n, int) or n < 1 for n in loadings)):
        return (
            f"snapshot_loadings={loadings!r} must be a non-empty list of positive integers (guests per cell)"
        )
    for key in ("widom_cycles", "init_cycles", "prod_cycles", "snapshot_init_cycles", "snapshot_cycles"):
        if not isinstance(p[key], int) or p[key] < (0 if "init" in key else 1):
            return f"{key}={p[key]!r} must be an integer >= {0 if 'init' in key else 1}"
    tolerance = p["equilibration_tolerance"]
    if tolerance is not None and (not isinstance(tolerance, (int, float)) or tolerance <= 0):
        return f"equilibration_tolerance={tolerance!r} must be a positive number or null (no check)"
    if isinstance(p["seed"], bool) or not isinstance(p["seed"], int) or not 0 <= p["seed"] < 2**31:
        return f"seed={p['seed']!r} must be an integer from 0 to 2**31 - 1"
    return None


#: offsets of each kind of RASPA run from ``seed`` (RASPA's ``RandomSeed``; a run's index is added)
SEED_OFFSETS = {"widom": 1, "gcmc": 1001, "snapshot": 2001}


def raspa_seed(seed: int, kind: str, index: int = 0) -> int:
    """RASPA's ``RandomSeed`` of run ``index`` of ``kind`` (widom, gcmc, snapshot): distinct per run, and
    the same for the same ``seed``, so that a rerun of the work chain repeats its Monte Carlo moves."""
    return int(seed) * 10_000 + SEED_OFFSETS[kind] + index


def _validate_guest(guest, _ctx=None) -> str | None:
    """The guest's name names RASPA's molecule file and input lines: letters, digits, underscores."""
    from aiida_mofmlp.data.guest import GUEST_NAME

    if guest is not None and not GUEST_NAME.fullmatch(str(guest.name)):
        return (
            f"guest: name {guest.name!r} is not valid (it becomes RASPA's file name {guest.name}.def); "
            "give a letter followed by at most 31 letters, digits or underscores"
        )
    return guest.force_field_problem() if guest is not None else None


def _validate_inputs(inputs, _ctx) -> str | None:
    if "parameters" not in inputs:
        return None
    parameters = inputs["parameters"].get_dict()
    message = validate_parameters(parameters)
    if message:
        return f"parameters: {message}"
    p = {**default_parameters(), **parameters}
    if "structure" not in inputs:  # exposed by a work chain that sets the structure itself
        return None
    if p["framework_charges"] == "cif":
        if not isinstance(inputs["structure"], orm.CifData):
            return (
                "parameters: framework_charges='cif' needs `structure` to be a CifData with _atom_site_charge"
            )
        try:
            cif_charges(inputs["structure"])
        except ValueError as exc:
            return f"structure: {exc}"
    elements = framework_atoms(inputs["structure"]).get_chemical_symbols()
    try:
        ff.framework_lj_parameters(elements, p["force_field_parameters"])
    except ValueError as exc:
        return f"structure: {exc}"
    return None


class IsothermWorkChain(ProtocolMixin, WorkChain):
    """Widom insertion, a GCMC isotherm and canonical-MC loading snapshots of a rigid guest in a rigid MOF."""

    _protocol_file = PROTOCOL_FILE

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("structure", valid_type=(orm.CifData, orm.StructureData), help="The framework.")
        spec.input("guest", valid_type=GuestMoleculeData, validator=_validate_guest, help="The adsorbate.")
        spec.input("code", valid_type=orm.AbstractCode, help="RASPA2 `simulate` (plugin `raspa`).")
        spec.input(
            "parameters",
            valid_type=orm.Dict,
            default=lambda: orm.Dict({}),
            help=f"Work chain parameters {sorted(PARAMETER_KEYS)}; defaults in protocols/raspa.yaml.",
        )
        spec.input(
            "options",
            valid_type=orm.Dict,
            required=False,
            help="metadata.options of each RASPA calculation (resources, max_wallclock_seconds, ...).",
        )
        spec.inputs.validator = _validate_inputs
        spec.outline(
            cls.setup,
            if_(cls.should_run_widom)(cls.run_widom, cls.inspect_widom),
            if_(cls.should_run_isotherm)(cls.run_isotherm, cls.inspect_isotherm),
            if_(cls.should_run_snapshots)(cls.run_snapshots, cls.inspect_snapshots),
            cls.finalize,
        )
        spec.output("framework", valid_type=orm.CifData, help="The CIF given to RASPA.")
        spec.output("force_field", valid_type=orm.Dict, help="Force-field choices, cutoff and unit cells.")
        spec.output(
            "widom", valid_type=orm.Dict, required=False, help="Henry coefficient, adsorption energy."
        )
        spec.output(
            "isotherm", valid_type=orm.Dict, required=False, help="Loading per pressure, with errors."
        )
        spec.output(
            "snapshots", valid_type=StructureSetData, required=False, help="Framework + guest frames."
        )
        spec.exit_code(
            401, "ERROR_MISSING_FORCE_FIELD_PARAMETERS", message="No force-field parameters for {elements}."
        )
        spec.exit_code(
            410, "ERROR_WIDOM_FAILED", message="The Widom insertion RASPA calculation failed: {reason}"
        )
        spec.exit_code(420, "ERROR_GCMC_FAILED", message="RASPA failed at pressure(s) {pressures} bar.")
        spec.exit_code(
            421,
            "ERROR_GCMC_NOT_EQUILIBRATED",
            message="GCMC not equilibrated at pressure(s) {pressures} bar (loading drift above {tolerance}).",
        )
        spec.exit_code(
            430, "ERROR_SNAPSHOTS_FAILED", message="RASPA failed for snapshot loading(s) {loadings}."
        )

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        structure: orm.CifData | orm.StructureData,
        guest: GuestMoleculeData | str,
        protocol: str | None = None,
        overrides: dict | None = None,
        options: dict | None = None,
    ):
        """A builder from protocol ``fast`` / ``balanced`` / ``stringent``, with ``overrides`` on top.

        ``overrides`` (a dict or the path of a YAML file) holds parameters (``{"cutoff": 8.0, ...}``) and may
        hold ``parameters`` / ``options`` like the input ports; it is deep-merged into the protocol.
        ``options`` are merged into the protocol's ``options``. CIF charges fall back to ``none`` when the
        structure is not a CifData.
        """
        overrides = load_overrides(overrides)
        nested = {key: overrides.pop(key) for key in PROTOCOL_PORTS if key in overrides}
        nested["parameters"] = deep_merge(nested.get("parameters") or {}, overrides)
        if options:
            nested["options"] = deep_merge(nested.get("options") or {}, options)
        inputs = cls.get_protocol_inputs(protocol, nested)
        parameters = inputs["parameters"]
        if parameters["framework_charges"] == "cif" and not isinstance(structure, orm.CifData):
            parameters["framework_charges"] = "none"
        builder = cls.get_builder()
        builder.code = code
        builder.structure = structure
        builder.guest = GuestMoleculeData.builtin(guest) if isinstance(guest, str) else guest
        builder.parameters = orm.Dict(parameters)
        if inputs.get("options"):
            builder.options = orm.Dict(inputs["options"])
        return builder

    # --- steps --------------------------------------------------------------------------------------
    def setup(self):
        """Resolve parameters, write the framework CIF and force-field files, choose the unit cells."""
        self.ctx.p = {**default_parameters(), **self.inputs.parameters.get_dict()}
        full = orm.Dict(self.ctx.p)
        self.ctx.framework = prepare_framework(self.inputs.structure, full)
        atoms = self.ctx.framework.get_ase()
        try:
            ff.framework_lj_parameters(atoms.get_chemical_symbols(), self.ctx.p["force_field_parameters"])
        except ValueError as exc:
            self.report(str(exc))
            return self.exit_codes.ERROR_MISSING_FORCE_FIELD_PARAMETERS.format(elements=str(exc))
        files = write_force_field(self.ctx.framework, self.inputs.guest, full)
        summary = files.pop("summary")
        self.ctx.files = files
        self.ctx.unit_cells = summary["unit_cells"]
        self.ctx.charged = summary["electrostatics"] == "Ewald"
        self.out("framework", self.ctx.framework)
        self.out("force_field", summary)
        self.ctx.failed_gcmc = []
        self.ctx.not_equilibrated = []
        return None

    def _raspa_parameters(self, cycles: int, init_cycles: int, seed: int, pressure_bar: float = 0.0) -> dict:
        p = self.ctx.p
        general = {
            "SimulationType": "MonteCarlo",
            "NumberOfCycles": cycles,
            "NumberOfInitializationCycles": init_cycles,
            "PrintEvery": max(1, (cycles + init_cycles) // 10),
            "RandomSeed": seed,
            "Forcefield": "Local",
            "CutOffVDW": p["cutoff"],
            "CutOffChargeCharge": p["cutoff"],
            "ChargeMethod": "Ewald" if self.ctx.charged else "None",
            "EwaldPrecision": p["ewald_precision"],
            "UseChargesFromCIFFile": p["framework_charges"] == "cif",
            "RemoveAtomNumberCodeFromLabel": True,
        }
        system = {
            FRAMEWORK_NAME: {
                "type": "Framework",
                "UnitCells": " ".join(str(n) for n in self.ctx.unit_cells),
                "ExternalTemperature": p["temperature"],
                "ExternalPressure": pressure_bar * BAR_TO_PA,
            }
        }
        return {"GeneralSettings": general, "System": system, "Component": {}}

    def _builder(self, parameters: dict, label: str):
        builder = RaspaCalculation.get_builder()
        builder.code = self.inputs.code
        builder.parameters = orm.Dict(parameters)
        builder.framework = {FRAMEWORK_NAME: self.ctx.framework}
        builder.file = dict(self.ctx.files)
        if "options" in self.inputs:  # one by one: options left out keep RaspaCalculation's defaults
            for key, value in self.inputs.options.get_dict().items():
                builder.metadata.options[key] = value
        builder.metadata.options.parser_name = PARSER_NAME
        builder.metadata.call_link_label = label
        return builder

    def should_run_widom(self):
        return bool(self.ctx.p["run_widom"])

    def run_widom(self):
        """Widom test-particle insertion: Henry coefficient and average adsorption energy."""
        seed = raspa_seed(self.ctx.p["seed"], "widom")
        parameters = self._raspa_parameters(self.ctx.p["widom_cycles"], 0, seed)
        parameters["Component"][self.inputs.guest.name] = {
            "MoleculeDefinition": "Local",
            "WidomProbability": 1.0,
            "CreateNumberOfMolecules": 0,
        }
        return ToContext(widom=self.submit(RaspaCalculation, **self._builder(parameters, "widom")))

    def inspect_widom(self):
        """Attach the Henry coefficient and adsorption energy."""
        calc = self.ctx.widom
        if not calc.is_finished_ok:
            return self.exit_codes.ERROR_WIDOM_FAILED.format(
                reason=f"exit status {calc.exit_status}: {calc.exit_message}"
            )
        self.out("widom", extract_widom(calc.outputs.output_parameters, orm.Str(self.inputs.guest.name)))
        return None

    def should_run_isotherm(self):
        return bool(self.ctx.p["run_isotherm"])

    def run_isotherm(self):
        """One GCMC calculation per pressure, all at once."""
        p = self.ctx.p
        self.ctx.pressures = {}
        for index, pressure in enumerate(sorted(p["pressures"])):
            key = f"p{index}"
            self.ctx.pressures[key] = float(pressure)
            seed = raspa_seed(p["seed"], "gcmc", index)
            parameters = self._raspa_parameters(p["prod_cycles"], p["init_cycles"], seed, float(pressure))
            parameters["Component"][self.inputs.guest.name] = {
                "MoleculeDefinition": "Local",
                "TranslationProbability": 1.0,
                "RotationProbability": 1.0,
                "ReinsertionProbability": 1.0,
                "SwapProbability": 2.0,
                "CreateNumberOfMolecules": 0,
            }
            self.to_context(
                **{key: self.submit(RaspaCalculation, **self._builder(parameters, f"gcmc_{key}"))}
            )

    def inspect_isotherm(self):
        """Merge the finished pressures into the isotherm; name the failed and non-equilibrated ones."""
        results, failed = {}, []
        for key, pressure in self.ctx.pressures.items():
            calc = self.ctx[key]
            if calc.is_finished_ok:
                results[key] = calc.outputs.output_parameters
            else:
                self.report(
                    f"GCMC at {pressure} bar failed: exit status {calc.exit_status} {calc.exit_message}"
                )
                failed.append(
                    {"pressure": pressure, "exit_status": calc.exit_status, "message": calc.exit_message}
                )
        summary = orm.Dict(
            {"guest": self.inputs.guest.name, "pressures": self.ctx.pressures, "failed": failed}
        )
        isotherm = merge_isotherm(orm.Dict(self.ctx.p), summary, **results)
        self.out("isotherm", isotherm)
        self.ctx.failed_gcmc = [item["pressure"] for item in failed]
        self.ctx.not_equilibrated = [
            pressure
            for pressure, ok in zip(
                isotherm.get("pressure", []), isotherm.get("equilibrated", []), strict=True
            )
            if not ok
        ]
        for pressure in self.ctx.not_equilibrated:
            self.report(f"GCMC at {pressure} bar is not equilibrated (loading drift above tolerance)")

    def should_run_snapshots(self):
        return bool(self.ctx.p["run_snapshots"])

    def run_snapshots(self):
        """One canonical MC run per loading (guests per unit cell x number of unit cells in the box)."""
        p = self.ctx.p
        n_cells = int(np.prod(self.ctx.unit_cells))
        self.ctx.loadings = {}
        for index, loading in enumerate(p["snapshot_loadings"]):
            key = f"n{loading}"
            seed = raspa_seed(p["seed"], "snapshot", index)
            parameters = self._raspa_parameters(p["snapshot_cycles"], p["snapshot_init_cycles"], seed)
            parameters["Component"][self.inputs.guest.name] = {
                "MoleculeDefinition": "Local",
                "TranslationProbability": 1.0,
                "RotationProbability": 1.0,
                "ReinsertionProbability": 1.0,
                "CreateNumberOfMolecules": int(loading) * n_cells,
            }
            self.ctx.loadings[key] = int(loading)
            self.to_context(
                **{key: self.submit(RaspaCalculation, **self._builder(parameters, f"snapshot_{key}"))}
            )

    def inspect_snapshots(self):
        """Turn the final configuration of each canonical run into a framework + guest frame."""
        results, meta, failed = {}, {}, []
        for key, loading in self.ctx.loadings.items():
            calc = self.ctx[key]
            if calc.is_finished_ok:
                results[key] = calc.outputs.output_parameters
                meta[key] = {"loading": loading, "uuid": calc.uuid}
            else:
                failed.append(loading)
        if results:
            summary = orm.Dict(
                {
                    "loadings": meta,
                    "unit_cells": self.ctx.unit_cells,
                    "temperature": self.ctx.p["temperature"],
                    "seed": self.ctx.p["seed"],
                }
            )
            self.out(
                "snapshots", collect_snapshots(self.ctx.framework, self.inputs.guest, summary, **results)
            )
        if failed:
            return self.exit_codes.ERROR_SNAPSHOTS_FAILED.format(loadings=failed)
        return None

    def finalize(self):
        """Exit with a named code when some pressure failed or did not equilibrate (its results are kept)."""
        if self.ctx.failed_gcmc:
            return self.exit_codes.ERROR_GCMC_FAILED.format(pressures=self.ctx.failed_gcmc)
        if self.ctx.not_equilibrated:
            return self.exit_codes.ERROR_GCMC_NOT_EQUILIBRATED.format(
                pressures=self.ctx.not_equilibrated, tolerance=self.ctx.p["equilibration_tolerance"]
            )
        return None


__all__ = [
    "PARAMETER_KEYS",
    "IsothermWorkChain",
    "default_parameters",
    "get_protocol",
    "validate_parameters",
]
