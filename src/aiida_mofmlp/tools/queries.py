"""Provenance queries: active-learning runs, training sets, models, validation results and label lineage.

Every ``list_*`` function returns a list of plain dicts (one per node, newest first) that the CLI prints
as a table or JSON; the filters are the same everywhere:

* ``framework``: a formula (``C22H20N2O8Zn2``, also matched by its reduced form ``C11H10NO4Zn``) or a
  case-insensitive part of the framework label;
* ``guest`` (``CO2``), ``protocol`` (``fast``): equal, case-insensitive;
* ``since`` / ``until``: creation date (``datetime`` or ISO text ``2026-01-31[T12:00]``);
* ``status``: one of :data:`STATUSES`, of the run (or, for nodes made outside a run, of the top-level
  process that made them).

Framework, guest and protocol come from the ``mofmlp`` extras of the ActiveLearningWorkChain that returned
a node; a training set or model made outside a run gets its framework from the framework atoms
(``guest_id == 0``) of its first frame.

Label and model lineage (which CP2K settings made which labels, which model was trained on them) is in
:mod:`aiida_mofmlp.tools.lineage`.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aiida import orm
from aiida.common.links import LinkType

from aiida_mofmlp.workflows.active_learning.builders import latest_iteration_table

__all__ = [
    "AL_PROCESS_TYPE",
    "STATUSES",
    "QueryError",
    "format_table",
    "iteration_table",
    "list_models",
    "list_runs",
    "list_training_sets",
    "list_validations",
    "load_node",
    "load_run",
    "per_loading_table",
    "process_status",
    "run_info",
]

AL_PROCESS_TYPE = "aiida.workflows:mofmlp.active_learning"
TRAIN_PROCESS_TYPE = "aiida.calculations:mofmlp.mace_train"
#: values of the ``status`` filter
STATUSES = ("ok", "warning", "failed", "excepted", "killed", "running")
#: columns of :func:`iteration_table` (the keys of one row of the run's ``iterations`` output)
ITERATION_COLUMNS = (
    "iteration",
    "n_training",
    "n_explored",
    "n_blowups",
    "fraction_below_lo",
    "n_above_hi",
    "n_candidates",
    "n_selected",
    "n_labelled",
    "n_failed",
    "valid_mae_f",
    "converged",
)


class QueryError(ValueError):
    """A query got an invalid argument or a node that cannot answer it; the message says what is valid."""


# ----------------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------------


def _exit_code_label(node: orm.ProcessNode) -> str | None:
    try:
        codes = node.process_class.exit_codes
    except (ValueError, AttributeError, ImportError):  # process class not importable here
        return None
    for label, code in codes.items():
        if code.status == node.exit_status:
            return label
    return None


def process_status(node: orm.ProcessNode | None) -> str | None:
    """One of :data:`STATUSES` for a process node (None for None).

    A nonzero exit status whose exit code is named ``WARNING_*`` (e.g. a run that did not converge but
    returned its results) is 'warning'; any other nonzero exit status is 'failed'.
    """
    if node is None:
        return None
    state = node.process_state.value if node.process_state is not None else "created"
    if state == "finished":
        if node.exit_status == 0:
            return "ok"
        return "warning" if (_exit_code_label(node) or "").startswith("WARNING_") else "failed"
    if state in ("excepted", "killed"):
        return state
    return "running"


def _status_filter(status: str | None) -> dict:
    if status is None:
        return {}
    if status not in STATUSES:
        raise QueryError(f"status {status!r} is not valid; valid: {list(STATUSES)}")
    if status == "ok":
        return {"attributes.process_state": "finished", "attributes.exit_status": 0}
    if status in ("failed", "warning"):  # told apart by process_status afterwards
        return {"attributes.process_state": "finished", "attributes.exit_status": {">": 0}}
    if status == "running":
        return {"attributes.process_state": {"in": ["created", "waiting", "running"]}}
    return {"attributes.process_state": status}


def parse_date(value: str | dt.datetime | dt.date | None, name: str = "date") -> dt.datetime | None:
    """A timezone-aware datetime from a datetime, a date or ISO text; None stays None."""
    from aiida.common import timezone

    if value is None or isinstance(value, dt.datetime):
        result = value
    elif isinstance(value, dt.date):
        result = dt.datetime(value.year, value.month, value.day)
    else:
        try:
            result = dt.datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise QueryError(
                f"{name} {value!r} is not a date; give ISO text like 2026-01-31 or 2026-01-31T14:00"
            ) from None
    if result is not None and result.tzinfo is None:
        result = timezone.make_aware(result)
    return result


def _date_filter(since, until) -> dict:
    start, end = parse_date(since, "since"), parse_date(until, "until")
    if start is not None and end is not None and start > end:
        raise QueryError(f"since ({start.isoformat()}) is after until ({end.isoformat()})")
    condition = {}
    if start is not None:
        condition[">="] = start
    if end is not None:
        condition["<="] = end
    if not condition:
        return {}
    return {"ctime": {"and": [{key: value} for key, value in condition.items()]}}


def _formula_counts(formula: str) -> dict[str, int] | None:
    from ase.formula import Formula

    try:
        counts = Formula(formula.replace(" ", "")).count()
    except (ValueError, KeyError, TypeError):
        return None
    return {symbol: n for symbol, n in counts.items() if n} or None


def _reduced(counts: Mapping[str, int]) -> dict[str, int]:
    from math import gcd

    divisor = 0
    for value in counts.values():
        divisor = gcd(divisor, int(value))
    return {symbol: int(value) // max(divisor, 1) for symbol, value in counts.items()}


def framework_matches(wanted: str, formula: str | None, label: str | None = None) -> bool:
    """True when ``wanted`` is the formula (or its reduced form) or a part of the label (any case)."""
    if label and wanted.lower() in label.lower():
        return True
    if not formula:
        return False
    mine, theirs = _formula_counts(formula), _formula_counts(wanted)
    if mine is None or theirs is None:
        return wanted.replace(" ", "").lower() == formula.replace(" ", "").lower()
    return mine == theirs or _reduced(mine) == _reduced(theirs)


def _same_text(wanted: str | None, value: str | None) -> bool:
    return wanted is None or (value is not None and str(value).lower() == str(wanted).lower())


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _root_process(node: orm.Node) -> orm.ProcessNode | None:
    process = node.creator if isinstance(node, orm.Data) else node
    while process is not None and process.caller is not None:
        process = process.caller
    return process


def load_run(identifier: int | str | orm.Node) -> orm.WorkflowNode:
    """The ActiveLearningWorkChain node of a pk, UUID (prefix) or node; QueryError for anything else."""
    node = load_node(identifier, "run")
    if node.process_type != AL_PROCESS_TYPE:
        kind = getattr(node, "process_label", None) or type(node).__name__
        raise QueryError(
            f"node {identifier!r} is a {kind}, not an "
            "ActiveLearningWorkChain; list the runs with `aiida-mofmlp runs list`"
        )
    return node


def load_node(identifier: int | str | orm.Node, what: str = "node") -> orm.Node:
    """The node of a pk, UUID (prefix) or node; QueryError naming ``what`` when there is no unique one."""
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    if isinstance(identifier, orm.Node):
        return identifier
    try:
        return orm.load_node(identifier)
    except (NotExistent, MultipleObjectsError, ValueError, TypeError) as exc:
        raise QueryError(f"{what} {identifier!r}: no unique node with this pk or UUID ({exc})") from None


# ----------------------------------------------------------------------------------------------------
# runs
# ----------------------------------------------------------------------------------------------------


def run_context(run: orm.ProcessNode | None) -> dict[str, Any]:
    extras = run.base.extras.get("mofmlp", {}) if run is not None else {}
    return {
        "run_pk": run.pk if run is not None else None,
        "run_uuid": run.uuid if run is not None else None,
        "framework_formula": extras.get("framework_formula"),
        "framework_label": extras.get("framework_label"),
        "guest": extras.get("guest"),
        "protocol": extras.get("protocol"),
        "status": process_status(run),
    }


def _keep(context: Mapping[str, Any], framework, guest, protocol) -> bool:
    if framework is not None and not framework_matches(
        framework, context.get("framework_formula"), context.get("framework_label")
    ):
        return False
    return _same_text(guest, context.get("guest")) and _same_text(protocol, context.get("protocol"))


def run_info(run: orm.ProcessNode) -> dict[str, Any]:
    """One row describing an active-learning run: identity, system, status and headline numbers."""
    info = {"pk": run.pk, "uuid": run.uuid, "ctime": _iso(run.ctime), **run_context(run)}
    del info["run_pk"], info["run_uuid"]
    info["exit_status"] = run.exit_status
    info["exit_message"] = run.exit_message
    outputs = run.outputs
    table = outputs.iterations.get_dict() if "iterations" in outputs else {}
    info["n_iterations"] = table.get("n_iterations")
    info["converged"] = table.get("converged")
    info["n_training"] = len(outputs.training_set) if "training_set" in outputs else None
    info["n_models"] = len(outputs.models) if "models" in outputs else 0
    validation = outputs.validation.get_dict() if "validation" in outputs else {}
    info["valid_mae_e_per_atom"] = validation.get("mae_e_per_atom")
    info["valid_mae_f"] = validation.get("mae_f")
    return info


def list_runs(
    framework: str | None = None,
    guest: str | None = None,
    protocol: str | None = None,
    since: str | dt.datetime | None = None,
    until: str | dt.datetime | None = None,
    status: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Active-learning runs matching the filters (see the module docstring), newest first."""
    filters = {"process_type": AL_PROCESS_TYPE, **_date_filter(since, until), **_status_filter(status)}
    query = orm.QueryBuilder().append(orm.WorkflowNode, filters=filters, project="*", tag="run")
    query.order_by({"run": {"ctime": "desc"}})
    rows = []
    for (run,) in query.iterall():
        context = run_context(run)
        if not _keep(context, framework, guest, protocol) or not _same_text(status, context["status"]):
            continue
        rows.append(run_info(run))
        if limit is not None and len(rows) >= limit:
            break
    return rows


