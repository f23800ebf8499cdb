"""Headless tests of the app's models (no browser): intake messages, validation, the builder, results."""

from __future__ import annotations

from pathlib import Path

import pytest

PARTIAL_OCCUPANCY_CIF = """data_partial
_cell_length_a 10.0
_cell_length_b 10.0
_cell_length_c 10.0
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Zn1 Zn 0.0 0.0 0.0 1.0
O1 O 0.2 0.0 0.0 0.5
"""


@pytest.fixture
def structure_model(aiida_profile):
    from aiida_mofmlp.app.structure.model import StructureModel

    return StructureModel()


def test_raspa_framework_accepted(structure_model):
    assert structure_model.load_raspa_framework("ZnBDCdabco")
    assert structure_model.errors == []
    assert structure_model.structure.get_formula() == "C22H20N2O8Zn2"
    assert "54 atoms" in structure_model.summary


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x00\x01 this is not a CIF \xff", "not accepted"),
        (PARTIAL_OCCUPANCY_CIF.encode(), "occupancy"),
    ],
    ids=["unreadable", "partial_occupancy"],
)
def test_bad_cif_gives_readable_errors(structure_model, content, expected):
    assert not structure_model.load_upload("bad.cif", content)
    assert structure_model.structure is None
    text = " ".join(structure_model.errors)
    assert structure_model.errors, "a refused CIF must say why"
    assert "Traceback" not in text
    if expected == "occupancy":
        assert "O1" in text and "occupancy" in text.lower()


def test_small_cell_offers_supercell(structure_model, raspa_share_dir):
    structure_model.r_cut = 6.0
    cif = raspa_share_dir / "structures" / "cif" / "ZnBDCdabco.cif"
    assert not structure_model.load_cif_file(cif)
    repeat = structure_model.suggested_supercell
    assert repeat and any(n > 1 for n in repeat)
    assert any("supercell" in line for line in structure_model.errors)
    assert structure_model.apply_suggested_supercell()
    assert len(structure_model.structure.sites) == 54 * repeat[0] * repeat[1] * repeat[2]


@pytest.fixture
def configure_model(mofmlp_codes):
    from aiida_mofmlp.app.configure.model import ConfigureModel

    model = ConfigureModel(protocol="fast")
    model.apply_preset("tiny")
    return model


def test_configure_valid_defaults(configure_model):
    assert configure_model.validate({"C", "H", "N", "O", "Zn"}) == []
    assert configure_model.overrides()["parameters"]["loadings"] == [1]


def test_configure_asks_the_loops_own_validator(configure_model, monkeypatch):
    """A setting only the loop knows the rule of (here a preset's converged_fraction above 1) is named by
    ActiveLearningWorkChain's parameter validator, as the work chain itself would on submission."""
    from aiida import orm

    from aiida_mofmlp.workflows.active_learning.settings import validate_parameters

    preset = configure_model._preset_overrides()
    bad = {**preset, "parameters": {**preset.get("parameters", {}), "converged_fraction": 2.0}}
    monkeypatch.setattr(type(configure_model), "_preset_overrides", lambda self: bad)
    messages = configure_model.validate({"C", "H", "N", "O", "Zn"})
    expected = validate_parameters(orm.Dict({**configure_model.overrides()["parameters"]}))
    assert expected and messages == [f"settings: {expected}"] and "converged_fraction" in expected


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"loadings": "1, x"}, ["loadings", "'x'", "whole number"]),
        ({"temperatures": "-5"}, ["temperatures", "positive"]),
        ({"trust_lo": 0.5, "trust_hi": 0.1}, ["trust", "lo=0.5", "hi=0.1"]),
        ({"ensemble_size": 1}, ["ensemble size 1", "2 or more"]),
        ({"guest": "Xe"}, ["guest 'Xe'", "CO2"]),
    ],
    ids=["loadings", "temperatures", "trust", "ensemble", "guest"],
)
def test_configure_messages_name_input_and_fix(configure_model, changes, words):
    for name, value in changes.items():
        setattr(configure_model, name, value)
    text = " ".join(configure_model.validate())
    for word in words:
        assert word in text


def test_resources_capped_by_the_computer(configure_model):
    from aiida import orm

    from aiida_mofmlp.app.configure.model import LIMIT_PROPERTY, computer_limits

    computer = orm.load_code(configure_model.code_labels["train"]).computer
    assert computer_limits(computer)["max_machines"] == 1  # localhost runs jobs without a batch scheduler
    configure_model.machines = {**configure_model.machines, "train": 10_000}
    configure_model.walltime = {**configure_model.walltime, "md": 10**7}
    text = " ".join(configure_model.validate({"C", "H", "N", "O", "Zn"}))
    assert "machines = 10000 is more than computer" in text and "allows (1)" in text
    assert "walltime (s) = 10000000" in text and LIMIT_PROPERTY in text
    computer.set_property(LIMIT_PROPERTY, {"max_wallclock_seconds": 10**8})
    try:
        text = " ".join(configure_model.validate({"C", "H", "N", "O", "Zn"}))
        assert "walltime (s) = 10000000" not in text and "machines = 10000" in text
    finally:
        computer.set_property(LIMIT_PROPERTY, {})


def test_missing_code_is_named(configure_model):
    configure_model.code_labels = {**configure_model.code_labels, "train": "no-such-code@localhost"}
    messages = configure_model.validate()
    assert any("no-such-code@localhost" in line and "MACE fine-tuning" in line for line in messages)


