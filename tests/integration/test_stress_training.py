"""Training on stress with the real codes: xTB stress labels of strained cells, ``mofmlp-train`` with and
without a stress weight, and the stress errors it reports checked against MACE's own ASE calculator.

Frames: 24 copies of the 8-atom diamond-Si cell under random symmetric strains (up to 4 %) and a small
rattle, labelled with GFN1-xTB (tblite) including the stress (a few seconds). Two fine-tunings of a tiny
random foundation on them differ only in ``stress_weight`` (0 vs 1000, kept in stage two); about a minute.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from aiida_mofmlp.common.frames import STRESS_KEY, composition_e0s, read_frames, write_frames
from aiida_mofmlp.common.metrics import EV_PER_A3_IN_GPA
from aiida_mofmlp.engines.mace.foundation import make_small_model
from aiida_mofmlp.engines.mace.train import main

pytestmark = pytest.mark.integration

N_FRAMES = 24
STRESS_WEIGHT = 1000.0
CONFIG = {
    "train_file": "train.extxyz",
    "foundation_model": "foundation.model",
    "mode": "naive",
    "valid_fraction": 0.25,
    "max_num_epochs": 40,
    "start_stage_two": 30,
    "lr": 0.005,
    "batch_size": 4,
    "ema": False,
    "forces_weight": 10.0,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """Strained and rattled Si cells with xTB energies, forces and stresses, and a tiny foundation."""
    from aiida_mofmlp.engines.xtb.label import run as run_xtb

    folder = tmp_path_factory.mktemp("stress_data")
    rng = np.random.default_rng(0)
    frames = []
    for index in range(N_FRAMES):
        strain = np.eye(3) + rng.uniform(-0.04, 0.04, (3, 3))
        atoms = bulk("Si", "diamond", a=5.43, cubic=True)
        atoms.set_cell(atoms.cell @ ((strain + strain.T) / 2), scale_atoms=True)
        atoms.rattle(0.01, seed=index)
        frames.append(atoms)
    write_frames(frames, folder / "frames.extxyz")
    summary = run_xtb({"frames": "frames.extxyz", "compute_stress": True}, folder)
    assert summary["n_labelled"] == N_FRAMES
    labelled_frames = read_frames(folder / "labelled.extxyz")
    stresses = np.array([atoms.info[STRESS_KEY] for atoms in labelled_frames])
    assert stresses.shape == (N_FRAMES, 6) and stresses[:, :3].std() > 0.02  # eV/A^3: several GPa spread
    make_small_model(["Si"], folder / "foundation.model", e0s=composition_e0s(labelled_frames))
    return folder


def _train(labelled: Path, folder: Path, monkeypatch, **changes) -> dict:
    folder.mkdir()
    shutil.copy(labelled / "labelled.extxyz", folder / "train.extxyz")
    shutil.copy(labelled / "foundation.model", folder / "foundation.model")
    (folder / "input.json").write_text(json.dumps({**CONFIG, **changes}))
    monkeypatch.chdir(folder)
    status = main(["input.json"])
    results = json.loads((folder / "results.json").read_text())
    assert status == 0, results.get("message")
    return results


def _model_stress(model: Path, frames: list) -> np.ndarray:
    from aiida_mofmlp.engines.mace.common import mace_calculator

    calc = mace_calculator(model, device="cpu", default_dtype="float64", head="Default")
    stresses = []
    for atoms in frames:
        atoms = atoms.copy()
        atoms.calc = calc
        stresses.append(atoms.get_stress(voigt=True))
    return np.array(stresses)


@pytest.fixture(scope="module")
def trainings(labelled, tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """The same fine-tuning without (``plain``) and with (``stress``) a stress weight."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        runs = {}
        for name, weight in (("plain", 0.0), ("stress", STRESS_WEIGHT)):
            folder = tmp_path_factory.mktemp("train") / name
            runs[name] = (folder, _train(labelled, folder, monkeypatch, stress_weight=weight))
    return runs


