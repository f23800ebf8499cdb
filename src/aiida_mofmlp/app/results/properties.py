"""The property work chains ticked in Configure, run on the loop's final ensemble once the loop has ended.

The submit step records the ticked labels (:data:`~aiida_mofmlp.app.configure.model.PROPERTY_WORKFLOWS`)
in the loop node's extra :data:`PROPERTIES_EXTRA`. When the loop has ended with a usable ensemble (finished
ok, or a ``WARNING_*`` exit such as 410 not converged, with ``models`` outputs), :func:`submit_properties`
submits one work chain per label, each from its own ``get_builder_from_protocol`` exactly as the
``examples/`` scripts call it on a loop's final ensemble, with the loop's codes and protocol; the new pks go
to the extra :data:`RUNS_EXTRA` (``{label: pk}``) so that nothing is submitted twice.
:func:`property_builders` makes the builders without storing or submitting anything.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from aiida import orm

#: loop-node extra: the property labels ticked in Configure (written by the submit step)
PROPERTIES_EXTRA = "mofmlp_app_properties"
#: loop-node extra: ``{label: pk}`` of the property work chains submitted on the final ensemble
RUNS_EXTRA = "mofmlp_app_property_runs"
#: input namespace of ActiveLearningWorkChain -> code kind (:data:`aiida_mofmlp.common.codes.CODES`)
LOOP_CODE_NAMESPACES = {
    "md": "md",
    "deviation": "deviation",
    "raspa": "raspa",
    "xtb_labelling": "xtb",
    "labelling": "cp2k",
    "training": "train",
}
#: code kinds each property work chain takes (the loop's codes first, else the setup's on its computer)
PROPERTY_CODES = {
    "adsorption": ("md", "widom", "raspa", "xtb", "deviation"),
    "diffusion": ("md", "deviation"),
    "thermal expansion": ("md", "deviation"),
    "melt-quench": ("md", "deviation"),
    "phonons": ("phonons", "deviation"),
    "model card": ("phonons", "md", "deviation"),
}
#: code kinds without which a property cannot run
REQUIRED_CODES = {
    "adsorption": ("md", "widom"),
    "diffusion": ("md",),
    "thermal expansion": ("md",),
    "melt-quench": ("md",),
    "phonons": ("phonons",),
    "model card": ("phonons",),
}

_SUBMIT_LOCK = threading.Lock()  # two callers in one kernel (refresh, button) never submit the same run twice


class PropertyError(ValueError):
    """Why the ticked properties of a loop cannot run (a sentence for the user)."""


def ticked_properties(run: orm.ProcessNode) -> list[str]:
    """The property labels ticked in Configure for ``run`` (empty when none)."""
    return list(run.base.extras.get(PROPERTIES_EXTRA, []) or [])


def property_runs(run: orm.ProcessNode) -> dict[str, int]:
    """``{label: pk}`` of the property work chains already submitted on ``run``'s final ensemble."""
    return {label: int(pk) for label, pk in (run.base.extras.get(RUNS_EXTRA, {}) or {}).items()}


def ensemble_problem(run: orm.ProcessNode) -> str | None:
    """None when ``run`` ended with a usable final ensemble; else a sentence saying why not."""
    from aiida_mofmlp.tools.queries import process_status

    status = process_status(run)
    name = f"{run.process_label}<{run.pk}>"
    if status == "running":
        return f"{name} has not ended yet; the ticked properties run on its final ensemble when it ends"
    if status in ("ok", "warning"):
        if "models" in run.outputs and len(run.outputs.models):
            return None
        return f"{name} ended (exit status {run.exit_status}) without a final ensemble (`models` outputs)"
    detail = (
        f"failed with exit status {run.exit_status} ({run.exit_message or 'no message'})"
        if status == "failed"
        else f"was {status}"
    )
    return (
        f"{name} {detail}, so it has no usable final ensemble and the ticked properties were not run; "
        "continue it with ActiveLearningWorkChain.get_builder_restart and run "
        "the properties on the new run"
    )


def loop_codes(run: orm.ProcessNode) -> dict[str, orm.AbstractCode]:
    """The codes the loop ran with (the ones chosen in Configure), by kind (``md``, ``deviation``, ...)."""
    codes: dict[str, orm.AbstractCode] = {}
    for link in run.base.links.get_incoming(node_class=orm.AbstractCode).all():
        kind = LOOP_CODE_NAMESPACES.get(link.link_label.split("__")[0])
        if kind is not None:
            codes.setdefault(kind, link.node)
    return codes


