"""The properties ticked in Configure: run by the loop itself, or afterwards on its final ensemble.

The submit step gives the loop the ticked properties (input ``properties``, plus ``property_codes`` for
kinds the loop does not use) and records the labels in the extra :data:`PROPERTIES_EXTRA`; the loop then
ends with a ``PropertiesWorkChain`` (:mod:`aiida_mofmlp.workflows.properties.selected`), so every property
run is a descendant of the loop. A loop that ended without one (submitted before, or a property list ticked
later) gets one from :func:`submit_properties`, built by ``PropertiesWorkChain.get_builder_for_loop``; its pk
goes to the extra :data:`RUNS_EXTRA` so that nothing is submitted twice. The app never submits a single
property work chain itself.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from aiida import orm
from aiida.common.links import LinkType

from aiida_mofmlp.workflows.properties.registry import PROPERTIES, property_key
from aiida_mofmlp.workflows.properties.selected import loop_codes

#: loop-node extra: the property labels ticked in Configure (written by the submit step)
PROPERTIES_EXTRA = "mofmlp_app_properties"
#: loop-node extra: pk of the PropertiesWorkChain the app submitted on an ended loop's final ensemble
RUNS_EXTRA = "mofmlp_app_properties_run"

_SUBMIT_LOCK = threading.Lock()  # two callers in one kernel (refresh, button) never submit the same run twice


class PropertyError(ValueError):
    """Why the ticked properties of a loop cannot run (a sentence for the user)."""


def ticked_properties(run: orm.ProcessNode) -> list[str]:
    """The property labels ticked in Configure for ``run`` (empty when none)."""
    return list(run.base.extras.get(PROPERTIES_EXTRA, []) or [])


def properties_run(run: orm.ProcessNode) -> orm.ProcessNode | None:
    """The PropertiesWorkChain on ``run``'s ensemble: the loop's own, else the one the app submitted."""
    called = run.base.links.get_outgoing(link_type=LinkType.CALL_WORK, link_label_filter="properties").all()
    if called:
        return called[-1].node
    pk = run.base.extras.get(RUNS_EXTRA, None)
    return orm.load_node(int(pk)) if pk is not None else None


def property_runs(run: orm.ProcessNode) -> dict[str, int]:
    """``{label: pk}`` of the property work chains started so far on ``run``'s final ensemble."""
    parent = properties_run(run)
    if parent is None:
        return {}
    children = parent.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all()
    return {
        PROPERTIES[link.link_label].label: link.node.pk for link in children if link.link_label in PROPERTIES
    }


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


def setup_codes(kinds, computer: str | None) -> dict[str, orm.AbstractCode | None]:
    """``aiida-mofmlp setup``'s code of each kind on ``computer`` (then on its default computer), or None."""
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    from aiida_mofmlp.common.codes import CODES, code_label

    codes: dict[str, orm.AbstractCode | None] = {}
    for kind in sorted(kinds):
        codes[kind] = None
        candidates = [f"{CODES[kind][0]}@{computer}"] if computer else []
        for candidate in [*candidates, code_label(kind)]:
            try:
                codes[kind] = orm.load_code(candidate)
                break
            except (NotExistent, MultipleObjectsError):
                continue
    return codes


def codes_for_properties(
    labels: Sequence[str], codes: dict[str, orm.AbstractCode | None]
) -> dict[str, orm.AbstractCode | None]:
    """``codes`` (the loop's) completed with setup's codes of the kinds the properties ``labels`` take, on
    the computer of the ``md`` code; None where there is none."""
    computer = codes["md"].computer.label if codes.get("md") is not None else None
    kinds = {kind for label in labels for kind in PROPERTIES[property_key(label)].codes}
    return {**codes, **setup_codes(kinds - {k for k, code in codes.items() if code is not None}, computer)}


def property_codes(run: orm.ProcessNode, labels: Sequence[str]) -> dict[str, orm.AbstractCode | None]:
    """Codes for the properties ``labels`` on an ended loop: the loop's, else setup's (None: none)."""
    return codes_for_properties(labels, dict(loop_codes(run)))


def submit_properties(run: orm.ProcessNode) -> tuple[dict[str, int], list[str]]:
    """Make sure a PropertiesWorkChain runs the ticked properties on the ended ``run``; ``({label: pk},
    messages)``.

    Nothing is submitted when the loop ran them itself or the app already submitted one (extra
    :data:`RUNS_EXTRA`). PropertyError when the loop has no usable final ensemble (or has not ended), the
    daemon is not running, or the properties cannot run (a missing code, no guest). Call it from the thread
    that loaded the AiiDA profile (the kernel's): AiiDA stores nodes only from that one.
    """
    from aiida.engine import submit

    from aiida_mofmlp.app.messages import daemon_status
    from aiida_mofmlp.workflows.properties.selected import PropertiesWorkChain

    with _SUBMIT_LOCK:
        ticked = ticked_properties(run)
        if not ticked or properties_run(run) is not None:
            return property_runs(run), []
        problem = ensemble_problem(run)
        if problem:
            raise PropertyError(problem)
        running, sentence = daemon_status()
        if not running:
            raise PropertyError(
                f"the ticked properties ({', '.join(ticked)}) were not submitted: {sentence} "
                "(or press 'Run ticked properties')"
            )
        codes = {kind: code for kind, code in property_codes(run, ticked).items() if code is not None}
        try:
            builder = PropertiesWorkChain.get_builder_for_loop(run, ticked, codes)
            builder.metadata.description = "submitted from the aiida-mofmlp AiiDAlab app"
            node = submit(builder)
        except ValueError as error:  # the inputs' validators name what is missing
            raise PropertyError(f"the ticked properties cannot run: {error}") from error
        run.base.extras.set(RUNS_EXTRA, node.pk)
        return {}, [f"submitted PropertiesWorkChain<{node.pk}> ({', '.join(ticked)})"]


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
    reference = card.get("reference_check")
    if reference:  # the labelling method beside the models; a value outside its tolerance is marked *
        for prop, entry in reference["properties"].items():
            cells = [
                "-"
                if entry.get(label) is None
                else f"{entry[label]:.4g}{'' if entry.get(f'{label}_passed') else ' *'}"
                for label in labels
            ]
            rows.append(
                [
                    f"{prop} ({reference['method']}: {entry['reference']:.4g})",
                    *cells,
                    f"{entry['unit']} (tolerance {entry['tolerance']:g})",
                ]
            )
    return rows
