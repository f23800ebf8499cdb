"""Tests of the offline foundation-model engine (real mace-torch, tiny models)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aiida_mofmlp.common.frames import write_frames
from aiida_mofmlp.engines.mace.common import InputError
from aiida_mofmlp.engines.mace.foundation import main, make_small_model
from aiida_mofmlp.engines.mace.toy import TOY_SPECIES, label_with_model, toy_frames


def test_make_small_model_loads_in_calculator(tmp_path):
    from aiida_mofmlp.engines.mace.common import mace_calculator

    path = make_small_model(["C", "O", "H", "Zn"], tmp_path / "a.model", seed=1, e0s={"C": -1.5})
    calc = mace_calculator(path, device="cpu", default_dtype="float64")
    atoms = toy_frames(1, seed=3)[0]
    atoms.calc = calc
    forces = atoms.get_forces()
    assert forces.shape == (len(atoms), 3)
    assert np.all(np.isfinite(forces))
    assert np.abs(forces).max() > 0
    model = calc.models[0]
    assert sorted(model.atomic_numbers.tolist()) == [1, 6, 8, 30]
    assert float(model.r_max) == pytest.approx(4.0)
    # the C reference energy is used for an isolated carbon atom far from everything
    from ase import Atoms

    lone = Atoms("C", positions=[[5, 5, 5]], cell=[20, 20, 20], pbc=True)
    lone.calc = calc
    assert lone.get_potential_energy() == pytest.approx(-1.5, abs=1e-8)


def test_make_small_model_seed_changes_weights(tmp_path):
    from aiida_mofmlp.engines.mace.common import mace_calculator

    atoms = toy_frames(1, seed=4)[0]
    forces = []
    for seed in (0, 1):
        path = make_small_model(TOY_SPECIES, tmp_path / f"m{seed}.model", seed=seed)
        atoms.calc = mace_calculator(path, device="cpu", default_dtype="float64")
        forces.append(atoms.get_forces().copy())
    assert not np.allclose(forces[0], forces[1])


def test_make_small_model_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="Xx"):
        make_small_model(["C", "Xx"], tmp_path / "bad.model")
    with pytest.raises(InputError, match="max_L"):
        make_small_model(["C"], tmp_path / "bad.model", max_L=5)
    with pytest.raises(InputError, match="not in species"):
        make_small_model(["C"], tmp_path / "bad.model", e0s={"O": -1.0})


@pytest.mark.integration
def test_foundation_main_trains_from_scratch(tmp_path, monkeypatch):
    teacher = make_small_model(TOY_SPECIES, tmp_path / "teacher.model", seed=7, scale=5.0)
    write_frames(label_with_model(toy_frames(16, seed=1), teacher), tmp_path / "train.extxyz")
    (tmp_path / "input.json").write_text(
        json.dumps(
            {"train_file": "train.extxyz", "max_num_epochs": 2, "num_channels": 8, "valid_fraction": 0.25}
        )
    )
    monkeypatch.chdir(tmp_path)
    assert main(["input.json"]) == 0
    summary = json.loads((tmp_path / "foundation_results.json").read_text())
    assert summary["status"] == "ok"
    assert (tmp_path / "foundation.model").is_file()
    evals = [row for row in summary["curves"] if row.get("mode") == "eval"]
    assert len(evals) >= 2
    assert all(np.isfinite(row["loss"]) for row in evals)


def test_foundation_e0s_given_per_element_are_the_models(tmp_path, monkeypatch):
    """E0s as {symbol: eV} (the labelling method's isolated atoms) end up in the model unchanged."""
    import torch
    from ase.data import atomic_numbers

    from aiida_mofmlp.engines.mace.common import load_model

    teacher = make_small_model(TOY_SPECIES, tmp_path / "teacher.model", seed=7, scale=5.0)
    write_frames(label_with_model(toy_frames(8, seed=1), teacher), tmp_path / "train.extxyz")
    e0s = {symbol: -10.0 - 3.5 * k for k, symbol in enumerate(TOY_SPECIES)}
    config = {"train_file": "train.extxyz", "max_num_epochs": 1, "num_channels": 8, "valid_fraction": 0.25}
    (tmp_path / "input.json").write_text(json.dumps({**config, "E0s": e0s}))
    monkeypatch.chdir(tmp_path)
    assert main(["input.json"]) == 0
    model = load_model(tmp_path / "foundation.model")
    zs = [int(z) for z in model.atomic_numbers]
    stored = torch.as_tensor(model.atomic_energies_fn.atomic_energies).reshape(-1).tolist()
    assert {z: pytest.approx(e) for z, e in zip(zs, stored, strict=True)} == {
        atomic_numbers[s]: pytest.approx(e) for s, e in e0s.items()
    }


def test_foundation_main_rejects_unknown_key(tmp_path, monkeypatch, capsys):
    (tmp_path / "input.json").write_text(json.dumps({"train_file": "x.extxyz", "epochs": 3}))
    monkeypatch.chdir(tmp_path)
    assert main(["input.json"]) == 2
    assert "epochs" in capsys.readouterr().err
