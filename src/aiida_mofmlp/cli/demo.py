"""``aiida-mofmlp demo``: the active-learning loop on DMOF-1 (ZnBDCdabco) + CO2 with the ``fast`` protocol.

The whole loop runs as one ActiveLearningWorkChain in the loaded profile: RASPA snapshots of CO2,
foundation-model MD, SOAP selection, GFN1-xTB labels (tblite, ``mofmlp-xtb``), an ensemble of two MACE
models fine-tuned with multihead replay, MD exploration in LAMMPS, the ensemble deviation, the convergence
check, and a final validation against the foundation. Its settings are the packaged overrides file
``workflows/protocols/overrides/demo.yaml`` (commented there). Offline there is no MACE-MP, so the demo
fine-tunes the small MOF foundation shipped in the package (``MaceModelData.small_mof_foundation``); a real
study passes a MACE-MP file (``MaceModelData.from_file(path, trusted=True)``). See docs/source/workflows.md.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiida_mofmlp.common.staging import check_output_directory, staged_directory

#: the demo's framework (RASPA2's CIF library) and guest
FRAMEWORK = "ZnBDCdabco"
GUEST = "CO2"
#: the packaged overrides of the ``fast`` protocol the demo runs with (protocols/overrides/demo.yaml):
#: at most 3 iterations, about 4 minutes of loop on 2 CPU cores (222 and 238 s measured 2026-12-03)
DEMO_OVERRIDES = "demo"


class DemoError(RuntimeError):
    """The demo could not start or its work chain failed; the message says what to do."""


@dataclass
class DemoResult:
    """The finished work chain and the files the demo wrote."""

    node: Any = None
    files: dict[str, Path] = field(default_factory=dict)
    wall_time_s: float = 0.0


def framework_cif(name: str = FRAMEWORK) -> Path:
    """Path of ``name``.cif in RASPA2's framework library of the running environment."""
    import RASPA2

    path = Path(RASPA2.__file__).parent / "share" / "raspa" / "structures" / "cif" / f"{name}.cif"
    if not path.is_file():
        raise DemoError(f"{name}.cif not found at {path}: is RASPA2 installed (scripts/install.sh)?")
    return path


def demo_overrides(
    overrides: Mapping | str | os.PathLike | None = None, extra: Mapping | None = None
) -> dict:
    """ActiveLearningWorkChain overrides (``fast`` protocol) of the demo, as a dict.

    ``overrides``: a dict, the path of a YAML file, or the name of a packaged overrides file
    (``workflows/protocols/overrides/<name>.yaml``: ``demo``, ``tiny``); default: ``demo``. ``extra`` is
    deep-merged on top (e.g. ``{"parameters": {"max_iterations": 5}}``).
    """
    from aiida_mofmlp.common.protocols import deep_merge
    from aiida_mofmlp.workflows.protocols.utils import load_overrides, packaged_overrides_path

    if overrides is None:
        overrides = DEMO_OVERRIDES
    if isinstance(overrides, str) and not overrides.endswith((".yaml", ".yml")):
        overrides = packaged_overrides_path(overrides)
    return deep_merge(load_overrides(overrides), extra)


def demo_builder(
    codes: dict,
    work_dir: Path,
    overrides: Mapping | str | os.PathLike | None = None,
    extra: Mapping | None = None,
):
    """A builder of the demo's ActiveLearningWorkChain, fine-tuned from the shipped small MOF foundation.

    The foundation (:meth:`MaceModelData.small_mof_foundation`, GFN1-xTB labels of several MOFs with
    guests) and its replay sample make multihead replay fine-tuning run for real; a study uses MACE-MP.
    ``overrides`` and ``extra``: see :func:`demo_overrides` (default: the packaged ``demo`` overrides).
    ``work_dir`` is created (the demo writes its results there).
    """
    from aiida_mofmlp.data import GuestMoleculeData, MaceModelData
    from aiida_mofmlp.data.foundation import small_mof_foundation_replay
    from aiida_mofmlp.tools.intake import load_cif
    from aiida_mofmlp.workflows.active_learning.workchain import ActiveLearningWorkChain

    settings = demo_overrides(overrides, extra)
    structure, _ = load_cif(framework_cif())
    guest = GuestMoleculeData.builtin(GUEST)
    work_dir.mkdir(parents=True, exist_ok=True)
    foundation = MaceModelData.small_mof_foundation()
    missing = sorted((set(structure.get_symbols_set()) | set(guest.symbols)) - set(foundation.species))
    if missing:
        raise DemoError(f"the shipped foundation lacks {missing}: rebuild it (scripts/build_foundation.py)")
    return ActiveLearningWorkChain.get_builder_from_protocol(
        structure,
        foundation,
        codes,
        guest=guest,
        protocol="fast",
        overrides=settings,
        replay_set=small_mof_foundation_replay(),
    )


