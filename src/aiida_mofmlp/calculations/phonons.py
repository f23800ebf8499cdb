"""PhononsCalculation: relaxation, phonons, bulk modulus, QHA and model-card tasks with ``mofmlp-phonons``."""

from __future__ import annotations

import numpy as np
from aiida import orm

from aiida_mofmlp.calculations.base import EngineCalculation
from aiida_mofmlp.common.frames import frames_to_text
from aiida_mofmlp.common.geometry import perpendicular_widths, supercell_for_cutoff
from aiida_mofmlp.data.guest import GuestMoleculeData
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.phonons.run import PHONONS_DEFAULTS, TASKS

STRUCTURE_FILE = "structure.extxyz"
MODEL_FILE = "model.model"
GUEST_FILE = "guest.extxyz"
FRAMES_FILE = "validation.extxyz"
#: the engine parameters a CalcJob may set (the file names come from the input nodes)
PARAMETER_KEYS = sorted(set(PHONONS_DEFAULTS))


def model_lacks_stress(model: MaceModelData) -> str | None:
    """Why ``model`` cannot be trusted for stresses, or None when nothing says so.

    A model lacks stress when its node says ``stress_trained: False`` or when it was fine-tuned by a job
    whose ``parameters.stress_weight`` was 0 (the default of ``mofmlp-train``).
    """
    if model.base.attributes.get("stress_trained", None) is False:
        return "its node says stress_trained: False"
    creator = model.creator
    if creator is not None and "parameters" in creator.inputs:
        weight = float(creator.inputs.parameters.get_dict().get("stress_weight", 0.0) or 0.0)
        if weight <= 0.0:
            return f"it was fine-tuned by {creator.process_label}<{creator.pk}> with stress_weight 0"
    return None


def _validate_parameters(params: dict, structure, model) -> str | None:
    unknown = sorted(set(params) - set(PARAMETER_KEYS))
    if unknown:
        return f"parameters: unknown keys {unknown}; valid: {PARAMETER_KEYS}"
    for section, defaults in PHONONS_DEFAULTS.items():
        if isinstance(defaults, dict) and isinstance(params.get(section), dict):
            extra = sorted(set(params[section]) - set(defaults) - {"guest", "frames"})
            if extra:
                return f"parameters.{section}: unknown keys {extra}; valid: {sorted(defaults)}"
    tasks = params.get("tasks", PHONONS_DEFAULTS["tasks"])
    bad = [task for task in tasks if task not in TASKS]
    if bad or not tasks:
        return f"parameters.tasks: {tasks!r} is not valid; choose from {list(TASKS)}"
    method = (params.get("eos") or {}).get("method", PHONONS_DEFAULTS["eos"]["method"])
    if method not in ("energy", "stress", "both"):
        return f"parameters.eos.method: {method!r} is not valid; valid: energy, stress, both"
    if "eos" in tasks and method in ("stress", "both") and model is not None:
        reason = model_lacks_stress(model)
        if reason:
            return (
                f"parameters.eos.method: {method!r} needs a model trained on stress, but model <{model.pk}> "
                f"lacks stress ({reason}); use eos.method 'energy' or a model trained with stress_weight > 0"
            )
    supercell = (params.get("phonons") or {}).get("supercell")
    if supercell is not None and structure is not None and model is not None and model.r_max:
        cell = np.asarray(structure.cell)
        needed = supercell_for_cutoff(cell, model.r_max)
        widths = perpendicular_widths(cell) * np.asarray(supercell)
        if np.any(widths < 2.0 * model.r_max - 1e-6):
            suggestion = [max(int(a), b) for a, b in zip(supercell, needed, strict=True)]
            return (
                f"parameters.phonons.supercell: {list(supercell)} is too small for the model's cutoff "
                f"{model.r_max:g} A (perpendicular widths {np.round(widths, 2).tolist()} A, need >= "
                f"{2 * model.r_max:g} A); use {suggestion}"
            )
    return None


