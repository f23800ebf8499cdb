"""ReferenceCheckParser: the values per calculator and the reference-labelled check frames."""

from __future__ import annotations

from aiida import orm
from aiida.engine import ExitCode

from aiida_mofmlp.common.serialise import to_jsonable
from aiida_mofmlp.engines.reference.check import CHECK_FRAMES_FILE, RESULTS_FILE
from aiida_mofmlp.parsers.base import EngineParser


class ReferenceCheckParser(EngineParser):
    """``results.json`` -> ``results``; ``check_frames.extxyz`` (the reference's job) -> ``check_frames``."""

    ENGINE = "mofmlp-reference-check"
    REQUIRED_FILES = (RESULTS_FILE,)

    def parse_outputs(self, **kwargs) -> ExitCode | None:
        results = self.read_json(RESULTS_FILE)
        self.out("results", orm.Dict(to_jsonable(results)))
        if "reference" in results.get("calculators", {}):  # the reference job writes the check frames
            self.out("check_frames", self.read_structure_set(CHECK_FRAMES_FILE))
        return None
