"""PhononsWorkChain running the real ``mofmlp-phonons`` (calculation, parser, outputs, trust) on MgO."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.build import bulk

from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.engines.mace.toy import build_tiny_model
from aiida_mofmlp.workflows.properties.phonons import PhononsWorkChain

pytestmark = pytest.mark.integration


def test_workchain_outputs_with_units_and_trust(aiida_profile, require_code, tmp_path):
    foundation = MaceModelData.small_mof_foundation()
    second = MaceModelData.from_file(build_tiny_model(["O", "Mg"], tmp_path / "tiny.model")).store()
    structure = orm.StructureData(ase=bulk("MgO", "rocksalt", a=4.0))
    overrides = {"phonons": {"parameters": {"phonons": {"band_points": 21}}}}
    builder = PhononsWorkChain.get_builder_from_protocol(
        structure,
        [foundation, second],
        {"phonons": require_code("phonons"), "deviation": require_code("deviation")},
        protocol="fast",
        overrides=overrides,
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    summary = results["results"].get_dict()
    assert summary["phonons"]["status"] == "stable"
    assert summary["relax"]["converged"] and summary["relax"]["volume_change_percent"] > 0  # 4.0 -> 4.09 A
    assert summary["eos"]["bulk_modulus_eos_gpa"] > 10.0
    assert set(summary["wall_time_s"]) == {"relax", "phonons", "eos"}
    phonons = results["phonons"]
    assert phonons.base.attributes.get("units")["thermal_heat_capacity"] == "J/(K mol of unit cells)"
    cv = phonons.get_array("thermal_heat_capacity_kb")
    assert 0 < cv[-1] <= 6.0
    assert np.asarray(results["eos"].get_array("eos_volumes")).shape == (5,)
    relaxed = results["relaxed_structure"].get_ase()
    assert relaxed.get_volume() == pytest.approx(summary["volume_final"])
    trust = results["trust"].get_dict()
    assert trust["assessed"] and trust["all"]["n_frames"] == 1
