"""The one MAE/RMSE helper: energy per atom (eV/atom) and force components (eV/Angstrom)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aiida_mofmlp.common.metrics import METRIC_UNITS, error_metrics, mae_rmse


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
