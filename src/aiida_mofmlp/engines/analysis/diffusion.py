"""Self-diffusion from the Einstein relation and the Arrhenius law.

The mean squared displacement of each particle comes from ``tidynamics.msd`` (FFT, all time origins).
``D = slope / (2 d)`` is fitted on the linear (diffusive) regime, which is found automatically: the lags
where the local log-log slope ``d ln MSD / d ln t`` is within ``tolerance`` of 1, up to ``max_fraction`` of
the run (longer lags average over too few time origins). The error of ``D`` is the standard error over the
particles (each particle's own fit on the same regime), or the regression's error for a single particle.
Without a linear regime no ``D`` is reported (None): the run is too short or the guests are trapped.

A guest in a one-dimensional channel moves along one direction only, and the three-dimensional ``D``
(MSD / 6t) is a third of its diffusivity along the channel. The diffusion tensor (fitted on the same regime
from the MSD projected on six directions) gives the principal diffusivities; those above
:data:`MOBILE_FRACTION` of the largest are the mobile directions, their number the ``dimensionality`` and
their mean ``D_mobile``, the coefficient to compare with a channel or layer experiment.
"""

from __future__ import annotations

import math

import numpy as np
import tidynamics
from scipy import stats

#: Boltzmann constant in eV/K and the kJ/mol of one eV
KB_EV = 8.617333262e-5
EV_TO_KJ_PER_MOL = 96.48533212
#: 1 Angstrom^2/ps in cm^2/s
A2_PER_PS_TO_CM2_PER_S = 1.0e-4
#: a principal diffusivity at least this fraction of the largest one counts as a mobile direction
MOBILE_FRACTION = 0.1
#: the six directions whose projected MSDs give the symmetric diffusion tensor
_DIRECTIONS = (
    np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=float)
    / np.array([1, 1, 1, np.sqrt(2), np.sqrt(2), np.sqrt(2)])[:, None]
)


def msd_per_particle(positions: np.ndarray) -> np.ndarray:
    """MSD (n_lags = n_frames, n_particles) in the units of ``positions`` squared.

    ``positions``: unwrapped, (n_frames, n_particles, 3), equally spaced in time.
    """
    positions = np.asarray(positions, dtype=float)
    if positions.ndim != 3 or positions.shape[2] != 3:
        raise ValueError(f"positions must be (n_frames, n_particles, 3), got {positions.shape}")
    if positions.shape[0] < 4:
        raise ValueError(f"the MSD needs at least 4 frames, got {positions.shape[0]}")
    return np.stack([tidynamics.msd(positions[:, k]) for k in range(positions.shape[1])], axis=1)


def diffusion_tensor(times: np.ndarray, positions: np.ndarray, window: slice) -> np.ndarray:
    """The 3x3 diffusion tensor (Angstrom^2/ps): slope / 2 of the particle-averaged MSD projected on six
    directions, fitted on ``window``; D_uu along u and D_xy = D_(x+y)/sqrt2 - (D_xx + D_yy) / 2."""
    positions = np.asarray(positions, dtype=float)
    along = []
    for direction in _DIRECTIONS:
        projected = positions @ direction  # (n_frames, n_particles)
        msd = np.mean([tidynamics.msd(projected[:, k]) for k in range(projected.shape[1])], axis=0)
        along.append(np.polyfit(times[window], msd[window], 1)[0] / 2.0)
    xx, yy, zz, xy, xz, yz = along
    tensor = np.diag([xx, yy, zz])
    for (i, j), d_ij in (((0, 1), xy), ((0, 2), xz), ((1, 2), yz)):
        tensor[i, j] = tensor[j, i] = d_ij - (tensor[i, i] + tensor[j, j]) / 2.0
    return tensor


