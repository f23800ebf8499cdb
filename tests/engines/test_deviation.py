"""Tests of the batched ensemble deviation engine against a direct NumPy Eq. 1 (real mace-torch)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms

from aiida_mofmlp.common.frames import read_frames, write_frames
from aiida_mofmlp.engines.mace.common import InputError
from aiida_mofmlp.engines.mace.deviation import compute_deviation, main
from aiida_mofmlp.engines.mace.foundation import make_small_model
from aiida_mofmlp.engines.mace.toy import TOY_SPECIES, toy_frames


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ensemble")
    return [make_small_model(TOY_SPECIES, folder / f"m{seed}.model", seed=seed) for seed in range(3)]


@pytest.fixture(scope="module")
def frames():
    return toy_frames(7, seed=2, max_guests=2)


@pytest.fixture(scope="module")
def reference(ensemble, frames):
    """Forces and energies of each model from its own ASE calculator, frame by frame."""
    from aiida_mofmlp.engines.mace.common import mace_calculator

    forces, energies = [], []
    for path in ensemble:
        calc = mace_calculator(path, device="cpu", default_dtype="float64")
        model_forces, model_energies = [], []
        for atoms in frames:
            atoms = atoms.copy()
            atoms.calc = calc
            model_forces.append(atoms.get_forces().copy())
            model_energies.append(atoms.get_potential_energy())
        forces.append(model_forces)
        energies.append(model_energies)
    return forces, np.asarray(energies)


def test_deviation_equals_numpy_eq1(ensemble, frames, reference):
    forces, energies = reference
    result = compute_deviation(ensemble, frames, batch_size=3, dtype="float64")
    assert result["sigma_max"].shape == (len(frames),)
    for index, atoms in enumerate(frames):
        f = np.stack([forces[n][index] for n in range(len(ensemble))])  # (N, atoms, 3)
        mean = f.mean(axis=0)
        sigma = np.sqrt(np.mean(np.sum((f - mean) ** 2, axis=2), axis=0))
        ids = atoms.arrays["guest_id"]
        assert result["sigma_max"][index] == pytest.approx(sigma.max(), abs=1e-6)
        assert result["sigma_max_framework"][index] == pytest.approx(sigma[ids == 0].max(), abs=1e-6)
        if (ids > 0).any():
            assert result["sigma_max_guest"][index] == pytest.approx(sigma[ids > 0].max(), abs=1e-6)
        else:
            assert np.isnan(result["sigma_max_guest"][index])
        lo, hi = result["atom_offsets"][index], result["atom_offsets"][index + 1]
        np.testing.assert_allclose(result["forces_mean"][lo:hi], mean, atol=1e-6)
        np.testing.assert_allclose(result["sigma_atom"][lo:hi], sigma, atol=1e-6)
        per_atom = energies[:, index] / len(atoms)
        assert result["energy_std_per_atom"][index] == pytest.approx(np.std(per_atom), abs=1e-8)
        assert result["energy_mean"][index] == pytest.approx(energies[:, index].mean(), abs=1e-6)
    np.testing.assert_allclose(result["energies"], energies, atol=1e-6)
    # the frames with and without guests are both present, so both branches were checked
    assert np.isnan(result["sigma_max_guest"]).any()
    assert np.isfinite(result["sigma_max_guest"]).any()
    assert (result["sigma_max"] > 1e-4).all()


def test_deviation_batch_size_and_float32(ensemble, frames):
    one = compute_deviation(ensemble, frames, batch_size=1)
    many = compute_deviation(ensemble, frames, batch_size=7)
    np.testing.assert_allclose(one["sigma_max"], many["sigma_max"], atol=1e-10)
    single = compute_deviation(ensemble, frames, batch_size=4, dtype="float32")
    np.testing.assert_allclose(single["sigma_max"], many["sigma_max"], atol=1e-4)


def test_deviation_identical_models_give_zero(ensemble, frames):
    result = compute_deviation([ensemble[0], ensemble[0]], frames[:2])
    assert np.allclose(result["sigma_max"], 0.0)
    assert np.allclose(result["energy_std_per_atom"], 0.0)


def test_deviation_errors(ensemble, frames):
    with pytest.raises(InputError, match="at least 2"):
        compute_deviation(ensemble[:1], frames)
    alien = Atoms("CuC", positions=[[0, 0, 0], [1.5, 0, 0]], cell=[6, 6, 6], pbc=True)
    with pytest.raises(InputError, match=r"frame 1 contains \['Cu'\]"):
        compute_deviation(ensemble, [frames[0], alien])
    with pytest.raises(InputError, match="dtype"):
        compute_deviation(ensemble, frames, dtype="float16")


def test_deviation_main_writes_outputs(ensemble, frames, tmp_path, monkeypatch):
    write_frames([atoms.copy() for atoms in frames], tmp_path / "frames.extxyz")
    config = {"models": [str(path) for path in ensemble], "frames": "frames.extxyz", "batch_size": 4}
    (tmp_path / "input.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    assert main(["input.json"]) == 0
    arrays = np.load(tmp_path / "deviation.npz")
    summary = json.loads((tmp_path / "deviation.json").read_text())
    assert summary["n_frames"] == len(frames) == len(arrays["sigma_max"])
    assert summary["frames"]["sigma_max"] == pytest.approx(arrays["sigma_max"].tolist())
    assert None in summary["frames"]["sigma_max_guest"]  # NaN for frames without guests
    annotated = read_frames(tmp_path / "deviation.extxyz")
    assert annotated[3].info["sigma_max"] == pytest.approx(arrays["sigma_max"][3])
    lo, hi = arrays["atom_offsets"][3], arrays["atom_offsets"][4]
    np.testing.assert_allclose(annotated[3].arrays["forces_mean"], arrays["forces_mean"][lo:hi], atol=1e-6)
    (tmp_path / "bad.json").write_text(json.dumps({**config, "bogus": 1}))
    assert main(["bad.json"]) == 2


def test_deviation_compute_stress_equals_mace_calculator(ensemble, frames, tmp_path, monkeypatch):
    """``compute_stress``: the ensemble mean of MACE's calculator stress (Voigt); NaN if not periodic."""
    from aiida_mofmlp.engines.mace.common import mace_calculator

    frames = [atoms.copy() for atoms in frames]
    frames[1].pbc = False
    expected = np.zeros((len(frames), 6))
    for path in ensemble:
        calc = mace_calculator(path, device="cpu", default_dtype="float64")
        for index, atoms in enumerate(frames):
            atoms = atoms.copy()
            atoms.calc = calc
            expected[index] += atoms.get_stress(voigt=True) / len(ensemble)
    result = compute_deviation(ensemble, frames, batch_size=3, compute_stress=True)
    periodic = [index for index in range(len(frames)) if index != 1]
    np.testing.assert_allclose(result["stress_mean"][periodic], expected[periodic], atol=1e-9)
    assert np.isnan(result["stress_mean"][1]).all()
    plain = compute_deviation(ensemble, frames, batch_size=3)
    assert "stress_mean" not in plain  # off by default
    np.testing.assert_allclose(plain["forces_mean"], result["forces_mean"], atol=1e-12)
    # through the engine's input file
    write_frames(frames, tmp_path / "frames.extxyz")
    config = {"models": [str(path) for path in ensemble], "frames": "frames.extxyz", "compute_stress": True}
    (tmp_path / "input.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    assert main(["input.json"]) == 0
    written = np.load(tmp_path / "deviation.npz")["stress_mean"]  # positions went through extxyz text
    np.testing.assert_allclose(written[periodic], expected[periodic], atol=1e-9)
    annotated = read_frames(tmp_path / "deviation.extxyz")
    np.testing.assert_allclose(annotated[0].info["stress_mean"], expected[0], atol=1e-9)
