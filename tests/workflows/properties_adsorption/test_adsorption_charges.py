"""xTB framework charges for RASPA: a real GFN1-xTB single point of DMOF-1 (tblite), made neutral."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.xtb.label import LABELLED_FILE, run
from aiida_mofmlp.workflows.functions.adsorption import framework_charges_from_xtb, framework_frame
from aiida_mofmlp.workflows.functions.raspa import cif_charges

pytestmark = pytest.mark.integration


def test_xtb_charges_are_neutral_and_readable_by_raspa(dmof, tmp_path):
    frames = framework_frame(dmof)
    frames.write_extxyz(tmp_path / "frames.extxyz")
    run({"frames": "frames.extxyz", "method": "GFN1-xTB", "charges": True}, tmp_path)
    labelled = StructureSetData.from_file(tmp_path / LABELLED_FILE)
    raw = labelled.get_frame(0).arrays["xtb_charges"]
    assert abs(raw.sum()) < 1e-3  # Mulliken charges of a neutral cell, to SCF precision

    result = framework_charges_from_xtb(dmof, labelled)
    charges = result["charges"].get_array("charges")
    assert abs(charges.sum()) < 1e-6
    assert np.allclose(charges, raw - raw.sum() / len(raw))
    symbols = dmof.get_ase().get_chemical_symbols()
    zinc = [q for q, s in zip(charges, symbols, strict=True) if s == "Zn"]
    oxygen = [q for q, s in zip(charges, symbols, strict=True) if s == "O"]
    assert min(zinc) > 0 > max(oxygen)  # Zn(II) carboxylate: metal positive, carboxylate O negative
    from_cif = cif_charges(result["cif"])  # what RASPA's IsothermWorkChain reads with framework_charges: cif
    assert np.allclose(from_cif, charges, atol=1e-5)
    assert result["charges"].base.attributes.get("unit") == "e"
