"""``aiida-mofmlp demo``: the active-learning loop on DMOF-1 (ZnBDCdabco) + CO2 with the ``fast`` protocol.

The whole loop runs as one :class:`~aiida_mofmlp.workflows.active_learning.ActiveLearningWorkChain` in the
loaded profile: RASPA snapshots of CO2, foundation-model MD, SOAP selection, GFN1-xTB labels from CP2K, an
ensemble of two small MACE models, MD exploration in LAMMPS, the ensemble deviation, the convergence check,
and a final validation. Offline there is no MACE-MP foundation model, so the demo builds a tiny random MACE
model as the "foundation"; a real study passes a MACE-MP file (``MaceModelData.from_file(path)``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiida_mofmlp.workflows._cp2k_inputs import smeared_scf_overrides

#: the demo's framework (RASPA2's CIF library) and guest
FRAMEWORK = "ZnBDCdabco"
GUEST = "CO2"

#: demo settings: about 6 minutes on 2 idle CPU cores (``settings`` of run_demo / demo_builder override them)
DEMO_SETTINGS: dict[str, Any] = {
    "loadings": [1],
    "temperatures": [300.0],
    "max_iterations": 3,
    "initial_framework": 4,
    "initial_per_loading": 4,
    "per_loading": 3,
    "sampling_md_steps": 40,
    "md_steps": 200,
    "dump_interval": 10,
    "validation_md_steps": 200,
    "validation_per_loading": 3,
    "epochs": 60,
    # the demo's tiny models (16 channels, trained on tens of frames) are about ten times less accurate
    # than a fine-tuned MACE-MP, so seed 000's window (0.06-0.24 eV/Angstrom) is scaled up to match
    "trust": {"lo": 0.3, "hi": 3.0},
    "max_concurrent": 2,
    "seed": 0,
    "gcmc": None,  # e.g. {"pressures_bar": [1.0]}: MD-GCMC exploration of the empty framework as well
}


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


def demo_overrides(settings: dict) -> dict:
    """ActiveLearningWorkChain overrides (fast protocol) for the demo ``settings``."""
    md_steps = int(settings["md_steps"])
    interval = int(settings["dump_interval"])
    return {
        "parameters": {
            "loadings": list(settings["loadings"]),
            "temperatures": list(settings["temperatures"]),
            "max_iterations": int(settings["max_iterations"]),
            "trust": dict(settings["trust"]),
            "initial_selection": {
                "framework": int(settings["initial_framework"]),
                "per_loading": int(settings["initial_per_loading"]),
            },
            "selection_per_loading": int(settings["per_loading"]),
            "validation": {
                "md_steps": int(settings["validation_md_steps"]),
                "n_per_loading": int(settings["validation_per_loading"]),
                "skip": 2,
            },
            "labelling": {"max_concurrent": int(settings["max_concurrent"]), "max_failed_fraction": 0.34},
            "seed": int(settings["seed"]),
            # short foundation MD: the demo's random "foundation" knows no chemistry and would break bonds
            "initial_sampling": {"md_steps": int(settings["sampling_md_steps"]), "dump_interval": 5},
            **({"gcmc": dict(settings["gcmc"])} if settings.get("gcmc") else {}),
        },
        "md": {
            "steps": md_steps,
            "dump_interval": interval,
            "thermo_interval": interval,
            "safety": {"check_interval": interval},
        },
        # naive fine-tuning with E0s refitted to the xTB energies: the tiny foundation knows no chemistry
        "mace": {
            "max_num_epochs": int(settings["epochs"]),
            "batch_size": 2,
            "mode": "naive",
            "E0s": "average",
            # stage 1 E:F 10:1 instead of seed 000's 1:100: trained from random weights on a few frames,
            # 1:100 lets the energy drift by ~1 eV/atom (benchmarks/labels_vs_accuracy/RESULTS.md)
            "energy_weight": 100.0,
            "forces_weight": 10.0,
        },
        # short RASPA runs with a short cutoff: positions for the guests, not an isotherm
        "raspa": {
            "cutoff": 8.0,
            "snapshot_init_cycles": 20,
            "snapshot_cycles": 2,
            "equilibration_tolerance": None,
        },
        "selection": {"pca_components": None},
        # smearing + Broyden mixing from the start: distorted MD frames converge in one CP2K run
        "cp2k": smeared_scf_overrides(alpha=0.2),
    }


def demo_builder(codes: dict, work_dir: Path, settings: dict | None = None):
    """A builder of the demo's ActiveLearningWorkChain; the tiny foundation model goes to ``work_dir``."""
    from aiida_mofmlp.data import GuestMoleculeData, MaceModelData
    from aiida_mofmlp.engines.foundation import make_small_model
    from aiida_mofmlp.tools.intake import load_cif
    from aiida_mofmlp.workflows.active_learning import ActiveLearningWorkChain

    opts = {**DEMO_SETTINGS, **(settings or {})}
    structure, _ = load_cif(framework_cif())
    guest = GuestMoleculeData.builtin(GUEST)
    species = sorted(set(structure.get_symbols_set()) | set(guest.symbols))
    work_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # e3nn / TorchScript chatter while the model is built
        warnings.simplefilter("ignore", UserWarning)
        # small random interactions (scale 0.1): the untrained model's MD stays close to thermal motion
        path = make_small_model(
            species, work_dir / "demo-foundation.model", num_channels=16, scale=0.1, seed=int(opts["seed"])
        )
    foundation = MaceModelData.get_or_create(path)
    return ActiveLearningWorkChain.get_builder_from_protocol(
        structure, foundation, codes, guest=guest, protocol="fast", overrides=demo_overrides(opts)
    )


