"""Provenance queries on a real labelling + ensemble-training run, and on a finished active-learning run."""

from __future__ import annotations

import datetime as dt
import json
import warnings

import pytest
from aiida import orm
from click.testing import CliRunner

from aiida_mofmlp.cli import cli
from aiida_mofmlp.data import StructureSetData
from aiida_mofmlp.tools.lineage import (
    label_provenance,
    model_lineage,
    models_trained_on,
    settings_id,
    summarise_labels,
)
from aiida_mofmlp.tools.queries import (
    QueryError,
    format_table,
    iteration_table,
    list_models,
    list_runs,
    list_training_sets,
    list_validations,
    per_loading_table,
    process_status,
)

pytestmark = pytest.mark.integration


def _uuids(rows) -> set[str]:
    return {row["uuid"] for row in rows}


def _cp2k_jobs(process) -> dict[str, orm.CalcJobNode]:
    return {
        node.uuid: node
        for node in process.called_descendants
        if isinstance(node, orm.CalcJobNode) and node.process_type == "aiida.calculations:cp2k"
    }


@pytest.fixture(scope="module")
def framework_formula(zn_bdc_dabco_cif) -> str:
    from aiida_mofmlp.tools.intake import read_cif_atoms

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        atoms, _, _ = read_cif_atoms(zn_bdc_dabco_cif)
    return atoms.get_chemical_formula(mode="hill")


# ----------------------------------------------------------------------------------------------------
# label lineage
# ----------------------------------------------------------------------------------------------------


def test_label_provenance_resolves_each_cp2k_calculation(small_training_run):
    from aiida_mofmlp.tools.environment import cp2k_version

    labelled = small_training_run["labelled"]
    jobs = _cp2k_jobs(small_training_run["labelling"])
    rows = label_provenance(labelled)
    assert len(rows) == len(labelled)
    for row, atoms in zip(rows, labelled.iter_frames(), strict=True):
        job = jobs[atoms.info["calc_uuid"]]
        assert row["calc_uuid"] == job.uuid and job.is_finished_ok
        assert row["in_graph"] is True
        assert row["method"].startswith("GFN1-xTB")
        assert row["code"] == job.inputs.code.full_label
        assert row["settings_id"] == settings_id(job.inputs.parameters.get_dict())
        assert row["cp2k_version"] and row["cp2k_version"] in cp2k_version()  # the executable agrees
    summary = summarise_labels(labelled)
    assert summary["n_frames"] == summary["n_with_calculation"] == len(labelled)
    assert summary["n_calculations"] == len({row["calc_uuid"] for row in rows})
    assert sum(entry["n_frames"] for entry in summary["settings"]) == len(labelled)
    assert summary["all_in_graph"] is True and summary["not_in_graph"] == []


def test_settings_id_ignores_restart_details_but_not_physics(small_training_run):
    labelled = small_training_run["labelled"]
    job = orm.load_node(labelled.get_frame(0).info["calc_uuid"])
    parameters = job.inputs.parameters.get_dict()
    restarted = json.loads(json.dumps(parameters))
    restarted["FORCE_EVAL"]["DFT"]["WFN_RESTART_FILE_NAME"] = "aiida-RESTART.wfn"
    restarted["FORCE_EVAL"]["DFT"]["SCF"]["SCF_GUESS"] = "RESTART"
    restarted["GLOBAL"]["WALLTIME"] = "01:00:00"
    assert settings_id(restarted) == settings_id(parameters)
    smeared = json.loads(json.dumps(parameters))
    smeared["FORCE_EVAL"]["DFT"]["SCF"]["SMEAR"] = {"_": "ON", "ELECTRONIC_TEMPERATURE": 300}
    assert settings_id(smeared) != settings_id(parameters)


def test_copied_frames_are_not_in_the_graph(small_training_run):
    """A set made by hand from the labelled frames keeps calc_uuid but is not linked to the calculations."""
    copy = StructureSetData.from_frames(small_training_run["labelled"].get_frames()).store()
    summary = summarise_labels(copy)
    assert summary["n_with_calculation"] == len(copy)
    assert summary["all_in_graph"] is False
    assert summary["not_in_graph"] == list(range(len(copy)))
    assert models_trained_on(copy) == []


