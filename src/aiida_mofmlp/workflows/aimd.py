"""CP2K ab initio MD (NVT, Nose-Hoover): the trajectory comes out as a labelled structure set."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from aiida import orm
from aiida.engine import ToContext, WorkChain, calcfunction
from aiida_cp2k.calculations import Cp2kCalculation

from aiida_mofmlp.common import frames as fr
from aiida_mofmlp.common.units import HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, HARTREE_TO_EV
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows import _cp2k_inputs as inputs_mod
from aiida_mofmlp.workflows.cp2k_single_point import deep_merge_options, options_for_code

POSITIONS_FILE = "aiida-pos-1.xyz"
FORCES_FILE = "aiida-frc-1.xyz"


def md_parameters(
    settings: Mapping,
    elements: set[str],
    temperature: float,
    steps: int,
    timestep_fs: float,
    timecon_fs: float,
) -> dict:
    """CP2K input of an NVT (Nose-Hoover) run: the protocol's method plus MOTION, forces printed each step."""
    parameters = inputs_mod.build_parameters(settings, elements)
    parameters["FORCE_EVAL"].get("PRINT", {}).pop("FORCES", None)  # per-step forces go to FORCES_FILE
    parameters["GLOBAL"]["RUN_TYPE"] = "MD"
    parameters["MOTION"] = {
        "MD": {
            "ENSEMBLE": "NVT",
            "STEPS": int(steps),
            "TIMESTEP": float(timestep_fs),
            "TEMPERATURE": float(temperature),
            "THERMOSTAT": {"TYPE": "NOSE", "REGION": "GLOBAL", "NOSE": {"TIMECON": float(timecon_fs)}},
        },
        "PRINT": {
            "TRAJECTORY": {"EACH": {"MD": 1}, "FORMAT": "XYZ"},
            "FORCES": {"EACH": {"MD": 1}, "FORMAT": "XYZ"},
            # aiida-cp2k 2.1's parser reads the final structure from the restart file and mistakes the
            # Nose-Hoover thermostat's &COORD section for atoms; without a restart file it skips that step.
            "RESTART": {"_": "OFF"},
            "RESTART_HISTORY": {"_": "OFF"},
        },
    }
    return parameters


def read_xyz_frames(text: str) -> list[tuple[dict, list[str], np.ndarray]]:
    """Frames of a CP2K xyz trajectory: (comment fields such as ``i``, ``time``, ``E``), symbols, vectors."""
    lines = text.splitlines()
    frames, position = [], 0
    while position < len(lines) and lines[position].strip():
        count = int(lines[position])
        fields = {}
        for part in lines[position + 1].split(","):
            if "=" in part:
                key, value = part.split("=", 1)
                fields[key.strip()] = float(value)
        body = [line.split() for line in lines[position + 2 : position + 2 + count]]
        frames.append((fields, [row[0] for row in body], np.array([row[1:4] for row in body], dtype=float)))
        position += 2 + count
    return frames


@calcfunction
def aimd_trajectory(
    structure: orm.StructureData, retrieved: orm.FolderData, metadata_in: orm.Dict
) -> StructureSetData:
    """MD frames with REF_energy (eV, potential) and REF_forces (eV/A), after ``discard_steps``."""
    info = metadata_in.get_dict()
    positions = read_xyz_frames(retrieved.base.repository.get_object_content(POSITIONS_FILE))
    forces = read_xyz_frames(retrieved.base.repository.get_object_content(FORCES_FILE))
    template = structure.get_ase()
    frames = []
    for (fields, symbols, xyz), (_, _, force) in zip(positions, forces, strict=False):
        if int(fields.get("i", 0)) < info["discard_steps"]:
            continue
        if symbols != template.get_chemical_symbols():
            raise ValueError(f"frame i={fields.get('i')} of {POSITIONS_FILE} has other atoms than the input")
        atoms = template.copy()
        atoms.positions = xyz
        fr.set_labels(
            atoms, energy=fields["E"] * HARTREE_TO_EV, forces=force * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
        )
        atoms.info.update(
            source="aimd",
            temperature=info["temperature"],
            step=int(fields.get("i", 0)),
            time_fs=fields.get("time"),
            calc_uuid=info["calc_uuid"],
        )
        frames.append(atoms)
    return StructureSetData.from_frames(frames)


