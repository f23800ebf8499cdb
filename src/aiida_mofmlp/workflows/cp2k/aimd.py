"""CP2K ab initio MD (NVT, Nose-Hoover): the trajectory comes out as a labelled structure set."""

from __future__ import annotations

import os
from collections.abc import Mapping

from aiida import orm
from aiida.engine import ToContext, WorkChain
from aiida_cp2k.calculations import Cp2kCalculation

from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.parsers.parse_raw.cp2k import FORCES_FILE, POSITIONS_FILE
from aiida_mofmlp.workflows.cp2k import inputs as inputs_mod
from aiida_mofmlp.workflows.cp2k.base import deep_merge_options, options_for_code
from aiida_mofmlp.workflows.cp2k.inputs import PARSER_NAME, Cp2kProtocolMixin
from aiida_mofmlp.workflows.functions.labels import aimd_trajectory


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


class AimdWorkChain(Cp2kProtocolMixin, WorkChain):
    """NVT ab initio MD with CP2K (Nose-Hoover, 0.5 fs by default); the trajectory as a labelled set.

    The ``mofmlp.cp2k`` parser turns CP2K's xyz trajectories into the calculation's ``md_trajectory``;
    the calcfunction :func:`aimd_trajectory` makes the labelled frames from it.
    """

    _protocol_file = "cp2k.yaml"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(Cp2kCalculation, namespace="cp2k", exclude=("settings",))
        spec.inputs["cp2k"]["metadata"]["options"]["parser_name"].default = PARSER_NAME
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
        overrides: Mapping | str | os.PathLike | None = None,
        temperature: float | None = None,
        steps: int | None = None,
        timestep_fs: float | None = None,
        thermostat_timecon_fs: float | None = None,
        discard_steps: int | None = None,
        options: Mapping | None = None,
    ):
        """A builder for ``steps`` MD steps of ``structure`` with the electronic structure of ``protocol``.

        MD settings left as None come from the protocol's ``aimd`` block (protocols/cp2k.yaml): NVT,
        Nose-Hoover, 300 K, 0.5 fs, 10,000 steps (5 ps), thermostat time constant 100 fs. ``overrides`` (a
        dict or the path of a YAML file) is deep-merged into the protocol. Raises ValueError for a
        non-positive number of steps, time step or temperature.
        """
        settings = cls.get_protocol_inputs(protocol, overrides)
        given = {
            "temperature": temperature,
            "steps": steps,
            "timestep_fs": timestep_fs,
            "thermostat_timecon_fs": thermostat_timecon_fs,
            "discard_steps": discard_steps,
        }
        md = {key: settings["aimd"][key] if value is None else value for key, value in given.items()}
        if md["steps"] < 1 or md["timestep_fs"] <= 0 or md["temperature"] <= 0:
            raise ValueError(
                f"steps={md['steps']}, timestep_fs={md['timestep_fs']}, temperature={md['temperature']}: "
                "all must be positive"
            )
        elements = {kind.symbol for kind in structure.kinds}
        builder = cls.get_builder()
        builder.cp2k.code = code
        builder.cp2k.structure = structure
        builder.cp2k.parameters = orm.Dict(
            md_parameters(
                settings,
                elements,
                md["temperature"],
                md["steps"],
                md["timestep_fs"],
                md["thermostat_timecon_fs"],
            )
        )
        builder.cp2k.metadata.options = options_for_code(code, deep_merge_options(settings, options))
        builder.temperature = orm.Float(md["temperature"])
        builder.discard_steps = orm.Int(md["discard_steps"])
        return builder

    def run_md(self):
        """Run the MD calculation (parser ``mofmlp.cp2k``), retrieving the trajectory and force files."""
        inputs = self.exposed_inputs(Cp2kCalculation, "cp2k")
        metadata = dict(inputs.get("metadata") or {})
        metadata["options"] = {"parser_name": PARSER_NAME, **dict(metadata.get("options") or {})}
        inputs["metadata"] = metadata
        inputs["settings"] = orm.Dict({"additional_retrieve_list": [POSITIONS_FILE, FORCES_FILE]})
        return ToContext(calculation=self.submit(Cp2kCalculation, **inputs))

    def results(self):
        """Turn the parsed trajectory into a labelled structure set."""
        calculation = self.ctx.calculation
        if not calculation.is_finished_ok:
            detail = f"exit status {calculation.exit_status}"
            if calculation.exit_message:
                detail += f": {calculation.exit_message}"
            return self.exit_codes.ERROR_MD_FAILED.format(detail=detail)
        if "md_trajectory" not in calculation.outputs:
            return self.exit_codes.ERROR_NO_TRAJECTORY.format(
                detail=f"{calculation.process_label}<{calculation.pk}> has no md_trajectory output "
                f"(parser {calculation.get_option('parser_name')})"
            )
        metadata = orm.Dict(
            {
                "temperature": self.inputs.temperature.value,
                "discard_steps": self.inputs.discard_steps.value,
            }
        )
        trajectory = aimd_trajectory(self.inputs.cp2k.structure, calculation.outputs.md_trajectory, metadata)
        self.out("trajectory", trajectory)
        self.report(f"AIMD gave {trajectory.count} labelled frames")
        return None