def test_model_lineage_reaches_training_set_foundation_and_labels(small_training_run):
    labelled, foundation = small_training_run["labelled"], small_training_run["foundation"]
    seeds = set()
    for model in small_training_run["models"]:
        lineage = model_lineage(model.pk)
        assert lineage["trained"] is True
        assert lineage["model"]["sha256"] == model.sha256
        assert lineage["training_set"]["uuid"] == labelled.uuid
        assert lineage["training_set"]["sha256"] == labelled.sha256
        assert lineage["foundation_model"]["sha256"] == foundation.sha256 == model.parent_sha256
        assert lineage["training"]["seed"] == model.base.attributes.get("seed")
        assert lineage["labels"]["n_frames"] == len(labelled)
        assert lineage["labels"]["all_in_graph"] is True
        seeds.add(lineage["training"]["seed"])
    assert len(seeds) == len(small_training_run["models"])
    assert model_lineage(foundation)["trained"] is False
    with pytest.raises(QueryError, match="not a MaceModelData"):
        model_lineage(labelled)


def test_models_trained_on_follows_labels_forward(small_training_run):
    models = {model.uuid for model in small_training_run["models"]}
    job = orm.load_node(small_training_run["labelled"].get_frame(0).info["calc_uuid"])
    assert {model.uuid for model in models_trained_on(job)} == models
    assert {model.uuid for model in models_trained_on(small_training_run["pool"])} == models
    assert {model.uuid for model in models_trained_on(small_training_run["foundation"].uuid)} == models


# ----------------------------------------------------------------------------------------------------
# listings
# ----------------------------------------------------------------------------------------------------


def test_list_training_sets_and_filters(small_training_run, framework_formula):
    labelled, pool = small_training_run["labelled"], small_training_run["pool"]
    rows = {row["uuid"]: row for row in list_training_sets()}
    assert labelled.uuid in rows and pool.uuid not in rows  # the pool was never trained on
    row = rows[labelled.uuid]
    assert row["n_trainings"] == len(small_training_run["models"])
    assert row["n_frames"] == len(labelled) and row["sha256"] == labelled.sha256
    assert row["framework_formula"] == framework_formula
    assert row["status"] == "ok" and row["run_uuid"] is None
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    assert labelled.uuid in _uuids(list_training_sets(framework=framework_formula, until=tomorrow))
    counts = labelled.get_frame(0).symbols.formula.count()
    doubled = "".join(f"{symbol}{2 * count}" for symbol, count in counts.items())  # same reduced formula
    assert labelled.uuid in _uuids(list_training_sets(framework=doubled, status="ok"))
    assert labelled.uuid not in _uuids(list_training_sets(framework="Cu3C18H6O12"))
    assert labelled.uuid not in _uuids(list_training_sets(since=tomorrow))
    assert labelled.uuid not in _uuids(list_training_sets(status="failed"))
    assert labelled.uuid not in _uuids(list_training_sets(guest="CO2"))  # no guest known outside a run


def test_list_models(small_training_run):
    rows = {row["uuid"]: row for row in list_models()}
    assert small_training_run["foundation"].uuid not in rows
    for model in small_training_run["models"]:
        row = rows[model.uuid]
        metrics = model.creator.outputs.metrics.get_dict()
        assert row["valid_mae_f"] == pytest.approx(metrics["valid"]["mae_f"])
        assert row["training_set_uuid"] == small_training_run["labelled"].uuid
        assert row["seed"] == model.base.attributes.get("seed")
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    assert not _uuids(list_models(since=tomorrow)) & set(rows)
    validations = list_validations(include_training=True)
    found = {row["model_uuid"] for row in validations if row["kind"] == "training_split"}
    assert {model.uuid for model in small_training_run["models"]} <= found


def test_bad_arguments_name_what_is_valid():
    with pytest.raises(QueryError, match="valid:"):
        list_runs(status="done")
    with pytest.raises(QueryError, match="ISO"):
        list_training_sets(since="last tuesday")
    with pytest.raises(QueryError, match="after until"):
        list_models(since="2026-02-01", until="2026-01-01")
    with pytest.raises(QueryError, match="not an ActiveLearningWorkChain"):
        iteration_table(orm.Int(1).store())


