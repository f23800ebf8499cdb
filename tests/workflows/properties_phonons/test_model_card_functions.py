"""The model-card calcfunction and the NPT volume drift on hand-made results with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm

from aiida_mofmlp.workflows.functions.phonons import make_model_card, volume_drift_percent


def test_volume_drift_uses_the_last_half():
    volume = np.array([100.0, 101.0, 102.0, 102.0, 104.0, 104.0])
    assert volume_drift_percent(volume) == pytest.approx(100 * (np.mean([102.0, 104.0, 104.0]) - 100) / 100)
    with pytest.raises(ValueError, match=">= 2"):
        volume_drift_percent(np.array([1.0]))


def _results(bulk_modulus: float, cv: float, status: str = "stable") -> orm.Dict:
    return orm.Dict(
        {
            "relax": {"volume_change_percent": -1.5},
            "phonons": {"heat_capacity_300K_per_gram": cv, "status": status, "min_frequency": -0.01},
            "eos": {"bulk_modulus_eos_gpa": bulk_modulus},
            "wall_time_s": {"relax": 1.0},
        }
    )


def test_card_columns_units_and_difference(aiida_profile):
    thermo = orm.ArrayData()
    thermo.set_array("volume", np.array([100.0, 100.0, 103.0, 103.0]))
    card = make_model_card(
        orm.Dict({"framework": "MgO"}),
        results_fine_tuned=_results(20.0, 1.1),
        results_foundation=_results(15.0, 1.0, "imaginary"),
        thermo_fine_tuned=thermo,
        npt_fine_tuned=orm.Dict({"status": "completed"}),
    ).get_dict()
    fine, base = card["models"]["fine_tuned"], card["models"]["foundation"]
    assert fine["npt_volume_drift_percent"] == pytest.approx(3.0)
    assert fine["npt_status"] == "completed" and base["npt_status"] == "not run"
    assert base["phonon_status"] == "imaginary" and base["interaction_energy_kj_mol"] is None
    assert card["difference"]["bulk_modulus_gpa"] == pytest.approx(5.0)
    assert card["units"]["heat_capacity_300K_j_per_g_k"] == "J/(g K)"
    assert card["framework"] == "MgO"
