"""Small offline MACE "foundation" models: a random model builder and a from-scratch trainer.

No weights can be downloaded in tests or offline demos. :func:`make_small_model` builds a tiny
untrained ``ScaleShiftMACE`` (random weights; useful for ensembles, MD plumbing and fine-tuning tests);
``mofmlp-foundation input.yaml`` trains a small model from scratch on a labelled extxyz
(``REF_energy``/``REF_forces``[/``REF_stress``]) with ``mace_run_train``. Real users pass a MACE-MP
model file to the training engine instead.

Input file of ``mofmlp-foundation`` (JSON or YAML), all keys optional except ``train_file``::

    train_file: train.extxyz        # labelled frames
    valid_file: null                # else valid_fraction of train_file is held out
    valid_fraction: 0.1
    name: foundation                # output model: foundation.model, results in foundation_results.json
    r_max: 4.0
    num_channels: 16
    max_L: 0
    num_interactions: 2
    correlation: 2
    max_num_epochs: 50
    batch_size: 4
    lr: 0.01
    seed: 0
    E0s: average                    # or {symbol: eV}
    energy_weight: 1.0
    forces_weight: 100.0
    stress_weight: 0.0              # > 0: also fit REF_stress (mace loss "stress")
    device: auto
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aiida_mofmlp.common.serialise import dumps
from aiida_mofmlp.engines.io import read_input
from aiida_mofmlp.engines.mace.common import (
    EXIT_BAD_INPUT,
    EXIT_DIVERGED,
    EXIT_MACE_FAILED,
    InputError,
    has_nonfinite_loss,
    load_model,
    read_results_lines,
    resolve_device,
    run_mace_train,
    to_numbers,
    to_symbols,
)
from aiida_mofmlp.engines.mace.safe_model import save_safe_model

FOUNDATION_DEFAULTS: dict[str, Any] = {
    "valid_file": None,
    "valid_fraction": 0.1,
    "name": "foundation",
    "r_max": 4.0,
    "num_channels": 16,
    "max_L": 0,
    "num_interactions": 2,
    "correlation": 2,
    "max_num_epochs": 50,
    "batch_size": 4,
    "lr": 0.01,
    "seed": 0,
    "E0s": "average",
    "energy_weight": 1.0,
    "forces_weight": 100.0,
    "stress_weight": 0.0,
    "device": "auto",
}


def _hidden_irreps(num_channels: int, max_L: int) -> str:
    if max_L not in (0, 1, 2):
        raise InputError(f"max_L={max_L!r} is not valid; valid: 0, 1, 2")
    if num_channels < 1:
        raise InputError(f"num_channels={num_channels!r} must be a positive integer")
    parity = ["0e", "1o", "2e"]
    return "+".join(f"{num_channels}x{parity[ell]}" for ell in range(max_L + 1))


def make_small_model(
    species: Sequence[str] | Sequence[int],
    path: str | Path,
    r_max: float = 4.0,
    num_channels: int = 8,
    max_L: int = 0,
    seed: int = 0,
    e0s: Mapping[str | int, float] | None = None,
    num_interactions: int = 2,
    correlation: int = 2,
    avg_num_neighbors: float = 8.0,
    scale: float = 1.0,
) -> Path:
    """Build a tiny randomly initialised ``ScaleShiftMACE`` for ``species`` and save it to ``path``.

    The file is in the safe form (:mod:`.safe_model`): load it with :func:`.common.load_model` or
    :func:`.common.mace_calculator`; the training engine unpacks it for ``mace_run_train``. ``e0s`` maps
    symbols or atomic numbers to isolated-atom energies in eV (default 0 for every element). Different
    ``seed`` values give different weights (a random "ensemble"). Returns the path.
    """
    import mace  # noqa: F401  (import before e3nn)
    import numpy as np
    import torch
    from e3nn import o3
    from mace import modules

    numbers = to_numbers(species)
    if not numbers:
        raise InputError("species must name at least one element")
    if r_max <= 0:
        raise InputError(f"r_max={r_max!r} must be positive (Angstrom)")
    energies = np.zeros(len(numbers))
    if e0s:
        lookup = {to_numbers([key])[0]: float(value) for key, value in e0s.items()}
        unknown = sorted(set(lookup) - set(numbers))
        if unknown:
            raise InputError(
                f"e0s names elements {to_symbols(unknown)} that are not in species {to_symbols(numbers)}"
            )
        energies = np.array([lookup.get(z, 0.0) for z in numbers])

    previous_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(int(seed))
        interaction = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
        interaction_first = modules.interaction_classes["RealAgnosticInteractionBlock"]
        model = modules.ScaleShiftMACE(
            r_max=float(r_max),
            num_bessel=8,
            num_polynomial_cutoff=5,
            max_ell=max(2, max_L),
            interaction_cls=interaction,
            interaction_cls_first=interaction_first,
            num_interactions=int(num_interactions),
            num_elements=len(numbers),
            hidden_irreps=o3.Irreps(_hidden_irreps(int(num_channels), int(max_L))),
            MLP_irreps=o3.Irreps("16x0e"),
            atomic_energies=energies,
            avg_num_neighbors=float(avg_num_neighbors),
            atomic_numbers=numbers,
            correlation=int(correlation),
            gate=torch.nn.functional.silu,
            radial_MLP=[32, 32, 32],
            radial_type="bessel",
            atomic_inter_scale=float(scale),
            atomic_inter_shift=0.0,
        )
    finally:
        torch.set_default_dtype(previous_dtype)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_safe_model(model, path)
    return path


def build_foundation_argv(config: Mapping[str, Any], work_dir: Path) -> list[str]:
    """The ``mace_run_train`` arguments that train a small model from scratch (offline)."""
    train_file = Path(config["train_file"]).resolve()
    stress = float(config.get("stress_weight") or 0.0) > 0
    argv = [
        f"--name={config['name']}",
        f"--train_file={train_file}",
        "--model=MACE",
        f"--r_max={float(config['r_max'])}",
        f"--hidden_irreps={_hidden_irreps(int(config['num_channels']), int(config['max_L']))}",
        f"--num_interactions={int(config['num_interactions'])}",
        f"--correlation={int(config['correlation'])}",
        "--MLP_irreps=16x0e",
        "--radial_MLP=[32, 32, 32]",
        f"--max_num_epochs={int(config['max_num_epochs'])}",
        f"--batch_size={int(config['batch_size'])}",
        f"--valid_batch_size={int(config['batch_size'])}",
        f"--lr={float(config['lr'])}",
        f"--seed={int(config['seed'])}",
        f"--energy_weight={float(config['energy_weight'])}",
        f"--forces_weight={float(config['forces_weight'])}",
        f"--loss={'stress' if stress else 'weighted'}",
        "--energy_key=REF_energy",
        "--forces_key=REF_forces",
        "--stress_key=REF_stress",
        f"--device={resolve_device(config.get('device'))}",
        "--default_dtype=float64",
        "--eval_interval=1",
        "--error_table=PerAtomMAE",
        "--save_cpu",
        "--restart_latest",
        f"--work_dir={work_dir}",
        f"--model_dir={work_dir}",
        f"--log_dir={work_dir / 'logs'}",
        f"--checkpoints_dir={work_dir / 'checkpoints'}",
        f"--results_dir={work_dir / 'results'}",
    ]
    if stress:
        argv.append(f"--stress_weight={float(config['stress_weight'])}")
    if config.get("valid_file"):
        argv.append(f"--valid_file={Path(config['valid_file']).resolve()}")
    else:
        argv.append(f"--valid_fraction={float(config['valid_fraction'])}")
    e0s = config.get("E0s", "average")
    if isinstance(e0s, Mapping):
        # a Python literal with integer keys: mace reads it with ast.literal_eval and looks the energies up
        # by atomic number (JSON would make the keys strings, which mace does not find)
        pairs = sorted((to_numbers([k])[0], float(v)) for k, v in e0s.items())
        argv.append("--E0s={" + ", ".join(f"{z}: {energy!r}" for z, energy in pairs) + "}")
    else:
        argv.append(f"--E0s={e0s}")
    return argv


def train_foundation(config: Mapping[str, Any], work_dir: str | Path = ".") -> dict[str, Any]:
    """Train a small model from scratch as described by ``config`` (see module docstring).

    Returns a summary with the model path, status and the last evaluation; writes
    ``<name>.model`` and ``<name>_results.json`` into ``work_dir``.
    """
    unknown = sorted(set(config) - set(FOUNDATION_DEFAULTS) - {"train_file"})
    if unknown:
        raise InputError(
            f"unknown foundation input keys {unknown}; valid: train_file, {sorted(FOUNDATION_DEFAULTS)}"
        )
    if "train_file" not in config:
        raise InputError("the foundation input needs `train_file` (a labelled extxyz)")
    full = {**FOUNDATION_DEFAULTS, **config}
    if not Path(full["train_file"]).is_file():
        raise InputError(f"train_file {full['train_file']!r} does not exist")
    work_dir = Path(work_dir).resolve()
    mace_dir = work_dir / "mace"
    mace_dir.mkdir(parents=True, exist_ok=True)
    argv = build_foundation_argv(full, mace_dir)
    log_path = work_dir / f"{full['name']}_train.log"
    status = run_mace_train(argv, log_path)
    rows = read_results_lines(mace_dir / "results")
    log_text = log_path.read_text(errors="replace")
    summary: dict[str, Any] = {"argv": argv, "returncode": status, "curves": rows, "log": log_path.name}
    if has_nonfinite_loss(rows, log_text):
        summary["status"] = "diverged"
    elif status != 0:
        summary["status"] = "failed"
    else:
        source = mace_dir / f"{full['name']}.model"
        if not source.is_file():
            summary["status"] = "failed"
        else:
            target = work_dir / f"{full['name']}.model"
            # mace's own output of this process, re-written in the safe form (weights + JSON architecture)
            save_safe_model(load_model(source, trusted=True), target)
            summary["status"] = "ok"
            summary["model"] = target.name
    (work_dir / f"{full['name']}_results.json").write_text(dumps(summary, fallback=str, indent=1))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry ``mofmlp-foundation``: train a small from-scratch MACE model (or ``--random``)."""
    parser = argparse.ArgumentParser(prog="mofmlp-foundation", description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", help="JSON/YAML input file (see module docs)")
    parser.add_argument(
        "--random", metavar="SPECIES", help="comma-separated species: build an untrained model instead"
    )
    parser.add_argument("--output", default="foundation.model", help="model path for --random")
    parser.add_argument("--seed", type=int, default=0, help="seed for --random")
    args = parser.parse_args(argv)
    try:
        if args.random:
            path = make_small_model(args.random.split(","), args.output, seed=args.seed)
            print(f"wrote {path}")
            return 0
        if not args.input:
            parser.error("give an input file, or --random SPECIES")
        summary = train_foundation(read_input(args.input), ".")
    except InputError as error:
        print(f"mofmlp-foundation: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"mofmlp-foundation: {summary['status']}")
    if summary["status"] == "diverged":
        return EXIT_DIVERGED
    return 0 if summary["status"] == "ok" else EXIT_MACE_FAILED


if __name__ == "__main__":
    sys.exit(main())
