"""MSD/D on random walks of known D, the automatic linear regime, and the Arrhenius fit."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from aiida_mofmlp.engines.analysis.diffusion import KB_EV, arrhenius_fit, diffusion_coefficient
from aiida_mofmlp.engines.analysis.trajectory import guest_centres_of_mass, unwrapped_positions


def random_walk(d_true: float, dt: float, n_steps: int, n_walkers: int, seed: int) -> np.ndarray:
    """Gaussian random walk: each Cartesian step has variance 2 D dt."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(scale=np.sqrt(2 * d_true * dt), size=(n_steps, n_walkers, 3))
    return np.concatenate([np.zeros((1, n_walkers, 3)), np.cumsum(steps, axis=0)])


def test_random_walk_recovers_known_d_within_5_percent():
    d_true, dt = 0.35, 0.02  # Angstrom^2/ps, ps
    positions = random_walk(d_true, dt, 1000, 400, seed=3)
    result = diffusion_coefficient(np.arange(len(positions)) * dt, positions)
    assert result["D"] == pytest.approx(d_true, rel=0.05)
    assert abs(result["D"] - d_true) < 4 * result["D_error"]  # the error bar is honest
    assert result["linear_regime_found"]
    assert result["D_cm2_per_s"] == pytest.approx(result["D"] * 1e-4)


def test_ballistic_start_is_left_out_of_the_linear_regime():
    # Langevin (Ornstein-Uhlenbeck) velocities: MSD ~ t^2 below tau, ~ 6 D t above, D = sigma_v^2 tau
    dt, tau, sigma, n_steps, n_walkers = 0.002, 0.1, 1.5, 5000, 100
    rng = np.random.default_rng(1)
    decay = np.exp(-dt / tau)
    kick = sigma * np.sqrt(1 - decay**2)
    velocity = rng.normal(scale=sigma, size=(n_walkers, 3))
    trajectory = np.zeros((n_steps, n_walkers, 3))
    for k in range(1, n_steps):
        velocity = decay * velocity + kick * rng.normal(size=velocity.shape)
        trajectory[k] = trajectory[k - 1] + velocity * dt
    result = diffusion_coefficient(np.arange(n_steps) * dt, trajectory)
    assert result["fit_start_ps"] > tau  # the ballistic regime is not fitted
    assert result["D"] == pytest.approx(sigma**2 * tau, rel=0.1)


def test_one_particle_uses_the_regression_error():
    positions = random_walk(0.2, 0.05, 400, 1, seed=4)
    result = diffusion_coefficient(np.arange(len(positions)) * 0.05, positions)
    assert result["n_particles"] == 1 and result["error_method"].startswith("linear regression")
    assert result["D_error"] > 0


def test_unequal_spacing_is_rejected():
    positions = random_walk(0.2, 0.05, 10, 2, seed=4)
    times = np.cumsum(np.r_[0, np.ones(9), 2.0])
    with pytest.raises(ValueError, match="equally spaced"):
        diffusion_coefficient(times, positions)


def test_arrhenius_recovers_known_activation_energy():
    ea, prefactor = 0.0446, 2.0  # eV (4.3 kJ/mol), Angstrom^2/ps
    temperatures = np.array([60.0, 77.0, 100.0, 150.0, 200.0])
    rng = np.random.default_rng(0)
    values = prefactor * np.exp(-ea / (KB_EV * temperatures)) * (1 + 0.01 * rng.normal(size=5))
    fit = arrhenius_fit(temperatures, values, 0.01 * values)
    assert fit["Ea_eV"] == pytest.approx(ea, rel=0.03)
    assert fit["Ea_kJ_per_mol"] == pytest.approx(4.3, abs=0.15)
    assert abs(fit["Ea_eV"] - ea) < 3 * fit["Ea_error_eV"]
    assert fit["prefactor"] == pytest.approx(prefactor, rel=0.1)


def test_arrhenius_rejects_non_positive_values():
    with pytest.raises(ValueError, match="positive"):
        arrhenius_fit([100, 200], [1.0, -1.0])


