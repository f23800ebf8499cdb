"""DeviationCalculation: ensemble force deviation (sigma_max per frame) with ``mofmlp-deviation``."""

from __future__ import annotations

from aiida import orm

from aiida_mofmlp.calculations.base import EngineCalculation
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.mace.deviation import DEVIATION_DEFAULTS

FRAMES_FILE = "frames.extxyz"


def validate_inputs(inputs, ctx=None) -> str | None:
    """At least two models, known parameters, and frame species covered by every model.

    When a work chain exposes these inputs without ``models`` (it sets them later), ``ctx`` lacks the port
    and the count is not checked here.
    """
    models = inputs.get("models", {})
    if (ctx is None or "models" in ctx) and len(models) < 2:
        return f"models: an ensemble needs at least 2 models, got {len(models)}"
    params = inputs["parameters"].get_dict() if "parameters" in inputs else {}
    unknown = sorted(set(params) - set(DEVIATION_DEFAULTS))
    if unknown:
        return f"parameters: unknown keys {unknown}; valid: {sorted(DEVIATION_DEFAULTS)}"
    if params.get("dtype", "float64") not in ("float64", "float32"):
        return f"parameters: dtype {params['dtype']!r} is not valid; valid: float64, float32"
    frames = inputs.get("frames")
    if frames is not None:
        for label, model in models.items():
            missing = sorted(set(frames.species) - set(model.species)) if model.species else []
            if missing:
                return f"models.{label}: the frames contain {missing}, which this model does not know"
    return None


class DeviationCalculation(EngineCalculation):
    """Evaluate N MACE models on frames: sigma_max (all, framework, guests), energy spread, mean forces."""

    PARSER_NAME = "mofmlp.deviation"
    INPUT_FILENAME = "input.json"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("frames", valid_type=StructureSetData, help="Frames to evaluate (e.g. an MD trajectory).")
        spec.input_namespace("models", valid_type=MaceModelData, dynamic=True, help="The ensemble (>= 2).")
        spec.input(
            "parameters",
            valid_type=orm.Dict,
            required=False,
            help="batch_size, dtype (float64/float32), device, head (engines.deviation.DEVIATION_DEFAULTS).",
        )
        spec.inputs.validator = validate_inputs

        spec.output(
            "deviation",
            valid_type=orm.ArrayData,
            help="Per frame sigma_max, sigma_max_framework, sigma_max_guest (eV/A, NaN: empty group), "
            "energy_std_per_atom (eV/atom), energy_mean, n_atoms; energies (models x frames); per atom "
            "forces_mean (eV/A), sigma_atom, guest_id, split by atom_offsets.",
        )
        spec.output("summary", valid_type=orm.Dict, help="Counts and sigma_max statistics.")
        spec.default_output_node = "summary"

        spec.exit_code(410, "ERROR_NONFINITE_DEVIATION", message="Some frames gave NaN/inf forces: {detail}")

    def prepare_for_submission(self, folder):
        params = self.inputs.parameters.get_dict() if "parameters" in self.inputs else {}
        labels = sorted(self.inputs.models)
        local_copy_list = [(self.inputs.frames.uuid, self.inputs.frames.filename, FRAMES_FILE)]
        model_files = []
        for index, label in enumerate(labels):
            node = self.inputs.models[label]
            filename = f"model_{index}.model"
            local_copy_list.append((node.uuid, node.filename, filename))
            model_files.append(filename)
        config = {"write_extxyz": False, **params, "models": model_files, "frames": FRAMES_FILE}
        self.write_input_file(folder, config)

        return self.engine_calcinfo(
            folder,
            local_copy_list,
            [
                "deviation.npz",
                "deviation.json",
            ],
        )