def test_guest_the_model_cannot_describe(configure_model):
    from aiida_mofmlp.common.resources import foundation_files
    from aiida_mofmlp.data.mace_model import MaceModelData

    # the shipped file, declared to know no oxygen: CO2 cannot be described
    model = MaceModelData.from_file(
        foundation_files().model, inspect=False, species=["C", "H", "N", "Zn"]
    ).store()
    configure_model.foundation = f"pk:{model.pk}"
    messages = configure_model.validate({"C", "H", "N", "Zn"})
    assert any(line.startswith("guest CO2") and "['O']" in line for line in messages)


def test_uploaded_model_needs_trust_and_is_not_stored_by_validation(
    configure_model, malicious_model, tmp_path
):
    import torch
    from aiida import orm

    from aiida_mofmlp.common.resources import foundation_files
    from aiida_mofmlp.data.mace_model import MaceModelData
    from aiida_mofmlp.engines.mace.common import load_model

    path, marker = malicious_model
    stored = orm.QueryBuilder().append(MaceModelData).count()
    configure_model.foundation = f"file:{path}"
    messages = configure_model.validate({"C", "H", "N", "O", "Zn"})
    assert any(
        "not a model in the safe form" in line and "I trust this model file" in line for line in messages
    )
    assert not marker.exists()
    # a trusted, genuine pickle: converted aside, its species checked, nothing stored until submission
    pickled = tmp_path / "upload.model"
    torch.save(load_model(foundation_files().model), str(pickled))
    configure_model.foundation = f"file:{pickled}"
    assert any("I trust this model file" in line for line in configure_model.validate({"C", "H", "Zn"}))
    configure_model.trust_model_file = True
    assert configure_model.validate({"C", "H", "N", "O", "Zn"}) == []
    assert any("['U']" in line for line in configure_model.validate({"C", "H", "U"}))
    assert orm.QueryBuilder().append(MaceModelData).count() == stored


def test_submit_without_daemon_says_so(configure_model):
    from aiida_mofmlp.app.structure.model import StructureModel
    from aiida_mofmlp.app.submit.model import SubmitModel

    structure = StructureModel()
    structure.load_raspa_framework("ZnBDCdabco")
    submit = SubmitModel(structure, configure_model)
    assert submit.submit() is None
    assert "daemon" in submit.message and "Traceback" not in submit.message
    assert submit.process_pk is None


@pytest.mark.parametrize("preset", ["tiny", "demo"])
def test_app_builder_equals_protocol_builder(preset, mofmlp_codes, serialize_builder, tmp_path):
    """The app's builder for DMOF-1 + CO2, fast, with a size preset is the CLI's builder of that overrides
    file: the "demo" preset is `aiida-mofmlp demo` (xTB labels, its trust window, its sizes)."""
    from aiida_mofmlp.app.configure.model import ConfigureModel
    from aiida_mofmlp.app.structure.model import StructureModel
    from aiida_mofmlp.app.submit.model import SubmitModel
    from aiida_mofmlp.cli.demo import demo_builder

    configure = ConfigureModel(protocol="fast", size_preset=preset)
    structure = StructureModel()
    assert structure.load_raspa_framework("ZnBDCdabco")
    app_builder = SubmitModel(structure, configure).build()
    expected = demo_builder(mofmlp_codes, tmp_path, preset)
    assert serialize_builder(app_builder) == serialize_builder(expected)
    if preset == "demo":
        parameters = app_builder.parameters.get_dict()
        assert parameters["labelling"]["engine"] == "xtb"
        assert (parameters["trust"]["lo"], parameters["trust"]["hi"]) == (0.3, 1.2)


@pytest.mark.integration
def test_results_and_runs_models_from_finished_run(finished_al_run, tmp_path):
    from aiida_mofmlp.app.results.model import ResultsModel
    from aiida_mofmlp.app.runs.model import RunsModel

    node = finished_al_run
    results = ResultsModel(figure_folder=tmp_path / "figures")
    results.load(node.pk)
    assert results.message == ""
    assert f"<{node.pk}>" in results.status and f"exit status {node.exit_status}" in results.status
    expected_rows = node.outputs.iterations.get_dict()["rows"]
    assert [row["iteration"] for row in results.rows] == [row["iteration"] for row in expected_rows]
    assert {"learning_curve", "sigma_histograms"} <= set(results.figures)
    for path in results.figures.values():
        assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any("ActiveLearningWorkChain" in line for line in results.report)
    assert results.provenance["labels"]
    archive = results.export_archive(tmp_path / "run.aiida")
    assert archive is not None and archive.stat().st_size > 0, results.message
    dataset = results.export_dataset(tmp_path / "dataset")
    assert dataset is not None and any(dataset.iterdir()), results.message

    runs = RunsModel()
    runs.refresh()
    row = next(row for row in runs.rows if row["pk"] == node.pk)
    assert row["guest"] == "CO2" and row["n_models"] == len(node.outputs.models)


def test_uploads_replace_the_previous_one_and_leave_nothing_behind():
    from aiida_mofmlp.app.uploads import UploadFolder

    uploads = UploadFolder("mofmlp-test-upload-")
    first = uploads.put("../../etc/framework.cif", b"data_a\n")
    assert first.name == "framework.cif" and first.read_bytes() == b"data_a\n"  # the base name only
    second = uploads.put("other.cif", b"data_b\n")
    assert not first.parent.exists() and second.is_file()
    uploads.clear()
    assert not second.parent.exists()
