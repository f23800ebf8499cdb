"""Runs step view: a table of earlier runs; one can be opened in the results step."""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as ipw

from aiida_mofmlp.app.runs.model import COLUMNS, RunsModel


def runs_table_html(rows: list[dict]) -> str:
    head = "".join(f"<th>{header}</th>" for header in COLUMNS.values())
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape('-' if row.get(key) is None else str(row.get(key)))}</td>" for key in COLUMNS
        )
        + "</tr>"
        for row in rows
    )
    return f'<table class="mofmlp-runs-table" border="1" cellpadding="4"><tr>{head}</tr>{body}</table>'


class RunsView(ipw.VBox):
    """Lists runs; ``on_open(pk)`` shows one in the results step."""

    def __init__(self, model: RunsModel, on_open: Callable[[int], None], **kwargs):
        self.model = model
        framework = ipw.Text(description="Framework:", continuous_update=False)
        guest = ipw.Text(description="Guest:", continuous_update=False)
        ipw.link((model, "framework"), (framework, "value"))
        ipw.link((model, "guest"), (guest, "value"))
        refresh = ipw.Button(description="Refresh", icon="refresh")
        self.table = ipw.HTML()
        self.choice = ipw.Dropdown(description="Run:")
        self.choice.add_class("mofmlp-run-choice")
        open_button = ipw.Button(description="Open in results")
        open_button.add_class("mofmlp-open-run")
        self.message = ipw.HTML()
        super().__init__(
            children=[
                ipw.HTML("<h3>5. Runs in this profile</h3>"),
                ipw.HBox([framework, guest, refresh]),
                self.table,
                ipw.HBox([self.choice, open_button]),
                self.message,
            ],
            **kwargs,
        )
        refresh.on_click(lambda _: self.refresh())
        open_button.on_click(lambda _: self.choice.value is not None and on_open(self.choice.value))
        model.observe(lambda _: self.refresh(), ["framework", "guest"])

    def refresh(self) -> None:
        self.model.refresh()
        rows = self.model.rows
        self.table.value = runs_table_html(rows)
        self.choice.options = [
            (
                f"<{row['pk']}> {row.get('framework_label') or '?'} + {row.get('guest') or '-'} "
                f"({row.get('status')})",
                row["pk"],
            )
            for row in rows
        ]
        self.message.value = html.escape(self.model.message)
