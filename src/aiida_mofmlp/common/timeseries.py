"""Time-series statistics for MD and GCMC observables: detected equilibration, mean with error, blocks.

The statistical inefficiency ``g`` and the equilibration time ``t0`` come from
``pymbar.timeseries`` (Chodera, J. Chem. Theory Comput. 2016, DOI 10.1021/acs.jctc.5b00784):
``t0`` maximises the number of effectively uncorrelated samples of the production part.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings

import numpy as np

__all__ = ["block_average", "equilibrated_mean", "statistical_inefficiency"]


def _timeseries():
    """Import ``pymbar.timeseries`` quietly (pymbar prints a banner about JAX and a warning on import)."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("pymbar").setLevel(logging.ERROR)
        from pymbar import timeseries

    return timeseries


def statistical_inefficiency(samples) -> float:
    """Statistical inefficiency ``g >= 1`` of a series (1 for a constant or very short series)."""
    x = np.asarray(samples, dtype=float)
    if x.size < 3 or np.ptp(x) == 0.0:
        return 1.0
    return float(max(1.0, _timeseries().statistical_inefficiency(x)))


def equilibrated_mean(samples, fast: bool = True) -> dict:
    """Mean of the equilibrated part of ``samples`` with its standard error.

    Returns ``mean``, ``error`` (standard error from the statistical inefficiency), ``t0`` (index of the
    first equilibrated sample, detected, not assumed), ``g`` (statistical inefficiency of the production
    part), ``n_effective`` (uncorrelated samples after ``t0``) and ``n_samples``. A constant series has
    error 0; a single sample has error nan.
    """
    x = np.asarray(samples, dtype=float).ravel()
    if x.size == 0:
        raise ValueError("equilibrated_mean needs at least one sample, got an empty series")
    if not np.all(np.isfinite(x)):
        raise ValueError("equilibrated_mean got non-finite samples (nan or inf)")
    if x.size < 3 or np.ptp(x) == 0.0:
        error = 0.0 if np.ptp(x) == 0.0 and x.size > 1 else float("nan")
        return {
            "mean": float(x.mean()),
            "error": error,
            "t0": 0,
            "g": 1.0,
            "n_effective": float(x.size),
            "n_samples": int(x.size),
        }
    t0, g, n_effective = _timeseries().detect_equilibration(x, fast=fast)
    production = x[int(t0) :]
    g = float(max(1.0, g))
    n_effective = float(production.size / g)
    if production.size > 1:
        error = float(production.std(ddof=1) / math.sqrt(max(n_effective, 1.0)))
    else:
        error = float("nan")
    return {
        "mean": float(production.mean()),
        "error": error,
        "t0": int(t0),
        "g": g,
        "n_effective": n_effective,
        "n_samples": int(x.size),
    }


def block_average(samples, n_blocks: int) -> dict:
    """Mean and standard error of the mean from ``n_blocks`` contiguous block averages.

    Returns ``mean``, ``error`` (nan with fewer than two blocks), ``n_blocks`` (used, at most the number of
    samples) and ``block_means``.
    """
    x = np.asarray(samples, dtype=float).ravel()
    if x.size == 0:
        raise ValueError("block_average needs at least one sample, got an empty series")
    if n_blocks < 1:
        raise ValueError(f"block_average: n_blocks must be >= 1, got {n_blocks}")
    n_blocks = int(min(n_blocks, x.size))
    means = np.array([block.mean() for block in np.array_split(x, n_blocks)])
    error = float(means.std(ddof=1) / math.sqrt(n_blocks)) if n_blocks > 1 else float("nan")
    return {"mean": float(means.mean()), "error": error, "n_blocks": n_blocks, "block_means": means.tolist()}