def _codes(
    profile: str, kinds: tuple[str, ...] = ("cp2k", "xtb", "raspa", "train", "md", "deviation")
) -> dict:
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    from aiida_mofmlp.common.codes import code_label

    codes = {}
    for kind in kinds:
        try:
            codes[kind] = orm.load_code(code_label(kind))
        except NotExistent as exc:
            raise DemoError(
                f"code {code_label(kind)!r} not found in profile {profile!r}: run `aiida-mofmlp setup`"
            ) from exc
    return codes


#: what a finished run writes into its output folder (an earlier run's are replaced, other files kept)
RESULT_NAMES = ("training_set.extxyz", "*.model", "iterations.json", "plots", "model_card.json")


def write_results(node, output_dir: Path) -> dict[str, Path]:
    """Training set, models, iteration table and plots of a finished run, written to ``output_dir``."""
    import json

    files: dict[str, Path] = {}
    if "training_set" in node.outputs:
        files["training_set"] = node.outputs.training_set.write_extxyz(output_dir / "training_set.extxyz")
    for label, model in node.outputs.models.items() if "models" in node.outputs else []:
        target = output_dir / f"{label}.model"
        with model.open(mode="rb") as source:
            target.write_bytes(source.read())
        files[label] = target
    if "iterations" in node.outputs:
        target = output_dir / "iterations.json"
        target.write_text(json.dumps(node.outputs.iterations.get_dict(), indent=2))
        files["iterations"] = target
    from aiida_mofmlp.tools.plots import plot_run

    for name, plot in plot_run(node, output_dir / "plots").items():
        if plot.path is not None:
            files[f"plot_{name}"] = plot.path
    return files


@contextmanager
def compact_progress(
    echo: Callable[[str], None], process_class: str = "ActiveLearningWorkChain"
) -> Iterator[None]:
    """Show one line per stage of ``process_class`` instead of AiiDA's report of every process launch.

    The reports still go to the database (``verdi process report``); only the console shows less.
    """
    aiida_logger = logging.getLogger("aiida")
    consoles = [h for h in aiida_logger.handlers if type(h) is logging.StreamHandler]
    levels = [handler.level for handler in consoles]
    start = time.monotonic()
    marker = f"|{process_class}|"

    class _StageLines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            if marker in text:
                echo(f"  [{time.monotonic() - start:5.0f} s] {text.split(']: ', 1)[-1]}")

    stage_lines = _StageLines()
    for handler in consoles:
        handler.setLevel(logging.WARNING)
    aiida_logger.addHandler(stage_lines)
    try:
        yield
    finally:
        aiida_logger.removeHandler(stage_lines)
        for handler, level in zip(consoles, levels, strict=True):
            handler.setLevel(level)


def _table(node) -> list[str]:
    rows = node.outputs.iterations.get_dict()["rows"] if "iterations" in node.outputs else []
    lines = ["iter  training  explored  below-lo  candidates  selected  labelled  failed  valid-MAE(eV/A)"]
    for row in rows:
        below = row.get("fraction_below_lo")
        mae = row.get("valid_mae_f")
        lines.append(
            f"{row['iteration']:>4}  {row.get('n_training', '-')!s:>8}  {row.get('n_explored', '-')!s:>8}  "
            f"{'-' if below is None else f'{below:.0%}':>8}  {row.get('n_candidates', '-')!s:>10}  "
            f"{row.get('n_selected', '-')!s:>8}  {row.get('n_labelled', '-')!s:>8}  "
            f"{row.get('n_failed', '-')!s:>6}  "
            f"{'-' if mae is None else f'{mae:.3f}':>15}"
        )
    return lines


