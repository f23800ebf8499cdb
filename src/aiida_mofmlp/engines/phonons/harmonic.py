"""Harmonic phonons with phonopy and a MACE calculator: force constants, Gamma modes, DOS, bands,
thermal properties and the imaginary-mode check (no AiiDA imports).

Phonopy's units are kept where they are standard (frequencies in THz); thermal properties are converted
from phonopy's per mole of unit cells (kJ/mol, J/K/mol) to eV and k_B per unit cell as well.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.units import kJ, mol

from aiida_mofmlp.common.errors import InputError
from aiida_mofmlp.common.geometry import perpendicular_widths, supercell_for_cutoff

#: the gas constant in J/(K mol): Cv in J/(K mol) divided by it is Cv in k_B per unit cell
GAS_CONSTANT = 8.314462618


def to_phonopy_atoms(atoms: Atoms):
    """A ``PhonopyAtoms`` of ``atoms``."""
    from phonopy.structure.atoms import PhonopyAtoms

    return PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=np.asarray(atoms.cell),
        scaled_positions=atoms.get_scaled_positions(),
        masses=atoms.get_masses(),
    )


def to_ase_atoms(cell) -> Atoms:
    """An ASE ``Atoms`` of a phonopy cell (periodic)."""
    return Atoms(
        symbols=cell.symbols,
        cell=cell.cell,
        scaled_positions=cell.scaled_positions,
        masses=cell.masses,
        pbc=True,
    )


def choose_supercell(atoms: Atoms, r_max: float, supercell: Sequence[int] | None = None) -> list[int]:
    """The supercell repeat: ``supercell`` when given and wide enough, else the smallest one whose
    perpendicular widths are all >= 2 r_max (the model's cutoff).

    Raises:
        InputError: a given supercell narrower than 2 r_max, naming the one that fits.
    """
    needed = list(supercell_for_cutoff(np.asarray(atoms.cell), r_max))
    if supercell is None:
        return needed
    repeat = [int(n) for n in supercell]
    if len(repeat) != 3 or min(repeat) < 1:
        raise InputError(f"phonons.supercell {supercell!r} is not valid; give three positive integers")
    widths = perpendicular_widths(np.asarray(atoms.cell)) * np.asarray(repeat)
    if np.any(widths < 2.0 * r_max - 1e-6):
        suggestion = [max(a, b) for a, b in zip(repeat, needed, strict=True)]
        raise InputError(
            f"phonons.supercell {repeat} is too small for the model's cutoff {r_max:g} A: its "
            f"perpendicular widths {np.round(widths, 2).tolist()} A must all be >= 2 r_max = "
            f"{2 * r_max:g} A; use {suggestion}"
        )
    return repeat


def compute_force_constants(
    atoms: Atoms,
    calculator,
    supercell: Sequence[int],
    displacement: float = 0.01,
    symmetrize: bool = True,
    subtract_residual: bool = False,
    plus_minus: bool | str = "auto",
):
    """A ``Phonopy`` object of ``atoms`` (the unit cell, also the primitive cell) with force constants from
    finite displacements of ``displacement`` Angstrom in the ``supercell`` repeat.

    ``subtract_residual``: the forces of the undisplaced supercell (what the relaxation left) are subtracted
    from every displaced set, so a residual force does not enter the force constants as -f/displacement;
    their largest norm (eV/A) is ``phonon.residual_force_max`` (None when not computed). ``plus_minus``
    is phonopy's: ``auto`` displaces both ways where symmetry does not relate +d and -d (which also cancels
    residual forces to first order); ``False`` displaces one way (half the jobs on a low-symmetry MOF),
    where the subtraction matters.
    """
    from phonopy import Phonopy

    phonon = Phonopy(to_phonopy_atoms(atoms), supercell_matrix=np.diag(supercell), primitive_matrix="P")
    phonon.generate_displacements(distance=displacement, is_plusminus=plus_minus)
    residual = None
    if subtract_residual:
        perfect = to_ase_atoms(phonon.supercell)
        perfect.calc = calculator
        residual = perfect.get_forces().copy()
    forces = []
    for cell in phonon.supercells_with_displacements:
        displaced = to_ase_atoms(cell)
        displaced.calc = calculator
        forces.append(displaced.get_forces().copy() - (residual if residual is not None else 0.0))
    phonon.forces = np.asarray(forces)
    phonon.produce_force_constants()
    if symmetrize:
        phonon.symmetrize_force_constants()
    phonon.residual_force_max = None if residual is None else float(np.linalg.norm(residual, axis=1).max())
    return phonon


def denser_mesh(mesh: float | Sequence[int]) -> float | list[int]:
    """The q-mesh twice as dense: a length doubled, or each of three numbers doubled."""
    if isinstance(mesh, int | float):
        return 2.0 * float(mesh)
    return [2 * int(n) for n in mesh]


def gamma_frequencies(phonon) -> np.ndarray:
    """Frequencies at Gamma (THz, ascending; imaginary ones negative)."""
    phonon.run_qpoints([[0.0, 0.0, 0.0]])
    return np.sort(np.asarray(phonon.get_qpoints_dict()["frequencies"][0]))


def mesh_frequencies(phonon, mesh: float | Sequence[int]) -> np.ndarray:
    """Frequencies (THz) on the q-point ``mesh`` (a length in Angstrom or three numbers)."""
    phonon.run_mesh(mesh, with_eigenvectors=False, is_mesh_symmetry=True)
    return np.asarray(phonon.get_mesh_dict()["frequencies"])


def imaginary_modes(frequencies: np.ndarray, threshold: float) -> int:
    """Number of modes below ``-threshold`` THz (imaginary), the three acoustic modes at Gamma excluded by
    the threshold itself (they are ~0)."""
    return int(np.sum(np.asarray(frequencies) < -abs(threshold)))


def total_dos(phonon, mesh: float | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Total phonon density of states: frequency points (THz) and states per THz per unit cell."""
    phonon.run_mesh(mesh, with_eigenvectors=False, is_mesh_symmetry=True)
    phonon.run_total_dos()
    dos = phonon.get_total_dos_dict()
    return np.asarray(dos["frequency_points"]), np.asarray(dos["total_dos"])


