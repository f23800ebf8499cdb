"""Relaxation, equation of state and bulk modulus with a MACE calculator (no AiiDA imports).

The bulk modulus comes from a Birch-Murnaghan fit of E(V) over +-``strain`` isotropic strain (ase.eos), as
in Elena et al., npj Comput. Mater. 2025, DOI 10.1038/s41524-025-01611-8, and, independently, from the
stress: B = -V dP/dV at the relaxed volume with P = -trace(stress)/3 (a quadratic fit of P(V)).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.units import GPa

from aiida_mofmlp.common.errors import InputError

OPTIMIZERS = ("BFGS", "FIRE", "LBFGS")


def relax(
    atoms: Atoms,
    calculator,
    fmax: float = 0.01,
    steps: int = 500,
    cell: bool = True,
    optimizer: str = "BFGS",
) -> dict:
    """Relax ``atoms`` in place (positions, and the cell through ASE's FrechetCellFilter when ``cell``).

    Returns ``converged``, ``steps``, ``energy`` (eV), ``fmax`` (eV/A, largest residual force),
    ``volume_initial``/``volume`` (A^3) and ``volume_change_percent``.
    """
    import ase.optimize
    from ase.filters import FrechetCellFilter

    if optimizer not in OPTIMIZERS:
        raise InputError(f"relax.optimizer {optimizer!r} is not valid; valid: {', '.join(OPTIMIZERS)}")
    volume_initial = atoms.get_volume()
    atoms.calc = calculator
    target = FrechetCellFilter(atoms) if cell else atoms
    dynamics = getattr(ase.optimize, optimizer)(target, logfile=None)
    converged = bool(dynamics.run(fmax=fmax, steps=steps)) if steps > 0 else False
    forces = atoms.get_forces()
    volume = atoms.get_volume()
    return {
        "converged": converged,
        "steps": int(dynamics.nsteps),
        "energy": float(atoms.get_potential_energy()),
        "fmax": float(np.linalg.norm(forces, axis=1).max()),
        "volume_initial": float(volume_initial),
        "volume": float(volume),
        "volume_change_percent": float(100.0 * (volume - volume_initial) / volume_initial),
    }


def scaled_copy(atoms: Atoms, volume_factor: float) -> Atoms:
    """A copy of ``atoms`` with its volume multiplied by ``volume_factor`` (isotropic, atoms scaled too)."""
    copy = atoms.copy()
    copy.set_cell(np.asarray(atoms.cell) * volume_factor ** (1.0 / 3.0), scale_atoms=True)
    return copy


def _relax_positions(atoms: Atoms, calculator, fmax: float, steps: int) -> None:
    if steps > 0:
        relax(atoms, calculator, fmax=fmax, steps=steps, cell=False)


def equation_of_state(
    atoms: Atoms,
    calculator,
    strain: float = 0.02,
    n_points: int = 7,
    method: str = "energy",
    fmax: float = 0.01,
    steps: int = 0,
    keep_structures: bool = False,
) -> dict:
    """E(V) and P(V) over +-``strain`` isotropic linear strain and the bulk modulus from them.

    ``steps`` > 0 relaxes the positions at each volume (relaxed-ion modulus). ``method`` is ``energy``
    (Birch-Murnaghan), ``stress`` (-V dP/dV) or ``both``. Returns volumes (A^3), energies (eV), pressures
    (eV/A^3, positive under compression), and ``bulk_modulus_eos_gpa`` / ``bulk_modulus_stress_gpa`` (GPa),
    ``v0`` (A^3) and ``e0`` (eV) of the fit; with ``keep_structures`` also ``structures``, the cell at each
    volume (positions as relaxed there).
    """
    from ase.eos import EquationOfState

    if method not in ("energy", "stress", "both"):
        raise InputError(f"eos.method {method!r} is not valid; valid: energy, stress, both")
    if n_points < 5:
        raise InputError(f"eos.n_points {n_points} is too few for a Birch-Murnaghan fit; give >= 5")
    if not 0.0 < strain < 0.2:
        raise InputError(f"eos.strain {strain!r} is not valid; give a linear strain in (0, 0.2), e.g. 0.02")
    volume0 = atoms.get_volume()
    linear = np.linspace(-strain, strain, n_points)
    volumes, energies, pressures, structures = [], [], [], []
    for eps in linear:
        strained = scaled_copy(atoms, (1.0 + eps) ** 3)
        _relax_positions(strained, calculator, fmax, steps)
        if keep_structures:
            structures.append(strained)
        strained.calc = calculator
        volumes.append(strained.get_volume())
        energies.append(strained.get_potential_energy())
        if method in ("stress", "both"):
            pressures.append(-float(np.mean(strained.get_stress(voigt=True)[:3])))
    volumes_arr, energies_arr = np.asarray(volumes), np.asarray(energies)
    result: dict = {"volumes": volumes_arr, "energies": energies_arr, "volume_reference": float(volume0)}
    if keep_structures:
        result["structures"] = structures
    if method in ("energy", "both"):
        eos = EquationOfState(volumes_arr, energies_arr, eos="birchmurnaghan")
        v0, e0, bulk = eos.fit(warn=False)
        e0_fit, b0_fit, bp_fit, v0_fit = (float(x) for x in eos.eos_parameters)
        fit_volumes = np.linspace(volumes_arr.min(), volumes_arr.max(), 61)
        result.update(
            {
                "v0": float(v0),
                "e0": float(e0),
                "bulk_modulus_eos_gpa": float(bulk / GPa),
                "bulk_modulus_derivative": bp_fit,
                "fit_volumes": fit_volumes,
                "fit_energies": birch_murnaghan_energy(fit_volumes, e0_fit, b0_fit, bp_fit, v0_fit),
            }
        )
    if method in ("stress", "both"):
        pressures_arr = np.asarray(pressures)
        coefficients = np.polyfit(volumes_arr - volume0, pressures_arr, 2)
        slope = coefficients[1]  # dP/dV at the reference volume
        result["pressures"] = pressures_arr
        result["bulk_modulus_stress_gpa"] = float(-volume0 * slope / GPa)
    return result


def birch_murnaghan_energy(volume: np.ndarray, e0: float, b0: float, bp: float, v0: float) -> np.ndarray:
    """Birch-Murnaghan E(V) (eV) with B0 in eV/A^3: the curve a figure draws through the points."""
    eta = (v0 / np.asarray(volume)) ** (2.0 / 3.0)
    return e0 + 9.0 * v0 * b0 / 16.0 * ((eta - 1.0) ** 3 * bp + (eta - 1.0) ** 2 * (6.0 - 4.0 * eta))