def reference_check_lines(rows: list[dict]) -> list[str]:
    """The property stop rule's checks (``stop: property``/``both``): the ensemble against the reference."""
    lines = []
    for row in rows:
        for check in row.get("reference_check") or []:
            if not lines:
                lines.append("Reference check (ensemble against the labelling method):")
                lines.append(
                    f"  {'iter':>4}  {'property':16}{'reference':>12}{'ensemble':>12}{'difference':>12}  unit"
                )
            lines.append(
                f"  {row['iteration']:>4}  {check['property']:16}"
                f"{check['reference']:12.4g}{check['value']:12.4g}"
                f"{check['difference']:12.3g}  {check['unit']}  {'pass' if check['passed'] else 'FAIL'}"
                + (f"  (models' spread {check['spread']:.3g})" if check.get("spread") is not None else "")
            )
        if row.get("n_reference_frames"):
            lines.append(
                f"  {row['iteration']:>4}  {row['n_reference_frames']} reference frame(s) sent to labelling"
            )
    return lines


def card_table(card: dict) -> list[str]:
    """The model card as text: one row per quantity, one column per model."""
    labels = sorted(card["models"])
    lines = [f"{'quantity':34}" + "".join(f"{label:>14}" for label in labels) + "  unit"]
    for key in card["quantities"]:
        cells = ""
        for label in labels:
            value = card["models"][label].get(key)
            cells += (
                f"{value:14.4g}" if isinstance(value, float) else f"{'-' if value is None else value!s:>14}"
            )
        lines.append(f"{key:34}{cells}  {card['units'].get(key, '')}")
    reference = card.get("reference_check")
    if reference:
        lines.append(
            f"{'against ' + str(reference['method']):34}{'reference':>14}"
            + "".join(f"{label:>14}" for label in labels)
            + "  unit (tolerance)"
        )
        for prop, entry in reference["properties"].items():
            cells = "".join(
                _reference_cell(entry.get(label), entry.get(f"{label}_passed")) for label in labels
            )
            lines.append(
                f"{prop:34}{entry['reference']:14.4g}{cells}  {entry['unit']} ({entry['tolerance']:g})"
            )
    return lines


def _reference_cell(value, passed) -> str:
    """A model's value against the reference, marked ``*`` when outside the tolerance."""
    if value is None:
        return f"{'-':>14}"
    return f"{value:13.4g}{' ' if passed else '*'}"


def run_model_card(node, profile: str, output_dir: Path, echo: Callable[[str], None] = print) -> Path | None:
    """The model card (``fast``) of the run's final ensemble next to its foundation; returns the JSON path."""
    import json

    from aiida.engine import run_get_node

    from aiida_mofmlp.workflows.properties.model_card import ModelCardWorkChain

    if "models" not in node.outputs:
        echo("Model card skipped: the run has no final models.")
        return None
    codes = _codes(profile, ("phonons", "md", "deviation"))
    models = dict(node.outputs.models)
    if len(models) < 2:
        codes.pop("deviation")  # one model: nothing to disagree
    builder = ModelCardWorkChain.get_builder_from_protocol(
        node.inputs.structure,
        models,
        codes,
        protocol="fast",
        guest=node.inputs.get("guest"),
        validation_frames=node.outputs.get("validation_frames"),
    )
    echo("")
    echo("Model card of the fine-tuned ensemble and its foundation (relaxation, NPT, bulk modulus, Cv, ...):")
    start = time.monotonic()
    with compact_progress(echo, "ModelCardWorkChain"):
        results, card_node = run_get_node(builder)
    echo(
        f"ModelCardWorkChain<{card_node.pk}> finished in {time.monotonic() - start:.0f} s: exit "
        f"{card_node.exit_status}"
    )
    if "card" not in results:
        echo(f"  no card: {card_node.exit_message}")
        return None
    card = results["card"].get_dict()
    for line in card_table(card):
        echo("  " + line)
    path = output_dir / "model_card.json"
    path.write_text(json.dumps(card, indent=1, default=str))
    return path