class AimdWorkChain(WorkChain):
    """NVT ab initio MD with CP2K (Nose-Hoover, 0.5 fs by default); the trajectory as a labelled set."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(Cp2kCalculation, namespace="cp2k", exclude=("settings",))
        spec.input("temperature", valid_type=orm.Float, default=lambda: orm.Float(300.0), help="K.")
        spec.input(
            "discard_steps", valid_type=orm.Int, default=lambda: orm.Int(0), help="Equilibration steps."
        )
        spec.outline(cls.run_md, cls.results)
        spec.output("trajectory", valid_type=StructureSetData, help="Frames with REF_energy, REF_forces.")
        spec.exit_code(400, "ERROR_MD_FAILED", message="the CP2K MD calculation failed: {detail}")
        spec.exit_code(300, "ERROR_NO_TRAJECTORY", message="no trajectory could be read: {detail}")

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        structure: orm.StructureData,
        protocol: str | None = None,
        temperature: float = 300.0,
        steps: int = 10000,
        timestep_fs: float = 0.5,
        thermostat_timecon_fs: float = 100.0,
        discard_steps: int = 0,
        overrides: Mapping | None = None,
        options: Mapping | None = None,
    ):
        """A builder for ``steps`` MD steps of ``structure`` with the electronic structure of ``protocol``.

        Defaults follow SCIENCE.md section 1: NVT, Nose-Hoover, 300 K, 0.5 fs (10,000 steps = 5 ps).
        """
        if steps < 1 or timestep_fs <= 0 or temperature <= 0:
            raise ValueError(
                f"steps={steps}, timestep_fs={timestep_fs}, temperature={temperature}: all must be positive"
            )
        settings = inputs_mod.get_protocol(protocol, overrides)
        elements = {kind.symbol for kind in structure.kinds}
        builder = cls.get_builder()
        builder.cp2k.code = code
        builder.cp2k.structure = structure
        builder.cp2k.parameters = orm.Dict(
            md_parameters(settings, elements, temperature, steps, timestep_fs, thermostat_timecon_fs)
        )
        builder.cp2k.metadata.options = options_for_code(code, deep_merge_options(settings, options))
        builder.temperature = orm.Float(temperature)
        builder.discard_steps = orm.Int(discard_steps)
        return builder

    def run_md(self):
        """Run the MD calculation, retrieving the trajectory and force files."""
        inputs = self.exposed_inputs(Cp2kCalculation, "cp2k")
        inputs["settings"] = orm.Dict({"additional_retrieve_list": [POSITIONS_FILE, FORCES_FILE]})
        return ToContext(calculation=self.submit(Cp2kCalculation, **inputs))

    def results(self):
        """Turn the retrieved trajectory into a labelled structure set."""
        calculation = self.ctx.calculation
        if not calculation.is_finished_ok:
            return self.exit_codes.ERROR_MD_FAILED.format(detail=f"exit status {calculation.exit_status}")
        names = calculation.outputs.retrieved.base.repository.list_object_names()
        if POSITIONS_FILE not in names or FORCES_FILE not in names:
            return self.exit_codes.ERROR_NO_TRAJECTORY.format(detail=f"retrieved files: {names}")
        metadata = orm.Dict(
            {
                "temperature": self.inputs.temperature.value,
                "discard_steps": self.inputs.discard_steps.value,
                "calc_uuid": calculation.uuid,
            }
        )
        trajectory = aimd_trajectory(self.inputs.cp2k.structure, calculation.outputs.retrieved, metadata)
        self.out("trajectory", trajectory)
        self.report(f"AIMD gave {trajectory.count} labelled frames")
        return None
