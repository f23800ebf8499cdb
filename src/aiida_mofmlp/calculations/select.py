"""SelectCalculation: run the ``mofmlp-select`` engine on a (large) pool of frames."""

from __future__ import annotations

import io

import numpy as np
from aiida import orm

from aiida_mofmlp.calculations.base import EngineCalculation
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.selection.select import OUTPUT_FILES, validate_parameters

POOL_FILE = "pool.extxyz"
TRAINING_FILE = "training.extxyz"
SIGMA_FILE = "sigma.npy"
ENERGIES_FILE = "energies.npy"


def array_values(node: orm.ArrayData, preferred: str, port: str) -> np.ndarray:
    """The 1-D array ``preferred`` of an ArrayData, or its only array; a clear error otherwise."""
    names = node.get_arraynames()
    if preferred in names:
        name = preferred
    elif len(names) == 1:
        name = names[0]
    else:
        raise ValueError(f"{port}: ArrayData holds arrays {sorted(names)}; expected one named {preferred!r}")
    return np.asarray(node.get_array(name), dtype=float).reshape(-1)


def validate_inputs(inputs, _ctx=None) -> str | None:
    """Check the parameters with the engine's own validation, and that per-frame arrays match the pool."""
    if "parameters" in inputs:
        try:
            params = validate_parameters(inputs["parameters"].get_dict())
        except ValueError as error:
            return f"parameters: {error}"
    else:
        params = validate_parameters({})
    pool = inputs.get("pool")
    if pool is None:
        return None
    for port, preferred in (("sigma", "sigma_max"), ("energies", "energies")):
        if port in inputs:
            try:
                values = array_values(inputs[port], preferred, port)
            except ValueError as error:
                return str(error)
            if len(values) != pool.count:
                return f"{port}: {len(values)} values for a pool of {pool.count} frames; give one per frame"
    if params["sigma_window"] is not None and "sigma" not in inputs:
        return "parameters: sigma_window is set but no `sigma` array (per-frame sigma_max) was given"
    if params["method"] == "flat_histogram" and not pool.has_energy and "energies" not in inputs:
        return "parameters: method flat_histogram needs energies: the pool has no REF_energy; give `energies`"
    return None


class SelectCalculation(EngineCalculation):
    """Choose frames of a pool to label (SOAP k-means/FPS, CBAD, flat histogram) with ``mofmlp-select``."""

    PARSER_NAME = "mofmlp.select"
    INPUT_FILENAME = "input.yaml"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("pool", valid_type=StructureSetData, help="Candidate frames.")
        spec.input(
            "parameters",
            valid_type=orm.Dict,
            required=False,
            help="Selection parameters (see aiida_mofmlp.engines.selection.select.DEFAULT_PARAMETERS).",
        )
        spec.input(
            "training_set",
            valid_type=StructureSetData,
            required=False,
            help="Frames already labelled: de-duplication reference, CBAD bins already filled, map overlay.",
        )
        spec.input(
            "sigma",
            valid_type=orm.ArrayData,
            required=False,
            help="Per-frame sigma_max in eV/Angstrom (array 'sigma_max' or the only array) for sigma_window.",
        )
        spec.input(
            "energies",
            valid_type=orm.ArrayData,
            required=False,
            help="Per-frame total energy in eV (array 'energies' or the only array) for flat_histogram.",
        )
        spec.inputs.validator = validate_inputs

        spec.output("selected", valid_type=StructureSetData, required=False, help="The selected frames.")
        spec.output("report", valid_type=orm.Dict, help="Selected pool indices, counts per group, metrics.")
        spec.output(
            "map", valid_type=orm.ArrayData, required=False, help="2-D map: pool_xy, training_xy, selected."
        )
        spec.output("map_figure", valid_type=orm.SinglefileData, required=False, help="The map as PNG.")
        spec.default_output_node = "report"

        spec.exit_code(410, "ERROR_NO_FRAME_SELECTED", message="No frame was selected: {detail}")

    def prepare_for_submission(self, folder):
        params = self.inputs.parameters.get_dict() if "parameters" in self.inputs else {}
        soap = dict(params.get("soap") or {})
        if not soap.get("species"):  # known from the nodes: saves the engine a pass over the pool
            species = set(self.inputs.pool.species)
            if "training_set" in self.inputs:
                species |= set(self.inputs.training_set.species)
            params["soap"] = {**soap, "species": sorted(species)}
        config = {"pool": POOL_FILE, **params}
        local_copy_list = [(self.inputs.pool.uuid, self.inputs.pool.filename, POOL_FILE)]
        if "training_set" in self.inputs:
            config["training"] = TRAINING_FILE
            node = self.inputs.training_set
            local_copy_list.append((node.uuid, node.filename, TRAINING_FILE))
        for port, preferred, filename in (
            ("sigma", "sigma_max", SIGMA_FILE),
            ("energies", "energies", ENERGIES_FILE),
        ):
            if port in self.inputs:
                buffer = io.BytesIO()
                np.save(buffer, array_values(self.inputs[port], preferred, port))
                with folder.open(filename, "wb") as handle:
                    handle.write(buffer.getvalue())
                config[port] = filename
        self.write_input_file(folder, config)

        return self.engine_calcinfo(
            folder,
            local_copy_list,
            [
                OUTPUT_FILES["report"],
                OUTPUT_FILES["frames"],
                OUTPUT_FILES["map_data"],
                OUTPUT_FILES["map_figure"],
            ],
        )