def run_in_foreground(builder, output_dir: Path, echo: Callable[[str], None] = print) -> DemoResult:
    """Run an ActiveLearningWorkChain ``builder`` in this process with one progress line per stage; then
    its files into ``output_dir``, the iteration table and the errors of the final ensemble and of its
    foundation on the validation frames."""
    from aiida.engine import run_get_node

    start = time.monotonic()
    with compact_progress(echo):
        _, node = run_get_node(builder)
    result = DemoResult(node=node, wall_time_s=time.monotonic() - start)
    # checked before the run (check_output_directory); written aside and swapped in, so a failure here
    # leaves an earlier run's files as they were
    output_dir = Path(output_dir).resolve()
    with staged_directory(output_dir, overwrite=True, owned=RESULT_NAMES) as staging:
        written = write_results(node, staging)
    result.files = {label: output_dir / path.relative_to(staging) for label, path in written.items()}
    echo("")
    echo(
        f"ActiveLearningWorkChain<{node.pk}> finished in {result.wall_time_s:.0f} s: exit {node.exit_status}"
    )
    if node.exit_message:
        echo(f"  {node.exit_message}")
    for line in _table(node):
        echo("  " + line)
    rows = node.outputs.iterations.get_dict().get("rows", []) if "iterations" in node.outputs else []
    if rows and rows[-1].get("converged"):
        echo(f"Converged after {rows[-1]['iteration']} iteration(s).")
    elif rows:
        echo(f"Not converged after {rows[-1]['iteration']} iteration(s).")
    for line in reference_check_lines(rows):
        echo(line)
    for label, key in (("fine-tuned ensemble", "validation"), ("foundation", "validation_foundation")):
        if key in node.outputs:
            metrics = node.outputs[key].get_dict()
            echo(
                f"{label:>19} on {metrics['n_frames']} new frames: energy MAE "
                f"{1000 * metrics['mae_e_per_atom']:.1f} meV/atom, "
                f"force MAE {1000 * metrics['mae_f']:.0f} meV/Å"
            )
            composition = metrics.get("composition")
            if composition:
                spread = composition["binding_energy_spread_kj_mol"]
                echo(
                    f"{'':>19} per-composition offset removed: energy MAE "
                    f"{1000 * composition['mae_e_per_atom_offset_removed']:.1f} meV/atom"
                    + (
                        f", binding-energy scatter {spread:.1f} kJ/mol per guest"
                        if spread is not None
                        else ""
                    )
                )
    return result


def run_demo(
    profile: str,
    output_dir: Path,
    echo: Callable[[str], None] = print,
    overrides: Mapping | str | os.PathLike | None = None,
    extra: Mapping | None = None,
    model_card: bool = False,
    overwrite: bool = False,
) -> DemoResult:
    """Run the demo's active-learning loop in the loaded profile ``profile``; files go to ``output_dir``.

    ``overrides`` and ``extra``: see :func:`demo_overrides` (default: the packaged ``demo`` overrides).
    ``model_card``: afterwards compare the final ensemble with its foundation (ModelCardWorkChain, ~10 min).
    A non-empty ``output_dir`` needs ``overwrite`` (checked before the loop starts).
    """
    from aiida.manage import get_manager

    # aiida-raspa still calls the deprecated set_extra/get_extra: keep the demo's output readable
    warnings.filterwarnings("ignore", message=r"`CalcJobNode\.(set|get)_extra` is deprecated")
    loaded_profile = get_manager().get_profile()
    if loaded_profile is None or loaded_profile.name != profile:
        raise DemoError(f"profile {profile!r} is not loaded (run `aiida-mofmlp setup --profile {profile}`)")
    output_dir = check_output_directory(output_dir, overwrite, hint="--overwrite", error=DemoError)
    builder = demo_builder(_codes(profile), output_dir, overrides, extra)
    opts = builder.parameters.get_dict()
    echo(
        f"Active learning of a MACE potential for {GUEST} in {FRAMEWORK} (DMOF-1, 54 atoms): loadings "
        f"{opts['loadings']} CO2 per cell, {opts['temperatures']} K, GFN1-xTB labels, 2 MACE models "
        f"fine-tuned from the shipped foundation, at most {opts['max_iterations']} iterations. One line per "
        "stage below (about 4 minutes on 2 cores)."
    )
    result = run_in_foreground(builder, output_dir, echo)
    node = result.node
    if model_card and node.is_finished_ok:
        card_path = run_model_card(node, profile, output_dir, echo)
        if card_path is not None:
            result.files["model_card"] = card_path
    echo(f"Files in {output_dir}:")
    for name, path in result.files.items():
        echo(f"  {name:<22} {path}")
    echo(
        f"Inspect: `verdi process report {node.pk}`, `verdi node show {node.pk}`, `aiida-mofmlp runs`. "
        "The same loop as a script: examples/active_learning_demo.py; production settings: "
        "examples/active_learning_mil120.py."
    )
    if not node.is_finished:
        raise DemoError(
            f"ActiveLearningWorkChain<{node.pk}> did not finish: `verdi process report {node.pk}`"
        )
    if node.exit_status not in (0, 410, 411):
        raise DemoError(f"ActiveLearningWorkChain<{node.pk}> failed: {node.exit_message}")
    return result
