"""SelectParser: selection report, selected frames and map of a SelectCalculation."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from aiida import orm
from aiida.parsers import Parser

from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.selection import OUTPUT_FILES


class SelectParser(Parser):
    """Turn ``selected.json``, ``selected.extxyz`` and ``map.npz``/``map.png`` into output nodes."""

    def parse(self, **kwargs):
        retrieved = self.retrieved
        names = set(retrieved.base.repository.list_object_names())
        stderr = ""
        if "stderr.txt" in names:
            stderr = retrieved.base.repository.get_object_content("stderr.txt")
        if OUTPUT_FILES["report"] not in names:
            errors = [line for line in stderr.splitlines() if "mofmlp-select: error:" in line]
            if errors:
                detail = errors[-1].split("error:", 1)[1].strip()
                return self.exit_codes.ERROR_INVALID_INPUT.format(detail=detail)
            tail = " | ".join(stderr.strip().splitlines()[-3:]) or "no stderr"
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(
                detail=f"{OUTPUT_FILES['report']} absent; {tail}"
            )
        try:
            report = json.loads(retrieved.base.repository.get_object_content(OUTPUT_FILES["report"]))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(detail=f"{OUTPUT_FILES['report']}: {error}")
        self.out("report", orm.Dict(report))

        if report.get("n_selected", 0) == 0:
            detail = "; ".join(report.get("warnings", [])) or f"{report.get('n_candidates', 0)} candidates"
            return self.exit_codes.ERROR_NO_FRAME_SELECTED.format(detail=detail)

        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            if OUTPUT_FILES["frames"] not in names:
                return self.exit_codes.ERROR_MISSING_OUTPUT.format(detail=f"{OUTPUT_FILES['frames']} absent")
            path = tmp / OUTPUT_FILES["frames"]
            path.write_bytes(retrieved.base.repository.get_object_content(OUTPUT_FILES["frames"], mode="rb"))
            try:
                selected = StructureSetData.from_file(path)
            except Exception as error:
                return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(
                    detail=f"{OUTPUT_FILES['frames']}: {error}"
                )
            if selected.count != report["n_selected"]:
                return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(
                    detail=f"{OUTPUT_FILES['frames']} holds {selected.count} frames, "
                    f"the report says {report['n_selected']}"
                )
            self.out("selected", selected)

            if OUTPUT_FILES["map_data"] in names:
                map_path = tmp / OUTPUT_FILES["map_data"]
                map_path.write_bytes(
                    retrieved.base.repository.get_object_content(OUTPUT_FILES["map_data"], mode="rb")
                )
                try:
                    with np.load(map_path) as data:
                        node = orm.ArrayData()
                        for key in ("pool_xy", "training_xy", "selected"):
                            node.set_array(key, data[key])
                        node.base.attributes.set("method", str(data["method"]))
                except (OSError, KeyError, ValueError) as error:
                    return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(
                        detail=f"{OUTPUT_FILES['map_data']}: {error}"
                    )
                self.out("map", node)
            if OUTPUT_FILES["map_figure"] in names:
                with retrieved.base.repository.open(OUTPUT_FILES["map_figure"], "rb") as handle:
                    self.out("map_figure", orm.SinglefileData(handle, filename=OUTPUT_FILES["map_figure"]))
        return None