def _codes(profile: str) -> dict:
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    from aiida_mofmlp.common.codes import code_label

    codes = {}
    for kind in ("cp2k", "raspa", "train", "md", "deviation"):
        try:
            codes[kind] = orm.load_code(code_label(kind))
        except NotExistent as exc:
            raise DemoError(
                f"code {code_label(kind)!r} not found in profile {profile!r}: run `aiida-mofmlp setup`"
            ) from exc
    return codes


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


def run_demo(
    profile: str, output_dir: Path, echo: Callable[[str], None] = print, settings: dict | None = None
) -> DemoResult:
    """Run the demo's active-learning loop in the loaded profile ``profile``; files go to ``output_dir``."""
    from aiida.engine import run_get_node
    from aiida.manage import get_manager

    # aiida-raspa still calls the deprecated set_extra/get_extra: keep the demo's output readable
    warnings.filterwarnings("ignore", message=r"`CalcJobNode\.(set|get)_extra` is deprecated")
    loaded_profile = get_manager().get_profile()
    if loaded_profile is None or loaded_profile.name != profile:
        raise DemoError(f"profile {profile!r} is not loaded (run `aiida-mofmlp setup --profile {profile}`)")
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    opts = {**DEMO_SETTINGS, **(settings or {})}
    builder = demo_builder(_codes(profile), output_dir, opts)
    echo(
        f"Active learning of a MACE potential for {GUEST} in {FRAMEWORK} (DMOF-1, 54 atoms): loadings "
        f"{opts['loadings']} CO2 per cell, {opts['temperatures']} K, GFN1-xTB labels, 2 small MACE models, "
        f"at most {opts['max_iterations']} iterations. Progress is reported below (about 6 minutes on 2 "
        "cores)."
    )
    start = time.monotonic()
    _, node = run_get_node(builder)
    result = DemoResult(node=node, wall_time_s=time.monotonic() - start)
    result.files = write_results(node, output_dir)
    echo("")
    echo(
        f"ActiveLearningWorkChain<{node.pk}> finished in {result.wall_time_s:.0f} s: exit {node.exit_status}"
    )
    if node.exit_message:
        echo(f"  {node.exit_message}")
    for line in _table(node):
        echo("  " + line)
    if "validation" in node.outputs:
        metrics = node.outputs.validation.get_dict()
        echo(
            f"Validation on {metrics['n_frames']} new xTB frames: energy MAE "
            f"{1000 * metrics['mae_e_per_atom']:.1f} meV/atom, force MAE {1000 * metrics['mae_f']:.0f} meV/Å"
        )
    echo(f"Files in {output_dir}:")
    for name, path in result.files.items():
        echo(f"  {name:<22} {path}")
    echo(
        f"Inspect: `verdi process report {node.pk}`, `verdi node show {node.pk}`, `aiida-mofmlp runs`. "
        "The same loop as a script: examples/active_learning_demo.py; production settings: "
        "examples/active_learning_seed000.py."
    )
    if not node.is_finished:
        raise DemoError(
            f"ActiveLearningWorkChain<{node.pk}> did not finish: `verdi process report {node.pk}`"
        )
    if node.exit_status not in (0, 410, 411):
        raise DemoError(f"ActiveLearningWorkChain<{node.pk}> failed: {node.exit_message}")
    return result
