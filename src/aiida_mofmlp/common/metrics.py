"""Errors of predicted energies, forces and stresses against reference labels (no AiiDA imports).

The energy error is taken per atom (eV/atom) and the force error per Cartesian component (eV/Angstrom),
the quantities MACE's training reports as ``mae_e_per_atom`` / ``mae_f``; the stress error per Voigt
component (xx yy zz yz xz xy, eV/Angstrom^3, ASE sign: positive under tension), each off-diagonal
component counted once (MACE's own log averages the nine entries of the 3x3 tensor instead). One
definition serves the training engine, the active-learning validation and the parity plots.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from aiida_mofmlp.common.frames import voigt_stress

__all__ = [
    "EV_PER_A3_IN_GPA",
    "METRIC_UNITS",
    "STRESS_METRIC_UNITS",
    "composition_offset_metrics",
    "error_metrics",
    "mae_rmse",
    "stress_metrics",
]

#: units of the :func:`error_metrics` keys
METRIC_UNITS = {
    "mae_e_per_atom": "eV/atom",
    "rmse_e_per_atom": "eV/atom",
    "mae_f": "eV/Angstrom",
    "rmse_f": "eV/Angstrom",
}

#: units of the :func:`stress_metrics` error keys (``n_frames_stress`` is a count)
STRESS_METRIC_UNITS = {
    "mae_stress": "eV/Angstrom^3",
    "rmse_stress": "eV/Angstrom^3",
    "mae_stress_gpa": "GPa",
    "rmse_stress_gpa": "GPa",
}

#: 1 eV/Angstrom^3 in GPa (exact with the SI elementary charge: 1.602176634e-19 J / 1e-30 m^3)
EV_PER_A3_IN_GPA = 160.2176634


def mae_rmse(difference: Iterable[float] | np.ndarray) -> tuple[float, float]:
    """Mean absolute error and root-mean-square error of ``difference`` (predicted - reference).

    An empty difference gives ``(nan, nan)``.
    """
    values = np.asarray(difference, dtype=float).ravel()
    if values.size == 0:
        return float("nan"), float("nan")
    return float(np.mean(np.abs(values))), float(np.sqrt(np.mean(values**2)))


def _voigt(stress: Sequence[float] | np.ndarray) -> np.ndarray:
    values = np.asarray(stress, dtype=float)
    return voigt_stress(values.reshape(3, 3) if values.shape == (9,) else values)


def stress_metrics(
    ref_stress: Sequence[Sequence[float] | np.ndarray], pred_stress: Sequence[Sequence[float] | np.ndarray]
) -> dict[str, float | int]:
    """MAE and RMSE of the stress per Voigt component, in eV/Angstrom^3 and in GPa.

    ``ref_stress`` and ``pred_stress`` hold one stress per frame (6 Voigt values, a 3x3 matrix or its 9
    entries; eV/Angstrom^3; the same sign convention for both, ASE's in this package). Returns
    ``n_frames_stress``, ``mae_stress``, ``rmse_stress`` (eV/Angstrom^3), ``mae_stress_gpa`` and
    ``rmse_stress_gpa`` (GPa); the errors are NaN with no frame.
    """
    if len(ref_stress) != len(pred_stress):
        raise ValueError(
            f"ref_stress and pred_stress must have one stress per frame; got {len(ref_stress)} and "
            f"{len(pred_stress)}"
        )
    parts = [_voigt(pred) - _voigt(ref) for ref, pred in zip(ref_stress, pred_stress, strict=True)]
    mae, rmse = mae_rmse(np.concatenate(parts) if parts else np.zeros(0))
    return {
        "n_frames_stress": len(parts),
        "mae_stress": mae,
        "rmse_stress": rmse,
        "mae_stress_gpa": mae * EV_PER_A3_IN_GPA,
        "rmse_stress_gpa": rmse * EV_PER_A3_IN_GPA,
    }


def error_metrics(
    ref_energy: Sequence[float] | np.ndarray,
    pred_energy: Sequence[float] | np.ndarray,
    n_atoms: Sequence[int] | np.ndarray,
    ref_forces: Sequence[np.ndarray],
    pred_forces: Sequence[np.ndarray],
    ref_stress: Sequence[np.ndarray] | None = None,
    pred_stress: Sequence[np.ndarray] | None = None,
) -> dict[str, float | int]:
    """MAE and RMSE of the energy per atom (eV/atom), force components (eV/Angstrom) and, if given, stress.

    ``ref_energy``, ``pred_energy`` (eV) and ``n_atoms`` hold one value per frame; ``ref_forces`` and
    ``pred_forces`` one (n_atoms, 3) array per frame (eV/Angstrom). Frames without an energy label can be
    left out of the energy lists and frames without forces out of the force lists: the two errors are
    averaged independently. Returns ``n_frames`` (length of the energy lists), ``mae_e_per_atom``,
    ``rmse_e_per_atom``, ``mae_f`` and ``rmse_f``; an error with no data is NaN. With ``ref_stress`` and
    ``pred_stress`` (one stress per stress-labelled frame, see :func:`stress_metrics`) the stress keys of
    :func:`stress_metrics` are added; without them the result has no stress key.
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
    if (ref_stress is None) != (pred_stress is None):
        raise ValueError("give both ref_stress and pred_stress, or neither")
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
    metrics: dict[str, float | int] = {
        "n_frames": len(energy),
        "mae_e_per_atom": mae_e,
        "rmse_e_per_atom": rmse_e,
        "mae_f": mae_f,
        "rmse_f": rmse_f,
    }
    if ref_stress is not None and pred_stress is not None:
        metrics.update(stress_metrics(ref_stress, pred_stress))
    return metrics


#: 1 eV per molecule in kJ/mol
EV_IN_KJ_PER_MOL = 96.48533212


def composition_offset_metrics(
    ref_energy: Sequence[float] | np.ndarray,
    pred_energy: Sequence[float] | np.ndarray,
    n_atoms: Sequence[int] | np.ndarray,
    n_guests: Sequence[int] | np.ndarray,
) -> dict[str, float | int | dict]:
    """Energy errors that matter for adsorption: what is left after each composition's constant offset.

    Frames are grouped by their number of guests (one framework: one composition per loading). Within a
    group the mean error is a constant offset (per-element energies), which cancels in any energy difference
    at fixed composition; what remains scatters binding energies. Returns ``offsets`` (mean error per cell,
    eV, per loading), ``mae_e_per_atom_offset_removed`` and ``rmse_e_offset_removed`` (eV per cell) over all
    frames, and ``binding_energy_spread_kj_mol``: the standard deviation, over loaded frames, of the error
    per guest after the offset (kJ/mol per guest; None without two loaded frames of one loading).
    """
    delta = np.asarray(pred_energy, dtype=float) - np.asarray(ref_energy, dtype=float)
    atoms = np.asarray(n_atoms, dtype=float)
    guests = np.asarray(n_guests, dtype=int)
    if not delta.size == atoms.size == guests.size:
        raise ValueError("ref_energy, pred_energy, n_atoms and n_guests need one value per frame")
    centred = np.zeros_like(delta)
    offsets = {}
    for loading in sorted(set(guests.tolist())):
        group = guests == loading
        offsets[str(loading)] = float(delta[group].mean())
        centred[group] = delta[group] - delta[group].mean()
    per_guest = [centred[i] / guests[i] for i in range(delta.size) if guests[i] > 0]
    sizes = {loading: int((guests == loading).sum()) for loading in set(guests.tolist()) if loading > 0}
    spread = (
        float(np.std(per_guest, ddof=len(sizes)) * EV_IN_KJ_PER_MOL)
        if len(per_guest) > len(sizes) and sizes
        else None
    )
    mae_atom, _ = mae_rmse(centred / atoms) if delta.size else (float("nan"), float("nan"))
    _, rmse_cell = mae_rmse(centred)
    return {
        "offsets": offsets,
        "mae_e_per_atom_offset_removed": mae_atom,
        "rmse_e_offset_removed": rmse_cell,
        "binding_energy_spread_kj_mol": spread,
    }
