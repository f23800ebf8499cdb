"""WidomCalculation: Widom insertion of a rigid guest into framework snapshots with MACE (mofmlp-widom)."""

from __future__ import annotations

import json

from aiida import orm

from aiida_mofmlp.calculations.base import EngineCalculation
from aiida_mofmlp.common.errors import InputError
from aiida_mofmlp.data.guest import GuestMoleculeData
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.adsorption.widom import ARRAYS_FILE, RESULTS_FILE, load_settings

FRAMES_FILE = "frames.extxyz"
MODEL_FILE = "model.model"
GUEST_FILE = "guest.json"
#: engine keys set from the input nodes; giving them in ``parameters`` is an error
FILE_KEYS = ("frames", "model", "guest")


def validate_inputs(inputs, _ctx=None) -> str | None:
    """Known parameters with valid values; the model knows the elements of the frames and the guest."""
    parameters = inputs["parameters"].get_dict() if "parameters" in inputs else {}
    given = sorted(set(parameters) & set(FILE_KEYS))
    if given:
        return f"parameters: {given} are set from the input nodes; remove them from the parameters"
    try:
        load_settings(parameters)
    except InputError as error:
        return f"parameters: {error}"
    model, frames, guest = inputs.get("model"), inputs.get("frames"), inputs.get("guest")
    if isinstance(model, MaceModelData) and model.species and frames is not None and guest is not None:
        missing = sorted((set(frames.species) | set(guest.symbols)) - set(model.species))
        if missing:
            return f"model: it does not know the elements {missing} of the frames and guest"
    return None


class WidomCalculation(EngineCalculation):
    """Henry coefficient and adsorption energy of a guest from MACE insertions into framework snapshots."""

    PARSER_NAME = "mofmlp.widom"
    INPUT_FILENAME = "input.json"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("frames", valid_type=StructureSetData, help="Framework snapshots (guests are removed).")
        spec.input("model", valid_type=orm.SinglefileData, help="The MACE model (model 0 of the ensemble).")
        spec.input("guest", valid_type=GuestMoleculeData, help="The rigid guest molecule.")
        spec.input(
            "parameters",
            valid_type=orm.Dict,
            required=False,
            help="temperature (K), insertions_per_frame, max_frames, seed, n_blocks, overlap_distance (A), "
            "head, device, dtype (aiida_mofmlp.engines.adsorption.widom.WIDOM_DEFAULTS).",
        )
        spec.inputs.validator = validate_inputs
        spec.output(
            "widom",
            valid_type=orm.Dict,
            help="Henry coefficient (mol/kg/Pa), <dU> and isosteric heat (kJ/mol) with errors, counts.",
        )
        spec.output(
            "insertions",
            valid_type=orm.ArrayData,
            help="Per insertion frame_index, guest_positions (A), delta_energy (eV), boltzmann_factor.",
        )
        spec.default_output_node = "widom"
        spec.exit_code(
            410,
            "ERROR_NO_ACCEPTED_INSERTION",
            message="Every insertion overlapped the framework (no finite energy): {detail}",
        )

    def prepare_for_submission(self, folder):
        parameters = self.inputs.parameters.get_dict() if "parameters" in self.inputs else {}
        guest = self.inputs.guest
        with folder.open(GUEST_FILE, "w", encoding="utf8") as handle:
            json.dump(
                {"name": guest.name, "symbols": list(guest.symbols), "positions": guest.positions}, handle
            )
        config = {**parameters, "frames": FRAMES_FILE, "model": MODEL_FILE, "guest": GUEST_FILE}
        model = self.inputs.model
        if isinstance(model, MaceModelData) and "head" not in config:
            heads = model.base.attributes.get("heads", []) or []
            if len(heads) > 1:
                config["head"] = model.head
        self.write_input_file(folder, config)
        local_copy_list = [
            (self.inputs.frames.uuid, self.inputs.frames.filename, FRAMES_FILE),
            (model.uuid, model.filename, MODEL_FILE),
        ]
        return self.engine_calcinfo(folder, local_copy_list, [RESULTS_FILE, ARRAYS_FILE])
