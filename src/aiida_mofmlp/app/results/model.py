"""Results step: status, report, iteration table, figures, provenance summary and exports of one run.

Everything comes from the provenance tools (:mod:`aiida_mofmlp.tools.queries`, ``plots``, ``lineage``,
``export``); the model reloads the node on :meth:`refresh` so a running loop is followed live.
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

    def __init__(self, figure_folder: str | Path | None = None, **kwargs):
        super().__init__(**kwargs)
        self._figure_folder = Path(figure_folder or tempfile.mkdtemp(prefix="mofmlp-figures-"))
        self._figures_of: tuple | None = None  # (pk, finished) the figures were made for

    def load(self, pk: int) -> None:
        """Show run ``pk`` (an ActiveLearningWorkChain)."""
        self.exported = {}
        self.run_pk = int(pk)
        self.refresh()

    def refresh(self) -> None:
        """Reload the run's state; figures are redrawn when the run has new history outputs or has ended."""
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
        self.rows = queries.iteration_table(node) if "iterations" in node.outputs else []
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
        from aiida_mofmlp.tools.export import export_archive

        try:
            written = export_archive(self.run_pk, path, overwrite=True)
        except Exception as error:
            self.message = readable_error(error, "writing the AiiDA archive")
            return None
        self.exported = {**self.exported, "archive": str(written)}
        return written
