"""Results step view: status, iteration table, figures, report, provenance and exports; refreshed live."""

from __future__ import annotations

import html
import threading
from pathlib import Path

import ipywidgets as ipw

from aiida_mofmlp.app.messages import readable_error
from aiida_mofmlp.app.results.model import ResultsModel

#: headers of the iteration table: row key -> (header, format)
TABLE_COLUMNS = {
    "iteration": ("iteration", "{}"),
    "n_training": ("training frames", "{}"),
    "n_explored": ("explored", "{}"),
    "fraction_below_lo": ("below lo", "{:.0%}"),
    "n_candidates": ("candidates", "{}"),
    "n_selected": ("selected", "{}"),
    "n_labelled": ("labelled", "{}"),
    "n_failed": ("failed", "{}"),
    "valid_mae_f": ("valid force MAE (eV/Å)", "{:.3f}"),
    "converged": ("converged", "{}"),
}


def iteration_table_html(rows: list[dict]) -> str:
    if not rows:
        return "<i>The iteration table is written when the run ends.</i>"
    head = "".join(f"<th>{header}</th>" for header, _ in TABLE_COLUMNS.values())
    body = ""
    for row in rows:
        cells = []
        for key, (_, fmt) in TABLE_COLUMNS.items():
            value = row.get(key)
            cells.append("-" if value is None else fmt.format(value))
        body += "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>"
    return f'<table class="mofmlp-iteration-table" border="1" cellpadding="4"><tr>{head}</tr>{body}</table>'


def provenance_html(summary: dict) -> str:
    """Label counts by labelling settings and the lineage of model_0, as short HTML lines."""
    if not summary:
        return "<i>The provenance summary appears when the run has its final model and dataset.</i>"
    esc = html.escape
    lines = []
    labels = summary.get("labels") or {}
    if labels:
        lines.append(
            f"Training set: {labels.get('n_frames', '?')} labelled frames from "
            f"{labels.get('n_calculations', '?')} labelling calculations"
        )
        for entry in labels.get("settings", []):
            lines.append(
                f"&nbsp;&nbsp;{entry['n_frames']} frames: {esc(str(entry.get('method')))} "
                f"(settings {esc(str(entry.get('settings_id')))}, "
                f"codes {esc(', '.join(entry.get('codes', [])))})"
            )
    lineage = summary.get("model_0") or {}
    training = lineage.get("training") or {}
    if training:
        foundation = lineage.get("foundation_model") or {}
        training_set = lineage.get("training_set") or {}
        lines.append(
            f"model_0: trained by calculation &lt;{training.get('calc_pk')}&gt; "
            f"({esc(str(training.get('code')))}, "
            f"seed {training.get('seed')}) on training set &lt;{training_set.get('pk')}&gt;, fine-tuned from "
            f"foundation &lt;{foundation.get('pk')}&gt;"
        )
    return '<div class="mofmlp-provenance">' + "<br>".join(lines) + "</div>"


class ResultsView(ipw.VBox):
    """One run's results; :meth:`follow` refreshes every few seconds until the run ends."""

    def __init__(self, model: ResultsModel, export_folder: str | Path = "mofmlp-exports", **kwargs):
        self.model = model
        self.export_folder = Path(export_folder)
        self.pk = ipw.IntText(description="Run pk:")
        open_button = ipw.Button(description="Open")
        refresh = ipw.Button(description="Refresh", icon="refresh")
        self.status = ipw.HTML()
        self.status.add_class("mofmlp-results-status")
        self.table = ipw.HTML()
        self.table.add_class("mofmlp-iteration-box")
        self.figures = ipw.Tab()
        self.figures.add_class("mofmlp-figures")
        self.report = ipw.HTML()
        self.report.add_class("mofmlp-report")
        self.provenance = ipw.HTML()
        export_dataset = ipw.Button(description="Export dataset")
        export_archive = ipw.Button(description="Export AiiDA archive")
        self.exported = ipw.HTML()
        self.exported.add_class("mofmlp-exported")
        self.message = ipw.HTML()
        self.message.add_class("mofmlp-results-message")
        super().__init__(
            children=[
                ipw.HTML("<h3>4. Results</h3>"),
                ipw.HBox([self.pk, open_button, refresh]),
                self.status,
                self.message,
                ipw.HTML("<b>Iterations</b>"),
                self.table,
                ipw.HTML("<b>Figures</b>"),
                self.figures,
                ipw.HTML("<b>Provenance of the final model</b>"),
                self.provenance,
                ipw.HBox([export_dataset, export_archive]),
                self.exported,
                ipw.HTML("<b>Report</b>"),
                self.report,
            ],
            **kwargs,
        )
        open_button.on_click(lambda _: self.open_run(self.pk.value))
        refresh.on_click(lambda _: self._guarded(model.refresh))
        export_dataset.on_click(
            lambda _: self._guarded(lambda: model.export_dataset(self._target("dataset")))
        )
        export_archive.on_click(
            lambda _: self._guarded(lambda: model.export_archive(self._target("archive.aiida")))
        )
        model.observe(
            self._render, ["status", "rows", "figures", "report", "provenance", "message", "exported"]
        )
        self._follower: threading.Thread | None = None

    def open_run(self, pk: int) -> None:
        self.pk.value = int(pk)
        self._guarded(lambda: self.model.load(pk))
        self.follow()

    def follow(self, interval: float = 3.0, limit: float = 3600.0) -> None:
        """Refresh in the background until the run has terminated (or ``limit`` seconds)."""
        if self._follower is not None and self._follower.is_alive():
            return
        stop = threading.Event()

        def _loop():
            import time

            from aiida import orm

            start = time.monotonic()
            while not stop.wait(interval) and time.monotonic() - start < limit:
                self._guarded(self.model.refresh)
                try:
                    if orm.load_node(self.model.run_pk).is_terminated:
                        self._guarded(self.model.refresh)
                        return
                except Exception:
                    return

        self._follower = threading.Thread(target=_loop, daemon=True)
        self._follower.start()

    def _target(self, name: str) -> Path:
        return (self.export_folder / f"run_{self.model.run_pk}" / name).resolve()

    def _guarded(self, action) -> None:
        try:
            action()
        except Exception as error:
            self.model.message = readable_error(error, "updating the results")

    def _render(self, _change=None) -> None:
        model = self.model
        self.status.value = f"<b>{html.escape(model.status)}</b>"
        self.message.value = (
            f'<div style="color:#b00020">{html.escape(model.message)}</div>' if model.message else ""
        )
        self.table.value = iteration_table_html(model.rows)
        self.report.value = (
            '<pre style="max-height:300px;overflow:auto;font-size:11px">'
            + html.escape("\n".join(model.report) or "(no report yet: the daemon has not started the run)")
            + "</pre>"
        )
        self.provenance.value = provenance_html(model.provenance)
        self.exported.value = "<br>".join(
            f"{what}: <code>{html.escape(path)}</code>" for what, path in model.exported.items()
        )
        names = list(model.figures)
        if [getattr(child, "_mofmlp_name", None) for child in self.figures.children] != names:
            images = []
            for name in names:
                image = ipw.Image(
                    value=Path(model.figures[name]).read_bytes(), format="png", layout={"width": "560px"}
                )
                image.add_class("mofmlp-figure")
                image._mofmlp_name = name
                images.append(image)
            self.figures.children = images
            for index, name in enumerate(names):
                self.figures.set_title(index, name.replace("_", " "))
