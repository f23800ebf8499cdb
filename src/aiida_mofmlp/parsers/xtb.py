"""XtbParser: labelled frames, per-frame failures and the summary of an XtbCalculation."""

from __future__ import annotations

from aiida import orm
from aiida.engine import ExitCode

from aiida_mofmlp.common.serialise import to_jsonable
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.xtb.label import FAILURES_FILE, LABELLED_FILE, SUMMARY_FILE
from aiida_mofmlp.parsers.base import EngineParser


class XtbParser(EngineParser):
    """Turn ``labelled.extxyz``, ``failures.json`` and ``summary.json`` into nodes."""

    ENGINE = "mofmlp-xtb"
    REQUIRED_FILES = (LABELLED_FILE, FAILURES_FILE, SUMMARY_FILE)

    def parse_outputs(self, **kwargs) -> ExitCode | None:
        summary = self.read_json(SUMMARY_FILE)
        failures = self.read_json(FAILURES_FILE)
        total = len(self.node.inputs.structures)
        self.out("summary", orm.Dict(to_jsonable(summary)))
        self.out(
            "failed", orm.Dict({"count": len(failures), "total": total, "frames": to_jsonable(failures)})
        )
        if summary.get("n_labelled", 0) == 0:
            reasons = "; ".join(f"frame {item['index']}: {item['reason']}" for item in failures[:3])
            return self.exit_codes.ERROR_NO_FRAME_LABELLED.format(detail=reasons or "no frame in the output")
        labelled = self.read_structure_set(LABELLED_FILE)
        frames = labelled.get_frames()
        for atoms in frames:
            atoms.info["calc_uuid"] = self.node.uuid
        self.out("labelled", StructureSetData.from_frames(frames))
        if len(frames) + len(failures) != total:
            return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(
                detail=f"{len(frames)} labelled + {len(failures)} failed frames, the input set has {total}"
            )
        return None
