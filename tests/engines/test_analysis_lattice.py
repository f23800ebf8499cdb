"""Lattice statistics and expansion coefficients with known answers; LAMMPS image flags; pore geometry."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from aiida_mofmlp.engines.analysis.lattice import equilibrated_lattice, expansion_coefficient
from aiida_mofmlp.engines.analysis.pores import pore_geometry
from aiida_mofmlp.engines.lammps.md_settings import unpack_image_flags


def test_linear_expansion_coefficient_of_a_known_line():
    alpha, a0 = -13.3e-6, 25.9  # MOF-5-like negative thermal expansion (1/K, Angstrom)
    temperatures = np.array([100.0, 200.0, 300.0, 400.0])
    lattice = a0 * (1 + alpha * (temperatures - 300.0))
    result = expansion_coefficient(temperatures, lattice, [1e-4] * 4, at_temperature=300.0)
    assert result["alpha"] == pytest.approx(alpha, rel=1e-6)
    assert 0 < result["alpha_error"] < 1e-5
    volume = expansion_coefficient(temperatures, lattice**3, at_temperature=300.0)
    assert volume["alpha"] == pytest.approx(
        3 * alpha, rel=5e-3
    )  # alpha_V = 3 alpha_L (cubic cell; linear fit)


def test_quadratic_fit_gives_the_local_slope():
    temperatures = np.linspace(100, 500, 9)
    values = 10.0 + 1e-3 * temperatures + 2e-6 * temperatures**2
    result = expansion_coefficient(temperatures, values, degree=2, at_temperature=200.0)
    slope, value = 1e-3 + 4e-6 * 200.0, 10.0 + 0.2 + 2e-6 * 200.0**2
    assert result["alpha"] == pytest.approx(slope / value, rel=1e-8)
    with pytest.raises(ValueError, match="at least 3 temperatures"):
        expansion_coefficient([100, 200], [1.0, 1.1], degree=2)


def test_equilibrated_lattice_detects_the_drift_and_averages_the_rest():
    rng = np.random.default_rng(0)
    frames = []
    for k in range(300):
        a = 10.0 + (0.5 * np.exp(-k / 10.0)) + rng.normal(scale=0.01)
        frames.append(Atoms("H", cell=[a, a, a], pbc=True))
    stats = equilibrated_lattice(frames)
    assert stats["a"]["t0"] > 10  # the relaxation at the start is detected and dropped
    assert stats["a"]["mean"] == pytest.approx(10.0, abs=3 * stats["a"]["error"] + 1e-3)
    assert stats["volume"]["mean"] == pytest.approx(1000.0, rel=2e-3)
    assert stats["alpha"]["mean"] == pytest.approx(90.0)


def test_lammps_image_flags_unpack():
    flags = np.array([[0, 0, 0], [1, -1, 2], [-3, 4, -5]])
    packed = ((flags[:, 2] + 512) << 20) | ((flags[:, 1] + 512) << 10) | (flags[:, 0] + 512)
    assert unpack_image_flags(packed).tolist() == flags.tolist()


def test_pore_geometry_of_a_dense_crystal_and_of_an_open_cell():
    dense = pore_geometry(bulk("Cu", "fcc", a=3.6, cubic=True), probe_radius=1.2, samples_per_atom=200)
    assert dense["pore_volume"] == 0.0 and dense["surface_area"] == 0.0
    open_cell = Atoms("Cu", positions=[[0, 0, 0]], cell=[12.0] * 3, pbc=True)
    result = pore_geometry(open_cell, probe_radius=1.2, samples_per_atom=2000)
    assert 0.9 < result["void_fraction"] < 1.0 and result["surface_area"] > 0
    assert result["units"]["pore_volume"] == "Angstrom^3"
