"""Submit step view: what will run, what blocks it, the Submit button and its outcome."""

from __future__ import annotations

import html
import json
from collections.abc import Callable

import ipywidgets as ipw

from aiida_mofmlp.app.messages import as_html_list, readable_error
from aiida_mofmlp.app.submit.model import SubmitModel


class SubmitView(ipw.VBox):
    """Checks the choices (and the daemon), then submits; ``on_submitted(pk)`` is called after success."""

    def __init__(self, model: SubmitModel, on_submitted: Callable[[int], None] | None = None, **kwargs):
        self.model = model
        self.on_submitted = on_submitted
        self.summary = ipw.HTML()
        self.blockers = ipw.HTML()
        self.blockers.add_class("mofmlp-submit-blockers")
        check = ipw.Button(description="Check")
        self.submit_button = ipw.Button(description="Submit", button_style="success", icon="play")
        self.submit_button.add_class("mofmlp-submit-button")
        self.message = ipw.HTML()
        self.message.add_class("mofmlp-submit-message")
        super().__init__(
            children=[
                ipw.HTML("<h3>3. Submit</h3>"),
                self.summary,
                ipw.HBox([check, self.submit_button]),
                self.blockers,
                self.message,
            ],
            **kwargs,
        )
        check.on_click(lambda _: self.render())
        self.submit_button.on_click(self._submit)

    def render(self) -> None:
        """Show the run that would be submitted and anything that blocks it."""
        model = self.model
        configure = model.configure
        try:
            overrides = configure.overrides()
            loop = overrides.get("parameters", {})
            self.summary.value = (
                f"<b>{html.escape(model.structure.source or 'no framework')}</b> + "
                f"<b>{html.escape(configure.guest or 'no guest')}</b>, protocol <b>{configure.protocol}</b> "
                f"(sizes: {configure.size_preset}); loop settings: "
                f"<code>{html.escape(json.dumps(loop))}</code>; "
                f"{configure.ensemble_size} models; labels: {configure.labelling_engine}"
            )
        except Exception as error:
            self.summary.value = html.escape(readable_error(error, "reading the settings"))
        blockers = model.check()
        self.blockers.value = (
            '<div style="color:#b00020"><b>Cannot submit yet:</b>'
            f"{as_html_list(blockers, 'mofmlp-blocker-list')}</div>"
            if blockers
            else '<div style="color:#1b5e20">Ready to submit.</div>'
        )

    def _submit(self, _button) -> None:
        self.submit_button.disabled = True
        try:
            pk = self.model.submit()
        except Exception as error:  # submit() catches, this is the last guard against a traceback
            pk = None
            self.model.message = readable_error(error, "submitting the run")
        finally:
            self.submit_button.disabled = False
        colour = "#1b5e20" if pk is not None else "#b00020"
        text = html.escape(self.model.message).replace("\n", "<br>")
        self.message.value = f'<div style="color:{colour}">{text}</div>'
        if pk is not None and self.on_submitted is not None:
            self.on_submitted(pk)
