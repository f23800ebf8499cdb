"""Lattice parameters over an NPT run and thermal expansion coefficients.

Each lattice parameter's equilibrated mean and error come from
:func:`aiida_mofmlp.common.timeseries.equilibrated_mean` (equilibration detected, statistical inefficiency
from pymbar). Expansion coefficients ``alpha_x = (1/x) dx/dT`` come from a weighted polynomial fit of
``x(T)``, the error propagated from the fit's covariance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms

from aiida_mofmlp.common.timeseries import equilibrated_mean

LATTICE_KEYS = ("a", "b", "c", "alpha", "beta", "gamma", "volume")
LATTICE_UNITS = {
    "a": "Angstrom",
    "b": "Angstrom",
    "c": "Angstrom",
    "alpha": "degree",
    "beta": "degree",
    "gamma": "degree",
    "volume": "Angstrom^3",
}


def lattice_series(frames: Sequence[Atoms]) -> dict[str, np.ndarray]:
    """Per-frame a, b, c (Angstrom), alpha, beta, gamma (degree) and volume (Angstrom^3)."""
    parameters = np.array([f.cell.cellpar() for f in frames])
    series = {key: parameters[:, k] for k, key in enumerate(LATTICE_KEYS[:6])}
    series["volume"] = np.array([f.get_volume() for f in frames])
    return series


def equilibrated_lattice(frames: Sequence[Atoms]) -> dict[str, dict]:
    """Equilibrated mean, error, detected start and inefficiency of each lattice parameter."""
    return {key: equilibrated_mean(values) for key, values in lattice_series(frames).items()}


def expansion_coefficient(
    temperatures: Sequence[float],
    values: Sequence[float],
    errors: Sequence[float] | None = None,
    at_temperature: float | None = None,
    degree: int = 1,
) -> dict:
    """``(1/x) dx/dT`` (1/K) at ``at_temperature`` (default: the middle of the range) from a fit of x(T).

    ``degree`` 1 (linear) or 2 (quadratic); needs at least ``degree + 1`` temperatures. With ``errors``
    (all > 0) the fit is weighted and its covariance absolute; otherwise the covariance is scaled by the
    residuals (nan when there are no degrees of freedom left).
    """
    t = np.asarray(temperatures, dtype=float)
    x = np.asarray(values, dtype=float)
    if len(t) < degree + 1:
        raise ValueError(f"a degree-{degree} fit needs at least {degree + 1} temperatures, got {len(t)}")
    at = float(np.mean([t.min(), t.max()]) if at_temperature is None else at_temperature)
    weighted = errors is not None and np.all(np.asarray(errors, dtype=float) > 0)
    if weighted:
        coefficients, covariance = np.polyfit(t, x, degree, w=1.0 / np.asarray(errors), cov="unscaled")
    elif len(t) > degree + 1:
        coefficients, covariance = np.polyfit(t, x, degree, cov=True)
    else:
        coefficients, covariance = np.polyfit(t, x, degree), np.full((degree + 1,) * 2, np.nan)
    value_at = np.polyval(coefficients, at)
    derivative = np.polyval(np.polyder(coefficients), at)
    # gradient of derivative/value with respect to the coefficients (highest power first)
    powers = np.arange(degree, -1, -1)
    d_value = at**powers
    d_derivative = np.array([p * at ** (p - 1) if p > 0 else 0.0 for p in powers])
    gradient = d_derivative / value_at - derivative * d_value / value_at**2
    error = float(np.sqrt(gradient @ covariance @ gradient))
    return {
        "alpha": float(derivative / value_at),
        "alpha_error": error,
        "at_temperature": at,
        "degree": int(degree),
        "weighted": bool(weighted),
        "units": {"alpha": "1/K", "at_temperature": "K"},
    }