def _iteration_rows(run: orm.Node) -> list[dict[str, Any]]:
    """The rows of the run's iteration table: the final one, or the one of its last finished iteration."""
    table = latest_iteration_table(run)
    if table is None:
        raise QueryError(
            f"run <{run.pk}> has no iteration table yet (status {process_status(run)}); it is written after "
            "every iteration"
        )
    return table.get_dict().get("rows", [])


def iteration_table(run: int | str | orm.Node) -> list[dict[str, Any]]:
    """The run's iteration rows (columns :data:`ITERATION_COLUMNS`; per-loading numbers left out).

    While the run goes on (or after it was killed) the rows of the iterations finished so far; a restarted
    run's table begins with the rows of the run it continues.
    """
    rows = _iteration_rows(load_run(run))
    return [{column: row.get(column) for column in ITERATION_COLUMNS} for row in rows]


def per_loading_table(run: int | str | orm.Node) -> list[dict[str, Any]]:
    """One row per (iteration, loading) from the rows' ``per_loading`` numbers."""
    table = []
    for row in _iteration_rows(load_run(run)):
        for loading, numbers in sorted(
            (row.get("per_loading") or {}).items(), key=lambda item: float(item[0])
        ):
            table.append({"iteration": row.get("iteration"), "loading": loading, **numbers})
    return table