def linear_regime(
    times: np.ndarray,
    msd: np.ndarray,
    tolerance: float = 0.25,
    max_fraction: float = 0.5,
    min_points: int = 4,
) -> tuple[int, int, bool]:
    """Lag window ``[start, stop)`` where the MSD grows linearly, and whether one was found.

    The longest run of lags with ``|d ln MSD / d ln t - 1| < tolerance`` within the first ``max_fraction``
    of the lags; without such a run of ``min_points`` lags, the second half of the allowed lags.
    """
    stop_max = max(min_points + 1, int(max_fraction * (len(times) - 1)) + 1)
    lags = np.arange(1, min(stop_max, len(times)))
    valid = msd[lags] > 0
    beta = np.full(len(lags), np.nan)
    if valid.sum() >= 3:
        log_t, log_m = np.log(times[lags][valid]), np.log(msd[lags][valid])
        beta[valid] = np.gradient(log_m, log_t)
    good = np.abs(beta - 1.0) < tolerance
    best, run_start = (0, 0), None
    for k, flag in enumerate([*good, False]):
        if flag and run_start is None:
            run_start = k
        elif not flag and run_start is not None:
            if k - run_start > best[1] - best[0]:
                best = (run_start, k)
            run_start = None
    if best[1] - best[0] >= min_points:
        return int(lags[best[0]]), int(lags[best[1] - 1]) + 1, True
    return int(lags[len(lags) // 2]), int(lags[-1]) + 1, False


def diffusion_coefficient(
    times_ps: np.ndarray,
    positions: np.ndarray,
    dimensions: int = 3,
    tolerance: float = 0.25,
    max_fraction: float = 0.5,
) -> dict:
    """Self-diffusion coefficient of particles with unwrapped ``positions`` (n_frames, n, 3) in Angstrom.

    Returns ``D`` and ``D_error`` in Angstrom^2/ps (and cm^2/s; None without a linear regime), the principal
    diffusivities ``D_principal``, ``dimensionality`` and ``D_mobile`` (see the module docstring), the fitted
    window (``fit_start_ps``, ``fit_stop_ps``, ``linear_regime_found``), the averaged MSD curve (``lag_ps``,
    ``msd``, Angstrom^2) and ``error_method``.
    """
    times = np.asarray(times_ps, dtype=float) - float(times_ps[0])
    spacing = np.diff(times)
    if spacing.size == 0 or not np.allclose(spacing, spacing[0], rtol=1e-6):
        raise ValueError("the MSD needs frames equally spaced in time")
    per_particle = msd_per_particle(positions)
    msd = per_particle.mean(axis=1)
    start, stop, found = linear_regime(times, msd, tolerance, max_fraction)
    window = slice(start, stop)
    fit = stats.linregress(times[window], msd[window])
    factor = 2.0 * dimensions
    n = per_particle.shape[1]
    if n >= 2:
        slopes = np.array([np.polyfit(times[window], per_particle[window, k], 1)[0] for k in range(n)])
        error, method = float(slopes.std(ddof=1) / math.sqrt(n) / factor), "standard error over particles"
    else:
        error, method = float(fit.stderr / factor), "linear regression (one particle)"
    value = float(fit.slope / factor)
    principal = np.sort(np.linalg.eigvalsh(diffusion_tensor(times, positions, window)))[::-1]
    mobile = principal[principal >= MOBILE_FRACTION * principal[0]] if principal[0] > 0 else principal[:0]
    d_mobile = float(mobile.mean()) if mobile.size else None
    result = {
        "D": value if found else None,
        "D_error": error if found else None,
        "D_cm2_per_s": value * A2_PER_PS_TO_CM2_PER_S if found else None,
        "D_error_cm2_per_s": error * A2_PER_PS_TO_CM2_PER_S if found else None,
        "D_principal": principal.tolist() if found else None,
        "dimensionality": int(mobile.size) if found else None,
        "D_mobile": d_mobile if found else None,
        "slope_over_2d": value,  # MSD slope / 2d on the fitted window, kept for inspection when no D is given
        "error_method": method,
        "n_particles": int(n),
        "fit_start_ps": float(times[start]),
        "fit_stop_ps": float(times[stop - 1]),
        "linear_regime_found": bool(found),
        "lag_ps": times,
        "msd": msd,
        "units": {"D": "Angstrom^2/ps", "msd": "Angstrom^2", "lag_ps": "ps"},
    }
    if not found:
        result["no_D_reason"] = (
            "no linear (diffusive) regime in the MSD: the run is too short for the guests to diffuse, or "
            "they are trapped; run longer"
        )
    return result


def arrhenius_fit(temperatures: np.ndarray, values: np.ndarray, errors: np.ndarray | None = None) -> dict:
    """Fit ``values = prefactor * exp(-Ea / (kB T))``; return Ea (eV, kJ/mol) and the prefactor with errors.

    With ``errors`` the fit of ``ln value`` against ``1/T`` is weighted by ``value / error`` and the
    parameter errors come from those errors; without them from the scatter (needs three temperatures).
    """
    temperatures = np.asarray(temperatures, dtype=float)
    values = np.asarray(values, dtype=float)
    if len(temperatures) < 2 or len(temperatures) != len(values):
        raise ValueError("the Arrhenius fit needs at least two temperatures with one value each")
    if (temperatures <= 0).any() or (values <= 0).any():
        raise ValueError("the Arrhenius fit needs positive temperatures and positive values")
    x, y = 1.0 / temperatures, np.log(values)
    weighted = errors is not None and np.all(np.asarray(errors, dtype=float) > 0)
    if weighted:
        weights = values / np.asarray(errors, dtype=float)
        coefficients, covariance = np.polyfit(x, y, 1, w=weights, cov="unscaled")
    elif len(x) > 2:
        coefficients, covariance = np.polyfit(x, y, 1, cov=True)
    else:
        coefficients, covariance = np.polyfit(x, y, 1), np.full((2, 2), np.nan)
    slope, intercept = coefficients
    slope_error, intercept_error = np.sqrt(np.diag(covariance))
    ea = -slope * KB_EV
    return {
        "Ea_eV": float(ea),
        "Ea_error_eV": float(slope_error * KB_EV),
        "Ea_kJ_per_mol": float(ea * EV_TO_KJ_PER_MOL),
        "Ea_error_kJ_per_mol": float(slope_error * KB_EV * EV_TO_KJ_PER_MOL),
        "prefactor": float(np.exp(intercept)),
        "prefactor_error": float(np.exp(intercept) * intercept_error),
        "weighted": bool(weighted),
    }
