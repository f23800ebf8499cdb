"""ReferenceCheckCalculation: properties by the labelling method and each model (mofmlp-reference-check)."""

from __future__ import annotations

from aiida import orm

from aiida_mofmlp.calculations.base import EngineCalculation
from aiida_mofmlp.common.frames import frames_to_text, guest_ids
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.reference.check import CHECK_FRAMES_FILE, DEFAULTS, REFERENCE, RESULTS_FILE, TASKS
from aiida_mofmlp.engines.xtb.label import unsupported_elements

STRUCTURE_FILE = "structure.extxyz"
FRAMES_FILE = "loaded.extxyz"
#: the engine parameters a CalcJob may set (the files come from the input nodes)
PARAMETER_KEYS = sorted(set(DEFAULTS) - {"models"})


def _parameter_problem(params: dict) -> str | None:
    unknown = sorted(set(params) - set(PARAMETER_KEYS))
    if unknown:
        return f"parameters: unknown keys {unknown}; valid: {PARAMETER_KEYS}"
    for section, defaults in DEFAULTS.items():
        if isinstance(defaults, dict) and section not in ("models", "reference"):
            extra = sorted(set(params.get(section) or {}) - set(defaults) - {"frames"})
            if extra:
                return f"parameters.{section}: unknown keys {extra}; valid: {sorted(defaults)}"
    tasks = params.get("tasks", DEFAULTS["tasks"])
    if not tasks or any(task not in TASKS for task in tasks):
        return f"parameters.tasks: {tasks!r} is not valid; choose from {list(TASKS)}"
    return None


def validate_inputs(inputs, ctx=None) -> str | None:
    """Known parameters; a periodic cell within ``max_atoms``; elements the reference and models know."""
    params = inputs["parameters"].get_dict() if "parameters" in inputs else {}
    message = _parameter_problem(params)
    if message:
        return message
    max_atoms = int(params.get("max_atoms", DEFAULTS["max_atoms"]))
    structure = inputs.get("structure")
    models = dict(inputs.get("models", {}))
    if REFERENCE in models:
        return f"models: the label {REFERENCE!r} is the reference method's; rename that model"
    if not params.get("run_reference", True) and not models and (ctx is None or "models" in ctx):
        return "models: give at least one model when parameters.run_reference is false (nothing to compute)"
    if structure is not None:
        if not all(structure.pbc):
            return (
                f"structure: <{structure.pk}> is not periodic in three dimensions (pbc={list(structure.pbc)})"
            )
        if len(structure.sites) > max_atoms:
            return (
                f"structure: {len(structure.sites)} atoms, more than max_atoms {max_atoms} of the reference "
                "check (the reference method's cost grows as n^3); give a smaller cell or raise "
                "parameters.max_atoms"
            )
        missing = unsupported_elements(structure.get_symbols_set())
        if missing:
            return f"structure: elements {missing} have no GFN-xTB parameters (H to Rn only)"
        for label, model in sorted(models.items()):
            lacking = sorted(set(structure.get_symbols_set()) - set(model.species or []))
            if model.species and lacking:
                return f"models.{label}: the structure contains {lacking}, which this model does not know"
    tasks = params.get("tasks", DEFAULTS["tasks"])
    if "binding_energy" in tasks and "frames" not in inputs and (ctx is None or "frames" in ctx):
        return "frames: the binding_energy task needs frames with guests (per-atom guest_id > 0)"
    frames = inputs.get("frames")
    if frames is not None and "binding_energy" in tasks:
        loaded = [atoms for atoms in frames.iter_frames() if (guest_ids(atoms) > 0).any()]
        if not loaded:
            return f"frames: <{frames.pk}> holds no frame with guests; binding_energy needs loaded frames"
        if max(len(atoms) for atoms in loaded) > max_atoms:
            return f"frames: a loaded frame has more than max_atoms {max_atoms} atoms; raise max_atoms"
    return None


class ReferenceCheckCalculation(EngineCalculation):
    """V0, bulk modulus, guest binding energy and Gamma phonons with xTB and with each MACE model."""

    PARSER_NAME = "mofmlp.reference_check"
    INPUT_FILENAME = "input.json"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("structure", valid_type=orm.StructureData, help="A periodic framework (empty).")
        spec.input_namespace(
            "models", valid_type=MaceModelData, dynamic=True, help="The models to check, by label."
        )
        spec.input(
            "frames",
            valid_type=StructureSetData,
            required=False,
            help="Frames of this framework with guests (guest_id > 0) for the binding_energy task.",
        )
        spec.input(
            "parameters",
            valid_type=orm.Dict,
            required=False,
            help="mofmlp-reference-check parameters (engines.reference.check.DEFAULTS).",
        )
        spec.inputs.validator = validate_inputs
        spec.output("results", valid_type=orm.Dict, help="Every task's values per calculator, seconds.")
        spec.output(
            "check_frames",
            valid_type=StructureSetData,
            required=False,
            help="The reference-labelled frames behind each property (info check_task); with the reference.",
        )
        spec.default_output_node = "results"

    def prepare_for_submission(self, folder):
        params = self.inputs.parameters.get_dict() if "parameters" in self.inputs else {}
        with folder.open(STRUCTURE_FILE, "w", encoding="utf8") as handle:
            handle.write(frames_to_text([self.inputs.structure.get_ase()]))
        local_copy_list, models = [], {}
        for label, model in sorted(self.inputs.models.items()):
            target = f"{label}.model"
            local_copy_list.append((model.uuid, model.filename, target))
            models[label] = target
        config = {**params, "structure": STRUCTURE_FILE, "models": models}
        if "frames" in self.inputs:
            frames = self.inputs.frames
            local_copy_list.append((frames.uuid, frames.filename, FRAMES_FILE))
            config["binding"] = {**(params.get("binding") or {}), "frames": FRAMES_FILE}
        self.write_input_file(folder, config)
        return self.engine_calcinfo(folder, local_copy_list, [RESULTS_FILE, CHECK_FRAMES_FILE])