# ----------------------------------------------------------------------------------------------------
# training sets, models, validation results
# ----------------------------------------------------------------------------------------------------


def returning_runs(pks: Iterable[int]) -> dict[int, list[tuple[orm.WorkflowNode, str]]]:
    """For each data pk, the active-learning runs that returned it and the link labels."""
    pks = sorted(set(pks))
    found: dict[int, list[tuple[orm.WorkflowNode, str]]] = {}
    if not pks:
        return found
    query = orm.QueryBuilder()
    query.append(orm.Data, filters={"id": {"in": pks}}, project="id", tag="data")
    query.append(
        orm.WorkflowNode,
        with_outgoing="data",
        filters={"process_type": AL_PROCESS_TYPE},
        edge_filters={"type": LinkType.RETURN.value},
        edge_project="label",
        edge_tag="link",
        project="*",
        tag="run",
    )
    for row in query.iterdict():
        found.setdefault(row["data"]["id"], []).append((row["run"]["*"], row["link"]["label"]))
    return found


def _first_frame_framework(structure_set) -> str | None:
    """Formula of the framework atoms (guest_id == 0) of the first frame of a set."""
    from aiida_mofmlp.common.frames import guest_ids

    for atoms in structure_set.iter_frames():
        framework = atoms[guest_ids(atoms) == 0]
        return framework.get_chemical_formula(mode="hill") if len(framework) else None
    return None


def _data_context(node: orm.Data, runs: list[tuple[orm.WorkflowNode, str]], framework_set=None) -> dict:
    if runs:
        run = max((run for run, _ in runs), key=lambda r: r.ctime)
        context = run_context(run)
        context["role"] = ", ".join(sorted(label for r, label in runs if r.pk == run.pk))
        return context
    context = run_context(None)
    context["status"] = process_status(_root_process(node))
    context["role"] = None
    if framework_set is not None:
        context["framework_formula"] = _first_frame_framework(framework_set)
    return context


