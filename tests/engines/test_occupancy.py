"""The empty-box correction of MD-GCMC against the ideal gas, where everything is known (Poisson)."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_mofmlp.engines.adsorption.occupancy import empty_box_correction, henry_molecules_per_cell


@pytest.mark.parametrize("mean", [0.1, 0.5, 1.0, 3.0])
def test_truncated_poisson_gives_back_the_poisson_mean(mean):
    """Samples of a Poisson distribution without its zero (what fix gcmc produces): the sampled mean is
    mean / (1 - exp(-mean)) (1.05, 1.27, 1.58, 3.16), the corrected one the true mean."""
    rng = np.random.default_rng(7)
    draws = rng.poisson(mean, size=400_000)
    sampled = draws[draws > 0]
    assert sampled.mean() == pytest.approx(mean / (1 - np.exp(-mean)), rel=0.01)
    correction = empty_box_correction(sampled, henry_molecules=mean)  # ideal gas: P(1)/P(0) = mean
    assert correction["applied"]
    assert correction["p_empty"] == pytest.approx(np.exp(-mean), rel=0.02)
    assert correction["factor"] * sampled.mean() == pytest.approx(mean, rel=0.01)


def test_no_correction_when_the_empty_box_was_visited_or_unknown():
    assert not empty_box_correction([0, 1, 2, 1], henry_molecules=0.5)["applied"]
    assert not empty_box_correction([2, 3, 4], henry_molecules=0.5)["applied"]  # never at one molecule
    assert not empty_box_correction([1, 2, 1], henry_molecules=None)["applied"]
    assert empty_box_correction([1, 2, 1], henry_molecules=float("nan"))["factor"] == 1.0


def test_henry_loading_of_a_cell():
    # 1e-5 mol/kg/Pa at 1e4 Pa in a cell of 1000 g/mol: 0.1 mol/kg * 1 kg/mol... = 0.1 molecules per cell
    assert henry_molecules_per_cell(1.0e-5, 1.0e4, 1000.0) == pytest.approx(0.1)
