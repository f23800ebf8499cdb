"""Dataset export (extxyz + card + models) and AiiDA archives, from real runs; the export trains with
``mace_run_train`` and an archive imported into a fresh profile reproduces the counts and hashes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from click.testing import CliRunner

from aiida_mofmlp.cli import cli
from aiida_mofmlp.common import frames as fr
from aiida_mofmlp.tools.archive import (
    compare_fingerprints,
    export_archive,
    provenance_fingerprint,
    verify_archive,
)
from aiida_mofmlp.tools.export import (
    DEFAULT_LICENSE,
    ExportError,
    export_dataset,
    read_card,
)
from aiida_mofmlp.tools.lineage import label_provenance

pytestmark = pytest.mark.integration

CITATION = "A. Author et al., A tiny test dataset (2026)"


@pytest.fixture(scope="module")
def exported(small_training_run, tmp_path_factory):
    """The ensemble run's dataset with one frame held out for validation, and its two models."""
    return export_dataset(
        small_training_run["ensemble"],
        tmp_path_factory.mktemp("export") / "dataset",
        valid_fraction=0.34,
        seed=1,
        citation=CITATION,
        authors=["A. Author"],
    )


def _read_split(export, split: str) -> list:
    return fr.read_frames(export.splits[split]) if split in export.splits else []


def test_frames_keep_labels_and_gain_provenance(exported, small_training_run):
    labelled = small_training_run["labelled"]
    originals = {atoms.info["calc_uuid"]: atoms for atoms in labelled.iter_frames()}
    provenance = {row["calc_uuid"]: row for row in label_provenance(labelled)}
    train, valid = _read_split(exported, "train"), _read_split(exported, "valid")
    assert len(valid) == max(1, round(0.34 * len(labelled))) and len(train) + len(valid) == len(labelled)
    assert "test" not in exported.splits  # the ensemble has no validation frames
    for split, frames in (("train", train), ("valid", valid)):
        for atoms in frames:
            original = originals[atoms.info["calc_uuid"]]
            np.testing.assert_allclose(atoms.positions, original.positions, atol=1e-8)
            assert atoms.info[fr.ENERGY_KEY] == pytest.approx(original.info[fr.ENERGY_KEY], abs=1e-8)
            np.testing.assert_allclose(atoms.arrays[fr.FORCES_KEY], original.arrays[fr.FORCES_KEY], atol=1e-8)
            np.testing.assert_array_equal(fr.guest_ids(atoms), fr.guest_ids(original))
            row = provenance[atoms.info["calc_uuid"]]
            assert atoms.info["split"] == split
            assert atoms.info["cp2k_settings"] == row["settings_id"]
            assert atoms.info["cp2k_code"] == row["code"]
            assert row["cp2k_version"].replace("CP2K version", "CP2K").strip() in atoms.info["code_versions"]
            assert "protocol" not in atoms.info  # not known outside an active-learning run


def test_card_counts_hashes_and_models(exported, small_training_run):
    labelled = small_training_run["labelled"]
    card = read_card(exported.directory)
    assert card == exported.card and exported.card_path.name == "dataset.yaml"
    assert card["counts"]["n_frames"] == len(labelled)
    assert card["counts"]["n_atoms"] == labelled.base.attributes.get("n_atoms_total")
    assert card["counts"]["n_frames_without_calculation"] == 0
    assert card["elements"] == sorted(labelled.species)
    assert card["labels"] == {
        "energy": True,
        "forces": True,
        "stress": labelled.has_stress,
        "stress_in_some_frames": labelled.has_stress,
    }
    assert card["license"] == DEFAULT_LICENSE and card["citation"] == CITATION
    assert card["source"]["training_set_sha256"] == labelled.sha256
    assert sum(entry["n_frames"] for entry in card["splits"].values()) == len(labelled)
    for split, entry in card["splits"].items():
        assert entry["sha256"] == fr.sha256_of_file(exported.directory / entry["file"])
        assert card["files"][entry["file"]]["sha256"] == entry["sha256"]
        assert entry["n_frames"] == len(_read_split(exported, split))
    settings = card["dft"]["settings"]
    assert sum(entry["n_frames"] for entry in settings) == len(labelled)
    assert all(entry["method"].startswith("GFN1-xTB") for entry in settings)
    models = {model.uuid: model for model in small_training_run["models"]}
    assert {entry["uuid"] for entry in card["models"]} == set(models)
    for entry in card["models"]:
        path = exported.directory / entry["file"]
        assert fr.sha256_of_file(path) == entry["sha256"] == models[entry["uuid"]].sha256
        assert entry["training_set_sha256"] == labelled.sha256
        assert card["files"][entry["file"]]["bytes"] == path.stat().st_size
    assert any(arg.startswith("--valid_file=") for arg in card["training"]["mace_run_train"])


