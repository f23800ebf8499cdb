"""The one MAE/RMSE helper: energy per atom (eV/atom), force components (eV/Angstrom) and stress (eV/A^3)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aiida_mofmlp.common.metrics import (
    EV_PER_A3_IN_GPA,
    METRIC_UNITS,
    STRESS_METRIC_UNITS,
    error_metrics,
    mae_rmse,
    stress_metrics,
)


def test_mae_rmse_known_values():
    assert mae_rmse([3.0, -4.0]) == pytest.approx((3.5, math.sqrt(12.5)))
    mae, rmse = mae_rmse([])
    assert math.isnan(mae) and math.isnan(rmse)


def test_error_metrics_per_atom_and_per_component():
    # frame 0: 2 atoms, energy error 0.4 eV -> 0.2 eV/atom; frame 1: 4 atoms, -0.4 eV -> -0.1 eV/atom
    ref_e, pred_e, n_atoms = [-10.0, -20.0], [-9.6, -20.4], [2, 4]
    ref_f = [np.zeros((2, 3)), np.zeros((4, 3))]
    pred_f = [np.full((2, 3), 0.1), np.full((4, 3), -0.2)]
    metrics = error_metrics(ref_e, pred_e, n_atoms, ref_f, pred_f)
    assert metrics["n_frames"] == 2
    assert metrics["mae_e_per_atom"] == pytest.approx(0.15)
    assert metrics["rmse_e_per_atom"] == pytest.approx(math.sqrt((0.04 + 0.01) / 2))
    # 6 components of 0.1 and 12 of -0.2
    assert metrics["mae_f"] == pytest.approx((6 * 0.1 + 12 * 0.2) / 18)
    assert metrics["rmse_f"] == pytest.approx(math.sqrt((6 * 0.01 + 12 * 0.04) / 18))
    assert set(METRIC_UNITS) == set(metrics) - {"n_frames"}


def test_error_metrics_without_forces_and_mismatched_lengths():
    metrics = error_metrics([1.0], [1.5], [5], [], [])
    assert metrics["mae_e_per_atom"] == pytest.approx(0.1)
    assert math.isnan(metrics["mae_f"]) and math.isnan(metrics["rmse_f"])
    with pytest.raises(ValueError, match="one value per frame"):
        error_metrics([1.0, 2.0], [1.0], [1, 1], [], [])
    with pytest.raises(ValueError, match="one array per frame"):
        error_metrics([1.0], [1.0], [1], [np.zeros((1, 3))], [])


def test_stress_metrics_per_voigt_component_and_in_gpa():
    # frame 0 (Voigt): error 0.01 on xx only; frame 1 (3x3, symmetric): error -0.02 on the yz pair, which is
    # ONE Voigt component (MACE's log would count it twice among nine entries)
    ref = [np.zeros(6), np.zeros((3, 3))]
    pred_1 = np.zeros((3, 3))
    pred_1[1, 2] = pred_1[2, 1] = -0.02
    pred = [np.array([0.01, 0, 0, 0, 0, 0]), pred_1]
    metrics = stress_metrics(ref, pred)
    assert metrics["n_frames_stress"] == 2
    assert metrics["mae_stress"] == pytest.approx(0.03 / 12)
    assert metrics["rmse_stress"] == pytest.approx(math.sqrt((0.0001 + 0.0004) / 12))
    # 1 eV/A^3 = 160.2176634 GPa (ase.units agrees)
    from ase import units

    assert 1 / units.GPa == pytest.approx(EV_PER_A3_IN_GPA, rel=1e-8)
    assert metrics["mae_stress_gpa"] == pytest.approx(0.03 / 12 * 160.2176634)
    assert metrics["rmse_stress_gpa"] == pytest.approx(metrics["rmse_stress"] * EV_PER_A3_IN_GPA)
    # 9 flat entries read as a 3x3 matrix; the ASE sign is kept (no sign flip): pred - ref
    flat = stress_metrics([np.zeros(9)], [np.arange(9.0)])
    assert flat["mae_stress"] == pytest.approx((0 + 4 + 8 + 5 + 2 + 1) / 6)
    assert set(STRESS_METRIC_UNITS) == set(metrics) - {"n_frames_stress"}
    empty = stress_metrics([], [])
    assert empty["n_frames_stress"] == 0 and math.isnan(empty["mae_stress"])
    with pytest.raises(ValueError, match="one stress per frame"):
        stress_metrics([np.zeros(6)], [])
    with pytest.raises(ValueError, match="6 Voigt components"):
        stress_metrics([np.zeros(4)], [np.zeros(4)])


def test_error_metrics_adds_stress_only_when_given():
    args = ([-10.0], [-9.0], [2], [np.zeros((2, 3))], [np.ones((2, 3))])
    plain = error_metrics(*args)
    assert not any("stress" in key for key in plain)
    with_stress = error_metrics(*args, ref_stress=[np.zeros(6)], pred_stress=[np.full(6, -0.1)])
    assert with_stress["mae_e_per_atom"] == pytest.approx(0.5) and with_stress["mae_f"] == pytest.approx(1.0)
    assert with_stress["mae_stress"] == pytest.approx(0.1) and with_stress["n_frames_stress"] == 1
    with pytest.raises(ValueError, match="both ref_stress and pred_stress"):
        error_metrics(*args, ref_stress=[np.zeros(6)])


def test_composition_offsets_cancel_and_the_rest_is_binding_scatter():
    """Errors = a constant per loading (per-element offsets) + a scatter: the offsets come back exactly,
    the offset-removed error is the scatter alone, and the binding-energy scatter is its std per guest."""
    from aiida_mofmlp.common.metrics import EV_IN_KJ_PER_MOL, composition_offset_metrics

    rng = np.random.default_rng(3)
    guests = np.repeat([0, 1, 2], 200)
    atoms = 40 + 3 * guests
    scatter = rng.normal(scale=0.05, size=guests.size)  # eV per cell
    offset = {0: 2.0, 1: 2.7, 2: 3.4}  # eV per cell: large, constant per composition
    ref = rng.normal(size=guests.size)
    pred = ref + np.array([offset[g] for g in guests]) + scatter
    result = composition_offset_metrics(ref, pred, atoms, guests)
    for loading, value in offset.items():
        assert result["offsets"][str(loading)] == pytest.approx(value, abs=0.01)
    centred = np.concatenate([scatter[guests == g] - scatter[guests == g].mean() for g in (0, 1, 2)])
    assert result["rmse_e_offset_removed"] == pytest.approx(np.sqrt(np.mean(centred**2)), rel=1e-9)
    assert result["mae_e_per_atom_offset_removed"] < 0.05 / 40  # against 0.05 eV/atom with the offsets
    per_guest = np.concatenate([(scatter[guests == g] - scatter[guests == g].mean()) / g for g in (1, 2)])
    assert result["binding_energy_spread_kj_mol"] == pytest.approx(
        np.std(per_guest, ddof=2) * EV_IN_KJ_PER_MOL, rel=1e-9
    )
    assert composition_offset_metrics([1.0], [1.5], [10], [1])["binding_energy_spread_kj_mol"] is None
