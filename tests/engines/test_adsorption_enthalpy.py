"""Integral and differential heats of adsorption from MD energies: a known answer.

With <E_N> = E_f + N e_g + b N + c N^2 (eV) the integral heat per molecule of the first N is b + c N - RT
and the differential heat between N-1 and N is b + c (2N - 1) - RT; the series carry white noise so that the
errors are finite and are checked against the noise's standard error.
"""

from __future__ import annotations

import numpy as np
import pytest

from aiida_mofmlp.engines.adsorption.enthalpy import (
    EV_TO_KJ_PER_MOL,
    GAS_CONSTANT_KJ,
    differential_heats,
    heat_of_adsorption,
)

FRAMEWORK, GUEST, B, C, T = -500.0, -20.0, -0.25, 0.02, 300.0
NOISE, SAMPLES = 0.01, 4000


def _series(mean: float, rng) -> np.ndarray:
    return mean + rng.normal(0.0, NOISE, SAMPLES)


def test_integral_and_differential_heats_have_their_known_values():
    rng = np.random.default_rng(3)
    framework = _series(FRAMEWORK, rng)
    guest = np.array([GUEST])  # a rigid guest: one energy
    loadings = (1, 2, 4)
    averages, integrals = {}, {}
    for n in loadings:
        loaded = _series(FRAMEWORK + n * GUEST + B * n + C * n * n, rng)
        result = heat_of_adsorption(loaded, framework, guest, n, T)
        integral = (B + C * n) * EV_TO_KJ_PER_MOL - GAS_CONSTANT_KJ * T
        assert result["heat_of_adsorption"] == pytest.approx(
            integral, abs=4 * result["heat_of_adsorption_error"]
        )
        averages[n] = result["averages"]
        integrals[n] = result["heat_of_adsorption"]
    rows = differential_heats(averages, T)
    assert [(row["from_n"], row["to_n"]) for row in rows] == [(0, 1), (1, 2), (2, 4)]
    standard_error = NOISE / np.sqrt(SAMPLES) * EV_TO_KJ_PER_MOL
    for row in rows:
        a, b = row["from_n"], row["to_n"]
        # (<E_b> - <E_a>) / (b - a) - e_g = B + C (a + b)
        expected = (B + C * (a + b)) * EV_TO_KJ_PER_MOL - GAS_CONSTANT_KJ * T
        assert row["value"] == pytest.approx(expected, abs=4 * row["error"])
        assert row["error"] == pytest.approx(np.sqrt(2) * standard_error / (b - a), rel=0.3)
    # a repulsive quadratic term: the differential heat rises with loading while the integral lags behind
    assert rows[-1]["value"] > rows[0]["value"]
    assert rows[0]["value"] == pytest.approx(integrals[1], rel=1e-12)  # from the empty framework: the same
