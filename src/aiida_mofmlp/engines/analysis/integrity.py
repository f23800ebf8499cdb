"""Per-frame integrity of a framework against its starting structure, and the melting check.

Averaged RDFs hide linker breaking (Castel et al., Digital Discovery 2024, DOI 10.1039/d3dd00236e), so
every frame is checked:

* linker bonds: pairs of non-metal atoms closer than ``bond_factor`` x the sum of their covalent radii in
  the reference frame; a bond counts as broken in a frame when it is longer than ``break_factor`` x that
  sum (thermal stretching stays far below; ``find_mic`` gives periodic distances);
* metal coordination: ligand atoms (default N and O) within ``cutoff`` of each metal;
* melting at the plateau: the root mean squared displacement of the metal atoms between the first and the
  last plateau frame, as a fraction of the nearest metal-metal distance of the reference (a Lindemann-type
  ratio); above ``lindemann`` the framework lost its long-range order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from ase.geometry import find_mic
from ase.neighborlist import neighbor_list

from aiida_mofmlp.engines.analysis.structure import DEFAULT_COORDINATION_CUTOFF, coordination_numbers

METALS = frozenset(
    [
        "Li",
        "Be",
        "Na",
        "Mg",
        "Al",
        "K",
        "Ca",
        "Sc",
        "Ti",
        "V",
        "Cr",
        "Mn",
        "Fe",
        "Co",
        "Ni",
        "Cu",
        "Zn",
        "Ga",
        "Rb",
        "Sr",
        "Y",
        "Zr",
        "Nb",
        "Mo",
        "Ru",
        "Rh",
        "Pd",
        "Ag",
        "Cd",
        "In",
        "Sn",
        "Cs",
        "Ba",
        "La",
        "Ce",
        "Pr",
        "Nd",
        "Sm",
        "Eu",
        "Gd",
        "Tb",
        "Dy",
        "Ho",
        "Er",
        "Tm",
        "Yb",
        "Lu",
        "Hf",
        "Ta",
        "W",
        "Re",
        "Os",
        "Ir",
        "Pt",
        "Au",
        "Hg",
        "Tl",
        "Pb",
        "Bi",
    ]
)
INTEGRITY_DEFAULTS = {
    "bond_factor": 1.2,
    "break_factor": 1.5,
    "cutoff": DEFAULT_COORDINATION_CUTOFF,
    "ligands": ["N", "O"],
    "lindemann": 0.3,
}


def metal_symbols(atoms: Atoms) -> list[str]:
    """The metal elements present in ``atoms``."""
    return sorted(set(atoms.get_chemical_symbols()) & METALS)


def linker_bonds(reference: Atoms, bond_factor: float = 1.2) -> np.ndarray:
    """Bonded pairs (n_bonds, 2), i < j, between non-metal atoms of the reference frame."""
    radii = covalent_radii[reference.numbers]
    cutoffs = bond_factor * radii  # neighbor_list bonds i-j when d < cutoff_i + cutoff_j
    i, j = neighbor_list("ij", reference, list(cutoffs))
    metal = np.isin(reference.get_chemical_symbols(), list(METALS))
    keep = (i < j) & ~metal[i] & ~metal[j]
    return np.unique(np.stack([i[keep], j[keep]], axis=1), axis=0)


def bond_lengths(atoms: Atoms, bonds: np.ndarray) -> np.ndarray:
    """Periodic (minimum-image) lengths of ``bonds`` in ``atoms``."""
    if len(bonds) == 0:
        return np.zeros(0)
    vectors = atoms.positions[bonds[:, 1]] - atoms.positions[bonds[:, 0]]
    _, lengths = find_mic(vectors, atoms.cell, atoms.pbc)
    return lengths


def integrity_timeline(frames: Sequence[Atoms], reference: Atoms, settings: dict | None = None) -> dict:
    """Per frame: broken linker bonds and metal coordination numbers, against ``reference``.

    Returns ``n_broken`` (per frame), ``broken_frames`` (indices with a broken bond), ``first_broken``
    (bonds broken in the first such frame, as ``[i, j, symbol_i, symbol_j]``), ``coordination_mean`` /
    ``coordination_min`` / ``coordination_max`` (per frame), ``changed_coordination`` (metals whose count
    differs from the reference, per frame), the reference's coordination and the settings used.
    """
    settings = {**INTEGRITY_DEFAULTS, **(settings or {})}
    metals = metal_symbols(reference)
    bonds = linker_bonds(reference, float(settings["bond_factor"]))
    limits = float(settings["break_factor"]) * covalent_radii[reference.numbers[bonds]].sum(axis=1)
    ligands, cutoff = list(settings["ligands"]), float(settings["cutoff"])
    reference_cn = coordination_numbers(reference, metals, ligands, cutoff)
    symbols = reference.get_chemical_symbols()
    n_broken, cn_mean, cn_min, cn_max, changed, first_broken = [], [], [], [], [], []
    for frame in frames:
        if len(frame) != len(reference):
            raise ValueError("integrity needs the reference's atoms in every frame")
        broken = bond_lengths(frame, bonds) > limits
        n_broken.append(int(broken.sum()))
        if broken.any() and not first_broken:
            first_broken = [[int(i), int(j), symbols[i], symbols[j]] for i, j in bonds[broken]]
        cn = coordination_numbers(frame, metals, ligands, cutoff)
        cn_mean.append(float(cn.mean()) if cn.size else 0.0)
        cn_min.append(int(cn.min()) if cn.size else 0)
        cn_max.append(int(cn.max()) if cn.size else 0)
        changed.append(int((cn != reference_cn).sum()))
    n_broken = np.array(n_broken)
    return {
        "n_bonds": len(bonds),
        "n_broken": n_broken,
        "broken_frames": np.flatnonzero(n_broken > 0).tolist(),
        "first_broken": first_broken,
        "metals": metals,
        "reference_coordination_mean": float(reference_cn.mean()) if reference_cn.size else 0.0,
        "coordination_mean": np.array(cn_mean),
        "coordination_min": np.array(cn_min),
        "coordination_max": np.array(cn_max),
        "changed_coordination": np.array(changed),
        "settings": settings,
    }


def nearest_distance(atoms: Atoms, symbols: Iterable[str], r_max: float = 12.0) -> float:
    """Shortest periodic distance between two atoms of ``symbols`` (nan when there are none in r_max)."""
    mask = np.isin(atoms.get_chemical_symbols(), list(symbols))
    subset = atoms[mask]
    if len(subset) == 0:
        return float("nan")
    distances = neighbor_list("d", subset, r_max)
    return float(distances.min()) if len(distances) else float("nan")


def melting_check(plateau_positions: np.ndarray, reference: Atoms, lindemann: float = 0.3) -> dict:
    """Did the metal sublattice lose its order over the plateau?

    ``plateau_positions``: unwrapped positions (n_frames, n_atoms, 3) of the plateau frames. The RMS
    displacement of the metals between the first and the last of them, divided by the reference's nearest
    metal-metal distance, must exceed ``lindemann``.
    """
    metals = metal_symbols(reference)
    mask = np.isin(reference.get_chemical_symbols(), metals)
    if not mask.any() or len(plateau_positions) < 2:
        return {
            "melted": False,
            "ratio": float("nan"),
            "reason": "no metal atoms or fewer than 2 plateau frames",
        }
    displacement = plateau_positions[-1, mask] - plateau_positions[0, mask]
    rms = float(np.sqrt((displacement**2).sum(axis=1).mean()))
    spacing = nearest_distance(reference, metals)
    ratio = rms / spacing if np.isfinite(spacing) and spacing > 0 else float("nan")
    return {
        "melted": bool(np.isfinite(ratio) and ratio > lindemann),
        "rms_displacement": rms,
        "metal_spacing": spacing,
        "ratio": ratio,
        "lindemann": float(lindemann),
        "units": {"rms_displacement": "Angstrom", "metal_spacing": "Angstrom"},
    }
