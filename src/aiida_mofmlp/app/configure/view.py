"""Configure step view: widgets linked to :class:`ConfigureModel`, its validation messages shown live."""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as ipw

from aiida_mofmlp.app.configure.model import (
    SHIPPED_FOUNDATION,
    STAGE_LABELS,
    STAGES,
    ConfigureModel,
    available_properties,
    builtin_guests,
    protocols,
    stored_models,
)
from aiida_mofmlp.app.messages import as_html_list, readable_error
from aiida_mofmlp.app.uploads import UploadFolder

_WIDE = {"description_width": "initial"}


class ConfigureView(ipw.VBox):
    """Guest, conditions, protocol, foundation, trust, ensemble, properties, codes and resources."""

    def __init__(self, model: ConfigureModel, elements: Callable[[], set[str]] = set, **kwargs):
        self.model = model
        self._elements = elements
        self._protocols = protocols()
        guest = ipw.Dropdown(
            options=[("empty framework", ""), *[(g, g) for g in builtin_guests()]], description="Guest:"
        )
        guest.add_class("mofmlp-guest")
        loadings = ipw.Text(description="Loadings (per cell):", style=_WIDE, continuous_update=False)
        temperatures = ipw.Text(description="Temperatures (K):", style=_WIDE, continuous_update=False)
        protocol = ipw.ToggleButtons(options=list(self._protocols), description="Protocol:")
        protocol.add_class("mofmlp-protocol")
        self.protocol_help = ipw.HTML()
        preset = ipw.Dropdown(
            options=[
                ("the protocol's", "protocol"),
                ("demo (3 iterations, minutes)", "demo"),
                ("tiny (2 iterations, tests)", "tiny"),
            ],
            description="Sizes:",
        )
        preset.add_class("mofmlp-size-preset")
        self.foundation = ipw.Dropdown(description="Foundation model:", style=_WIDE)
        self.model_upload = ipw.FileUpload(accept=".model", multiple=False, description="Upload model")
        self._model_uploads = UploadFolder("mofmlp-model-")
        trust_file = ipw.Checkbox(
            description="I trust this model file (a pickled .model can run code when opened; it is opened "
            "once, in a separate process without access to the profile, and kept as weights from then on)",
            indent=False,
            layout=ipw.Layout(width="auto"),
        )
        trust_file.add_class("mofmlp-trust-model")
        trust_lo = ipw.BoundedFloatText(min=0, max=10, step=0.01, description="Trust lo (eV/Å):", style=_WIDE)
        trust_hi = ipw.BoundedFloatText(
            min=0, max=100, step=0.01, description="Trust hi (eV/Å):", style=_WIDE
        )
        ensemble = ipw.BoundedIntText(min=1, max=16, description="Ensemble size:", style=_WIDE)
        iterations = ipw.BoundedIntText(min=1, max=50, description="Max iterations:", style=_WIDE)
        engine = ipw.Dropdown(options=[("GFN1-xTB (tblite)", "xtb"), ("CP2K", "cp2k")], description="Labels:")
        for trait, widget in (
            ("guest", guest),
            ("loadings", loadings),
            ("temperatures", temperatures),
            ("protocol", protocol),
            ("trust_lo", trust_lo),
            ("trust_hi", trust_hi),
            ("ensemble_size", ensemble),
            ("max_iterations", iterations),
            ("labelling_engine", engine),
            ("trust_model_file", trust_file),
        ):
            ipw.link((model, trait), (widget, "value"))
        self.preset = preset
        preset.value = model.size_preset
        preset.observe(self._on_preset, "value")
        protocol.observe(self._on_preset, "value")
        self.properties = self._property_boxes()
        self.stage_box = ipw.VBox()
        self.validation = ipw.HTML()
        self.validation.add_class("mofmlp-validation")
        check = ipw.Button(description="Check settings")
        check.on_click(lambda _: self.render_validation())
        super().__init__(
            children=[
                ipw.HTML("<h3>2. Configure</h3>"),
                ipw.HBox([guest, loadings, temperatures]),
                protocol,
                self.protocol_help,
                preset,
                ipw.HBox([self.foundation, self.model_upload]),
                trust_file,
                ipw.HBox([trust_lo, trust_hi]),
                ipw.HBox([ensemble, iterations, engine]),
                ipw.HTML("<b>Properties of the final ensemble</b> (offered when installed):"),
                self.properties,
                ipw.HTML("<b>Codes and resources per stage</b> (0: the protocol's value)"),
                self.stage_box,
                check,
                self.validation,
            ],
            **kwargs,
        )
        self.foundation.observe(self._on_foundation, "value")
        self.model_upload.observe(self._on_model_upload, "value")
        model.observe(lambda _: self.render_stages(), ["labelling_engine", "guest"])
        model.observe(lambda _: self.render_validation(), list(model.trait_names()))
        self.refresh_models()
        self.render_stages()
        self._render_protocol_help()

    # --- pieces -------------------------------------------------------------------------------------
    def _property_boxes(self) -> ipw.Widget:
        try:
            found = available_properties()
        except Exception as error:
            return ipw.HTML(html.escape(readable_error(error, "looking up the property work chains")))
        if not found:
            return ipw.HTML("<i>No property work chain is installed yet.</i>")
        boxes = [ipw.Checkbox(description=label, value=label in self.model.properties) for label in found]
        for box in boxes:
            box.observe(
                lambda _: setattr(self.model, "properties", [b.description for b in boxes if b.value]),
                "value",
            )
        return ipw.HBox(boxes)

    def refresh_models(self) -> None:
        try:
            stored = [(description, f"pk:{pk}") for description, pk in stored_models()]
        except Exception:
            stored = []
        self.foundation.options = [(SHIPPED_FOUNDATION, SHIPPED_FOUNDATION), *stored]
        if self.model.foundation in dict(self.foundation.options).values():
            self.foundation.value = self.model.foundation

    def render_stages(self) -> None:
        model = self.model
        rows = []
        for stage in STAGES:
            if stage not in model.needed_stages():
                continue
            code = ipw.Text(
                value=model.code_labels.get(stage, ""),
                description="code",
                layout={"width": "260px"},
                continuous_update=False,
            )
            machines = ipw.BoundedIntText(
                value=model.machines[stage],
                min=0,
                max=10000,
                description="machines",
                layout={"width": "160px"},
            )
            mpi = ipw.BoundedIntText(
                value=model.mpiprocs[stage],
                min=0,
                max=100000,
                description="MPI procs",
                layout={"width": "170px"},
            )
            wall = ipw.BoundedIntText(
                value=model.walltime[stage],
                min=0,
                max=10**7,
                description="walltime (s)",
                layout={"width": "190px"},
                style=_WIDE,
            )
            code.add_class(f"mofmlp-code-{stage}")
            for widget, trait in (
                (code, "code_labels"),
                (machines, "machines"),
                (mpi, "mpiprocs"),
                (wall, "walltime"),
            ):
                widget.observe(self._stage_setter(stage, trait), "value")
            rows.append(
                ipw.HBox(
                    [ipw.HTML(f"{STAGE_LABELS[stage]}", layout={"width": "200px"}), code, machines, mpi, wall]
                )
            )
        self.stage_box.children = rows

    def _stage_setter(self, stage: str, trait: str):
        def _set(change):
            setattr(self.model, trait, {**getattr(self.model, trait), stage: change["new"]})

        return _set

    def render_validation(self) -> None:
        try:
            messages = self.model.validate(self._elements())
        except Exception as error:
            messages = [readable_error(error, "checking the settings")]
        if messages:
            self.validation.value = (
                '<div style="color:#b00020"><b>To fix before submitting:</b>'
                f"{as_html_list(messages, 'mofmlp-validation-list')}</div>"
            )
        else:
            self.validation.value = '<div style="color:#1b5e20">Settings are valid.</div>'

    def _render_protocol_help(self) -> None:
        self.protocol_help.value = f"<i>{html.escape(self._protocols.get(self.model.protocol, ''))}</i>"

    # --- events -------------------------------------------------------------------------------------
    def _on_preset(self, _change=None) -> None:
        try:
            self.model.apply_preset(self.preset.value)
        except Exception as error:
            self.validation.value = html.escape(readable_error(error, "applying the sizes"))
        self._render_protocol_help()

    def _on_foundation(self, change) -> None:
        if change["new"]:
            self.model.foundation = change["new"]

    def _on_model_upload(self, change) -> None:
        if not change["new"]:
            return
        item = change["new"][0]
        path = self._model_uploads.put(item["name"], bytes(item["content"]))
        self.model.foundation = f"file:{path}"
