"""MaceTrainParser: model, curves and metrics of a MaceTrainCalculation.

The ``metrics`` Dict holds the engine's train/valid errors as written: energy per atom and forces always,
and the stress errors (``n_frames_stress``, ``mae_stress``/``rmse_stress`` in eV/Angstrom^3,
``mae_stress_gpa``/``rmse_stress_gpa`` in GPa) when the frames carry stress labels; ``units`` names them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from aiida import orm
from aiida.engine import ExitCode

from aiida_mofmlp.common.serialise import to_jsonable
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.parsers.base import EngineParser, OutputFileUnreadable

LOG_FILE = "mace_train.log"
RESULTS_FILE = "results.json"
CURVES_FILE = "curves.npz"


class MaceTrainParser(EngineParser):
    """``results.json``, ``curves.npz`` and ``model.model`` to output nodes; failures to exit codes."""

    ENGINE = "mofmlp-train"
    REQUIRED_FILES = (RESULTS_FILE,)

    def parse(self, **kwargs) -> ExitCode | None:
        """Attach ``mace_train.log`` whenever it came back (also from failed runs), then parse."""
        if LOG_FILE in self.retrieved_names:
            self.out("log", self.singlefile(LOG_FILE))
        return super().parse(**kwargs)

    def parse_outputs(self, **kwargs) -> ExitCode | None:
        results = self.read_json(RESULTS_FILE)
        if CURVES_FILE in self.retrieved_names:
            units = {"mae_f": "eV/Angstrom", "mae_e_per_atom": "eV/atom", "mae_stress": "eV/Angstrom^3"}
            self.out("curves", self.array_data(self.read_npz(CURVES_FILE), units))

        status = results.get("status")
        if status == "diverged":
            return self.exit_codes.ERROR_TRAINING_DIVERGED.format(detail=results.get("message", ""))
        if status != "ok":
            return self.exit_codes.ERROR_TRAINING_FAILED.format(detail=results.get("message", str(status)))
        model_name = results.get("model", "model.model")
        if model_name not in self.retrieved_names:
            return self.exit_codes.ERROR_MISSING_MODEL
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / model_name
            path.write_bytes(self.read_bytes(model_name))
            foundation = self.node.inputs.foundation_model
            try:
                model = MaceModelData.from_file(
                    path,
                    parent_sha256=foundation.sha256,
                    head=results.get("head", "Default"),
                    training_mode=results.get("mode"),
                    seed=results.get("seed"),
                )
            except (ValueError, OSError) as error:
                raise OutputFileUnreadable(f"{model_name}: {error}") from error
        self.out("model", model)
        metrics = {
            "train": to_jsonable(results["metrics"]["train"]),
            "valid": to_jsonable(results["metrics"]["valid"]),
            "units": results.get("units", {}),
            "mode": results.get("mode"),
            "seed": results.get("seed"),
            "heads": results.get("heads"),
            "head": results.get("head"),
            "stage_two": results.get("stage_two"),
        }
        self.out("metrics", orm.Dict(metrics))
        return None