def test_guest_centres_of_mass_from_image_flags_cross_the_boundary():
    # a diatomic guest moves +x by 1 A per frame through a 5 A box; positions are wrapped, images count
    cell = np.eye(3) * 5.0
    frames = []
    for k in range(8):
        true = np.array([[1.0 + k, 2.0, 2.0], [2.0 + k, 2.0, 2.0], [0.5, 0.5, 0.5]])
        wrapped = true % 5.0
        atoms = Atoms("H2He", positions=wrapped, cell=cell, pbc=True)
        atoms.arrays["image"] = np.floor_divide(true, 5.0).astype(int)
        atoms.arrays["guest_id"] = np.array([1, 1, 0])
        frames.append(atoms)
    centres = guest_centres_of_mass(frames)
    assert centres.shape == (8, 1, 3)
    assert np.allclose(np.diff(centres[:, 0, 0]), 1.0)
    # without image flags the minimum image gives the same for steps below half a cell
    for atoms in frames:
        del atoms.arrays["image"]
    assert np.allclose(unwrapped_positions(frames)[:, 0, 0], 1.0 + np.arange(8))


def test_no_guests_is_a_clear_error():
    atoms = Atoms("H2", positions=[[0, 0, 0], [1, 0, 0]], cell=np.eye(3) * 5, pbc=True)
    with pytest.raises(ValueError, match="no guest molecules"):
        guest_centres_of_mass([atoms, atoms])


def test_channel_diffusion_is_one_dimensional_along_an_oblique_channel():
    """Walkers that move only along (1, 1, 0)/sqrt2: the 3D D is a third of the channel's, the diffusion
    tensor finds one mobile direction and D_mobile recovers the channel diffusivity."""
    d_true, dt = 0.3, 0.02
    rng = np.random.default_rng(7)
    steps = rng.normal(scale=np.sqrt(2 * d_true * dt), size=(1500, 300))
    direction = np.array([1.0, 1.0, 0.0]) / np.sqrt(2)
    positions = np.concatenate([np.zeros((1, 300)), np.cumsum(steps, axis=0)])[:, :, None] * direction
    positions = positions + rng.normal(scale=0.01, size=positions.shape)  # thermal jiggle across the channel
    result = diffusion_coefficient(np.arange(len(positions)) * dt, positions)
    assert result["dimensionality"] == 1
    assert result["D_mobile"] == pytest.approx(d_true, rel=0.06)
    assert result["D"] == pytest.approx(d_true / 3, rel=0.06)
    assert result["D_principal"][0] == pytest.approx(d_true, rel=0.06)


def test_isotropic_walk_is_three_dimensional():
    positions = random_walk(0.35, 0.02, 1000, 300, seed=5)
    result = diffusion_coefficient(np.arange(len(positions)) * 0.02, positions)
    assert result["dimensionality"] == 3
    assert result["D_mobile"] == pytest.approx(result["D"], rel=0.05)
    assert sum(result["D_principal"]) == pytest.approx(3 * result["D"], rel=0.02)  # trace = 3 D


def test_no_linear_regime_gives_no_d():
    """Trapped guests (harmonic wells) seen every 0.5 ps, beyond the well's relaxation time 1/k = 0.2 ps:
    the MSD is flat from the first lag, there is no diffusive regime, so no D, with the reason."""
    dt, n_steps, n_walkers, k = 0.01, 2000, 50, 5.0
    rng = np.random.default_rng(2)
    x = np.zeros((n_steps, n_walkers, 3))
    for step in range(1, n_steps):  # overdamped motion in a well: plateau of the MSD after ~1/k
        x[step] = (
            x[step - 1] - k * x[step - 1] * dt + rng.normal(scale=np.sqrt(2 * 0.2 * dt), size=(n_walkers, 3))
        )
    every = 50
    result = diffusion_coefficient(np.arange(0, n_steps, every) * dt, x[::every])
    assert not result["linear_regime_found"]
    assert result["D"] is None and result["D_error"] is None and result["dimensionality"] is None
    assert "no linear (diffusive) regime" in result["no_D_reason"]
