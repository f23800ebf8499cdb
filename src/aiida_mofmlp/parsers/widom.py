"""WidomParser: Henry coefficient and insertion energies of a WidomCalculation."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import ExitCode

from aiida_mofmlp.common.serialise import to_jsonable
from aiida_mofmlp.engines.adsorption.widom import ARRAYS_FILE, RESULTS_FILE
from aiida_mofmlp.parsers.base import EngineParser


class WidomParser(EngineParser):
    """Turn ``widom.json`` into the ``widom`` Dict and ``widom.npz`` into the ``insertions`` ArrayData."""

    ENGINE = "mofmlp-widom"
    REQUIRED_FILES = (RESULTS_FILE, ARRAYS_FILE)

    def parse_outputs(self, **kwargs) -> ExitCode | None:
        results = self.read_json(RESULTS_FILE)
        arrays = self.read_npz(ARRAYS_FILE)
        units = {"guest_positions": "Angstrom", "delta_energy": "eV", "framework_energy": "eV"}
        self.out("insertions", self.array_data(arrays, units))
        self.out("widom", orm.Dict(to_jsonable(results)))
        if not np.isfinite(arrays["delta_energy"]).any():
            return self.exit_codes.ERROR_NO_ACCEPTED_INSERTION.format(
                detail=f"{len(arrays['delta_energy'])} insertions; lower parameters.overlap_distance"
            )
        return None
