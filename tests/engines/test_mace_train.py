"""Tests of the fine-tuning engine with real mace-torch on a tiny toy set (labels from a teacher MACE)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from aiida_mofmlp.common.frames import write_frames
from aiida_mofmlp.engines.mace.foundation import make_small_model
from aiida_mofmlp.engines.mace.toy import TOY_SPECIES, label_with_model, toy_frames
from aiida_mofmlp.engines.mace.train import TRAIN_DEFAULTS, build_train_argv, error_metrics, main

E0S = {"H": -1.0, "C": -2.0, "O": -3.0, "Zn": -4.0}


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory) -> Path:
    """A random foundation.model; train/valid labelled by a random 'teacher', replay by the foundation."""
    folder = tmp_path_factory.mktemp("toy")
    teacher = make_small_model(TOY_SPECIES, folder / "teacher.model", seed=7, scale=5.0, e0s=E0S)
    foundation = make_small_model(TOY_SPECIES, folder / "foundation.model", seed=0, e0s=E0S)
    write_frames(label_with_model(toy_frames(24, seed=1), teacher), folder / "train.extxyz")
    write_frames(label_with_model(toy_frames(8, seed=2), teacher), folder / "valid.extxyz")
    write_frames(label_with_model(toy_frames(12, seed=3), foundation), folder / "replay.extxyz")
    return folder


def _workdir(toy_data: Path, tmp_path: Path, config: dict) -> Path:
    for name in ("foundation.model", "train.extxyz", "valid.extxyz", "replay.extxyz"):
        shutil.copy(toy_data / name, tmp_path / name)
    (tmp_path / "input.json").write_text(json.dumps(config))
    return tmp_path


BASE = {
    "train_file": "train.extxyz",
    "valid_file": "valid.extxyz",
    "foundation_model": "foundation.model",
    "max_num_epochs": 6,
    "lr": 0.01,
    "batch_size": 4,
}


def test_argv_has_science_schedule_defaults():
    full = {**TRAIN_DEFAULTS, "train_file": "t", "foundation_model": "f", "mode": "naive"}
    argv = build_train_argv(full, "f.model", Path("t"), Path("v"), None, Path("w"))
    for expected in (
        "--energy_weight=1.0",
        "--forces_weight=100.0",
        "--lr=0.001",
        "--swa",
        "--swa_energy_weight=10.0",
        "--swa_forces_weight=1.0",
        "--swa_lr=0.0001",
        "--batch_size=8",
        "--weight_decay=5e-07",
        "--patience=10",
        "--multiheads_finetuning=False",
        "--loss=weighted",
    ):
        assert expected in argv
    stress = {**full, "stress_weight": 100.0, "energy_weight": 1.0, "forces_weight": 10.0}
    argv = build_train_argv(stress, "f.model", Path("t"), Path("v"), None, Path("w"))
    assert "--loss=stress" in argv and "--stress_weight=100.0" in argv and "--swa_stress_weight=100.0" in argv


@pytest.mark.parametrize("mode", ["naive", "multihead"])
def test_argv_stress_weights_in_both_stages(mode):
    """Stress weights always reach mace: 0 keeps multihead's ``universal`` loss from its own default 1/10."""
    full = {**TRAIN_DEFAULTS, "train_file": "t", "foundation_model": "f", "mode": mode}
    replay = Path("r") if mode == "multihead" else None
    argv = build_train_argv(full, "f.model", Path("t"), Path("v"), replay, Path("w"))
    assert "--stress_weight=0.0" in argv and "--swa_stress_weight=0.0" in argv and "--loss=weighted" in argv
    stress = {**full, "stress_weight": 10.0, "stage_two_stress_weight": 50.0}
    argv = build_train_argv(stress, "f.model", Path("t"), Path("v"), replay, Path("w"))
    assert "--loss=stress" in argv and "--stress_weight=10.0" in argv and "--swa_stress_weight=50.0" in argv


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mode": "multihead"}, "needs `replay_file`"),
        ({"mode": "fancy"}, "mode 'fancy' is not valid"),
        ({"epochs": 3}, "unknown training input keys"),
        ({"mode": "naive", "replay_file": "replay.extxyz"}, "only used in mode 'multihead'"),
        ({"mode": "naive", "train_file": "missing.extxyz"}, "train_file 'missing.extxyz' does not exist"),
        (
            {"mode": "naive", "stress_weight": 10.0},
            "24 of 24 frames of train_file train.extxyz and 8 of 8 frames of valid_file valid.extxyz lack "
            "REF_stress",
        ),
        ({"mode": "naive", "stress_weight": 1.0, "stage_two_stress_weight": -1}, "must be >= 0"),
        ({"mode": "naive", "stage_two_stress_weight": 5.0}, "needs stress_weight > 0"),
        # a wrong type is a clear refusal, not a traceback on the compute node
        ({"mode": "naive", "lr": "fast"}, "parameters.lr='fast' must be a number"),
        ({"mode": "naive", "ema": "yes"}, "parameters.ema='yes' must be true/false"),
        ({"mode": "naive", "max_num_epochs": True}, "parameters.max_num_epochs=True must be a number"),
        ({"mode": "naive", "extra_args": "--lr=1"}, "parameters.extra_args='--lr=1' must be a list"),
        ({"mode": "naive", "extra_args": ["--work_dir=/etc"]}, "--work_dir names a file or folder"),
    ],
)
def test_invalid_inputs_fail_before_training(toy_data, tmp_path, monkeypatch, capsys, change, message):
    _workdir(toy_data, tmp_path, {**BASE, **change})
    monkeypatch.chdir(tmp_path)
    assert main(["input.json"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "mace_train.log").exists()


def test_species_missing_from_foundation(toy_data, tmp_path, monkeypatch, capsys):
    _workdir(toy_data, tmp_path, {**BASE, "mode": "naive"})
    make_small_model(["H", "C", "O"], tmp_path / "foundation.model")  # no Zn
    monkeypatch.chdir(tmp_path)
    assert main(["input.json"]) == 2
    error = capsys.readouterr().err
    assert "['Zn']" in error and "does not know" in error
    assert not (tmp_path / "mace_train.log").exists()


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["naive", "multihead"])
def test_finetune_beats_foundation(toy_data, tmp_path, monkeypatch, mode):
    config = {**BASE, "mode": mode}
    if mode == "multihead":
        config["replay_file"] = "replay.extxyz"
    _workdir(toy_data, tmp_path, config)
    monkeypatch.chdir(tmp_path)
    before = error_metrics(tmp_path / "foundation.model", tmp_path / "valid.extxyz", None, "cpu")
    assert main(["input.json"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "ok"
    assert results["head"] == "Default"
    assert results["species"] == ["H", "C", "O", "Zn"]
    expected_heads = ["pt_head", "Default"] if mode == "multihead" else ["Default"]
    assert sorted(results["heads"]) == sorted(expected_heads)
    after = results["metrics"]["valid"]
    print(f"{mode}: valid force MAE foundation {before['mae_f']:.4f} -> fine-tuned {after['mae_f']:.4f} eV/A")
    assert after["mae_f"] < before["mae_f"]
    assert after["n_frames"] == 8
    assert set(after) >= {"mae_e_per_atom", "rmse_e_per_atom", "mae_f", "rmse_f"}
    curves = np.load(tmp_path / "curves.npz")
    assert len(curves["epoch"]) >= 2
    assert np.all(np.isfinite(curves["valid_mae_f"]))
    # the model file loads in the ASE calculator with the recorded head
    from aiida_mofmlp.engines.mace.common import mace_calculator

    calc = mace_calculator(tmp_path / results["model"], device="cpu", default_dtype="float64", head="Default")
    atoms = toy_frames(1, seed=9)[0]
    atoms.calc = calc
    assert np.all(np.isfinite(atoms.get_forces()))


@pytest.mark.integration
def test_diverged_training_exit_status(toy_data, tmp_path, monkeypatch):
    # an absurd learning rate really makes mace's loss NaN after the first step
    _workdir(
        toy_data, tmp_path, {**BASE, "mode": "naive", "lr": 1e12, "max_num_epochs": 1, "stage_two": False}
    )
    monkeypatch.chdir(tmp_path)
    assert main(["input.json"]) == 3
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "diverged"


def test_replay_draw_is_seeded_and_bounded(tmp_path):
    """mace ignores --num_samples_pt for a replay file of our own: the engine draws the frames itself."""
    from aiida_mofmlp.common.frames import read_frames, write_frames
    from aiida_mofmlp.engines.mace.train import draw_replay

    frames = toy_frames(9, seed=3)
    for index, atoms in enumerate(frames):
        atoms.info["parent_index"] = index
    write_frames(frames, tmp_path / "replay.extxyz")
    assert draw_replay(tmp_path / "replay.extxyz", 20, 0, tmp_path) == tmp_path / "replay.extxyz"
    first = read_frames(draw_replay(tmp_path / "replay.extxyz", 4, 0, tmp_path))
    picked = [atoms.info["parent_index"] for atoms in first]
    assert len(picked) == 4 and len(set(picked)) == 4 and picked == sorted(picked)
    again = read_frames(draw_replay(tmp_path / "replay.extxyz", 4, 0, tmp_path))
    assert [atoms.info["parent_index"] for atoms in again] == picked