def _listed(
    pks: set[int],
    columns: Callable[[orm.Node], tuple[dict[str, Any], Any]],
    framework: str | None,
    guest: str | None,
    protocol: str | None,
    status: str | None,
    run: int | str | orm.Node | None,
) -> list[dict[str, Any]]:
    """Rows of the data nodes ``pks`` that pass the filters, newest first.

    ``columns(node)`` gives the node's own columns and the set whose first frame names the framework of a
    node no run returned; the run's context (framework, guest, protocol, status, role) is added to each row.
    """
    runs = returning_runs(pks)
    wanted_run = load_node(run, "run").pk if run is not None else None
    rows = []
    for pk in pks:
        node = orm.load_node(pk)
        if wanted_run is not None and wanted_run not in {r.pk for r, _ in runs.get(pk, [])}:
            continue
        own, framework_set = columns(node)
        context = _data_context(node, runs.get(pk, []), framework_set=framework_set)
        if not _keep(context, framework, guest, protocol) or not _same_text(status, context["status"]):
            continue
        rows.append({**own, **context})
    return sorted(rows, key=lambda row: (row["ctime"], row["pk"]), reverse=True)


def list_training_sets(
    framework: str | None = None,
    guest: str | None = None,
    protocol: str | None = None,
    since: str | dt.datetime | None = None,
    until: str | dt.datetime | None = None,
    status: str | None = None,
    run: int | str | orm.Node | None = None,
) -> list[dict[str, Any]]:
    """Labelled sets used to train a MACE model or returned by a run as a training set, newest first.

    ``run`` keeps the sets that run returned (final and per-iteration ``history`` sets).
    """
    from aiida_mofmlp.data.structure_set import StructureSetData

    if status is not None and status not in STATUSES:
        raise QueryError(f"status {status!r} is not valid; valid: {list(STATUSES)}")
    dates = _date_filter(since, until)
    trainings: Counter[int] = Counter()
    query = orm.QueryBuilder()
    query.append(StructureSetData, filters=dates, project="id", tag="set")
    query.append(
        orm.CalcJobNode,
        with_incoming="set",
        filters={"process_type": TRAIN_PROCESS_TYPE},
        edge_filters={"label": "training_set"},
    )
    for (pk,) in query.iterall():
        trainings[pk] += 1
    query = orm.QueryBuilder()
    query.append(StructureSetData, filters=dates, project="id", tag="set")
    query.append(
        orm.WorkflowNode,
        with_outgoing="set",
        filters={"process_type": AL_PROCESS_TYPE},
        edge_filters={
            "type": LinkType.RETURN.value,
            "or": [{"label": "training_set"}, {"label": {"like": "history__training_set_%"}}],
        },
    )
    pks = set(trainings) | {pk for (pk,) in query.iterall()}

    def columns(node: orm.Node) -> tuple[dict[str, Any], Any]:
        return {
            "pk": node.pk,
            "uuid": node.uuid,
            "ctime": _iso(node.ctime),
            "n_frames": node.count,
            "species": node.species,
            "has_stress": node.has_stress,
            "sha256": node.sha256,
            "n_trainings": trainings.get(node.pk, 0),
        }, node

    return _listed(pks, columns, framework, guest, protocol, status, run)


def training_calculation(model: orm.Node) -> orm.CalcJobNode | None:
    creator = model.creator
    if creator is not None and creator.process_type == TRAIN_PROCESS_TYPE:
        return creator
    return None


