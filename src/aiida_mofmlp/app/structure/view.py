"""Structure step view: upload, RASPA2 library or stored node; intake messages, supercell fix, 3D view."""

from __future__ import annotations

import html
import threading
from pathlib import Path

import ipywidgets as ipw

from aiida_mofmlp.app.messages import as_html_list, readable_error
from aiida_mofmlp.app.structure.model import StructureModel, raspa_frameworks, stored_structures
from aiida_mofmlp.app.viewer import show_structure, structure_viewer


def kernel_loop():
    """The IPython kernel's event loop (in the thread that loaded the profile), or None outside one."""
    try:
        from IPython import get_ipython

        return getattr(getattr(get_ipython(), "kernel", None), "io_loop", None)
    except Exception:
        return None


class IntakeJob:
    """``read()`` in a worker thread, then ``finish(result)`` in the kernel's thread.

    Outside a kernel (headless tests) ``finish`` waits for :meth:`wait`, called from the thread that
    loaded the profile.
    """

    def __init__(self, read, finish) -> None:
        self._finish, self._loop = finish, kernel_loop()
        self._result, self.finished = None, False
        self.thread = threading.Thread(target=self._work, args=(read,), name="mofmlp-intake", daemon=True)
        self.thread.start()

    def _work(self, read) -> None:
        self._result = read()
        if self._loop is not None:
            self._loop.add_callback(self._complete)

    def _complete(self) -> None:
        if not self.finished:
            self.finished = True
            self._finish(self._result)

    def wait(self, timeout: float | None = None) -> None:
        """Join the worker and, outside a kernel, finish here."""
        self.thread.join(timeout)
        if self._loop is None and not self.thread.is_alive():
            self._complete()


class StructureView(ipw.VBox):
    """Choose the framework; every choice runs intake and shows what it found."""

    def __init__(self, model: StructureModel, **kwargs):
        self.model = model
        self.upload = ipw.FileUpload(accept=".cif", multiple=False, description="Upload CIF")
        self.upload.add_class("mofmlp-cif-upload")
        self.library = ipw.Dropdown(options=raspa_frameworks(), description="RASPA2 CIF:")
        self.library_button = ipw.Button(description="Use this framework")
        self.stored = ipw.Dropdown(options=[], description="In profile:")
        self.stored_button = ipw.Button(description="Use this structure")
        self.r_cut = ipw.BoundedFloatText(
            value=model.r_cut,
            min=0,
            max=50,
            description="Cutoff (Å):",
            style={"description_width": "initial"},
        )
        self.summary = ipw.HTML()
        self.summary.add_class("mofmlp-structure-summary")
        self.errors = ipw.HTML()
        self.errors.add_class("mofmlp-intake-errors")
        self.warnings = ipw.HTML()
        self.warnings.add_class("mofmlp-intake-warnings")
        self.supercell_button = ipw.Button(description="Use suggested supercell", layout={"display": "none"})
        self.supercell_button.add_class("mofmlp-supercell-button")
        self.viewer = structure_viewer()
        sources = ipw.Tab(
            children=[
                ipw.VBox(
                    [ipw.HTML("A CIF file of the framework (ordered, all H atoms present)."), self.upload]
                ),
                ipw.HBox([self.library, self.library_button]),
                ipw.HBox([self.stored, self.stored_button]),
            ]
        )
        for index, title in enumerate(("Upload", "RASPA2 library", "From the profile")):
            sources.set_title(index, title)
        super().__init__(
            children=[
                ipw.HTML("<h3>1. Framework</h3>"),
                sources,
                ipw.HBox([self.r_cut, ipw.HTML("&nbsp;the cell must hold this cutoff (0: no check)")]),
                self.summary,
                self.errors,
                self.supercell_button,
                self.warnings,
                self.viewer,
            ],
            **kwargs,
        )
        self._job: IntakeJob | None = None
        self.upload.observe(self._on_upload, "value")
        self.library_button.on_click(lambda _: self._start(model.raspa_framework_path(self.library.value)))
        self.stored_button.on_click(lambda _: self._run(lambda: model.load_stored(self.stored.value)))
        self.supercell_button.on_click(lambda _: self._start(*(model.supercell_request() or (None,))))
        ipw.link((model, "r_cut"), (self.r_cut, "value"))
        model.observe(
            self._render, ["structure", "errors", "warnings", "suggested_supercell", "summary", "busy"]
        )
        self.refresh_stored()

    def refresh_stored(self) -> None:
        try:
            self.stored.options = stored_structures()
        except Exception as error:
            self.errors.value = html.escape(readable_error(error, "listing stored structures"))

    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return
        item = files[0]
        self._start(self.model.keep_upload(item["name"], bytes(item["content"])))

    def _start(self, path: Path | None, supercell: tuple[int, ...] | None = None) -> IntakeJob | None:
        """Read the CIF ``path`` in a worker thread (the kernel keeps answering), one at a time; the outcome
        is accepted in the kernel's thread, which alone may make AiiDA nodes."""
        if path is None:
            return None
        if self._job is not None and not self._job.finished:
            self.model.errors = [f"still reading {self.model.busy}; choose again when it has finished"]
            return None
        self.model.busy = path.name
        self._set_choosing(False)
        self._job = IntakeJob(lambda: self.model.read_cif_file(path, supercell), self._finish)
        return self._job

    def _finish(self, outcome) -> None:
        try:
            self._run(lambda: self.model.accept(outcome))
        finally:  # the controls first: the result shows when busy is cleared
            self._set_choosing(True)
            self.model.busy = ""

    def _set_choosing(self, enabled: bool) -> None:
        for widget in (self.upload, self.library_button, self.stored_button, self.supercell_button):
            widget.disabled = not enabled

    def _run(self, action) -> None:
        try:
            action()
        except Exception as error:  # never a traceback in the page
            self.model.errors = [readable_error(error, "structure intake")]

    def _render(self, _change=None) -> None:
        model = self.model
        if model.busy:
            self.summary.value = f"<i>Reading {html.escape(model.busy)} (structure intake) ...</i>"
            return
        self.summary.value = f"<b>{html.escape(model.summary)}</b>" if model.summary else ""
        errors = as_html_list(model.errors, "mofmlp-error-list")
        self.errors.value = (
            f'<div style="color:#b00020"><b>{html.escape(model.source)} was not accepted:</b>{errors}</div>'
            if model.errors
            else ""
        )
        warnings = as_html_list(model.warnings, "mofmlp-warning-list")
        self.warnings.value = (
            f'<div style="color:#8a5300"><b>Warnings:</b>{warnings}</div>' if warnings else ""
        )
        if model.suggested_supercell:
            self.supercell_button.description = f"Use supercell {tuple(model.suggested_supercell)}"
            self.supercell_button.layout.display = None
        else:
            self.supercell_button.layout.display = "none"
        if model.structure is not None:
            try:
                show_structure(self.viewer, model.structure.get_ase())
            except Exception as error:
                self.warnings.value += html.escape(readable_error(error, "3D view"))
