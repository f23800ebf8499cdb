"""LammpsMdParser: trajectory, thermo arrays and results of a LammpsMdCalculation."""

from __future__ import annotations

from aiida import orm
from aiida.engine import ExitCode

from aiida_mofmlp.engines.lammps.md_settings import RESULTS_FILE, THERMO_FILE, TRAJECTORY_FILE
from aiida_mofmlp.parsers.base import EngineParser

#: engine ``status`` -> exit code label (``completed`` -> 0)
STATUS_EXIT_CODES = {
    "nan": "ERROR_MD_NAN",
    "too_close": "ERROR_MD_ATOMS_TOO_CLOSE",
    "temperature_runaway": "ERROR_MD_TEMPERATURE_RUNAWAY",
    "lost_atoms": "ERROR_MD_LOST_ATOMS",
    "uncertain": "ERROR_MD_UNCERTAIN",
    "lammps_error": "ERROR_LAMMPS_FAILED",
}


class LammpsMdParser(EngineParser):
    """Attach the frames so far, thermo and results; map the engine's status to an exit code."""

    ENGINE = "mofmlp-md"
    REQUIRED_FILES = (RESULTS_FILE,)
    #: ``mofmlp-md`` reports rejected input as ``mofmlp-md: invalid input: ...``
    ERROR_PATTERNS = {"invalid input:": "ERROR_INVALID_INPUT"}

    def parse_outputs(self, **kwargs) -> ExitCode | None:
        results = self.read_json(RESULTS_FILE)
        self.out("results", orm.Dict(results))

        if results.get("n_frames", 0) > 0:
            trajectory = self.read_structure_set(TRAJECTORY_FILE)
            if trajectory.count != results["n_frames"]:
                return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(
                    detail=f"{TRAJECTORY_FILE} holds {trajectory.count} frames, "
                    f"results say {results['n_frames']}"
                )
            trajectory.base.attributes.set_many(
                {"prediction_keys": results.get("keys", {}), "md_status": results.get("status")}
            )
            self.out("trajectory", trajectory)
        self.out("thermo", self.array_data(self.read_npz(THERMO_FILE), results.get("units", {})))

        status = results.get("status")
        if status == "completed":
            return None
        label = STATUS_EXIT_CODES.get(status)
        if label is None:
            return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(
                detail=f"unknown status {status!r} in {RESULTS_FILE}"
            )
        return getattr(self.exit_codes, label).format(detail=results.get("message", ""))
