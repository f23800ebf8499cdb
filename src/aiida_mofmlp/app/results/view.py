"""Results step view: status, iteration table, figures, property runs, report, provenance and exports;
refreshed live."""

from __future__ import annotations

import asyncio
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
        return "<i>No iteration has been assessed yet: rows appear as the loop goes.</i>"
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


def properties_html(rows: list[dict], note: str) -> str:
    """One line per ticked property (state, pk, exit message, model card table) and the note, as HTML."""
    esc = html.escape
    if not rows:
        return f"<i>{esc(note)}</i>" if note else "<i>No property work chain was ticked for this run.</i>"
    lines = []
    for row in rows:
        pk = f" &lt;{row['pk']}&gt;" if row.get("pk") is not None else ""
        line = f"<b>{esc(row['label'])}</b>{pk}: {esc(row['state'])}"
        if row.get("exit_message"):
            line += f' <span style="color:#b00020">({esc(row["exit_message"])})</span>'
        if row.get("figure_error"):
            line += f' <span style="color:#b00020">{esc(row["figure_error"])}</span>'
        if row.get("card"):
            header, *body = row["card"]
            cells = "".join(f"<th>{esc(cell)}</th>" for cell in header)
            for values in body:
                cells += "<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in values) + "</tr>"
            line += f'<table class="mofmlp-model-card" border="1" cellpadding="3"><tr>{cells}</table>'
        lines.append(f'<li class="mofmlp-property">{line}</li>')
    text = f'<ul class="mofmlp-properties">{"".join(lines)}</ul>'
    if note:
        text += f'<div style="color:#b00020">{esc(note)}</div>'
    return text


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
        run_properties = ipw.Button(description="Run ticked properties", layout={"width": "200px"})
        self.properties = ipw.HTML()
        self.properties.add_class("mofmlp-properties-box")
        self.property_figures = ipw.Tab()
        self.property_figures.add_class("mofmlp-property-figures")
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
                ipw.HTML("<b>Properties of the final ensemble</b>"),
                run_properties,
                self.properties,
                self.property_figures,
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
        run_properties.on_click(lambda _: self._run_properties())
        export_dataset.on_click(
            lambda _: self._guarded(lambda: model.export_dataset(self._target("dataset")))
        )
        export_archive.on_click(
            lambda _: self._guarded(lambda: model.export_archive(self._target("archive.aiida")))
        )
        model.observe(
            self._render,
            [
                "status",
                "rows",
                "figures",
                "report",
                "provenance",
                "message",
                "exported",
                "properties",
                "properties_note",
            ],
        )
        self._follower: threading.Thread | None = None
        self._stop_following = threading.Event()

    def open_run(self, pk: int) -> None:
        self.pk.value = int(pk)
        self._guarded(lambda: self.model.load(pk))
        self.follow()

    def _run_properties(self) -> None:
        self._guarded(self.model.run_properties)
        self.follow()

    def follow(self, interval: float = 3.0, limit: float = 3600.0) -> None:
        """Refresh in the background until the run and its property runs have ended (or ``limit`` s)."""
        if self._follower is not None and self._follower.is_alive():
            return
        self._stop_following = stop = threading.Event()
        try:  # the kernel's event loop: AiiDA stores nodes (submissions) only from the kernel's thread
            kernel_loop = asyncio.get_running_loop()
        except RuntimeError:
            kernel_loop = None

        def _loop():
            import time

            start = time.monotonic()
            while not stop.wait(interval) and time.monotonic() - start < limit:
                try:
                    was_live = self.model.is_live()
                except Exception as error:  # said in the page, not swallowed; following stops
                    self.model.message = readable_error(error, "following the run")
                    return
                self._guarded(lambda: self.model.refresh(submit=False))
                if self.model.submission_due and kernel_loop is not None:
                    # the loop has ended: the kernel's thread submits the ticked properties
                    try:
                        kernel_loop.call_soon_threadsafe(lambda: self._guarded(self.model.refresh))
                    except RuntimeError:  # the kernel's loop has closed
                        return
                    continue
                try:
                    if not was_live and not self.model.is_live():
                        return
                except Exception as error:
                    self.model.message = readable_error(error, "following the run")
                    return

        self._follower = threading.Thread(target=_loop, daemon=True, name="mofmlp-results-follower")
        self._follower.start()

    def stop_following(self, timeout: float = 10.0) -> None:
        """Stop the background refresh (if any) and wait up to ``timeout`` s for its thread to end."""
        self._stop_following.set()
        if self._follower is not None and self._follower is not threading.current_thread():
            self._follower.join(timeout)

    def close(self) -> None:
        """Close the widgets after stopping the background refresh: no query outlives the view."""
        self.stop_following()
        super().close()

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
        self.properties.value = properties_html(model.properties, model.properties_note)
        self._render_property_figures()

    def _render_property_figures(self) -> None:
        """One tab per figure of the finished property runs (redrawn when the set of figures changes)."""
        figures = {
            f"{row['label']}: {name.replace('_', ' ')}": path
            for row in self.model.properties
            for name, path in row.get("figures", {}).items()
        }
        if [getattr(child, "_mofmlp_name", None) for child in self.property_figures.children] == list(
            figures
        ):
            return
        images = []
        for title, path in figures.items():
            image = ipw.Image(value=Path(path).read_bytes(), format="png", layout={"width": "640px"})
            image.add_class("mofmlp-property-figure")
            image._mofmlp_name = title
            images.append(image)
        self.property_figures.children = images
        for index, title in enumerate(figures):
            self.property_figures.set_title(index, title)
