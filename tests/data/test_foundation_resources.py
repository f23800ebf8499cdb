"""The small MOF foundation shipped in the package: files and card, physics, node wrappers, build script."""

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from aiida_mofmlp.common.frames import read_frames, sha256_of_file
from aiida_mofmlp.common.resources import foundation_card, foundation_files

pytest.importorskip("mace")

#: elements of ZnBDCdabco (the demo's framework) and of the built-in guests CO2, N2, CH4, H2O, H2
DEMO_ELEMENTS = {"Zn", "O", "C", "H", "N"}
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_foundation.py"


@pytest.fixture(scope="module")
def files():
    return foundation_files()


@pytest.fixture(scope="module")
def card():
    return foundation_card()


@pytest.fixture(scope="module")
def calc(files):
    from aiida_mofmlp.engines.mace.common import mace_calculator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mace_calculator(files.model, device="cpu", default_dtype="float64")


def _heldout(files):
    return read_frames(files.heldout)


def test_files_exist_and_match_the_card(files, card):
    for key in ("model", "replay", "heldout"):
        path = getattr(files, key)
        assert path.name == card["files"][key]["path"]
        assert sha256_of_file(path) == card["files"][key]["sha256"], f"{path.name} differs from its card"
    shipped = sum(path.stat().st_size for path in files) + files.card.with_suffix(".md").stat().st_size
    assert shipped < 10e6
    assert "MACE-MP" in card["purpose"] and "NOT a model for production" in card["purpose"]
    assert card["data"]["labels"]["method"] == "GFN1-xTB"
    assert card["data"]["labels"]["program"] == "tblite" and card["data"]["labels"]["program_version"]
    assert "ZnBDCdabco" in card["data"]["frameworks"]
    assert set(card["data"]["guests"]) == {"CO2", "N2", "CH4", "H2O", "H2"}
    frames = card["data"]["frames"]
    assert frames["train"] + frames["test"] == frames["total"] == sum(frames["per_kind"].values())
    assert {"rattled", "md"} <= set(frames["per_kind"]) and any(
        k.startswith("strain") for k in frames["per_kind"]
    )


def test_model_species_cover_the_demo(files, card):
    from aiida_mofmlp.data.mace_model import describe_model_file

    facts = describe_model_file(files.model)
    assert set(facts["species"]) >= DEMO_ELEMENTS
    assert facts["species"] == card["model"]["species"]
    assert facts["r_max"] == pytest.approx(card["model"]["r_max"])
    replay = read_frames(files.replay)
    assert len(replay) == card["data"]["replay_frames"]
    assert all("REF_stress" in atoms.info and "REF_forces" in atoms.arrays for atoms in replay)
    assert {atoms.info["framework"] for atoms in replay} <= set(card["data"]["frameworks"])


