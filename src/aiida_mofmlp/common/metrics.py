"""Errors of predicted energies and forces against reference labels (no AiiDA imports).

The energy error is taken per atom (eV/atom) and the force error per Cartesian component (eV/Angstrom),
the quantities MACE's training reports as ``mae_e_per_atom`` / ``mae_f``; one definition serves the
training engine, the active-learning validation and the parity plots.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["METRIC_UNITS", "error_metrics", "mae_rmse"]

#: units of the :func:`error_metrics` keys
METRIC_UNITS = {
    "mae_e_per_atom": "eV/atom",
    "rmse_e_per_atom": "eV/atom",
    "mae_f": "eV/Angstrom",
    "rmse_f": "eV/Angstrom",
}


def mae_rmse(difference: Iterable[float] | np.ndarray) -> tuple[float, float]:
    """Mean absolute error and root-mean-square error of ``difference`` (predicted - reference).

    An empty difference gives ``(nan, nan)``.
    """
    values = np.asarray(difference, dtype=float).ravel()
    if values.size == 0:
        return float("nan"), float("nan")
    return float(np.mean(np.abs(values))), float(np.sqrt(np.mean(values**2)))


def error_metrics(
    ref_energy: Sequence[float] | np.ndarray,
    pred_energy: Sequence[float] | np.ndarray,
    n_atoms: Sequence[int] | np.ndarray,
    ref_forces: Sequence[np.ndarray],
    pred_forces: Sequence[np.ndarray],
) -> dict[str, float | int]:
    """MAE and RMSE of the energy per atom (eV/atom) and of the force components (eV/Angstrom).

    ``ref_energy``, ``pred_energy`` (eV) and ``n_atoms`` hold one value per frame; ``ref_forces`` and
    ``pred_forces`` one (n_atoms, 3) array per frame (eV/Angstrom). Frames without an energy label can be
    left out of the energy lists and frames without forces out of the force lists: the two errors are
    averaged independently. Returns ``n_frames`` (length of the energy lists), ``mae_e_per_atom``,
    ``rmse_e_per_atom``, ``mae_f`` and ``rmse_f``; an error with no data is NaN.
    """
    if not len(ref_energy) == len(pred_energy) == len(n_atoms):
        raise ValueError(
            f"ref_energy, pred_energy and n_atoms must have one value per frame; got "
            f"{len(ref_energy)}, {len(pred_energy)} and {len(n_atoms)}"
        )
    if len(ref_forces) != len(pred_forces):
        raise ValueError(
            f"ref_forces and pred_forces must have one array per frame; got {len(ref_forces)} and "
            f"{len(pred_forces)}"
        )
    energy = (np.asarray(pred_energy, dtype=float) - np.asarray(ref_energy, dtype=float)) / np.asarray(
        n_atoms, dtype=float
    )
    force_parts = [
        np.ravel(np.asarray(pred, dtype=float)) - np.ravel(np.asarray(ref, dtype=float))
        for ref, pred in zip(ref_forces, pred_forces, strict=True)
    ]
    forces = np.concatenate(force_parts) if force_parts else np.zeros(0)
    mae_e, rmse_e = mae_rmse(energy)
    mae_f, rmse_f = mae_rmse(forces)
    return {
        "n_frames": len(energy),
        "mae_e_per_atom": mae_e,
        "rmse_e_per_atom": rmse_e,
        "mae_f": mae_f,
        "rmse_f": rmse_f,
    }