def test_stress_labels_are_exported_and_trained_on(small_training_run, tmp_path):
    """One frame labelled with CP2K stress: REF_stress in the file, in the card and in the train command."""
    from aiida.engine import run_get_node

    from aiida_mofmlp.cli.setup import ensure_codes, ensure_localhost
    from aiida_mofmlp.data import StructureSetData
    from aiida_mofmlp.workflows.cp2k.labelling import LabellingWorkChain

    code = ensure_codes(ensure_localhost())["cp2k"]
    frames = StructureSetData.from_frames([small_training_run["pool"].get_frame(0)])
    builder = LabellingWorkChain.get_builder_from_protocol(code, frames, protocol="fast", compute_stress=True)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    labelled = results["labelled"]
    export = export_dataset(labelled, tmp_path / "stress")
    (written,) = fr.read_frames(export.splits["train"])
    np.testing.assert_allclose(written.info[fr.STRESS_KEY], labelled.get_frame(0).info[fr.STRESS_KEY])
    assert export.card["labels"]["stress"] is True
    assert f"--stress_key={fr.STRESS_KEY}" in export.mace_train_args()


def test_export_refuses_bad_sources_and_directories(exported, small_training_run, tmp_path):
    with pytest.raises(ExportError, match="not labelled"):
        export_dataset(small_training_run["pool"], tmp_path / "pool")
    with pytest.raises(ExportError, match="not empty"):
        export_dataset(small_training_run["labelled"], exported.directory)
    with pytest.raises(ExportError, match="no training set"):
        export_dataset(small_training_run["foundation"], tmp_path / "foundation")
    with pytest.raises(ExportError, match=r"valid_fraction"):
        export_dataset(small_training_run["labelled"], tmp_path / "split", valid_fraction=1.0)
    again = export_dataset(
        small_training_run["models"][0], tmp_path / "model", card_format="json", include_models=False
    )
    assert again.card_path.name == "dataset.json" and again.models == {}
    assert read_card(again.card_path)["counts"]["n_frames"] == len(small_training_run["labelled"])


def test_overwrite_replaces_only_after_the_new_export_is_complete(small_training_run, tmp_path, monkeypatch):
    from aiida_mofmlp.tools import export as export_module

    target = tmp_path / "export"
    first = export_dataset(small_training_run["models"][0], target)
    assert first.models and (target / "models").is_dir()
    (target / "notes.txt").write_text("the user's own file")
    before = {path.name: path.read_bytes() for path in target.iterdir() if path.is_file()}

    def fail(*args, **kwargs):
        raise RuntimeError("disk full while writing the card")

    monkeypatch.setattr(export_module, "_write_card", fail)  # a failure that cannot be provoked for real here
    with pytest.raises(RuntimeError, match="disk full"):
        export_dataset(small_training_run["labelled"], target, overwrite=True, include_models=False)
    assert {path.name: path.read_bytes() for path in target.iterdir() if path.is_file()} == before
    assert (target / "models").is_dir() and [p.name for p in tmp_path.iterdir()] == ["export"]
    monkeypatch.undo()
    second = export_dataset(small_training_run["labelled"], target, overwrite=True, include_models=False)
    assert second.card_path == target / "dataset.yaml" and second.card_path.is_file()
    assert all(path.parent == target and path.is_file() for path in second.splits.values())
    assert (target / "notes.txt").read_text() == "the user's own file"  # not the export's: kept
    assert not (target / "models").exists()  # the earlier export's models: not carried into this one
    assert [p.name for p in tmp_path.iterdir()] == ["export"]  # no staging or old folder left behind


