"""Model-card tasks of the phonon engine: host-guest interaction at the best site and errors on labelled
frames (no AiiDA imports). The task set follows MOFSimBench (Krass, Huang, Moosavi, 2025)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms
from ase.units import kJ, mol

from aiida_mofmlp.common.errors import InputError
from aiida_mofmlp.common.frames import get_energy, get_forces
from aiida_mofmlp.common.geometry import supercell_for_cutoff
from aiida_mofmlp.common.metrics import error_metrics
from aiida_mofmlp.engines.phonons.elastic import relax


def _energy(atoms: Atoms, calculator) -> float:
    atoms.calc = calculator
    return float(atoms.get_potential_energy())


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    a, b, c, d = q / np.linalg.norm(q)
    return np.array(
        [
            [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
            [2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)],
            [2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d],
        ]
    )


def open_sites(host: Atoms, spacing: float = 1.0, min_distance: float = 2.5) -> np.ndarray:
    """Cartesian grid points of ``host`` at least ``min_distance`` Angstrom from every atom (periodic)."""
    from ase.geometry import get_distances

    counts = np.maximum(1, np.ceil(host.cell.lengths() / spacing).astype(int))
    axes = [np.arange(n) / n for n in counts]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3) @ np.asarray(host.cell)
    _, distances = get_distances(grid, host.positions, cell=host.cell, pbc=True)
    return grid[distances.min(axis=1) >= min_distance]


def host_guest_interaction(
    host: Atoms,
    guest: Atoms,
    calculator,
    r_max: float,
    n_trials: int = 20,
    relax_steps: int = 50,
    fmax: float = 0.05,
    min_distance: float = 2.5,
    seed: int = 0,
) -> tuple[dict, Atoms]:
    """E_int = E(host + guest) - E(host) - E(guest) of the guest at its best site (eV and kJ/mol).

    ``n_trials`` random placements (open grid points, random orientations) of the rigid guest are scored
    by their energy; the best is relaxed with the framework held fixed for ``relax_steps`` steps. The host
    is repeated until its widths reach 2 r_max so that the guest does not see its own image.
    """
    repeat = supercell_for_cutoff(np.asarray(host.cell), r_max)
    framework = host.repeat(repeat)
    framework.calc = None
    sites = open_sites(framework, min_distance=min_distance)
    if len(sites) == 0:
        raise InputError(
            f"host_guest: no open site {min_distance} A away from every framework atom; the pores are too "
            "small for a guest, or give a smaller host_guest.min_distance"
        )
    rng = np.random.default_rng(seed)
    isolated = guest.copy()
    isolated.pbc = False
    isolated.cell = None
    e_guest = _energy(isolated, calculator)
    e_host = _energy(framework.copy(), calculator)
    centred = guest.positions - guest.get_center_of_mass()
    best: tuple[float, Atoms] | None = None
    for _ in range(n_trials):
        site = sites[rng.integers(len(sites))]
        placed = Atoms(guest.get_chemical_symbols(), positions=centred @ _random_rotation(rng).T + site)
        complex_ = framework + placed
        energy = _energy(complex_, calculator)
        if best is None or energy < best[0]:
            best = (energy, complex_)
    energy_trial, complex_ = best
    complex_.set_constraint(FixAtoms(indices=range(len(framework))))
    relaxed = (
        relax(complex_, calculator, fmax=fmax, steps=relax_steps, cell=False) if relax_steps > 0 else None
    )
    e_complex = _energy(complex_, calculator) if relaxed is None else relaxed["energy"]
    interaction = e_complex - e_host - e_guest
    complex_.set_constraint()
    return {
        "interaction_energy": float(interaction),
        "interaction_energy_kj_mol": float(interaction / (kJ / mol)),
        "interaction_energy_best_trial": float(energy_trial - e_host - e_guest),
        "n_trials": int(n_trials),
        "n_open_sites": len(sites),
        "host_repeat": list(repeat),
        "relax_steps": 0 if relaxed is None else relaxed["steps"],
        "guest_formula": guest.get_chemical_formula(),
    }, complex_


def frame_errors(frames: Sequence[Atoms], calculator) -> dict:
    """MAE/RMSE of the model against the REF_energy/REF_forces labels of ``frames`` (common.metrics)."""
    ref_e, pred_e, n_atoms, ref_f, pred_f = [], [], [], [], []
    for atoms in frames:
        energy, forces = get_energy(atoms), get_forces(atoms)
        if energy is None and forces is None:
            continue
        copy = atoms.copy()
        copy.calc = calculator
        if energy is not None:
            ref_e.append(energy)
            pred_e.append(copy.get_potential_energy())
            n_atoms.append(len(atoms))
        if forces is not None:
            ref_f.append(np.asarray(forces))
            pred_f.append(copy.get_forces())
    if not ref_e and not ref_f:
        raise InputError("errors.frames holds no frame with REF_energy or REF_forces labels")
    return error_metrics(ref_e, pred_e, n_atoms, ref_f, pred_f)
