"""MaceTrainCalculation: fine-tune a MACE model from a foundation model with the ``mofmlp-train`` engine."""

from __future__ import annotations

from aiida import orm

from aiida_mofmlp.calculations.base import EngineCalculation
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.mace.train import MODES, TRAIN_DEFAULTS, settings_problem

TRAIN_FILE = "train.extxyz"
VALID_FILE = "valid.extxyz"
REPLAY_FILE = "replay.extxyz"
FOUNDATION_FILE = "foundation.model"
MODEL_NAME = "model"
#: keys of `parameters` set from other inputs (files, seed), not by the user
RESERVED = ("train_file", "valid_file", "replay_file", "foundation_model", "seed", "name")


def validate_inputs(inputs, _ctx=None) -> str | None:
    """Check parameters, labels and species before anything is submitted."""
    params = inputs["parameters"].get_dict() if "parameters" in inputs else {}
    reserved = sorted(set(params) & set(RESERVED))
    if reserved:
        return f"parameters: keys {reserved} are set from the input nodes; remove them"
    unknown = sorted(set(params) - set(TRAIN_DEFAULTS))
    if unknown:
        return f"parameters: unknown keys {unknown}; valid: {sorted(set(TRAIN_DEFAULTS) - set(RESERVED))}"
    problem = settings_problem(params)
    if problem:
        return problem
    mode = params.get("mode", TRAIN_DEFAULTS["mode"])
    if mode not in MODES:
        return f"parameters: mode {mode!r} is not valid; valid: {list(MODES)}"
    if mode == "multihead" and "replay_set" not in inputs:
        return "mode 'multihead' needs a `replay_set` (labelled frames of the foundation's domain)"
    if mode == "naive" and "replay_set" in inputs:
        return (
            "`replay_set` is only used in mode 'multihead'; remove it or set parameters.mode to 'multihead'"
        )
    for port in ("training_set", "validation_set", "replay_set"):
        node = inputs.get(port)
        if node is not None and not (node.has_energy and node.has_forces):
            return f"{port}: the frames must carry REF_energy and REF_forces labels"
    foundation = inputs.get("foundation_model")
    if foundation is not None and foundation.species:
        known = set(foundation.species)
        for port in ("training_set", "validation_set"):
            node = inputs.get(port)
            missing = sorted(set(node.species) - known) if node is not None else []
            if missing:
                return (
                    f"{port}: species {missing} are not in the foundation model {foundation.filename} "
                    f"(its species: {foundation.species})"
                )
    if float(params.get("stress_weight", 0.0)) > 0:
        for port in ("training_set", "validation_set"):
            node = inputs.get(port)
            if node is not None and not node.has_stress:
                return f"{port}: stress_weight > 0 but the frames carry no REF_stress"
    return None


class MaceTrainCalculation(EngineCalculation):
    """Fine-tune a MACE model (naive or multihead replay) with ``mofmlp-train``; all files from nodes."""

    PARSER_NAME = "mofmlp.mace_train"
    INPUT_FILENAME = "input.json"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("training_set", valid_type=StructureSetData, help="Labelled training frames.")
        spec.input(
            "validation_set",
            valid_type=StructureSetData,
            required=False,
            help="Labelled validation frames; default: parameters.valid_fraction of the training set.",
        )
        spec.input("foundation_model", valid_type=MaceModelData, help="The model to fine-tune.")
        spec.input(
            "replay_set",
            valid_type=StructureSetData,
            required=False,
            help="Multihead mode: labelled frames of the foundation's own domain (replayed on pt_head).",
        )
        spec.input(
            "parameters",
            valid_type=orm.Dict,
            required=False,
            help="Engine settings (aiida_mofmlp.engines.mace.train.TRAIN_DEFAULTS) except files and seed.",
        )
        spec.input("seed", valid_type=orm.Int, default=lambda: orm.Int(0), help="Random seed of mace.")
        spec.inputs.validator = validate_inputs

        spec.output(
            "model", valid_type=MaceModelData, help="The fine-tuned model (head to use in attributes)."
        )
        spec.output(
            "curves", valid_type=orm.ArrayData, help="Per-epoch training loss and validation metrics."
        )
        spec.output(
            "metrics",
            valid_type=orm.Dict,
            help="Final train/valid MAE and RMSE of energy per atom (eV/atom) and forces (eV/Angstrom).",
        )
        spec.output("log", valid_type=orm.SinglefileData, required=False, help="mace_run_train's log.")
        spec.default_output_node = "metrics"

        spec.exit_code(310, "ERROR_MISSING_MODEL", message="Training finished but no model file came back.")
        spec.exit_code(410, "ERROR_TRAINING_DIVERGED", message="Training diverged (NaN/inf loss): {detail}")
        spec.exit_code(420, "ERROR_TRAINING_FAILED", message="mace_run_train failed: {detail}")

    def prepare_for_submission(self, folder):
        params = self.inputs.parameters.get_dict() if "parameters" in self.inputs else {}
        config = {
            **params,
            "train_file": TRAIN_FILE,
            "foundation_model": FOUNDATION_FILE,
            "seed": int(self.inputs.seed.value),
            "name": MODEL_NAME,
        }
        local_copy_list = [
            (self.inputs.training_set.uuid, self.inputs.training_set.filename, TRAIN_FILE),
            (self.inputs.foundation_model.uuid, self.inputs.foundation_model.filename, FOUNDATION_FILE),
        ]
        if "validation_set" in self.inputs:
            config["valid_file"] = VALID_FILE
            node = self.inputs.validation_set
            local_copy_list.append((node.uuid, node.filename, VALID_FILE))
        if "replay_set" in self.inputs:
            config["replay_file"] = REPLAY_FILE
            node = self.inputs.replay_set
            local_copy_list.append((node.uuid, node.filename, REPLAY_FILE))
        self.write_input_file(folder, config)

        return self.engine_calcinfo(
            folder,
            local_copy_list,
            [
                "results.json",
                "curves.npz",
                "mace_train.log",
                f"{MODEL_NAME}.model",
            ],
        )