def validate_inputs(inputs, ctx=None) -> str | None:
    """Periodic structure, known parameters, supercell wide enough, stress where needed, task inputs."""
    structure = inputs.get("structure")
    model = inputs.get("model")
    if structure is not None:
        if not all(structure.pbc):
            return (
                f"structure: <{structure.pk}> is not periodic in three dimensions "
                f"(pbc={list(structure.pbc)}); phonons, bulk modulus and expansion need a 3D crystal"
            )
        if model is not None and model.species:
            missing = sorted(set(structure.get_symbols_set()) - set(model.species))
            if missing:
                return f"model: the structure contains {missing}, which this model does not know"
    params = inputs["parameters"].get_dict() if "parameters" in inputs else {}
    message = _validate_parameters(params, structure, model)
    if message:
        return message
    tasks = params.get("tasks", PHONONS_DEFAULTS["tasks"])
    if "host_guest" in tasks and "guest" not in inputs and (ctx is None or "guest" in ctx):
        return "guest: the host_guest task needs a guest molecule (GuestMoleculeData)"
    if (
        "errors" in tasks
        and "validation_frames" not in inputs
        and (ctx is None or "validation_frames" in ctx)
    ):
        return "validation_frames: the errors task needs labelled frames (StructureSetData)"
    return None


class PhononsCalculation(EngineCalculation):
    """Relax a framework and compute phonons, thermal properties, bulk modulus, QHA expansion with MACE."""

    PARSER_NAME = "mofmlp.phonons"
    INPUT_FILENAME = "input.json"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("structure", valid_type=orm.StructureData, help="A periodic (3D) structure.")
        spec.input("model", valid_type=MaceModelData, help="The MACE model.")
        spec.input(
            "parameters",
            valid_type=orm.Dict,
            required=False,
            help="mofmlp-phonons parameters: tasks, relax, phonons, eos, qha, host_guest, errors "
            "(engines.phonons.run.PHONONS_DEFAULTS).",
        )
        spec.input(
            "guest", valid_type=GuestMoleculeData, required=False, help="Guest of the host_guest task."
        )
        spec.input(
            "validation_frames",
            valid_type=StructureSetData,
            required=False,
            help="Labelled frames of the errors task.",
        )
        spec.inputs.validator = validate_inputs

        spec.output("results", valid_type=orm.Dict, help="Scalars of every task with units and wall times.")
        spec.output("relaxed_structure", valid_type=orm.StructureData, help="The final (relaxed) structure.")
        spec.output(
            "phonons",
            valid_type=orm.ArrayData,
            required=False,
            help="Gamma frequencies (THz), DOS, band structure, thermal properties F, S, Cv vs T.",
        )
        spec.output("eos", valid_type=orm.ArrayData, required=False, help="E(V), P(V) and the fitted curve.")
        spec.output("qha", valid_type=orm.ArrayData, required=False, help="V(T), alpha_V(T), B(T).")
        spec.output(
            "host_guest_structure",
            valid_type=orm.StructureData,
            required=False,
            help="The framework with the guest at its best site.",
        )
        spec.default_output_node = "results"

        spec.exit_code(
            410,
            "ERROR_IMAGINARY_MODES",
            message="Imaginary phonon modes remain after the rattle-and-relax attempts: {detail}",
        )
        spec.exit_code(
            420, "ERROR_RELAXATION_NOT_CONVERGED", message="The relaxation did not converge: {detail}"
        )

    def prepare_for_submission(self, folder):
        params = self.inputs.parameters.get_dict() if "parameters" in self.inputs else {}
        with folder.open(STRUCTURE_FILE, "w", encoding="utf8") as handle:
            handle.write(frames_to_text([self.inputs.structure.get_ase()]))
        local_copy_list = [(self.inputs.model.uuid, self.inputs.model.filename, MODEL_FILE)]
        config = {**params, "model": MODEL_FILE, "structure": STRUCTURE_FILE}
        if self.inputs.model.head and len(self.inputs.model.heads) > 1 and not params.get("head"):
            config["head"] = self.inputs.model.head
        if "guest" in self.inputs:
            with folder.open(GUEST_FILE, "w", encoding="utf8") as handle:
                handle.write(frames_to_text([self.inputs.guest.get_ase()]))
            config["host_guest"] = {**(params.get("host_guest") or {}), "guest": GUEST_FILE}
        if "validation_frames" in self.inputs:
            frames = self.inputs.validation_frames
            local_copy_list.append((frames.uuid, frames.filename, FRAMES_FILE))
            config["errors"] = {**(params.get("errors") or {}), "frames": FRAMES_FILE}
        self.write_input_file(folder, config)
        return self.engine_calcinfo(
            folder, local_copy_list, ["results.json", "phonons.npz", "relaxed.extxyz", "host_guest.extxyz"]
        )
