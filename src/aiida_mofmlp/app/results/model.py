"""Results step: status, report, iteration table, figures, provenance summary, exports and the property
work chains of one run.

Everything comes from the provenance tools (:mod:`aiida_mofmlp.tools.queries`, ``plots``, ``lineage``,
``export``); the model reloads the node on :meth:`refresh` so a running loop is followed live. Once the
loop has ended, :meth:`refresh` submits the property work chains ticked in Configure
(:mod:`aiida_mofmlp.app.results.properties`) and then follows them too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import traitlets as tl

from aiida_mofmlp.app.messages import readable_error


def report_lines(node, limit: int = 200) -> list[str]:
    """The report (log) lines of ``node`` and of the processes it called, oldest first."""
    from aiida import orm

    nodes = [node, *node.called_descendants]
    logs = []
    for process in nodes:
        for log in orm.Log.collection.get_logs_for(process):
            prefix = "" if log.message.startswith("[") else f"[{process.pk}|{process.process_label}]: "
            logs.append((log.time, f"{log.time:%H:%M:%S} {prefix}{log.message}"))
    logs.sort(key=lambda item: item[0])
    return [line for _, line in logs][-limit:]


def iteration_rows(node) -> list[dict]:
    """The iteration table so far (:func:`aiida_mofmlp.tools.queries.iteration_table`: the final table, or
    the running ``history.iterations_XX``); without one, rows gathered from the history outputs."""
    from aiida_mofmlp.tools.queries import ITERATION_COLUMNS, QueryError, iteration_table

    try:
        return iteration_table(node)
    except QueryError:  # no table yet, or a run from before the running table
        history = node.outputs.history if "history" in node.outputs else {}
        return [{column: row.get(column) for column in ITERATION_COLUMNS} for row in history_rows(history)]


def history_rows(history) -> list[dict]:
    """Rows of the iterations assessed so far from ``convergence_XX``, ``explored_XX`` and
    ``training_set_XX`` (runs without ``history.iterations_XX``); per-loading numbers left out."""
    from aiida_mofmlp.workflows.functions.active_learning import DECISION_KEYS

    sizes = {
        int(key.rsplit("_", 1)[1]): len(history[key]) for key in history if key.startswith("training_set_")
    }
    rows = []
    for key in sorted(key for key in history if key.startswith("convergence_")):
        iteration = int(key.rsplit("_", 1)[1])
        numbers = history[key].get_dict()
        row = {"iteration": iteration, **{k: numbers.get(k) for k in DECISION_KEYS if k != "per_loading"}}
        earlier = [index for index in sizes if index < iteration]
        if earlier:  # the training set the iteration's ensemble was trained on
            row["n_training"] = sizes[max(earlier)]
        if f"explored_{iteration:02d}" in history:
            row["n_explored"] = len(history[f"explored_{iteration:02d}"])
        if iteration in sizes and "n_training" in row:
            row["n_labelled"] = sizes[iteration] - row["n_training"]
        rows.append(row)
    return rows


def provenance_summary(node) -> dict:
    """Label count, labelling settings and lineage of the run's final model_0 (empty when unfinished)."""
    from aiida_mofmlp.tools.lineage import model_lineage, summarise_labels

    summary: dict = {}
    if "training_set" in node.outputs:
        summary["labels"] = summarise_labels(node.outputs.training_set, check_graph=False)
    if "models" in node.outputs and "model_0" in node.outputs.models:
        summary["model_0"] = model_lineage(node.outputs.models.model_0, check_graph=False)
    return summary


