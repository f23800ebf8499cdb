"""DeviationParser: per-frame ensemble deviation arrays of a DeviationCalculation."""

from __future__ import annotations

import json

import numpy as np
from aiida import orm
from aiida.parsers import Parser


class DeviationParser(Parser):
    """Turn ``deviation.npz`` and ``deviation.json`` into an ArrayData and a summary Dict."""

    def parse(self, **kwargs):
        retrieved = self.retrieved
        names = set(retrieved.base.repository.list_object_names())
        stderr = retrieved.base.repository.get_object_content("stderr.txt") if "stderr.txt" in names else ""
        if "deviation.npz" not in names or "deviation.json" not in names:
            errors = [line for line in stderr.splitlines() if "mofmlp-deviation: error:" in line]
            if errors:
                return self.exit_codes.ERROR_INVALID_INPUT.format(
                    detail=errors[-1].split("error:", 1)[1].strip()
                )
            tail = " | ".join(stderr.strip().splitlines()[-3:]) or "no stderr"
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(detail=f"deviation.npz/json absent; {tail}")
        try:
            summary = json.loads(retrieved.base.repository.get_object_content("deviation.json"))
            with retrieved.base.repository.open("deviation.npz", "rb") as handle, np.load(handle) as data:
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError, UnicodeDecodeError) as error:
            return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(detail=str(error))
        node = orm.ArrayData()
        for key, value in arrays.items():
            node.set_array(key, value)
        node.base.attributes.set(
            "units",
            {
                "sigma": "eV/Angstrom",
                "forces_mean": "eV/Angstrom",
                "energy": "eV",
                "energy_std_per_atom": "eV/atom",
            },
        )
        self.out("deviation", node)
        expected = self.node.inputs.frames.count
        frames = summary.pop("frames", {})
        summary["n_frames_expected"] = expected
        summary = {
            key: (None if isinstance(value, float) and not np.isfinite(value) else value)
            for key, value in summary.items()
        }
        self.out("summary", orm.Dict(summary))
        if len(arrays["sigma_max"]) != expected:
            return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(
                detail=f"{len(arrays['sigma_max'])} frames evaluated, the input set has {expected}"
            )
        bad = [index for index, value in enumerate(frames.get("sigma_max", [])) if value is None]
        if bad or not np.all(np.isfinite(arrays["sigma_max"])):
            return self.exit_codes.ERROR_NONFINITE_DEVIATION.format(detail=f"frames {bad[:10]}")
        return None
