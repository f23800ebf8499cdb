"""RDF peaks of perfect crystals, exact coordination numbers, VDOS of known frequencies, integrity."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from scipy.integrate import trapezoid

from aiida_mofmlp.engines.analysis.integrity import integrity_timeline, linker_bonds, melting_check
from aiida_mofmlp.engines.analysis.structure import coordination_numbers, element_rdf, first_peaks
from aiida_mofmlp.engines.analysis.vibrations import dominant_frequencies, vibrational_dos


def test_rdf_peaks_of_fcc_crystal_at_shell_distances():
    a = 3.6
    crystal = bulk("Cu", "fcc", a=a, cubic=True)  # 4 atoms, a cell smaller than 2 r_max: no supercell needed
    rdf = element_rdf([crystal], ["Cu"], r_max=5.5, n_bins=550)
    peaks = first_peaks(rdf["r"], rdf["g"], n_peaks=3)
    assert peaks == pytest.approx([a / np.sqrt(2), a, a * np.sqrt(1.5)], abs=0.01)
    # running coordination number: 12 nearest, then 6 second neighbours
    r = rdf["r"]
    assert rdf["n"][np.searchsorted(r, 3.0)] == pytest.approx(12)
    assert rdf["n"][np.searchsorted(r, 4.0)] == pytest.approx(18)


def test_partial_rdf_between_elements_of_rocksalt():
    crystal = bulk("MgO", "rocksalt", a=4.21)
    rdf = element_rdf([crystal], ["Mg"], ["O"], r_max=4.0, n_bins=400)
    assert first_peaks(rdf["r"], rdf["g"], n_peaks=2) == pytest.approx([2.105, 2.105 * np.sqrt(3)], abs=0.01)


def test_coordination_number_of_crystal_is_exact():
    crystal = bulk("MgO", "rocksalt", a=4.21).repeat(2)
    assert np.all(coordination_numbers(crystal, ["Mg"], ["O", "N"], cutoff=2.5) == 6)
    assert np.all(coordination_numbers(crystal, ["Mg"], ["N"], cutoff=2.5) == 0)


def test_vdos_peaks_at_known_frequencies_and_integrates_to_3n():
    dt, n_frames = 0.002, 4000  # ps: 8 ps, Nyquist 250 THz
    t = np.arange(n_frames) * dt
    frequencies = np.array([5.0, 12.0])  # THz
    masses = np.array([1.0, 16.0, 1.0, 16.0, 12.0, 12.0])
    rng = np.random.default_rng(0)
    nu = np.array([5.0, 5.0, 5.0, 12.0, 12.0, 12.0])
    amplitude = 1.0 / np.sqrt(masses)  # equipartition: the same kinetic energy per atom
    phases = rng.uniform(0, 2 * np.pi, size=(6, 3))
    velocities = amplitude[None, :, None] * np.cos(2 * np.pi * nu[None, :, None] * t[:, None, None] + phases)
    result = vibrational_dos(velocities, masses, dt)
    f, dos = result["frequency_thz"], result["dos"]
    assert trapezoid(dos, f) == pytest.approx(3 * 6, rel=1e-6)
    assert sorted(dominant_frequencies(f, dos, 2)) == pytest.approx(
        frequencies, abs=2 * result["resolution_thz"]
    )
    low = trapezoid(dos[f < 8.5], f[f < 8.5])
    assert low == pytest.approx(9.0, rel=0.05)  # half the atoms at 5 THz: 3N/2 states
    assert result["wavenumber_cm1"][np.argmax(dos)] == pytest.approx(f[np.argmax(dos)] * 33.356, rel=1e-3)


def _benzene_crystal() -> Atoms:
    atoms = molecule("C6H6")
    atoms.set_cell([9.0, 9.0, 7.0])
    atoms.center()
    atoms.pbc = True
    zn = Atoms(
        "ZnN4",
        positions=[[0.5, 0.5, 0.5], [2.5, 0.5, 0.5], [0.5, 2.5, 0.5], [0.5, 0.5, 2.5], [-1.5, 0.5, 0.5]],
        cell=atoms.cell,
        pbc=True,
    )
    zn.wrap()
    return atoms + zn


def test_integrity_detects_a_broken_bond_not_a_thermal_fluctuation():
    reference = _benzene_crystal()
    bonds = linker_bonds(reference)
    assert len(bonds) == 12  # 6 C-C and 6 C-H in benzene; Zn-N bonds are coordination, not linker bonds
    rng = np.random.default_rng(5)
    thermal = reference.copy()
    thermal.positions += rng.normal(scale=0.06, size=thermal.positions.shape)  # ~ 0.1 A RMS: hot but whole
    broken = reference.copy()
    hydrogen = next(i for i, s in enumerate(broken.get_chemical_symbols()) if s == "H")
    carbon = int(bonds[(bonds == hydrogen).any(axis=1)][0].min())
    broken.positions[hydrogen] += 1.5 * (broken.positions[hydrogen] - broken.positions[carbon])
    timeline = integrity_timeline([reference, thermal, broken], reference)
    assert timeline["n_broken"].tolist() == [0, 0, 1]
    assert timeline["broken_frames"] == [2]
    assert sorted(timeline["first_broken"][0][2:]) == ["C", "H"]
    assert timeline["reference_coordination_mean"] == 4.0
    assert timeline["coordination_mean"].tolist() == [4.0, 4.0, 4.0]


def test_melting_check_compares_metal_displacement_to_spacing():
    reference = bulk("Zn", "sc", a=3.0).repeat(2)
    positions = np.stack([reference.positions, reference.positions + 0.05])
    assert not melting_check(positions, reference)["melted"]
    rng = np.random.default_rng(0)
    moved = np.stack([reference.positions, reference.positions + rng.normal(scale=1.5, size=(8, 3))])
    result = melting_check(moved, reference)
    assert result["melted"] and result["metal_spacing"] == pytest.approx(3.0)
