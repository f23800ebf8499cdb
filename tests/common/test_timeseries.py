"""Equilibration detection, statistical inefficiency and block averages against known answers."""

import math

import numpy as np
import pytest
from scipy.signal import lfilter

from aiida_mofmlp.common.timeseries import block_average, equilibrated_mean, statistical_inefficiency


def ar1(n: int, phi: float, rng: np.random.Generator) -> np.ndarray:
    """AR(1) series with unit stationary variance; its statistical inefficiency is (1 + phi) / (1 - phi)."""
    noise = rng.normal(scale=math.sqrt(1.0 - phi**2), size=n)
    noise[0] = rng.normal()
    return lfilter([1.0], [1.0, -phi], noise)


def test_statistical_inefficiency_of_ar1_matches_theory():
    phi = 0.8
    g = statistical_inefficiency(ar1(40000, phi, np.random.default_rng(1)))
    assert g == pytest.approx((1 + phi) / (1 - phi), rel=0.2)


def test_error_of_correlated_series_covers_the_true_mean():
    """Over many independent AR(1) series the error bar covers the true mean (0) about 68% of the time."""
    rng = np.random.default_rng(2)
    covered = [
        abs(r["mean"]) < r["error"] for r in (equilibrated_mean(ar1(2000, 0.9, rng)) for _ in range(60))
    ]
    assert 0.5 < np.mean(covered) < 0.9


def test_error_of_a_stationary_series_equals_the_spread_of_its_mean():
    """150 replicas of an AR(1) series (tau 20, 1,000 samples): the reported error is the true scatter of the
    mean (within 20 %), and no start is discarded without a drift. With pymbar's t0 used unconditionally the
    scatter was 0.28 against a reported 0.18."""
    rng = np.random.default_rng(1)
    phi = math.exp(-1.0 / 20.0)
    results = [equilibrated_mean(ar1(1000, phi, rng)) for _ in range(150)]
    spread = np.std([r["mean"] for r in results], ddof=1)
    reported = np.mean([r["error"] for r in results])
    assert reported == pytest.approx(spread, rel=0.2), (reported, spread)
    assert np.mean([r["t0"] > 0 for r in results]) < 0.1


def test_equilibration_is_detected_after_an_initial_transient():
    rng = np.random.default_rng(3)
    transient = 10.0 * np.exp(-np.arange(2000) / 50.0)
    result = equilibrated_mean(transient + rng.normal(size=2000))
    assert 100 < result["t0"] < 1200
    assert abs(result["mean"]) < 4 * result["error"]
    assert result["n_effective"] <= result["n_samples"] - result["t0"]


def test_constant_and_tiny_series():
    assert equilibrated_mean([2.0, 2.0, 2.0, 2.0]) == {
        "mean": 2.0,
        "error": 0.0,
        "t0": 0,
        "g": 1.0,
        "n_effective": 4.0,
        "n_samples": 4,
        "drift_z": 0.0,
    }
    assert math.isnan(equilibrated_mean([1.0])["error"])
    with pytest.raises(ValueError, match="empty"):
        equilibrated_mean([])
    with pytest.raises(ValueError, match="non-finite"):
        equilibrated_mean([1.0, float("nan"), 2.0])


def test_block_average_of_independent_samples():
    rng = np.random.default_rng(4)
    x = rng.normal(loc=5.0, scale=2.0, size=10000)
    result = block_average(x, 10)
    assert result["mean"] == pytest.approx(x.mean())
    assert result["error"] == pytest.approx(2.0 / math.sqrt(10000), rel=0.5)
    assert result["n_blocks"] == 10 and len(result["block_means"]) == 10
    assert block_average([1.0, 3.0], 5)["n_blocks"] == 2
    assert math.isnan(block_average([1.0, 2.0], 1)["error"])
    with pytest.raises(ValueError, match="n_blocks"):
        block_average([1.0], 0)
