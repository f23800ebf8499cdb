"""Structure step view: upload, RASPA2 library or stored node; intake messages, supercell fix, 3D view."""

from __future__ import annotations

import html

import ipywidgets as ipw

from aiida_mofmlp.app.messages import as_html_list, readable_error
from aiida_mofmlp.app.structure.model import StructureModel, raspa_frameworks, stored_structures
from aiida_mofmlp.app.viewer import show_structure, structure_viewer


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
        self.upload.observe(self._on_upload, "value")
        self.library_button.on_click(
            lambda _: self._run(lambda: model.load_raspa_framework(self.library.value))
        )
        self.stored_button.on_click(lambda _: self._run(lambda: model.load_stored(self.stored.value)))
        self.supercell_button.on_click(lambda _: self._run(model.apply_suggested_supercell))
        ipw.link((model, "r_cut"), (self.r_cut, "value"))
        model.observe(self._render, ["structure", "errors", "warnings", "suggested_supercell", "summary"])
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
        self._run(lambda: self.model.load_upload(item["name"], bytes(item["content"])))

    def _run(self, action) -> None:
        try:
            action()
        except Exception as error:  # never a traceback in the page
            self.model.errors = [readable_error(error, "structure intake")]

    def _render(self, _change=None) -> None:
        model = self.model
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
