"""LammpsMdCalculation: MD or hybrid MD-GCMC in LAMMPS driven by a MACE model (engine ``mofmlp-md``)."""

from __future__ import annotations

import json

from aiida import orm

from aiida_mofmlp.calculations.base import EngineCalculation
from aiida_mofmlp.common.errors import InputError
from aiida_mofmlp.common.frames import write_frames
from aiida_mofmlp.data.guest import GuestMoleculeData
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.lammps.md_settings import RESULTS_FILE, THERMO_FILE, TRAJECTORY_FILE, load_settings

STRUCTURE_FILE = "structure.extxyz"
MODEL_FILE = "model.model"
NATIVE_MODEL_FILE = "native_model.pt"
GUEST_FILE = "guest.json"

#: engine keys set by the CalcJob from input nodes; giving them in ``parameters`` is an error
FILE_KEYS = ("structure", "model", "native_model")

#: exit codes of runs that blew up (the restart work chain retries them with a smaller time step)
UNSTABLE_EXIT_CODES = (401, 402, 403, 404)


def _settings_for_validation(inputs) -> dict:
    parameters = inputs["parameters"].get_dict() if "parameters" in inputs else {}
    return dict(parameters)


def validate_inputs(inputs, _ctx=None) -> str | None:
    """Validate the parameters with the engine's own checks, and their consistency with the input nodes."""
    parameters = _settings_for_validation(inputs)
    given_files = sorted(set(parameters) & set(FILE_KEYS))
    if given_files:
        return f"parameters: {given_files} are set from the input nodes; remove them from the parameters"
    gcmc = parameters.get("gcmc")
    if gcmc is not None:
        if "guest" not in inputs:
            return "parameters: gcmc is set but no `guest` (GuestMoleculeData) input was given"
        gcmc = {**gcmc, "guest": GUEST_FILE}
        parameters["gcmc"] = gcmc
    coupling = parameters.get("coupling", "callback")
    if coupling != "callback":
        if "native_model" not in inputs:
            return (
                f"parameters: coupling {coupling!r} needs the `native_model` input (LAMMPS-converted model)"
            )
        parameters["native_model"] = NATIVE_MODEL_FILE
    uncertainty = parameters.get("uncertainty")
    if uncertainty is not None:
        if uncertainty.get("models"):
            return "parameters: uncertainty.models is set from the `ensemble_models` input; remove it"
        if not inputs.get("ensemble_models"):
            return "parameters: uncertainty is set but `ensemble_models` is empty"
    structure = inputs.get("structure")
    if isinstance(structure, StructureSetData):
        index = int(parameters.get("structure_index", 0))
        if not -structure.count <= index < structure.count:
            return (
                f"parameters: structure_index {index} is out of range for a set of {structure.count} frames"
            )
    try:
        load_settings(parameters)
    except InputError as error:
        return f"parameters: {error}"
    return None