def test_format_table():
    text = format_table([{"a": 1, "b": 0.123456, "c": None}, {"a": 22, "b": True, "c": ["x", "y"]}])
    lines = text.splitlines()
    assert lines[0].split() == ["a", "b", "c"]
    assert lines[2].split() == ["1", "0.1235", "-"] and lines[3].split() == ["22", "yes", "x,y"]
    assert format_table([]) == "(no rows)"


def test_cli_lists_and_lineage(small_training_run):
    runner = CliRunner()
    result = runner.invoke(cli, ["datasets", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert small_training_run["labelled"].uuid in {row["uuid"] for row in json.loads(result.output)}
    model = small_training_run["models"][0]
    result = runner.invoke(cli, ["models", "lineage", str(model.pk)])
    assert result.exit_code == 0, result.output
    assert model.sha256 in result.output and "all in the provenance graph: True" in result.output
    result = runner.invoke(cli, ["datasets", "labels", small_training_run["labelled"].uuid])
    assert result.exit_code == 0, result.output
    assert small_training_run["labelled"].get_frame(0).info["calc_uuid"] in result.output
    result = runner.invoke(cli, ["datasets", "labels", str(model.pk)])
    assert result.exit_code != 0 and "not a StructureSetData" in result.output
    result = runner.invoke(cli, ["runs", "list", "--status", "nonsense"])
    assert result.exit_code != 0 and "nonsense" in result.output


# ----------------------------------------------------------------------------------------------------
# a finished active-learning run
# ----------------------------------------------------------------------------------------------------


def test_run_listing_and_iteration_table(al_run):
    extras = al_run.base.extras.get("mofmlp")
    assert al_run.uuid in _uuids(list_runs())
    status = process_status(al_run)
    assert status in ("ok", "warning")  # a tiny run may stop unconverged (WARNING_NOT_CONVERGED)
    matching = list_runs(
        framework=extras["framework_label"], guest=extras["guest"], protocol=extras["protocol"], status=status
    )
    assert al_run.uuid in _uuids(list_runs(framework=extras["framework_formula"]))
    assert al_run.uuid in _uuids(matching)
    assert al_run.uuid not in _uuids(list_runs(guest="no-such-guest"))
    assert al_run.uuid not in _uuids(list_runs(protocol="no-such-protocol"))
    assert al_run.uuid not in _uuids(list_runs(status="failed" if status != "failed" else "ok"))
    table = iteration_table(al_run.pk)
    raw = al_run.outputs.iterations.get_dict()["rows"]
    assert [row["iteration"] for row in table] == [row["iteration"] for row in raw]
    assert [row["n_training"] for row in table] == [row.get("n_training") for row in raw]
    training = [row["n_training"] for row in table if row["n_training"] is not None]
    assert training == sorted(training)
    loadings = per_loading_table(al_run)
    assert {row["iteration"] for row in loadings} <= {row["iteration"] for row in table}
    result = CliRunner().invoke(cli, ["runs", "show", str(al_run.pk), "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["iterations"]) == len(raw)


def test_run_sets_models_and_validation(al_run):
    sets = {row["uuid"]: row for row in list_training_sets(run=al_run.pk)}
    final = al_run.outputs.training_set
    assert final.uuid in sets and "training_set" in sets[final.uuid]["role"].split(", ")
    history = al_run.outputs.history
    for key in (key for key in history if key.startswith("training_set_")):
        assert history[key].uuid in sets
    models = {row["uuid"]: row for row in list_models(run=al_run)}
    assert {al_run.outputs.models[label].uuid for label in al_run.outputs.models} <= set(models)
    lineage = model_lineage(al_run.outputs.models.model_0)
    assert lineage["labels"]["all_in_graph"] is True
    assert lineage["labels"]["n_with_calculation"] == lineage["labels"]["n_frames"]
    assert any(run["run_uuid"] == al_run.uuid for run in lineage["runs"])
    if "validation" in al_run.outputs:
        rows = [row for row in list_validations() if row["run_uuid"] == al_run.uuid]
        assert len(rows) == 1
        assert rows[0]["mae_f"] == pytest.approx(al_run.outputs.validation["mae_f"])