def property_codes(run: orm.ProcessNode, labels: Sequence[str]) -> dict[str, orm.AbstractCode | None]:
    """Codes for the properties ``labels``: the loop's, else ``aiida-mofmlp setup``'s code of that kind on
    the computer of the loop's MD code (then on its default computer); None where there is none."""
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    from aiida_mofmlp.common.codes import CODES, code_label

    codes: dict[str, orm.AbstractCode | None] = dict(loop_codes(run))
    computer = codes["md"].computer.label if codes.get("md") is not None else None
    kinds = {kind for label in labels for kind in PROPERTY_CODES.get(label, ())}
    for kind in sorted(kinds - set(codes)):
        candidates = [f"{CODES[kind][0]}@{computer}"] if computer else []
        codes[kind] = None
        for candidate in [*candidates, code_label(kind)]:
            try:
                codes[kind] = orm.load_code(candidate)
                break
            except (NotExistent, MultipleObjectsError):
                continue
    return codes


def run_protocol(run: orm.ProcessNode) -> str | None:
    """The protocol the loop ran with (its parameters' ``protocol``)."""
    return run.inputs.parameters.get_dict().get("protocol")


def loaded_frame_index(frames) -> int | None:
    """Index of the starting frame with the most guests (``info['loading']``), or None when none has one."""
    best, index = 0, None
    for position, atoms in enumerate(frames.iter_frames()):
        loading = int(atoms.info.get("loading", 0) or 0)
        if loading > best:
            best, index = loading, position
    return index


def property_builders(
    run: orm.ProcessNode,
    labels: Sequence[str],
    codes: Mapping[str, orm.AbstractCode | None],
    protocol: str | None = None,
    loaded=None,
) -> dict:
    """``{label: builder}`` of the property work chains ``labels`` on ``run``'s final ensemble.

    Each builder comes from its work chain's ``get_builder_from_protocol``, called as the ``examples/``
    scripts call it with a loop's final ensemble: the loop's framework (``inputs.structure``), guest and
    ``models`` outputs, ``codes`` by kind and ``protocol``. ``loaded`` (diffusion only) is a StructureSetData
    whose frame 0 holds guests. Nothing is stored or submitted; PropertyError says what is missing.
    """
    from aiida.plugins import WorkflowFactory

    from aiida_mofmlp.app.configure.model import PROPERTY_WORKFLOWS

    problem = ensemble_problem(run)
    if problem:
        raise PropertyError(problem)
    structure = run.inputs.structure
    guest = run.inputs.guest if "guest" in run.inputs else None
    models = dict(run.outputs.models)
    ensemble = len(models) > 1
    builders = {}
    for label in labels:
        if label not in PROPERTY_WORKFLOWS:
            raise PropertyError(f"property {label!r} is not known; valid: {', '.join(PROPERTY_WORKFLOWS)}")
        missing = [kind for kind in REQUIRED_CODES[label] if codes.get(kind) is None]
        if missing:
            raise PropertyError(
                f"{label}: no code for {missing}; run `aiida-mofmlp setup` so that the codes exist"
            )
        cls = WorkflowFactory(PROPERTY_WORKFLOWS[label])
        deviation = codes.get("deviation") if ensemble else None
        if label == "adsorption":
            if guest is None:
                raise PropertyError("adsorption: the run has no guest (empty framework); nothing adsorbs")
            builder = cls.get_builder_from_protocol(
                {kind: codes.get(kind) for kind in ("md", "widom", "raspa", "xtb")},
                structure,
                guest,
                models,
                protocol=protocol,
                deviation_code=codes.get("deviation"),
            )
        elif label == "diffusion":
            if loaded is None:
                raise PropertyError(
                    "diffusion: needs a frame with guests (the loop's loaded starting frame); the run has "
                    "none (empty framework or no `history.starting_frames`)"
                )
            builder = cls.get_builder_from_protocol(
                codes["md"], loaded, models, protocol=protocol, deviation_code=codes.get("deviation")
            )
        elif label in ("thermal expansion", "melt-quench"):
            builder = cls.get_builder_from_protocol(
                codes["md"], structure, models, protocol=protocol, deviation_code=deviation
            )
        elif label == "phonons":
            builder = cls.get_builder_from_protocol(
                codes["phonons"], structure, models, protocol=protocol, deviation_code=deviation
            )
        else:  # model card
            builder = cls.get_builder_from_protocol(
                codes["phonons"],
                structure,
                models,
                md_code=codes.get("md"),
                guest=guest,
                validation_frames=run.outputs.validation_frames
                if "validation_frames" in run.outputs
                else None,
                protocol=protocol,
                deviation_code=deviation,
            )
        builders[label] = builder
    return builders