def test_forces_and_stress_are_derivatives_of_the_energy(files, calc):
    atoms = _heldout(files)[0]
    atoms.calc = calc
    forces = atoms.get_forces()
    stress = atoms.get_stress(voigt=False)
    step = 1e-4
    for index in (0, len(atoms) // 2, len(atoms) - 1):
        for axis in range(3):
            energies = []
            for sign in (1, -1):
                moved = atoms.copy()
                moved.calc = calc
                moved.positions[index, axis] += sign * step
                energies.append(moved.get_potential_energy())
            assert -(energies[0] - energies[1]) / (2 * step) == pytest.approx(forces[index, axis], abs=1e-4)
    energies = []
    for sign in (1, -1):
        strained = atoms.copy()
        strained.calc = calc
        deformation = np.eye(3)
        deformation[0, 1] = deformation[1, 0] = sign * step / 2  # symmetric shear strain eps_xy
        strained.set_cell(atoms.cell.array @ deformation, scale_atoms=True)
        energies.append(strained.get_potential_energy())
    derivative = (energies[0] - energies[1]) / (2 * step) / atoms.get_volume()
    assert derivative == pytest.approx(stress[0, 1], abs=1e-6)


def test_heldout_errors_agree_with_the_card(files, card, calc):
    """A consistency check: the shipped held-out frames are predicted about as well as the card says."""
    table = card["heldout_errors"]
    for atoms in _heldout(files):
        row = table[atoms.info["framework"]]
        work = atoms.copy()
        work.calc = calc
        energy = 1000 * abs(work.get_potential_energy() - atoms.info["REF_energy"]) / len(atoms)
        forces = 1000 * np.abs(work.get_forces() - atoms.arrays["REF_forces"]).mean()
        stress = 1000 * np.abs(work.get_stress(voigt=True) - atoms.info["REF_stress"]).mean()
        # per-frame errors scatter around the per-framework means of the card
        assert forces <= 2.0 * row["forces_mae_mev_per_a"] + 5.0
        assert energy <= 4.0 * row["energy_mae_mev_per_atom"] + 2.0
        assert stress <= 4.0 * row["stress_mae_mev_per_a3"] + 0.5


def test_node_wrappers(aiida_profile, card):
    from aiida_mofmlp.data.foundation import small_mof_foundation_heldout, small_mof_foundation_replay
    from aiida_mofmlp.data.mace_model import MaceModelData

    node = MaceModelData.small_mof_foundation()
    assert node.is_stored and node.sha256 == card["files"]["model"]["sha256"]
    assert set(node.species) >= DEMO_ELEMENTS
    assert MaceModelData.small_mof_foundation().pk == node.pk
    replay = small_mof_foundation_replay()
    assert replay.is_stored and replay.count == card["data"]["replay_frames"]
    assert replay.has_energy and replay.has_forces and replay.has_stress
    assert small_mof_foundation_replay().pk == replay.pk
    assert small_mof_foundation_heldout().count == card["data"]["heldout_frames"]


@pytest.mark.integration
@pytest.mark.slow
def test_quick_build(tmp_path):
    """The campaign's machinery end to end on 2 small frameworks (E0s, xTB labels, bootstrap, MD, training,
    evaluation, card), a resumed rerun, the status, and training from a copy of the data folder alone.

    About a minute of CPU on an idle 2-core machine.
    """
    import shutil

    import yaml

    from aiida_mofmlp.engines.mace.common import load_model

    def build(*extra):
        command = [sys.executable, str(SCRIPT), "--quick", *extra]
        return subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)

    data, out = tmp_path / "data", tmp_path / "out"
    result = build("--workdir", str(tmp_path / "work"), "--data", str(data), "--output", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    card = yaml.safe_load((out / "card.yaml").read_text())
    roles = {name: fw["role"] for name, fw in card["data"]["frameworks"].items()}
    assert roles == {"Zn-DOBDC": "train", "ZnBDCdabco": "heldout"}
    assert card["data"]["frames"]["per_kind"]["md"] > 0 and card["data"]["frames"]["per_kind"]["molecule"] > 0
    assert sha256_of_file(out / card["files"]["model"]["path"]) == card["files"]["model"]["sha256"]
    assert (
        card["heldout_errors"]["all held out"]["n_frames"]
        == card["data"]["frameworks"]["ZnBDCdabco"]["frames"]
    )
    # the held-out framework is never trained on
    trained = read_frames(tmp_path / "work" / "foundation" / "train.extxyz")
    assert trained and not any(atoms.info["framework"] == "ZnBDCdabco" for atoms in trained)
    # E0s are the isolated-atom GFN1-xTB energies of data/e0s.json, not a fit
    e0s = yaml.safe_load((data / "e0s.json").read_text())
    model = load_model(out / card["files"]["model"]["path"])
    stored = dict(
        zip(
            card["model"]["species"],
            model.atomic_energies_fn.atomic_energies.reshape(-1).tolist(),
            strict=True,
        )
    )
    assert stored == pytest.approx({symbol: e0s[symbol] for symbol in stored})
    assert {"frameworks", "e0s", "cells", "label_initial", "bootstrap", "md", "train"} <= set(
        card["build"]["seconds"]
    )
    # a rerun resumes from the data folder
    again = build("--workdir", str(tmp_path / "work"), "--data", str(data), "--output", str(out))
    assert again.returncode == 0 and "label_initial: done" in again.stdout, again.stdout[-2000:]
    status = build("--workdir", str(tmp_path / "work"), "--data", str(data), "--status")
    assert "frames labelled in all:" in status.stdout and "training: done" in status.stdout, status.stdout
    # a copy of the data folder alone trains the model elsewhere (no work folder, no labelling)
    copy = tmp_path / "elsewhere" / "data"
    shutil.copytree(data, copy)
    (copy / "errors.json").unlink()
    elsewhere = build(
        "--workdir",
        str(tmp_path / "elsewhere" / "work"),
        "--data",
        str(copy),
        "--output",
        str(tmp_path / "elsewhere" / "out"),
    )
    assert elsewhere.returncode == 0, elsewhere.stdout[-3000:] + elsewhere.stderr[-3000:]
    assert "md: done" in elsewhere.stdout and "train: start" in elsewhere.stdout
    assert "labelled in" not in elsewhere.stdout  # nothing was labelled again
    assert "resuming from the kept checkpoint" in elsewhere.stdout  # data/checkpoints came along
    assert (tmp_path / "elsewhere" / "out" / "card.yaml").is_file()


def test_checkpoint_keeper_keeps_a_rewritten_epoch(tmp_path):
    """mace numbers a resumed run's epochs from its checkpoint's: the same name written again is kept."""
    script = """
import os, sys
from pathlib import Path
from foundation_campaign.campaign import CheckpointKeeper

source, keep = Path(sys.argv[1]) / "source", Path(sys.argv[1]) / "keep"
source.mkdir()
checkpoint = source / "model_run-0_epoch-0.pt"
checkpoint.write_bytes(b"first")
keeper = CheckpointKeeper(source, keep)
keeper.sync()
assert (keep / checkpoint.name).read_bytes() == b"first"
checkpoint.write_bytes(b"second")  # the resumed run writes epoch 0 again
later = (keep / checkpoint.name).stat().st_mtime + 10
os.utime(checkpoint, (later, later))
keeper.sync()
assert (keep / checkpoint.name).read_bytes() == b"second"
(source / "model_run-0_epoch-1.pt").write_bytes(b"third")
keeper.sync()
assert sorted(path.name for path in keep.iterdir()) == ["model_run-0_epoch-1.pt"]
"""
    scripts = Path(__file__).resolve().parents[2] / "scripts"  # the campaign package lives beside its script
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], cwd=scripts, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
