"""LammpsMdParser: trajectory, thermo arrays and results of a LammpsMdCalculation."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from aiida import orm
from aiida.parsers import Parser

from aiida_mofmlp.calculations.lammps_md import (
    RESULTS_FILE,
    STATUS_EXIT_CODES,
    THERMO_FILE,
    TRAJECTORY_FILE,
)
from aiida_mofmlp.data.structure_set import StructureSetData


class LammpsMdParser(Parser):
    """Attach the frames so far, thermo and results; map the engine's status to an exit code."""

    def parse(self, **kwargs):
        retrieved = self.retrieved
        names = set(retrieved.base.repository.list_object_names())
        if RESULTS_FILE not in names:
            stderr = (
                retrieved.base.repository.get_object_content("stderr.txt") if "stderr.txt" in names else ""
            )
            invalid = [line for line in stderr.splitlines() if "invalid input:" in line]
            if invalid:
                return self.exit_codes.ERROR_INVALID_INPUT.format(
                    detail=invalid[-1].split("invalid input:", 1)[1].strip()
                )
            tail = " | ".join(stderr.strip().splitlines()[-3:]) or "no stderr"
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(detail=f"{RESULTS_FILE} absent; {tail}")
        try:
            results = json.loads(retrieved.base.repository.get_object_content(RESULTS_FILE))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(detail=f"{RESULTS_FILE}: {error}")
        self.out("results", orm.Dict(results))

        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            if results.get("n_frames", 0) > 0:
                if TRAJECTORY_FILE not in names:
                    return self.exit_codes.ERROR_MISSING_OUTPUT.format(detail=f"{TRAJECTORY_FILE} absent")
                path = tmp / TRAJECTORY_FILE
                path.write_bytes(retrieved.base.repository.get_object_content(TRAJECTORY_FILE, mode="rb"))
                try:
                    trajectory = StructureSetData.from_file(path)
                except Exception as error:
                    return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(
                        detail=f"{TRAJECTORY_FILE}: {error}"
                    )
                if trajectory.count != results["n_frames"]:
                    return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(
                        detail=f"{TRAJECTORY_FILE} holds {trajectory.count} frames, "
                        f"results say {results['n_frames']}"
                    )
                trajectory.base.attributes.set_many(
                    {"prediction_keys": results.get("keys", {}), "md_status": results.get("status")}
                )
                self.out("trajectory", trajectory)
            if THERMO_FILE not in names:
                return self.exit_codes.ERROR_MISSING_OUTPUT.format(detail=f"{THERMO_FILE} absent")
            path = tmp / THERMO_FILE
            path.write_bytes(retrieved.base.repository.get_object_content(THERMO_FILE, mode="rb"))
            try:
                with np.load(path) as data:
                    thermo = orm.ArrayData()
                    for key in data.files:
                        thermo.set_array(key, data[key])
            except (OSError, ValueError) as error:
                return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(detail=f"{THERMO_FILE}: {error}")
            thermo.base.attributes.set("units", results.get("units", {}))
            self.out("thermo", thermo)

        status = results.get("status")
        if status == "completed":
            return None
        label = STATUS_EXIT_CODES.get(status)
        if label is None:
            return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(
                detail=f"unknown status {status!r} in {RESULTS_FILE}"
            )
        return getattr(self.exit_codes, label).format(detail=results.get("message", ""))