class ResultsModel(tl.HasTraits):
    """What the results view shows of the run ``run_pk``."""

    run_pk = tl.Int(None, allow_none=True)
    status = tl.Unicode("")
    info = tl.Dict()
    rows = tl.List()  # iteration table rows (tools.queries.iteration_table)
    report = tl.List(tl.Unicode())
    figures = tl.Dict()  # name -> PNG path
    provenance = tl.Dict()
    message = tl.Unicode("")
    exported = tl.Dict()  # what -> path
    properties = tl.List()  # one dict per ticked property: label, pk, state, exit_message, figures, card
    properties_note = tl.Unicode("")  # why the ticked properties did not (all) run
    submission_due = tl.Bool(False)  # the loop has ended and its ticked properties wait for refresh()

    def __init__(self, figure_folder: str | Path | None = None, **kwargs):
        super().__init__(**kwargs)
        self._figure_folder = Path(figure_folder or tempfile.mkdtemp(prefix="mofmlp-figures-"))
        self._figures_of: tuple | None = None  # (pk, finished) the figures were made for
        self._property_figures: dict[int, tuple] = {}  # finished property run pk -> (figures, error)
        self._auto_submitted: set[int] = set()  # loops whose properties refresh already submitted

    def load(self, pk: int) -> None:
        """Show run ``pk`` (an ActiveLearningWorkChain)."""
        self.exported = {}
        self.properties, self.properties_note = [], ""
        self.run_pk = int(pk)
        self.refresh()

    def refresh(self, submit: bool = True) -> None:
        """Reload the run's state; figures are redrawn when the run has new history outputs or has ended.

        Once the loop has ended, the ticked properties are submitted (once per shown run) when ``submit``;
        a background poller passes ``submit=False`` (AiiDA stores nodes only from the thread that loaded
        the profile) and, when :attr:`submission_due`, has the kernel's thread call ``refresh()``.
        """
        from aiida_mofmlp.tools import queries

        if self.run_pk is None:
            return
        try:
            node = queries.load_run(self.run_pk)
        except Exception as error:
            self.message = readable_error(error, f"opening run {self.run_pk}")
            return
        self.message = ""
        self.info = {key: value for key, value in queries.run_info(node).items() if value is not None}
        self.status = (
            f"{node.process_label}<{node.pk}>: {node.process_state.value if node.process_state else '?'}"
        )
        if node.exit_status is not None:
            self.status += f", exit status {node.exit_status}" + (
                f" ({node.exit_message})" if node.exit_message else ""
            )
        self.report = report_lines(node)
        self.rows = iteration_rows(node)
        history = node.outputs.history if "history" in node.outputs else {}
        key = (node.pk, node.is_terminated, len(list(history)))  # redrawn as the loop adds history outputs
        if self._figures_of != key:
            self.figures = self._draw(node)
            self._figures_of = key
        try:
            self.provenance = provenance_summary(node)
        except Exception as error:
            self.provenance = {}
            self.message = readable_error(error, "summarising the provenance")
        # submitted once per shown run; after a failure the button tries again
        due = node.is_terminated and node.pk not in self._auto_submitted
        self._update_properties(node, submit=submit and due)
        if submit and due:
            self._auto_submitted.add(node.pk)
        self.submission_due = due and not submit and any(row["pk"] is None for row in self.properties)

    # --- property work chains on the final ensemble -------------------------------------------------
    def run_properties(self) -> None:
        """Submit the ticked properties of the shown run now (the "Run ticked properties" button)."""
        from aiida_mofmlp.app.results.properties import ticked_properties
        from aiida_mofmlp.tools import queries

        if self.run_pk is None:
            self.properties_note = "open a run first"
            return
        try:
            node = queries.load_run(self.run_pk)
        except Exception as error:
            self.properties_note = readable_error(error, f"opening run {self.run_pk}")
            return
        if not ticked_properties(node):
            self.properties_note = (
                f"no property was ticked for run {node.pk} (tick them in Configure, 'Properties of the final "
                "ensemble', before submitting)"
            )
            return
        self._update_properties(node, submit=True)

    def is_live(self) -> bool:
        """Whether the run or one of its property runs may still change (for the view's poller)."""
        from aiida import orm

        if self.run_pk is None:
            return False
        if not orm.load_node(self.run_pk).is_terminated:
            return True
        return any(row["state"] in ("created", "waiting", "running") for row in self.properties)

    def _update_properties(self, node, submit: bool) -> None:
        """Submit (when ``submit`` and the loop is usable) and describe the ticked property runs."""
        from aiida import orm

        from aiida_mofmlp.app.results import properties as props
        from aiida_mofmlp.app.results.properties import card_rows

        ticked = props.ticked_properties(node)
        if not ticked:
            self.properties, self.properties_note = [], ""
            return
        note = self.properties_note if node.is_terminated else ""  # kept until the next submission
        if submit:
            try:
                _, messages = props.submit_properties(node)
                note = "\n".join(messages)
            except props.PropertyError as error:
                note = str(error)
            except Exception as error:
                note = readable_error(error, "submitting the ticked properties")
        elif not node.is_terminated:
            note = "the ticked properties run on the final ensemble when the loop ends"
        runs = props.property_runs(node)
        parent = props.properties_run(node)
        if parent is not None and parent.is_terminated and not parent.is_finished_ok:
            why = parent.exit_message or f"exit status {parent.exit_status}"
            note = "\n".join(line for line in (note, f"PropertiesWorkChain<{parent.pk}>: {why}") if line)
        rows = []
        for label in ticked:
            row = {"label": label, "pk": runs.get(label), "state": "not submitted", "exit_message": ""}
            row.update({"figures": {}, "figure_error": "", "card": []})
            if row["pk"] is not None:
                child = orm.load_node(row["pk"])
                row["state"] = child.process_state.value if child.process_state else "created"
                if child.is_finished and child.exit_status:
                    row["state"] += f", exit status {child.exit_status}"
                row["exit_message"] = child.exit_message or ""
                if child.is_finished_ok:
                    row["figures"], row["figure_error"] = self._finished_figures(label, child)
                    row["card"] = card_rows(child) if label == "model card" else []
            rows.append(row)
        self.properties, self.properties_note = rows, note

    def _finished_figures(self, label: str, child) -> tuple[dict, str]:
        """Figures of a finished property run (drawn once) and why drawing failed ("" when it did not)."""
        from aiida_mofmlp.app.results.properties import property_figures

        if child.pk not in self._property_figures:
            try:
                folder = self._figure_folder / "properties" / str(child.pk)
                self._property_figures[child.pk] = (property_figures(label, child, folder), "")
            except Exception as error:
                self._property_figures[child.pk] = ({}, readable_error(error, f"drawing the {label} figure"))
        return self._property_figures[child.pk]

    def _draw(self, node) -> dict:
        from aiida_mofmlp.tools.plots import plot_run

        folder = self._figure_folder / str(node.pk)
        try:
            plots = plot_run(node, folder)
        except Exception as error:
            self.message = readable_error(error, "drawing the figures")
            return {}
        return {name: str(plot.path) for name, plot in plots.items() if plot.path is not None}

    def export_dataset(self, directory: str | Path) -> Path | None:
        """The run's dataset (tools.export.export_dataset) into ``directory``; its path, or None + message."""
        from aiida_mofmlp.tools.export import export_dataset

        try:
            result = export_dataset(self.run_pk, directory, overwrite=True)
        except Exception as error:
            self.message = readable_error(error, "exporting the dataset")
            return None
        path = Path(getattr(result, "directory", directory))
        self.exported = {**self.exported, "dataset": str(path)}
        return path

    def export_archive(self, path: str | Path) -> Path | None:
        """An AiiDA archive of the run with its whole provenance; its path, or None + message."""
        from aiida_mofmlp.tools.archive import export_archive

        try:
            written = export_archive(self.run_pk, path, overwrite=True)
        except Exception as error:
            self.message = readable_error(error, "writing the AiiDA archive")
            return None
        self.exported = {**self.exported, "archive": str(written)}
        return written
