"""``aiida-mofmlp runs | datasets | models``: provenance queries, dataset export, plots and archives.

::

    aiida-mofmlp runs list [--framework F --guest G --protocol P --since D --until D --status S]
    aiida-mofmlp runs show RUN [--per-loading]          # summary + iteration table
    aiida-mofmlp runs validations [filters]             # validation MAE/RMSE of the runs
    aiida-mofmlp runs plots RUN DIR                      # PNGs + plots.json
    aiida-mofmlp runs archive NODE FILE [--verify]       # AiiDA archive of the whole run
    aiida-mofmlp datasets list [filters] [--run RUN]     # training sets
    aiida-mofmlp datasets labels SET                     # per-frame label provenance
    aiida-mofmlp datasets export NODE DIR [...]          # extxyz + dataset card + models
    aiida-mofmlp models list [filters] [--run RUN]
    aiida-mofmlp models lineage MODEL                    # training set, labels, CP2K settings

Every command takes ``--profile`` (default: the loaded or default profile) and most ``--json``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import click

_LIST_COLUMNS = {
    "runs": (
        "pk",
        "ctime",
        "status",
        "framework_formula",
        "framework_label",
        "guest",
        "protocol",
        "n_iterations",
        "converged",
        "n_training",
        "valid_mae_f",
    ),
    "sets": (
        "pk",
        "ctime",
        "n_frames",
        "species",
        "n_trainings",
        "run_pk",
        "role",
        "framework_formula",
        "guest",
    ),
    "models": ("pk", "ctime", "seed", "n_training_frames", "valid_mae_f", "run_pk", "role", "sha256"),
    "validations": (
        "kind",
        "pk",
        "run_pk",
        "framework_formula",
        "guest",
        "n_frames",
        "mae_e_per_atom",
        "mae_f",
    ),
}


def _load_profile(name: str | None) -> None:
    """Load profile ``name``; without a name keep the loaded profile, else load the default one."""
    from aiida import load_profile
    from aiida.common.exceptions import MissingConfigurationError, ProfileConfigurationError
    from aiida.manage import get_manager

    current = get_manager().get_profile()
    if name is None and current is not None:
        return
    if current is not None and current.name == name:
        return
    try:
        load_profile(name, allow_switch=True)
    except (MissingConfigurationError, ProfileConfigurationError) as exc:
        raise click.ClickException(f"cannot load profile {name or '(default)'}: {exc}") from exc


def _with_profile(command: Callable) -> Callable:
    @click.option(
        "-p", "--profile", "profile", default=None, help="AiiDA profile (default: the default one)."
    )
    @functools.wraps(command)
    def wrapper(*args, profile: str | None = None, **kwargs):
        _load_profile(profile)
        from aiida_mofmlp.tools.export import ExportError
        from aiida_mofmlp.tools.queries import QueryError

        try:
            return command(*args, **kwargs)
        except (QueryError, ExportError) as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def _filters(command: Callable) -> Callable:
    from aiida_mofmlp.tools.queries import STATUSES

    options = [
        click.option("--framework", help="Formula (also reduced) or part of the framework label."),
        click.option("--guest", help="Guest name, e.g. CO2."),
        click.option("--protocol", help="Protocol: fast, balanced or stringent."),
        click.option("--since", help="Created on or after this date (ISO, e.g. 2026-01-31)."),
        click.option("--until", help="Created on or before this date (ISO)."),
        click.option("--status", type=click.Choice(STATUSES), help="Status of the run."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _json_option(command: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(command)


def _echo_rows(rows: list[dict[str, Any]], columns, as_json: bool) -> None:
    from aiida_mofmlp.tools.queries import format_table

    if as_json:
        click.echo(json.dumps(rows, indent=1, default=str))
    else:
        click.echo(format_table(rows, columns))


# ----------------------------------------------------------------------------------------------------
# runs
# ----------------------------------------------------------------------------------------------------


@click.group()
def runs() -> None:
    """Active-learning runs: list, show, validation results, plots, archives."""


@runs.command("list")
@_filters
@click.option("--limit", type=int, default=None, help="At most this many runs (newest first).")
@_json_option
@_with_profile
def runs_list(as_json: bool, limit: int | None, **filters) -> None:
    """List active-learning runs."""
    from aiida_mofmlp.tools.queries import list_runs

    _echo_rows(list_runs(**filters, limit=limit), _LIST_COLUMNS["runs"], as_json)


@runs.command("show")
@click.argument("run")
@click.option("--per-loading", is_flag=True, help="Also the per-loading numbers of each iteration.")
@_json_option
@_with_profile
def runs_show(run: str, per_loading: bool, as_json: bool) -> None:
    """Summary and iteration table of RUN (pk or UUID)."""
    from aiida_mofmlp.tools.queries import (
        format_table,
        iteration_table,
        load_run,
        per_loading_table,
        run_info,
    )

    node = load_run(run)
    info = run_info(node)
    rows = iteration_table(node) if "iterations" in node.outputs else []
    loadings = per_loading_table(node) if per_loading and rows else []
    if as_json:
        click.echo(
            json.dumps({"run": info, "iterations": rows, "per_loading": loadings}, indent=1, default=str)
        )
        return
    for key, value in info.items():
        click.echo(f"{key:>22}: {value}")
    click.echo("")
    click.echo(format_table(rows) if rows else "(no iteration table yet)")
    if loadings:
        click.echo("")
        click.echo(format_table(loadings))


@runs.command("validations")
@_filters
@click.option("--training", "include_training", is_flag=True, help="Also each model's training-time split.")
@_json_option
@_with_profile
def runs_validations(as_json: bool, include_training: bool, **filters) -> None:
    """Validation errors (eV/atom, eV/Å) of the runs."""
    from aiida_mofmlp.tools.queries import list_validations

    rows = list_validations(**filters, include_training=include_training)
    _echo_rows(rows, _LIST_COLUMNS["validations"], as_json)


@runs.command("plots")
@click.argument("run")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--format", "image_format", type=click.Choice(["png", "pdf", "svg"]), default="png")
@_with_profile
def runs_plots(run: str, directory: str, image_format: str) -> None:
    """Write every plot of RUN into DIRECTORY (images + plots.json with the data)."""
    from aiida_mofmlp.tools.plots import plot_run
    from aiida_mofmlp.tools.queries import load_run

    plots = plot_run(load_run(run), directory, image_format=image_format)
    for name, plot in plots.items():
        click.echo(f"{name:>18}: {plot.path}")
    click.echo(f"data: {directory}/plots.json")


@runs.command("archive")
@click.argument("node")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace an existing file.")
@click.option("--verify", is_flag=True, help="Import it into a fresh temporary profile and compare.")
@_with_profile
def runs_archive(node: str, path: str, overwrite: bool, verify: bool) -> None:
    """AiiDA archive of NODE (a run or any process) with its whole provenance."""
    from aiida import orm

    from aiida_mofmlp.tools.archive import (
        compare_fingerprints,
        export_archive,
        provenance_fingerprint,
        verify_archive,
    )

    written = export_archive(node, path, overwrite=overwrite)
    expected = provenance_fingerprint(node)
    click.echo(f"archive {written}: {expected['n_nodes']} nodes, {expected['n_links']} links")
    if verify:
        found = verify_archive(written, orm.load_node(node).uuid)
        differences = compare_fingerprints(expected, {k: v for k, v in found.items() if k in expected})
        if differences:
            raise click.ClickException("the archive does not reproduce the run:\n" + "\n".join(differences))
        click.echo(f"verified: a fresh profile holds the same {found['n_nodes_in_profile']} nodes and hashes")


# ----------------------------------------------------------------------------------------------------
# datasets
# ----------------------------------------------------------------------------------------------------


@click.group()
def datasets() -> None:
    """Training sets: list, per-frame label provenance, export for publication."""


@datasets.command("list")
@_filters
@click.option("--run", default=None, help="Only the sets of this run (pk or UUID).")
@_json_option
@_with_profile
def datasets_list(as_json: bool, **filters) -> None:
    """List training sets (labelled sets used for training or returned by a run)."""
    from aiida_mofmlp.tools.queries import list_training_sets

    _echo_rows(list_training_sets(**filters), _LIST_COLUMNS["sets"], as_json)


@datasets.command("labels")
@click.argument("structure_set")
@_json_option
@_with_profile
def datasets_labels(structure_set: str, as_json: bool) -> None:
    """Per-frame label provenance of STRUCTURE_SET: CP2K calculation, settings, versions."""
    from aiida_mofmlp.tools.lineage import label_provenance, summarise_labels
    from aiida_mofmlp.tools.queries import format_table, load_node

    node = load_node(structure_set, "structure set")
    if not hasattr(node, "iter_frames"):
        raise click.ClickException(f"node <{node.pk}> is a {type(node).__name__}, not a StructureSetData")
    if as_json:
        click.echo(json.dumps(summarise_labels(node), indent=1, default=str))
        return
    columns = ("index", "iteration", "loading", "calc_uuid", "settings_id", "cp2k_version", "in_graph")
    click.echo(format_table(label_provenance(node), columns))


@datasets.command("export")
@click.argument("node")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--valid-fraction", type=float, default=0.0, show_default=True, help="Held out as valid.extxyz."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the validation split.")
@click.option("--license", "license_", default="CC-BY-4.0", show_default=True, help="SPDX license id.")
@click.option("--citation", default=None, help="How to cite the dataset (text or DOI).")
@click.option("--author", "authors", multiple=True, help="Author (repeat for several).")
@click.option("--name", default=None, help="Dataset name.")
@click.option("--description", default=None, help="One-paragraph description.")
@click.option("--no-models", is_flag=True, help="Do not copy the model files.")
@click.option("--card-format", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace the files of an earlier export in DIRECTORY.")
@_with_profile
def datasets_export(node: str, directory: str, license_: str, no_models: bool, **options) -> None:
    """Export the dataset of NODE (run, labelled set, trained model) into DIRECTORY."""
    from aiida_mofmlp.tools.export import export_dataset

    result = export_dataset(node, directory, license=license_, include_models=not no_models, **options)
    counts = {split: entry["n_frames"] for split, entry in result.card["splits"].items()}
    click.echo(f"exported {counts} frames, {len(result.models)} model(s) to {result.directory}")
    click.echo(f"card: {result.card_path}")
    click.echo("train: mace_run_train " + " ".join(result.mace_train_args()) + " ...")


# ----------------------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------------------


@click.group()
def models() -> None:
    """Trained MACE models: list, lineage."""


@models.command("list")
@_filters
@click.option("--run", default=None, help="Only the models of this run (pk or UUID).")
@_json_option
@_with_profile
def models_list(as_json: bool, **filters) -> None:
    """List trained models."""
    from aiida_mofmlp.tools.queries import list_models

    _echo_rows(list_models(**filters), _LIST_COLUMNS["models"], as_json)


@models.command("lineage")
@click.argument("model")
@_json_option
@_with_profile
def models_lineage(model: str, as_json: bool) -> None:
    """Training calculation, training set, foundation model and CP2K settings of MODEL's labels."""
    from aiida_mofmlp.tools.lineage import model_lineage

    lineage = model_lineage(model)
    if as_json:
        click.echo(json.dumps(lineage, indent=1, default=str))
        return
    summary = lineage["model"]
    click.echo(f"model <{summary['pk']}> {summary['uuid']} sha256 {summary.get('sha256')}")
    for entry in lineage["runs"]:
        click.echo(f"  returned by run <{entry['run_pk']}> as {entry['link_label']}")
    if not lineage["trained"]:
        click.echo("  not made by a training calculation (a foundation or imported model)")
        return
    training = lineage["training"]
    click.echo(f"  trained by <{training['calc_pk']}> ({training['code']}), seed {training['seed']}")
    click.echo(f"  parameters: {json.dumps(training['parameters'], default=str)}")
    foundation = lineage["foundation_model"] or {}
    click.echo(f"  foundation model <{foundation.get('pk')}> sha256 {foundation.get('sha256')}")
    data = lineage["training_set"]
    click.echo(f"  training set <{data['pk']}> {data.get('count')} frames, sha256 {data.get('sha256')}")
    labels = lineage["labels"]
    click.echo(
        f"  labels: {labels['n_with_calculation']} of {labels['n_frames']} frames from "
        f"{labels['n_calculations']} CP2K calculations; all in the provenance graph: {labels['all_in_graph']}"
    )
    for entry in labels["settings"]:
        click.echo(
            f"    {entry['settings_id']}: {entry['n_frames']} frames, {entry['method']}, "
            f"{', '.join(entry['codes'])}, {', '.join(entry['cp2k_versions'])}"
        )


def register(group: click.Group) -> None:
    """Add the ``runs``, ``datasets`` and ``models`` groups to the top-level command."""
    for command in (runs, datasets, models):
        group.add_command(command)
