"""SelectParser: selection report, selected frames and map of a SelectCalculation."""

from __future__ import annotations

from aiida import orm
from aiida.engine import ExitCode

from aiida_mofmlp.engines.selection.select import OUTPUT_FILES
from aiida_mofmlp.parsers.base import EngineParser

#: arrays of ``map.npz`` attached as the ``map`` output
MAP_ARRAYS = ("pool_xy", "training_xy", "selected")


class SelectParser(EngineParser):
    """Turn ``selected.json``, ``selected.extxyz`` and ``map.npz``/``map.png`` into output nodes."""

    ENGINE = "mofmlp-select"
    REQUIRED_FILES = (OUTPUT_FILES["report"],)

    def parse_outputs(self, **kwargs) -> ExitCode | None:
        report = self.read_json(OUTPUT_FILES["report"])
        self.out("report", orm.Dict(report))

        if report.get("n_selected", 0) == 0:
            detail = "; ".join(report.get("warnings", [])) or f"{report.get('n_candidates', 0)} candidates"
            return self.exit_codes.ERROR_NO_FRAME_SELECTED.format(detail=detail)

        selected = self.read_structure_set(OUTPUT_FILES["frames"])
        if selected.count != report["n_selected"]:
            return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(
                detail=f"{OUTPUT_FILES['frames']} holds {selected.count} frames, "
                f"the report says {report['n_selected']}"
            )
        self.out("selected", selected)

        if OUTPUT_FILES["map_data"] in self.retrieved_names:
            data = self.read_npz(OUTPUT_FILES["map_data"], keys=(*MAP_ARRAYS, "method"))
            node = self.array_data({key: data[key] for key in MAP_ARRAYS})
            node.base.attributes.set("method", str(data["method"]))
            self.out("map", node)
        if OUTPUT_FILES["map_figure"] in self.retrieved_names:
            self.out("map_figure", self.singlefile(OUTPUT_FILES["map_figure"]))
        return None
