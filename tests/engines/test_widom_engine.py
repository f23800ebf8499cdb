"""``mofmlp-widom`` on DMOF-1 + CO2 with a tiny random MACE model (real MACE evaluations)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.io import read

from aiida_mofmlp.common.errors import InputError
from aiida_mofmlp.common.frames import write_frames
from aiida_mofmlp.data.guest import BUILTIN_GUESTS
from aiida_mofmlp.engines.adsorption.widom import (
    BOLTZMANN_EV,
    GAS_CONSTANT,
    framework_density,
    main,
    run_widom,
    widom_statistics,
)
from aiida_mofmlp.engines.mace.toy import build_tiny_model

pytestmark = pytest.mark.integration

CO2 = {"symbols": BUILTIN_GUESTS["CO2"]["symbols"], "positions": BUILTIN_GUESTS["CO2"]["positions"]}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, raspa_share_dir):
    path = tmp_path_factory.mktemp("widom")
    build_tiny_model(["H", "C", "N", "O", "Zn"], path / "tiny.model")
    framework = read(raspa_share_dir / "structures" / "cif" / "ZnBDCdabco.cif")
    rattled = framework.copy()
    rattled.rattle(0.02, seed=1)
    write_frames([framework, rattled], path / "frames.extxyz")
    return path


@pytest.fixture(scope="module")
def widom(workdir):
    settings = {
        "frames": "frames.extxyz",
        "model": "tiny.model",
        "guest": CO2,
        "insertions_per_frame": 15,
        "temperature": 298.0,
        "overlap_distance": 1.0,
        "n_blocks": 3,
        "discard_fraction": 0.0,  # both frames (the equilibration cut is tested below)
    }
    results = run_widom(settings, workdir)
    return results, dict(np.load(workdir / "widom.npz"))


def test_one_insertion_equals_direct_mace_energy_difference(workdir, widom):
    from aiida_mofmlp.engines.mace.common import mace_calculator

    results, arrays = widom
    calculator = mace_calculator(workdir / "tiny.model", device="cpu", default_dtype="float64")
    frames = read(workdir / "frames.extxyz", ":")
    index = int(np.flatnonzero(np.isfinite(arrays["delta_energy"]))[-1])
    framework = frames[int(arrays["frame_index"][index])]
    guest = Atoms(symbols=CO2["symbols"], positions=arrays["guest_positions"][index])

    def energy(atoms):
        atoms = atoms.copy()
        atoms.calc = calculator
        return atoms.get_potential_energy()

    isolated = Atoms(symbols=CO2["symbols"], positions=CO2["positions"])
    direct = energy(framework + Atoms(guest.symbols, guest.positions, cell=framework.cell, pbc=True))
    expected = direct - energy(framework) - energy(isolated)
    assert arrays["delta_energy"][index] == pytest.approx(expected, abs=1e-6)
    assert results["guest_energy"] == pytest.approx(energy(isolated), abs=1e-8)


def test_henry_coefficient_and_energy_follow_from_the_insertions(workdir, widom):
    results, arrays = widom
    du = arrays["delta_energy"]
    overlaps = ~np.isfinite(du)
    assert results["n_insertions"] == 30 and results["n_overlaps"] == int(overlaps.sum())
    # hard-core overlaps cost no model call: frames + isolated guest + the finite insertions
    assert results["model_calls"] == 2 + 1 + int((~overlaps).sum())
    assert np.all(arrays["boltzmann_factor"][overlaps] == 0.0)
    temperature = results["temperature"]
    weights = np.exp(-du[~overlaps] / (BOLTZMANN_EV * temperature))
    density = framework_density(read(workdir / "frames.extxyz"))
    expected = weights.sum() / du.size / (GAS_CONSTANT * temperature * density)
    assert results["henry_coefficient"] == pytest.approx(expected, rel=1e-9)
    mean_du = (weights * du[~overlaps]).sum() / weights.sum() * 96.48533212
    assert results["adsorption_energy"] == pytest.approx(mean_du, rel=1e-9)
    assert results["isosteric_heat"] == pytest.approx(mean_du - GAS_CONSTANT * temperature / 1000, rel=1e-9)
    assert results["henry_coefficient_error"] > 0


def test_frames_of_the_equilibration_are_left_out(tmp_path):
    """The first discard_fraction of a trajectory (its start included) gives no Widom frame."""
    from aiida_mofmlp.engines.adsorption.widom import WidomRun, load_settings

    frames = [Atoms("Ar", positions=[[0, 0, 0]], cell=[5, 5, 5], pbc=True) for _ in range(20)]
    write_frames(frames, tmp_path / "frames.extxyz")
    used = [
        atoms.info["source_index"] for atoms in WidomRun(load_settings({"max_frames": 4}), tmp_path)._frames()
    ]
    assert used == [4, 9, 14, 19]  # frames 0-3 (20 %) left out, 4 evenly spaced after
    everything = load_settings({"max_frames": 20, "discard_fraction": 0.0})
    assert [a.info["source_index"] for a in WidomRun(everything, tmp_path)._frames()] == list(range(20))
    write_frames(frames[:1], tmp_path / "one.extxyz")  # a single frame is always used
    single = load_settings({"frames": "one.extxyz"})
    assert [a.info["source_index"] for a in WidomRun(single, tmp_path)._frames()] == [0]
    with pytest.raises(InputError, match=r"discard_fraction must be in \[0, 1\)"):
        load_settings({"discard_fraction": 1.0})


def test_ideal_gas_limit_of_the_statistics():
    """dU = 0 everywhere: K_H = 1 / (R T rho) exactly, no error, zero adsorption energy."""
    stats = widom_statistics(np.zeros(40), 300.0, 1000.0, 4)
    assert stats["henry_coefficient"] == pytest.approx(1.0 / (GAS_CONSTANT * 300.0 * 1000.0))
    assert stats["henry_coefficient_error"] == 0.0
    assert stats["adsorption_energy"] == 0.0
    half = widom_statistics(np.array([0.0, np.inf] * 20), 300.0, 1000.0, 4)
    assert half["henry_coefficient"] == pytest.approx(stats["henry_coefficient"] / 2)


def test_bad_input_is_refused_with_a_message(tmp_path, workdir, capsys):
    no_zn = build_tiny_model(["H", "C", "O"], tmp_path / "no_zn.model")
    config = {"frames": str(workdir / "frames.extxyz"), "model": str(no_zn), "guest": CO2}
    (tmp_path / "input.json").write_text(json.dumps(config))
    assert main([str(tmp_path / "input.json")]) == 1
    assert "has no elements ['N', 'Zn']" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text(json.dumps({**config, "temperature": -5}))
    assert main([str(tmp_path / "bad.json")]) == 1
    assert "temperature must be > 0 K" in capsys.readouterr().err
