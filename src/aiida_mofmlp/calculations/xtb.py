"""XtbCalculation: GFN1-/GFN2-xTB labels of a batch of periodic frames with ``mofmlp-xtb`` (tblite)."""

from __future__ import annotations

from aiida import orm

from aiida_mofmlp.calculations.base import EngineCalculation
from aiida_mofmlp.common.errors import InputError
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.xtb.label import (
    FAILURES_FILE,
    LABELLED_FILE,
    SUMMARY_FILE,
    load_settings,
    unsupported_elements,
)

FRAMES_FILE = "frames.extxyz"


def validate_parameters(parameters: orm.Dict | None, _ctx=None) -> str | None:
    """The engine's settings (method, SCF settings, retry) are known and valid."""
    if parameters is None:
        return None
    raw = parameters.get_dict()
    if "frames" in raw:
        return "parameters: `frames` is set by the calculation; remove it"
    try:
        load_settings(raw)
    except InputError as error:
        return f"parameters: {error}"
    return None


def validate_structures(structures: StructureSetData | None, _ctx=None) -> str | None:
    """Periodic frames whose elements GFN-xTB covers."""
    if structures is None:
        return None
    if len(structures) == 0:
        return "structures: the set holds no frame"
    missing = unsupported_elements(structures.species)
    if missing:
        return f"structures: elements {missing} have no GFN-xTB parameters (H to Rn only)"
    if structures.periodic is False:
        return (
            "structures: some frames are not periodic in 3 directions; mofmlp-xtb labels periodic frames only"
        )
    return None


class XtbCalculation(EngineCalculation):
    """Label frames with GFN1-xTB or GFN2-xTB; frames whose SCF fails are listed, not fatal."""

    PARSER_NAME = "mofmlp.xtb"
    INPUT_FILENAME = "input.json"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("structures", valid_type=StructureSetData, validator=validate_structures, help="Frames.")
        spec.input(
            "parameters",
            valid_type=orm.Dict,
            required=False,
            validator=validate_parameters,
            help="method (GFN1-xTB/GFN2-xTB), compute_stress, charges, electronic_temperature, accuracy, "
            "max_iterations, mixer_damping, retry (engines.xtb.label.DEFAULTS).",
        )
        spec.output(
            "labelled",
            valid_type=StructureSetData,
            required=False,
            help="The labelled frames (REF_energy eV, REF_forces eV/A, REF_stress eV/A^3; parent_index = "
            "index in `structures`; calc_uuid = this calculation).",
        )
        spec.output(
            "failed", valid_type=orm.Dict, help="Frames that could not be labelled: index and reason."
        )
        spec.output("summary", valid_type=orm.Dict, help="Method, program version, counts, seconds.")
        spec.default_output_node = "summary"
        spec.exit_code(410, "ERROR_NO_FRAME_LABELLED", message="No frame could be labelled: {detail}")

    def prepare_for_submission(self, folder):
        params = self.inputs.parameters.get_dict() if "parameters" in self.inputs else {}
        structures = self.inputs.structures
        self.write_input_file(folder, {**params, "frames": FRAMES_FILE})
        return self.engine_calcinfo(
            folder,
            [(structures.uuid, structures.filename, FRAMES_FILE)],
            [LABELLED_FILE, FAILURES_FILE, SUMMARY_FILE],
        )
