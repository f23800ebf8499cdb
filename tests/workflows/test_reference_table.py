"""The reference check's decisions: rows, tolerances, the ensemble row, and the frames behind failures."""

from __future__ import annotations

import pytest
from aiida import orm

from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.mace.toy import toy_frame
from aiida_mofmlp.workflows.functions.reference import (
    reference_table,
    tolerance_problems,
    untrusted_check_frames,
)

TOLERANCES = {
    "volume_percent": 1.0,
    "bulk_modulus_percent": 10.0,
    "binding_energy_kj_mol": 2.0,
    "gamma_thz": 0.3,
}


def _results(model_0: dict, model_1: dict) -> dict:
    reference = {
        "volume": 1000.0,
        "bulk_modulus": 10.0,
        "binding_energy": [-20.0, -30.0],
        "gamma": [0.0, 0.0, 0.0, 1.0, 2.0, 3.0],
    }
    return {"calculators": {"reference": reference, "model_0": model_0, "model_1": model_1}}


def _model(volume, modulus, binding, gamma) -> dict:
    return {"volume": volume, "bulk_modulus": modulus, "binding_energy": binding, "gamma": gamma}


def test_rows_per_model_and_the_ensemble_decides():
    results = _results(
        _model(1005.0, 12.0, [-21.0, -31.0], [0.01, 0.0, 0.0, 1.1, 2.1, 3.1]),
        _model(1003.0, 7.0, [-19.0, -33.0], [0.0, 0.0, 0.0, 0.9, 1.9, 2.9]),
    )
    table = reference_table(results, TOLERANCES)
    rows = {(row["property"], row["model"]): row for row in table["rows"]}
    assert rows[("volume", "ensemble")]["value"] == pytest.approx(1004.0)
    assert rows[("volume", "ensemble")]["relative_percent"] == pytest.approx(0.4)
    assert rows[("volume", "ensemble")]["spread"] == pytest.approx(2.0**0.5)  # std of 1005 and 1003
    assert "spread" not in rows[("volume", "model_0")]
    assert rows[("bulk_modulus", "model_1")]["relative_percent"] == pytest.approx(-30.0)
    assert not rows[("bulk_modulus", "model_1")]["passed"]
    assert rows[("bulk_modulus", "ensemble")]["value"] == pytest.approx(9.5)
    assert rows[("bulk_modulus", "ensemble")]["passed"]  # -5 % within 10 %
    # binding: mean over frames; per-frame errors of the ensemble are (0, -2) -> mean -1 kJ/mol
    assert rows[("binding_energy", "ensemble")]["difference"] == pytest.approx(-1.0)
    assert rows[("binding_energy", "ensemble")]["frame_errors"] == pytest.approx([0.0, -2.0])
    # gamma: the acoustic modes are left out; the ensemble's mean spectrum equals the reference
    assert rows[("gamma", "model_0")]["difference"] == pytest.approx(0.1)
    assert rows[("gamma", "ensemble")]["difference"] == pytest.approx(0.0, abs=1e-12)
    assert table["passed"] and table["failed"] == []
    assert len(table["rows"]) == 4 * 3


def test_a_property_outside_its_tolerance_fails_the_table():
    results = _results(
        _model(1020.0, 10.0, [-25.0, -35.0], [0, 0, 0, 1, 2, 3]),
        _model(1020.0, 10.0, [-25.0, -35.0], [0, 0, 0, 1, 2, 3]),
    )
    table = reference_table(results, {"volume_percent": 1.0, "binding_energy_kj_mol": 2.0})
    assert table["failed"] == ["binding_energy", "volume"]
    assert not table["passed"]
    assert {row["property"] for row in table["rows"]} == {"volume", "binding_energy"}  # only toleranced ones


def test_tolerance_problems_name_the_key():
    assert tolerance_problems(TOLERANCES) == []
    assert "unknown key 'volume'" in tolerance_problems({"volume": 1.0})[0]
    assert "must be a positive number" in tolerance_problems({"gamma_thz": -1})[0]


def test_untrusted_frames_are_those_behind_failed_properties(aiida_profile):
    frames = []
    for task, index in (
        ("eos", None),
        ("eos", None),
        ("binding_energy", 0),
        ("binding_energy", 1),
        ("binding_energy", 1),
        ("gamma", None),
    ):
        atoms = toy_frame(1)
        atoms.info["check_task"] = task
        if index is not None:
            atoms.info["binding_index"] = index
        frames.append(atoms)
    check = StructureSetData.from_frames(frames).store()
    table = reference_table(
        _results(
            _model(1020.0, 10.0, [-20.5, -35.0], [0, 0, 0, 1, 2, 3]),
            _model(1020.0, 10.0, [-20.5, -35.0], [0, 0, 0, 1, 2, 3]),
        ),
        TOLERANCES,
    )
    assert table["failed"] == ["binding_energy", "volume"]
    untrusted = untrusted_check_frames(check, orm.Dict(table))
    tasks = [atoms.info["check_task"] for atoms in untrusted.iter_frames()]
    assert tasks == ["eos", "eos", "binding_energy", "binding_energy"]  # frame 1 (off by 5 kJ/mol), not 0
    assert [atoms.info.get("binding_index") for atoms in untrusted.iter_frames()][2:] == [1, 1]
