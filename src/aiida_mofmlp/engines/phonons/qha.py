"""Quasi-harmonic thermal expansion with phonopy's ``PhonopyQHA`` (no AiiDA imports).

Harmonic free energies at >= 5 isotropically scaled volumes around the relaxed one are added to the
static energies; minimising F(V; T) gives V(T) and the volumetric expansion coefficient alpha_V(T)
(Elena et al., npj Comput. Mater. 2025, DOI 10.1038/s41524-025-01611-8).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms

from aiida_mofmlp.common.errors import InputError
from aiida_mofmlp.engines.phonons.elastic import relax, scaled_copy
from aiida_mofmlp.engines.phonons.harmonic import (
    compute_force_constants,
    imaginary_modes,
    mesh_frequencies,
    thermal_properties,
)


def quasi_harmonic(
    atoms: Atoms,
    calculator,
    supercell: Sequence[int],
    n_volumes: int = 5,
    strain: float = 0.01,
    mesh: float | Sequence[int] = 30.0,
    t_max: float = 500.0,
    t_step: float = 10.0,
    displacement: float = 0.01,
    relax_steps: int = 100,
    fmax: float = 0.01,
    imaginary_threshold: float = 0.1,
    eos: str = "vinet",
) -> dict:
    """V(T), alpha_V(T) and B(T) from phonons at ``n_volumes`` volumes over +-``strain`` linear strain.

    Returns ``volumes`` (A^3), ``energies`` (eV), ``temperature`` (K), ``volume_temperature`` (A^3),
    ``thermal_expansion`` (1/K, volumetric), ``bulk_modulus_temperature`` (GPa) and
    ``imaginary_per_volume`` (count of imaginary modes on the mesh at each volume).
    """
    from phonopy import PhonopyQHA

    if n_volumes < 5:
        raise InputError(f"qha.n_volumes {n_volumes} is too few for phonopy's QHA; give >= 5")
    if not 0.0 < strain < 0.1:
        raise InputError(f"qha.strain {strain!r} is not valid; give a linear strain in (0, 0.1), e.g. 0.01")
    volumes, energies, free, cv, entropy, imaginary = [], [], [], [], [], []
    temperatures = None
    for eps in np.linspace(-strain, strain, n_volumes):
        strained = scaled_copy(atoms, (1.0 + eps) ** 3)
        if relax_steps > 0:
            relax(strained, calculator, fmax=fmax, steps=relax_steps, cell=False)
        strained.calc = calculator
        volumes.append(strained.get_volume())
        energies.append(strained.get_potential_energy())
        phonon = compute_force_constants(strained, calculator, supercell, displacement)
        imaginary.append(imaginary_modes(mesh_frequencies(phonon, mesh), imaginary_threshold))
        # two steps past t_max: phonopy's QHA drops the last temperatures when it differentiates
        props = thermal_properties(phonon, mesh, 0.0, t_max + 2 * t_step, t_step)
        temperatures = props["temperature"]
        free.append(props["free_energy"])
        cv.append(props["heat_capacity"])
        entropy.append(props["entropy"])
    qha = PhonopyQHA(
        volumes=volumes,
        electronic_energies=energies,
        temperatures=temperatures,
        free_energy=np.asarray(free).T,
        cv=np.asarray(cv).T,
        entropy=np.asarray(entropy).T,
        eos=eos,
        t_max=t_max,
    )
    expansion = np.asarray(qha.thermal_expansion)
    n_t = len(expansion)
    return {
        "volumes": np.asarray(volumes),
        "energies": np.asarray(energies),
        "temperature": np.asarray(temperatures[:n_t]),
        "volume_temperature": np.asarray(qha.volume_temperature[:n_t]),
        "thermal_expansion": expansion,
        "bulk_modulus_temperature": np.asarray(qha.bulk_modulus_temperature[:n_t]),
        "imaginary_per_volume": np.asarray(imaginary),
    }