def test_exported_files_train_with_mace_run_train(exported, tmp_path):
    """mace_run_train from scratch (tiny model, 1 epoch) on the exported files, keys from the card."""
    mace_run_train = Path(sys.executable).parent / "mace_run_train"
    command = [
        str(mace_run_train),
        "--name=tiny",
        *exported.mace_train_args(),
        "--model=MACE",
        "--num_channels=8",
        "--max_L=0",
        "--r_max=4.0",
        "--num_interactions=2",
        "--correlation=2",
        "--max_num_epochs=1",
        "--batch_size=1",
        "--valid_batch_size=1",
        "--E0s=average",
        "--device=cpu",
        "--default_dtype=float64",
        "--seed=0",
        f"--work_dir={tmp_path}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    models = list(tmp_path.rglob("tiny*.model"))
    assert models, f"no model written; files: {sorted(p.name for p in tmp_path.rglob('*'))}"
    logs = "".join(path.read_text(errors="replace") for path in tmp_path.rglob("*.log"))
    n_train = exported.card["splits"]["train"]["n_frames"]
    n_valid = exported.card["splits"]["valid"]["n_frames"]
    assert f"Total number of configurations: train={n_train}, valid={n_valid}" in logs, logs[-2000:]
    # mace found an energy and forces label in every training frame under the exported keys
    counts = re.search(r"Total Training set \[energy: (\d+),.* forces: (\d+),", logs)
    assert counts is not None and counts.groups() == (str(n_train), str(n_train)), logs[-2000:]


def test_archive_round_trip_in_a_fresh_profile(small_training_run, tmp_path):
    """The ensemble's archive holds its whole provenance (labelling included) and imports unchanged."""
    ensemble = small_training_run["ensemble"]
    path = export_archive(ensemble, tmp_path / "ensemble.aiida")
    with pytest.raises(ExportError, match="exists"):
        export_archive(ensemble, path)
    expected = provenance_fingerprint(ensemble)
    assert small_training_run["labelled"].uuid in expected["structure_sets"]
    assert small_training_run["pool"].uuid in expected["structure_sets"]
    assert {model.uuid for model in small_training_run["models"]} <= set(expected["models"])
    calcjobs = sum(count for kind, count in expected["node_types"].items() if "CalcJobNode" in kind)
    assert calcjobs >= len(small_training_run["labelled"]) + len(small_training_run["models"])
    found = verify_archive(path, ensemble.uuid)
    assert compare_fingerprints(expected, {key: found[key] for key in expected}) == []
    assert found["n_nodes_in_profile"] == expected["n_nodes"]
    tampered = {
        **found,
        "models": {uuid: {**e, "content_sha256": "0"} for uuid, e in found["models"].items()},
    }
    assert compare_fingerprints(expected, tampered)  # the comparison can fail


def test_cli_export(small_training_run, tmp_path):
    result = CliRunner().invoke(
        cli,
        ["datasets", "export", str(small_training_run["labelled"].pk), str(tmp_path / "out"), "--no-models"],
    )
    assert result.exit_code == 0, result.output
    assert read_card(tmp_path / "out")["counts"]["n_frames"] == len(small_training_run["labelled"])
    result = CliRunner().invoke(
        cli, ["datasets", "export", str(small_training_run["labelled"].pk), str(tmp_path)]
    )
    assert result.exit_code != 0 and "not empty" in result.output
    labelling = small_training_run["labelling"]
    archive = tmp_path / "labelling.aiida"
    result = CliRunner().invoke(cli, ["runs", "archive", str(labelling.pk), str(archive), "--verify"])
    assert result.exit_code == 0, result.output
    assert "verified" in result.output and archive.is_file()


# ----------------------------------------------------------------------------------------------------
# a finished active-learning run
# ----------------------------------------------------------------------------------------------------


def test_export_of_a_whole_run(al_run, tmp_path):
    result = export_dataset(al_run, tmp_path / "dataset")
    card = result.card
    extras = al_run.base.extras.get("mofmlp")
    training_set = al_run.outputs.training_set
    assert card["splits"]["train"]["n_frames"] == len(training_set)
    assert card["source"]["run"]["uuid"] == al_run.uuid
    assert card["protocol"] == extras["protocol"] == card["source"]["run"]["protocol"]
    assert len(card["models"]) == len(al_run.outputs.models)
    originals = list(training_set.iter_frames())
    for atoms, original in zip(fr.read_frames(result.splits["train"]), originals, strict=True):
        assert atoms.info["protocol"] == extras["protocol"]
        assert atoms.info.get("iteration") == original.info.get("iteration")
        assert atoms.info["calc_uuid"] == original.info["calc_uuid"]
    if "validation_frames" in al_run.outputs:
        test = fr.read_frames(result.splits["test"])
        assert len(test) == len(al_run.outputs.validation_frames)
        assert all(fr.PREDICTED_FORCES_KEY not in atoms.arrays for atoms in test)
        assert all(fr.PREDICTED_ENERGY_KEY not in atoms.info for atoms in test)


def test_archive_of_a_whole_run(al_run, tmp_path):
    path = export_archive(al_run, tmp_path / "run.aiida")
    expected = provenance_fingerprint(al_run)
    assert expected["iterations"] == al_run.outputs.iterations.get_dict()["rows"]
    assert al_run.outputs.training_set.uuid in expected["structure_sets"]
    found = verify_archive(path, al_run.uuid)
    assert compare_fingerprints(expected, {key: found[key] for key in expected}) == []
    assert found["n_nodes_in_profile"] == expected["n_nodes"]
    node = orm.load_node(al_run.uuid)  # the loaded profile is untouched by the check
    assert node.pk == al_run.pk


def test_card_states_stress_errors_of_the_training(generate_calc_job_node, tmp_path):
    """A (fake, stored) finished training whose metrics carry stress errors: the card repeats them."""
    from ase.build import bulk

    from aiida_mofmlp.data import MaceModelData, StructureSetData

    frames = []
    for index in range(2):
        atoms = bulk("Si", "diamond", a=5.43, cubic=True)
        fr.set_labels(atoms, energy=-40.0 - index, forces=np.zeros((8, 3)), stress=np.full(6, 0.01 * index))
        frames.append(atoms)
    labelled = StructureSetData.from_frames(frames)
    from aiida_mofmlp.engines.mace.foundation import make_small_model

    model = MaceModelData.from_file(make_small_model(["Si"], tmp_path / "model.model"))
    foundation = make_small_model(["Si"], tmp_path / "foundation.model", num_channels=2, num_interactions=1)
    stress = {"n_frames_stress": 1, "mae_stress": 0.004, "rmse_stress": 0.005, "mae_stress_gpa": 0.64087}
    metrics = {"train": {"mae_f": 0.1, **stress}, "valid": {"mae_f": 0.2}, "units": {}}
    generate_calc_job_node(
        "mofmlp.mace_train",
        inputs={
            "training_set": labelled,
            "foundation_model": MaceModelData.from_file(foundation),
        },
        outputs={"model": model, "metrics": orm.Dict(metrics)},
    )
    export = export_dataset(model, tmp_path / "dataset")
    card = read_card(export.card_path)
    assert card["labels"]["stress"] is True
    assert card["stress_errors"]["models"] == {"model_0": {"train": stress}}
    assert card["stress_errors"]["units"]["mae_stress"] == "eV/Angstrom^3"
    assert card["stress_errors"]["units"]["mae_stress_gpa"] == "GPa"
    # a structure set alone has no model or run that reports a stress error
    assert "stress_errors" not in export_dataset(labelled, tmp_path / "bare").card
