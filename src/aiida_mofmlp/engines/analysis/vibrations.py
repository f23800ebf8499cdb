"""Vibrational density of states from the mass-weighted velocity autocorrelation of an NVE run.

``C(t) = sum_i m_i <v_i(0) . v_i(t)>`` from ``tidynamics.acf`` (FFT, all time origins); the spectrum is
the cosine transform of ``C(t)`` tapered by a Hann window, normalised so that its integral over frequency
is ``3N`` (one state per degree of freedom).
"""

from __future__ import annotations

import numpy as np
import tidynamics
from scipy.integrate import trapezoid

THZ_TO_CM1 = 33.35641


def velocity_autocorrelation(velocities: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Mass-weighted velocity autocorrelation (n_frames,) of velocities (n_frames, n_atoms, 3)."""
    velocities = np.asarray(velocities, dtype=float)
    if velocities.ndim != 3 or velocities.shape[2] != 3:
        raise ValueError(f"velocities must be (n_frames, n_atoms, 3), got {velocities.shape}")
    masses = np.asarray(masses, dtype=float)
    acf = np.zeros(velocities.shape[0])
    for atom in range(velocities.shape[1]):
        for axis in range(3):
            acf += masses[atom] * tidynamics.acf(velocities[:, atom, axis])
    return acf


def vibrational_dos(velocities: np.ndarray, masses: np.ndarray, timestep_ps: float) -> dict:
    """VDOS of velocities (Angstrom/ps) sampled every ``timestep_ps``.

    Returns ``frequency_thz``, ``wavenumber_cm1``, ``dos`` (states per THz, integral ``3N``),
    ``vacf`` (normalised to 1 at t = 0), ``n_atoms``, the resolution and the Nyquist frequency.
    """
    if timestep_ps <= 0:
        raise ValueError(f"timestep_ps must be > 0, got {timestep_ps}")
    acf = velocity_autocorrelation(velocities, masses)
    n = len(acf)
    if n < 8:
        raise ValueError(f"the VDOS needs at least 8 frames, got {n}")
    tapered = acf * np.hanning(2 * n - 1)[n - 1 :]
    even = np.concatenate([tapered, tapered[-1:0:-1]])
    spectrum = np.fft.rfft(even).real * timestep_ps
    frequency = np.fft.rfftfreq(len(even), d=timestep_ps)
    spectrum = np.clip(spectrum, 0.0, None)
    n_atoms = velocities.shape[1]
    area = trapezoid(spectrum, frequency)
    if area <= 0:
        raise ValueError("the velocity autocorrelation has no spectral weight (atoms at rest?)")
    dos = spectrum * 3 * n_atoms / area
    return {
        "frequency_thz": frequency,
        "wavenumber_cm1": frequency * THZ_TO_CM1,
        "dos": dos,
        "vacf": acf / acf[0],
        "n_atoms": int(n_atoms),
        "resolution_thz": float(frequency[1]),
        "nyquist_thz": float(frequency[-1]),
        "units": {"frequency": "THz", "dos": "states/THz", "wavenumber": "cm^-1"},
    }


def dominant_frequencies(frequency: np.ndarray, dos: np.ndarray, n: int = 3) -> list[float]:
    """The ``n`` highest local maxima of the DOS, by height, as frequencies."""
    from scipy.signal import find_peaks

    indices, props = find_peaks(dos, height=0)
    order = np.argsort(props["peak_heights"])[::-1][:n]
    return [float(frequency[i]) for i in indices[order]]
