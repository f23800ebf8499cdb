"""The app: the five steps in tabs, wired together; the notebook only displays :class:`MofMlpApp`."""

from __future__ import annotations

import html
import os
import time

import ipywidgets as ipw

from aiida_mofmlp.app.messages import readable_error

#: the tabs, in order
STEPS = ("1. Structure", "2. Configure", "3. Submit", "4. Results", "5. Runs")


def load_app_profile() -> str:
    """Load the AiiDA profile ``$MOFMLP_PROFILE`` (default: the default profile); its name."""
    from aiida import load_profile

    from aiida_mofmlp.common.codes import put_environment_bin_on_path

    put_environment_bin_on_path()  # the daemon client finds `verdi` in a kernel started without the venv
    return load_profile(os.environ.get("MOFMLP_PROFILE") or None, allow_switch=True).name


class MofMlpApp(ipw.VBox):
    """Active learning of MACE potentials for MOFs, from a browser."""

    def __init__(self, **kwargs):
        start = time.monotonic()
        header = ipw.HTML(
            "<h2>aiida-mofmlp: active learning of MACE potentials for metal-organic frameworks</h2>"
            "<p>Pick a framework, choose the guest and protocol, submit, and follow the loop "
            "(Jin et al., Chem. Sci. 2026, DOI 10.1039/D5SC09058J).</p>"
        )
        try:
            self.profile = load_app_profile()
            body = self._build_steps()
        except Exception as error:  # a readable message in the page, never a traceback
            failure = ipw.HTML(
                f'<div style="color:#b00020">{html.escape(readable_error(error, "starting the app"))}</div>'
            )
            failure.add_class("mofmlp-footer")
            super().__init__(children=[header, failure], **kwargs)
            return
        footer = ipw.HTML(
            f"<small>AiiDA profile <code>{html.escape(self.profile)}</code>; app built in "
            f"{time.monotonic() - start:.1f} s</small>"
        )
        footer.add_class("mofmlp-footer")
        super().__init__(children=[header, body, footer], **kwargs)

    def _build_steps(self) -> ipw.Tab:
        from aiida_mofmlp.app.configure.model import ConfigureModel
        from aiida_mofmlp.app.configure.view import ConfigureView
        from aiida_mofmlp.app.results.model import ResultsModel
        from aiida_mofmlp.app.results.view import ResultsView
        from aiida_mofmlp.app.runs.model import RunsModel
        from aiida_mofmlp.app.runs.view import RunsView
        from aiida_mofmlp.app.structure.model import StructureModel
        from aiida_mofmlp.app.structure.view import StructureView
        from aiida_mofmlp.app.submit.model import SubmitModel
        from aiida_mofmlp.app.submit.view import SubmitView

        self.structure_model = StructureModel()
        self.configure_model = ConfigureModel()
        self.submit_model = SubmitModel(self.structure_model, self.configure_model)
        self.results_model = ResultsModel()
        self.runs_model = RunsModel()
        self.structure_view = StructureView(self.structure_model)
        self.configure_view = ConfigureView(
            self.configure_model, elements=lambda: self.structure_model.elements
        )
        self.submit_view = SubmitView(self.submit_model, on_submitted=self.open_results)
        self.results_view = ResultsView(self.results_model)
        self.runs_view = RunsView(self.runs_model, on_open=self.open_results)
        views = [
            self.structure_view,
            self.configure_view,
            self.submit_view,
            self.results_view,
            self.runs_view,
        ]
        self.steps = ipw.Tab(children=views)
        for index, title in enumerate(STEPS):
            self.steps.set_title(index, title)
        self.steps.observe(self._on_step, "selected_index")
        self.structure_model.observe(lambda _: self.configure_view.render_validation(), "structure")
        return self.steps

    def open_results(self, pk: int) -> None:
        """Show run ``pk`` in the results step, followed live."""
        self.steps.selected_index = STEPS.index("4. Results")
        self.results_view.open_run(pk)

    def _on_step(self, change) -> None:
        title = STEPS[change["new"]] if change["new"] is not None else ""
        if title == "3. Submit":
            self.submit_view.render()
        elif title == "5. Runs":
            self.runs_view.refresh()