class LammpsMdCalculation(EngineCalculation):
    """Molecular dynamics (NVT/NPT/NVE, temperature programs) or MD-GCMC with LAMMPS + MACE."""

    PARSER_NAME = "mofmlp.lammps_md"
    INPUT_FILENAME = "input.yaml"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            "structure",
            valid_type=(orm.StructureData, StructureSetData),
            help="Initial configuration: a StructureData, or one frame (parameters.structure_index) "
            "of a set; "
            "a set keeps the per-atom guest_id (guest molecules).",
        )
        spec.input("model", valid_type=orm.SinglefileData, help="The MACE model driving the dynamics.")
        spec.input(
            "parameters",
            valid_type=orm.Dict,
            required=False,
            help="Engine settings (see aiida_mofmlp.engines.lammps.md.DEFAULTS); files come from inputs.",
        )
        spec.input("guest", valid_type=GuestMoleculeData, required=False, help="Guest molecule for MD-GCMC.")
        spec.input_namespace(
            "ensemble_models",
            valid_type=orm.SinglefileData,
            dynamic=True,
            required=False,
            help="Other ensemble members for the on-the-fly sigma_max check (parameters.uncertainty).",
        )
        spec.input(
            "native_model",
            valid_type=orm.SinglefileData,
            required=False,
            help="LAMMPS-converted model for coupling 'mliap' or 'mace' (a LAMMPS built with those styles).",
        )
        spec.inputs.validator = validate_inputs

        spec.output(
            "trajectory",
            valid_type=StructureSetData,
            required=False,
            help="Frames (positions, cell, guest_id) with the model's MACE_energy/MACE_forces/MACE_stress.",
        )
        spec.output(
            "thermo",
            valid_type=orm.ArrayData,
            required=False,
            help="Thermo data arrays (eV, K, bar, A^3, ps).",
        )
        spec.output("results", valid_type=orm.Dict, help="Status, step counts, timings and GCMC loadings.")
        spec.default_output_node = "results"

        spec.exit_code(401, "ERROR_MD_NAN", message="MD blew up: non-finite energy/forces: {detail}")
        spec.exit_code(402, "ERROR_MD_ATOMS_TOO_CLOSE", message="MD blew up: atoms too close: {detail}")
        spec.exit_code(
            403, "ERROR_MD_TEMPERATURE_RUNAWAY", message="MD blew up: temperature runaway: {detail}"
        )
        spec.exit_code(404, "ERROR_MD_LOST_ATOMS", message="MD blew up: atoms lost: {detail}")
        spec.exit_code(
            410,
            "ERROR_MD_UNCERTAIN",
            message="Stopped: ensemble sigma_max above the upper trust level: {detail}",
        )
        spec.exit_code(420, "ERROR_LAMMPS_FAILED", message="LAMMPS stopped with an error: {detail}")

    def prepare_for_submission(self, folder):
        parameters = self.inputs.parameters.get_dict() if "parameters" in self.inputs else {}
        config = {"structure": STRUCTURE_FILE, "model": MODEL_FILE, **parameters}
        local_copy_list = [(self.inputs.model.uuid, self.inputs.model.filename, MODEL_FILE)]
        structure = self.inputs.structure
        if isinstance(structure, StructureSetData):
            local_copy_list.append((structure.uuid, structure.filename, STRUCTURE_FILE))
        else:
            with folder.open(STRUCTURE_FILE, "w", encoding="utf8") as handle:
                write_frames([structure.get_ase()], handle)
            config["structure_index"] = 0
        if "guest" in self.inputs:
            guest = self.inputs.guest
            data = {
                "name": guest.name,
                "symbols": list(guest.symbols),
                "positions": [list(map(float, p)) for p in guest.positions],
                "critical_temperature": guest.critical_temperature,
                "critical_pressure": guest.critical_pressure,
                "acentric_factor": guest.acentric_factor,
            }
            with folder.open(GUEST_FILE, "w", encoding="utf8") as handle:
                json.dump(data, handle, indent=2)
            if config.get("gcmc") is not None:
                config["gcmc"] = {**config["gcmc"], "guest": GUEST_FILE}
        if "native_model" in self.inputs:
            node = self.inputs.native_model
            local_copy_list.append((node.uuid, node.filename, NATIVE_MODEL_FILE))
            config["native_model"] = NATIVE_MODEL_FILE
        members = self.inputs.get("ensemble_models", {})
        if config.get("uncertainty") is not None and members:
            names = []
            for key in sorted(members):
                name = f"ensemble_{key}.model"
                local_copy_list.append((members[key].uuid, members[key].filename, name))
                names.append(name)
            config["uncertainty"] = {**config["uncertainty"], "models": names}
        if isinstance(self.inputs.model, MaceModelData) and "head" not in config:
            head = self.inputs.model.base.attributes.get("head", None)
            if head and len(self.inputs.model.base.attributes.get("heads", []) or []) > 1:
                config["head"] = head
        self.write_input_file(folder, config)

        return self.engine_calcinfo(
            folder,
            local_copy_list,
            [
                RESULTS_FILE,
                TRAJECTORY_FILE,
                THERMO_FILE,
                "log.lammps",
            ],
        )
