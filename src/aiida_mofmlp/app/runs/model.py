"""Runs step: earlier active-learning runs from the provenance queries (tools.queries.list_runs)."""

from __future__ import annotations

import traitlets as tl

from aiida_mofmlp.app.messages import readable_error

#: columns of the runs table: key of tools.queries.run_info -> header
COLUMNS = {
    "pk": "pk",
    "ctime": "created",
    "framework_label": "framework",
    "guest": "guest",
    "protocol": "protocol",
    "status": "status",
    "n_iterations": "iterations",
    "n_models": "models",
    "n_training": "dataset frames",
}


class RunsModel(tl.HasTraits):
    """The runs of the profile, newest first, filtered like ``aiida-mofmlp runs list``."""

    rows = tl.List()
    framework = tl.Unicode("")
    guest = tl.Unicode("")
    message = tl.Unicode("")

    def refresh(self, limit: int = 100) -> None:
        from aiida_mofmlp.tools.queries import list_runs

        try:
            self.rows = list_runs(framework=self.framework or None, guest=self.guest or None, limit=limit)
            self.message = "" if self.rows else "No active-learning run in this profile yet."
        except Exception as error:
            self.rows = []
            self.message = readable_error(error, "listing the runs")