def list_models(
    framework: str | None = None,
    guest: str | None = None,
    protocol: str | None = None,
    since: str | dt.datetime | None = None,
    until: str | dt.datetime | None = None,
    status: str | None = None,
    run: int | str | orm.Node | None = None,
) -> list[dict[str, Any]]:
    """Trained MACE models (made by a training calculation or returned by a run), newest first."""
    from aiida_mofmlp.data.mace_model import MaceModelData

    if status is not None and status not in STATUSES:
        raise QueryError(f"status {status!r} is not valid; valid: {list(STATUSES)}")
    dates = _date_filter(since, until)
    query = orm.QueryBuilder()
    query.append(orm.CalcJobNode, filters={"process_type": TRAIN_PROCESS_TYPE}, tag="calc")
    query.append(MaceModelData, with_incoming="calc", filters=dates, project="id")
    pks = {pk for (pk,) in query.iterall()}
    query = orm.QueryBuilder()
    query.append(MaceModelData, filters=dates, project="id", tag="model")
    query.append(
        orm.WorkflowNode,
        with_outgoing="model",
        filters={"process_type": AL_PROCESS_TYPE},
        edge_filters={"type": LinkType.RETURN.value},
    )
    pks |= {pk for (pk,) in query.iterall()}

    def columns(model: orm.Node) -> tuple[dict[str, Any], Any]:
        calc = training_calculation(model)
        training_set = calc.inputs.training_set if calc is not None else None
        metrics = calc.outputs.metrics.get_dict() if calc is not None and "metrics" in calc.outputs else {}
        valid = metrics.get("valid") or {}
        attributes = model.base.attributes
        return {
            "pk": model.pk,
            "uuid": model.uuid,
            "ctime": _iso(model.ctime),
            "sha256": model.sha256,
            "architecture": model.architecture,
            "species": model.species,
            "r_max": model.r_max,
            "head": model.head,
            "seed": attributes.get("seed", None),
            "training_mode": attributes.get("training_mode", None),
            "parent_sha256": model.parent_sha256,
            "training_set_uuid": training_set.uuid if training_set is not None else None,
            "n_training_frames": len(training_set) if training_set is not None else None,
            "valid_mae_e_per_atom": valid.get("mae_e_per_atom"),
            "valid_mae_f": valid.get("mae_f"),
        }, training_set

    return _listed(pks, columns, framework, guest, protocol, status, run)


def list_validations(
    framework: str | None = None,
    guest: str | None = None,
    protocol: str | None = None,
    since: str | dt.datetime | None = None,
    until: str | dt.datetime | None = None,
    status: str | None = None,
    include_training: bool = False,
) -> list[dict[str, Any]]:
    """Validation results: each run's ``validation`` output (``kind`` 'run', held-out MD frames).

    With ``include_training``, also each trained model's error on its training-time validation split
    (``kind`` 'training_split'). Errors in eV/atom and eV/Angstrom.
    """
    rows = []
    for run_row in list_runs(framework, guest, protocol, since, until, status):
        run = orm.load_node(run_row["pk"])
        if "validation" not in run.outputs:
            continue
        node = run.outputs.validation
        values = node.get_dict()
        rows.append(
            {
                "kind": "run",
                "pk": node.pk,
                "uuid": node.uuid,
                "ctime": _iso(node.ctime),
                **run_context(run),
                "n_frames": values.get("n_frames"),
                "mae_e_per_atom": values.get("mae_e_per_atom"),
                "rmse_e_per_atom": values.get("rmse_e_per_atom"),
                "mae_f": values.get("mae_f"),
                "rmse_f": values.get("rmse_f"),
                "per_loading": values.get("per_loading"),
            }
        )
    if include_training:
        for model_row in list_models(framework, guest, protocol, since, until, status):
            calc = training_calculation(orm.load_node(model_row["pk"]))
            if calc is None or "metrics" not in calc.outputs:
                continue
            valid = calc.outputs.metrics.get_dict().get("valid") or {}
            context = {key: model_row.get(key) for key in run_context(None)}
            rows.append(
                {
                    "kind": "training_split",
                    "pk": calc.outputs.metrics.pk,
                    "uuid": calc.outputs.metrics.uuid,
                    "ctime": _iso(calc.outputs.metrics.ctime),
                    **context,
                    "model_uuid": model_row["uuid"],
                    "n_frames": valid.get("n_frames"),
                    "mae_e_per_atom": valid.get("mae_e_per_atom"),
                    "rmse_e_per_atom": valid.get("rmse_e_per_atom"),
                    "mae_f": valid.get("mae_f"),
                    "rmse_f": valid.get("rmse_f"),
                    "per_loading": None,
                }
            )
    return sorted(rows, key=lambda row: (row["ctime"], row["pk"]), reverse=True)


# ----------------------------------------------------------------------------------------------------
# label lineage
# ----------------------------------------------------------------------------------------------------


def _cell(value: Any, precision: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{precision}g}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return str(value)


def format_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, precision: int = 4
) -> str:
    """Rows as a fixed-width text table (floats to ``precision`` significant digits; None as '-')."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    cells = [[_cell(row.get(column), precision) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    for line in cells:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines)
