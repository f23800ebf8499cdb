"""DeviationParser: per-frame ensemble deviation arrays of a DeviationCalculation."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import ExitCode

from aiida_mofmlp.common.serialise import to_jsonable
from aiida_mofmlp.parsers.base import EngineParser


class DeviationParser(EngineParser):
    """Turn ``deviation.npz`` and ``deviation.json`` into an ArrayData and a summary Dict."""

    ENGINE = "mofmlp-deviation"
    REQUIRED_FILES = ("deviation.npz", "deviation.json")

    def parse_outputs(self, **kwargs) -> ExitCode | None:
        summary = self.read_json("deviation.json")
        arrays = self.read_npz("deviation.npz")
        units = {
            "sigma": "eV/Angstrom",
            "forces_mean": "eV/Angstrom",
            "energy": "eV",
            "energy_std_per_atom": "eV/atom",
            "stress_mean": "eV/Angstrom^3 (Voigt xx yy zz yz xz xy, ASE sign)",
        }
        self.out("deviation", self.array_data(arrays, units))
        expected = self.node.inputs.frames.count
        frames = summary.pop("frames", {})
        summary["n_frames_expected"] = expected
        self.out("summary", orm.Dict(to_jsonable(summary)))
        if len(arrays["sigma_max"]) != expected:
            return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(
                detail=f"{len(arrays['sigma_max'])} frames evaluated, the input set has {expected}"
            )
        bad = [index for index, value in enumerate(frames.get("sigma_max", [])) if value is None]
        if bad or not np.all(np.isfinite(arrays["sigma_max"])):
            return self.exit_codes.ERROR_NONFINITE_DEVIATION.format(detail=f"frames {bad[:10]}")
        return None