def band_structure(phonon, atoms: Atoms, npoints: int = 101) -> dict[str, np.ndarray | list[str]]:
    """Frequencies (THz) along the standard path of the lattice (ASE's Setyawan-Curtarolo special points).

    Returns ``distance`` (1/Angstrom along the path), ``frequencies`` (points x modes), ``label_distance``
    and ``labels`` (``G`` is Gamma) and ``path`` (the path as ASE writes it).
    """
    try:
        path = atoms.cell.bandpath(npoints=npoints)
    except Exception:  # an unusual cell: Gamma to the three face centres
        path = atoms.cell.bandpath(
            "GXGYGZ",
            npoints=npoints,
            special_points={"G": [0, 0, 0], "X": [0.5, 0, 0], "Y": [0, 0.5, 0], "Z": [0, 0, 0.5]},
        )
    phonon.run_qpoints(path.kpts)
    frequencies = np.asarray(phonon.get_qpoints_dict()["frequencies"])
    distance, label_distance, labels = path.get_linear_kpoint_axis()
    return {
        "distance": np.asarray(distance),
        "frequencies": frequencies,
        "label_distance": np.asarray(label_distance),
        "labels": list(labels),
        "path": path.path,
    }


def thermal_properties(
    phonon, mesh: float | Sequence[int], t_min: float, t_max: float, t_step: float
) -> dict[str, np.ndarray]:
    """Harmonic F, S, Cv against T, in phonopy's per-mole-of-cells units and in eV, k_B per unit cell.

    Keys: ``temperature`` (K), ``free_energy`` (kJ/mol), ``entropy``, ``heat_capacity`` (J/K/mol),
    ``free_energy_ev`` (eV/cell), ``entropy_kb``, ``heat_capacity_kb`` (k_B/cell).
    """
    phonon.run_mesh(mesh, with_eigenvectors=False, is_mesh_symmetry=True)
    with warnings.catch_warnings():
        # the three acoustic modes at Gamma (~0 THz) count classically, k_B T each, as they should
        warnings.simplefilter("ignore")
        phonon.run_thermal_properties(t_min=t_min, t_max=t_max, t_step=t_step)
    props = phonon.get_thermal_properties_dict()
    free_energy = np.asarray(props["free_energy"])
    entropy = np.asarray(props["entropy"])
    heat_capacity = np.asarray(props["heat_capacity"])
    return {
        "temperature": np.asarray(props["temperatures"]),
        "free_energy": free_energy,
        "entropy": entropy,
        "heat_capacity": heat_capacity,
        "free_energy_ev": free_energy * kJ / mol,
        "entropy_kb": entropy / GAS_CONSTANT,
        "heat_capacity_kb": heat_capacity / GAS_CONSTANT,
    }


def dulong_petit_kb(n_atoms: int) -> float:
    """The classical limit of the heat capacity, 3 N k_B, in k_B per cell of ``n_atoms`` atoms."""
    return 3.0 * n_atoms