def test_stress_weight_makes_the_model_learn_the_stress(trainings):
    folder, results = trainings["stress"]
    # mace's stress loss in stage one and (with the same weight) in stage two
    log = (folder / "mace_train.log").read_text()
    assert "--loss=stress" in results["argv"]
    assert (
        "WeightedEnergyForcesStressLoss(energy_weight=1.000, forces_weight=10.000, stress_weight=1000.000)"
        in log
    )
    assert f"stress weight : {STRESS_WEIGHT}" in log
    assert results["units"]["mae_stress"] == "eV/Angstrom^3" and results["units"]["mae_stress_gpa"] == "GPa"
    assert np.all(np.isfinite(results["curves"]["valid_mae_stress"]))

    # the trained models on their training frames: MAE and the coefficient of determination R^2 (agreement
    # with the labels, so an offset counts; the plain model's Pearson r is printed as well)
    errors, r_squared, pearson = {}, {}, {}
    for name, (run_folder, run_results) in trainings.items():
        frames = read_frames(run_folder / "mace" / "train_split.extxyz")
        reference = np.array([atoms.info[STRESS_KEY] for atoms in frames])
        difference = _model_stress(run_folder / run_results["model"], frames) - reference
        errors[name] = float(np.mean(np.abs(difference)))
        r_squared[name] = 1.0 - float(np.sum(difference**2) / np.sum((reference - reference.mean()) ** 2))
        pearson[name] = float(np.corrcoef((difference + reference).ravel(), reference.ravel())[0, 1])
        train = run_results["metrics"]["train"]
        assert train["n_frames_stress"] == len(frames) == N_FRAMES - 6
        assert train["mae_stress"] == pytest.approx(errors[name], abs=1e-6)
    for name, weight in (("plain", 0.0), ("stress", STRESS_WEIGHT)):
        print(
            f"stress_weight {weight:g}: training-frame stress MAE {errors[name] * EV_PER_A3_IN_GPA:.2f} GPa, "
            f"R^2 {r_squared[name]:.3f}, Pearson r {pearson[name]:.3f}"
        )
    # measured 2.64 vs 6.47 GPa (R^2 0.84 vs 0.21); with other data, model and split seeds the ratio was
    # 0.46-0.81 (given 80 epochs instead of 40, the energy-only model learns more of E(strain) from the
    # energies and the ratio rises to ~0.9: stress labels matter most when training is short)
    assert errors["stress"] < 0.9 * errors["plain"]
    assert r_squared["stress"] > r_squared["plain"]


def test_reported_valid_stress_errors_equal_mace_calculator(trainings):
    for folder, results in trainings.values():
        frames = read_frames(folder / "mace" / "valid_split.extxyz")
        reference = np.array([atoms.info[STRESS_KEY] for atoms in frames])
        difference = _model_stress(folder / results["model"], frames) - reference
        valid = results["metrics"]["valid"]
        assert valid["n_frames_stress"] == len(frames) == 6
        assert valid["mae_stress"] == pytest.approx(np.mean(np.abs(difference)), abs=1e-6)
        assert valid["rmse_stress"] == pytest.approx(np.sqrt(np.mean(difference**2)), abs=1e-6)
        assert valid["mae_stress_gpa"] == pytest.approx(valid["mae_stress"] * EV_PER_A3_IN_GPA)


def test_missing_stress_labels_fail_before_training(labelled, tmp_path, monkeypatch, capsys):
    frames = read_frames(labelled / "labelled.extxyz")
    for atoms in frames[:3]:
        del atoms.info[STRESS_KEY]
    write_frames(frames, tmp_path / "train.extxyz")
    shutil.copy(labelled / "foundation.model", tmp_path / "foundation.model")
    (tmp_path / "input.json").write_text(json.dumps({**CONFIG, "stress_weight": 10.0}))
    monkeypatch.chdir(tmp_path)
    assert main(["input.json"]) == 2
    error = capsys.readouterr().err
    assert f"3 of {N_FRAMES} frames of train_file train.extxyz lack {STRESS_KEY}" in error
    assert not (tmp_path / "mace_train.log").exists()
    # without a stress weight the same frames train; the stress errors cover the frames with a stress label
    (tmp_path / "input.json").write_text(json.dumps({**CONFIG, "max_num_epochs": 1, "stage_two": False}))
    assert main(["input.json"]) == 0
    metrics = json.loads((tmp_path / "results.json").read_text())["metrics"]
    for split in ("train", "valid"):
        frames = read_frames(tmp_path / "mace" / f"{split}_split.extxyz")
        assert metrics[split]["n_frames"] == len(frames)
        assert metrics[split]["n_frames_stress"] == sum(STRESS_KEY in atoms.info for atoms in frames)
