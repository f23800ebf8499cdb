"""MaceTrainParser: model, curves and metrics of a MaceTrainCalculation."""

from __future__ import annotations

import io
import json
import math
import tempfile
from pathlib import Path

import numpy as np
from aiida import orm
from aiida.parsers import Parser

from aiida_mofmlp.data.mace_model import MaceModelData


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    return value


class MaceTrainParser(Parser):
    """``results.json``, ``curves.npz`` and ``model.model`` to output nodes; failures to exit codes."""

    def parse(self, **kwargs):
        retrieved = self.retrieved
        names = set(retrieved.base.repository.list_object_names())
        stderr = retrieved.base.repository.get_object_content("stderr.txt") if "stderr.txt" in names else ""
        if "mace_train.log" in names:
            with retrieved.base.repository.open("mace_train.log", "rb") as handle:
                self.out("log", orm.SinglefileData(io.BytesIO(handle.read()), filename="mace_train.log"))
        if "results.json" not in names:
            errors = [line for line in stderr.splitlines() if "mofmlp-train: error:" in line]
            if errors:
                return self.exit_codes.ERROR_INVALID_INPUT.format(
                    detail=errors[-1].split("error:", 1)[1].strip()
                )
            tail = " | ".join(stderr.strip().splitlines()[-3:]) or "no stderr"
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(detail=f"results.json absent; {tail}")
        try:
            results = json.loads(retrieved.base.repository.get_object_content("results.json"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(detail=f"results.json: {error}")

        if "curves.npz" in names:
            try:
                with retrieved.base.repository.open("curves.npz", "rb") as handle, np.load(handle) as data:
                    curves = orm.ArrayData()
                    for key in data.files:
                        curves.set_array(key, data[key])
                curves.base.attributes.set("units", {"mae_f": "eV/Angstrom", "mae_e_per_atom": "eV/atom"})
                self.out("curves", curves)
            except (OSError, ValueError) as error:
                return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(detail=f"curves.npz: {error}")

        status = results.get("status")
        if status == "diverged":
            return self.exit_codes.ERROR_TRAINING_DIVERGED.format(detail=results.get("message", ""))
        if status != "ok":
            return self.exit_codes.ERROR_TRAINING_FAILED.format(detail=results.get("message", str(status)))
        model_name = results.get("model", "model.model")
        if model_name not in names:
            return self.exit_codes.ERROR_MISSING_MODEL
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / model_name
            path.write_bytes(retrieved.base.repository.get_object_content(model_name, mode="rb"))
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
                return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(detail=f"{model_name}: {error}")
        self.out("model", model)
        metrics = {
            "train": _finite_or_none(results["metrics"]["train"]),
            "valid": _finite_or_none(results["metrics"]["valid"]),
            "units": results.get("units", {}),
            "mode": results.get("mode"),
            "seed": results.get("seed"),
            "heads": results.get("heads"),
            "head": results.get("head"),
            "stage_two": results.get("stage_two"),
        }
        self.out("metrics", orm.Dict(metrics))
        return None