def loaded_frame(run: orm.ProcessNode):
    """The loop's starting frame with the most guests as a one-frame StructureSetData (a calcfunction,
    ``subset_frames``, records where it came from), or None when the run has no such frame."""
    from aiida_mofmlp.workflows.functions.xtb import subset_frames

    history = run.outputs.history if "history" in run.outputs else {}
    if "starting_frames" not in history:
        return None
    frames = history["starting_frames"]
    index = loaded_frame_index(frames)
    if index is None:
        return None
    return subset_frames(frames, orm.List([index]))


def submit_properties(run: orm.ProcessNode) -> tuple[dict[str, int], list[str]]:
    """Submit the ticked properties of the ended ``run`` not submitted yet; ``({label: pk}, messages)``.

    Idempotent: the pks are kept in the extra :data:`RUNS_EXTRA` and a label found there is never submitted
    again. PropertyError when the loop has no usable final ensemble (or has not ended) or the daemon is not
    running; a property that cannot be built or submitted gives a message and the others still go, and
    the builders' warnings (e.g. NPT with a model trained without stress) are messages too. Call it from
    the thread that loaded the AiiDA profile (the kernel's): AiiDA stores nodes only from that one.
    """
    from aiida.engine import submit

    from aiida_mofmlp.app.messages import daemon_status, readable_error

    with _SUBMIT_LOCK:
        runs = property_runs(run)
        pending = [label for label in ticked_properties(run) if label not in runs]
        if not pending:
            return runs, []
        problem = ensemble_problem(run)
        if problem:
            raise PropertyError(problem)
        running, sentence = daemon_status()
        if not running:
            raise PropertyError(
                f"the ticked properties ({', '.join(pending)}) were not submitted: {sentence} "
                "(or press 'Run ticked properties')"
            )
        codes = property_codes(run, pending)
        protocol = run_protocol(run)
        messages = []
        for label in pending:
            try:
                loaded = loaded_frame(run) if label == "diffusion" else None
                with warnings.catch_warnings(record=True) as caught:  # e.g. NPT without stress labels
                    warnings.simplefilter("always", UserWarning)
                    builder = property_builders(run, [label], codes, protocol, loaded)[label]
                messages += [f"{label}: {warning.message}" for warning in caught]
                builder.metadata.label = f"{label} on the final ensemble of {run.process_label}<{run.pk}>"
                builder.metadata.description = "submitted from the aiida-mofmlp AiiDAlab app"
                node = submit(builder)
            except Exception as error:
                messages.append(readable_error(error, f"submitting {label}"))
                continue
            runs[label] = node.pk
            run.base.extras.set(RUNS_EXTRA, runs)
        return runs, messages


def property_figures(label: str, node: orm.ProcessNode, folder: str | Path) -> dict[str, str]:
    """``{figure name: PNG path}`` of a finished property run, drawn by the tools' plotting functions.

    The model card has no figure (its ``card`` is shown as a table: :func:`card_rows`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if label == "adsorption":
        from aiida_mofmlp.tools.plots_adsorption import plot_adsorption

        plots = {"adsorption": plot_adsorption(node, folder / "adsorption.png")}
    elif label in ("diffusion", "thermal expansion", "melt-quench"):
        from aiida_mofmlp.tools import plots_dynamics

        function = {
            "diffusion": plots_dynamics.plot_diffusion,
            "thermal expansion": plots_dynamics.plot_thermal_expansion,
            "melt-quench": plots_dynamics.plot_melt_quench,
        }[label]
        name = label.replace(" ", "_").replace("-", "_")
        plots = {name: function(node, folder / f"{name}.png")}
    elif label == "phonons":
        from aiida_mofmlp.tools.plots_phonons import plot_phonons_run

        plots = plot_phonons_run(node, folder)
    else:
        return {}
    return {name: str(plot.path) for name, plot in plots.items() if plot.path is not None}


def card_rows(node: orm.ProcessNode) -> list[list[str]]:
    """The model card as rows ``[quantity, value per model..., unit]`` with a header row first."""
    if "card" not in node.outputs:
        return []
    card = node.outputs.card.get_dict()
    labels = sorted(card.get("models", {}))
    rows = [["quantity", *labels, "unit"]]
    for key in card.get("quantities", []):
        values = [card["models"][label].get(key) for label in labels]
        cells = [f"{value:.4g}" if isinstance(value, float) else str(value) for value in values]
        rows.append([key, *cells, str(card.get("units", {}).get(key, ""))])
    return rows
