"""Training of the foundation from the data folder, its evaluation per framework, the card, and the
campaign's status."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from aiida_mofmlp.common.frames import read_frames, sha256_of_file, write_frames

from .campaign import Campaign, train
from .labels import METHOD, log
from .plan import GUESTS, MODEL_NAME


def foundation_settings(campaign: Campaign, args: Any) -> dict[str, Any]:
    settings = {**campaign.plan["foundation"], "name": MODEL_NAME}
    for key, value in (
        ("max_num_epochs", args.epochs),
        ("num_channels", args.channels),
        ("max_L", args.max_L),
    ):
        if value is not None:
            settings[key] = value
    return settings


def train_foundation(campaign: Campaign, args: Any) -> None:
    """The foundation on every labelled frame of the ``train`` frameworks and the isolated guests."""
    frames = campaign.labelled("train", "molecules")
    for atoms in frames:
        for key in ("frame_index", "amplitude", "temperature"):
            atoms.info.pop(key, None)
    settings = foundation_settings(campaign, args)
    campaign.progress["foundation_settings"] = {
        **settings,
        "device": args.device,
        "train_frames": len(frames),
    }
    campaign.save()
    log(f"  training on {len(frames)} frames: {settings}")
    train(
        frames,
        campaign.work / "foundation",
        settings,
        campaign.seed,
        campaign.e0s(),
        campaign.plan["valid_fraction"],
        args.device,
        keep=campaign.data / "checkpoints",
    )


def _errors(calc, frames: list[Atoms]) -> dict[str, list[float]]:
    row: dict[str, list[float]] = {"e": [], "f": [], "s": [], "f0": []}
    for atoms in frames:
        work = atoms.copy()
        work.calc = calc
        row["e"].append(abs(work.get_potential_energy() - atoms.info["REF_energy"]) / len(atoms))
        ref = atoms.arrays["REF_forces"]
        row["f"] += np.abs(work.get_forces() - ref).ravel().tolist()
        row["f0"] += np.abs(ref).ravel().tolist()
        row["s"] += np.abs(work.get_stress(voigt=True) - atoms.info["REF_stress"]).tolist()
    return row


def _summary(row: dict[str, list[float]]) -> dict[str, float]:
    return {
        "n_frames": len(row["e"]),
        "energy_mae_mev_per_atom": round(1000 * float(np.mean(row["e"])), 2),
        "forces_mae_mev_per_a": round(1000 * float(np.mean(row["f"])), 1),
        "mean_abs_force_mev_per_a": round(1000 * float(np.mean(row["f0"])), 1),
        "stress_mae_mev_per_a3": round(1000 * float(np.mean(row["s"])), 3),
    }


def evaluate(campaign: Campaign, device: str = "cpu") -> None:
    """Errors of the foundation on every frame of each held-out framework and of the demo's framework."""
    from aiida_mofmlp.engines.mace.common import mace_calculator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calc = mace_calculator(campaign.model_path(), device=device, default_dtype="float64")
    errors: dict[str, Any] = {}
    pooled: dict[str, list[float]] = {"e": [], "f": [], "s": [], "f0": []}
    for role in ("heldout", "demo"):
        for name in campaign.frameworks_by_role(role):
            frames = _frames_of(campaign, name)
            row = _errors(calc, frames)
            errors[name] = {"role": role, **_summary(row)}
            if role == "heldout":
                for key in pooled:
                    pooled[key] += row[key]
            log(f"  {name} ({role}): {errors[name]}")
    errors["all held out"] = {"role": "heldout", **_summary(pooled)}
    (campaign.data / "errors.json").write_text(json.dumps(errors, indent=1))


def _frames_of(campaign: Campaign, name: str) -> list[Atoms]:
    frames = []
    for kind in ("initial", "md"):
        path = campaign.label_target(kind, name)
        if path.is_file():
            frames += read_frames(path)
    return frames


def package(campaign: Campaign, out: Path) -> None:
    """Model, replay sample (training frames), held-out sample and card into ``out``."""
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(campaign.model_path(), out / f"{MODEL_NAME}.model")
    train_frames = campaign.labelled("train", "molecules")
    rng = campaign.rng("package")
    n = min(len(train_frames), campaign.plan["replay_frames"])
    replay = [train_frames[i] for i in sorted(rng.choice(len(train_frames), n, replace=False))]
    heldout: list[Atoms] = []
    for name in campaign.frameworks_by_role("heldout", "demo"):
        frames = _frames_of(campaign, name)
        picks = rng.choice(
            len(frames), min(len(frames), campaign.plan["heldout_per_framework"]), replace=False
        )
        heldout += [frames[i] for i in sorted(picks)]
    files = {"model": f"{MODEL_NAME}.model", "replay": "replay.extxyz.gz", "heldout": "heldout.extxyz.gz"}
    write_frames(replay, out / files["replay"])
    write_frames(heldout, out / files["heldout"])
    card = make_card(campaign, files, out, len(replay), len(heldout))
    (out / "card.yaml").write_text(yaml.safe_dump(card, sort_keys=False, width=100))
    (out / "card.md").write_text(card_markdown(card))
    init = out / "__init__.py"
    if not init.is_file():
        init.write_text('"""MOF foundation MACE model (a stand-in for MACE-MP; see card.md)."""\n')
    log(f"  wrote {sorted(p.name for p in out.iterdir())} to {out}")


def make_card(campaign: Campaign, files: dict, out: Path, n_replay: int, n_heldout: int) -> dict[str, Any]:
    from importlib.metadata import version

    from ase.data import chemical_symbols

    from aiida_mofmlp.engines.mace.common import load_model

    model = load_model(out / files["model"])
    progress = campaign.progress
    settings = progress.get("foundation_settings", campaign.plan["foundation"])
    frameworks, kinds, total = {}, {}, 0
    for name, info in progress["frameworks"].items():
        frames = _frames_of(campaign, name)
        total += len(frames)
        for atoms in frames:
            kinds[atoms.info["kind"]] = kinds.get(atoms.info["kind"], 0) + 1
        frameworks[name] = {**info, "frames": len(frames)}
    molecules = progress["labels"].get("molecules", {}).get("molecules", {}).get("n_labelled", 0)
    kinds["molecule"] = molecules
    labels = progress["labels"]
    versions = {f.get("tblite_version") for per in labels.values() for f in per.values()} - {None}
    seconds = progress["seconds"]
    log_text = _training_log(campaign)
    return {
        "name": MODEL_NAME,
        "purpose": (
            "A stand-in for MACE-MP in offline demos, tests and benchmarks of aiida-mofmlp (fine-tuning and "
            "multihead replay with real knowledge of MOFs and guests). Trained on GFN1-xTB labels of about "
            "30 frameworks: NOT a model for production science; use MACE-MP or a DFT-level model for that."
        ),
        "files": {key: {"path": name, "sha256": sha256_of_file(out / name)} for key, name in files.items()},
        "model": {
            "architecture": type(model).__name__,
            "species": [chemical_symbols[int(z)] for z in model.atomic_numbers.tolist()],
            "r_max": float(model.r_max),
            "num_channels": settings["num_channels"],
            "max_L": settings["max_L"],
            "num_interactions": int(model.num_interactions),
            "correlation": 2,
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "size_bytes": (out / files["model"]).stat().st_size,
            "dtype": "float64",
            "mace_torch": version("mace-torch"),
            "heads": list(getattr(model, "heads", None) or ["Default"]),
            "training": {
                "max_num_epochs": settings["max_num_epochs"],
                "epochs_run": log_text["epochs"],
                "device": settings.get("device", "cpu"),
                "seconds": seconds.get("train"),
                "loss": "stress (energy:forces:stress weights 1:10:10)",
                "E0s": "isolated-atom GFN1-xTB energies (tblite, non-periodic), data/foundation/e0s.json",
                "valid_fraction": campaign.plan["valid_fraction"],
                "seed": campaign.seed,
            },
        },
        "data": {
            "labels": {
                "method": METHOD,
                "program": "tblite",
                "program_version": sorted(versions)[0] if versions else None,
                "electronic_temperature_K": 300.0,
                "quantities": "energy (eV), forces (eV/A), stress (eV/A^3)",
                "failed_frames": sum(f.get("n_failed", 0) for per in labels.values() for f in per.values()),
            },
            "source": "RASPA2 CIF library (share/raspa/structures/cif), primitive cells repeated so that "
            f"every perpendicular width >= 2 r_max = {2 * campaign.plan['r_max']} A",
            "folder": "data/foundation (README.md there)",
            "frameworks": frameworks,
            "guests": list(GUESTS),
            "frames": {
                "total": total + molecules,
                "per_kind": kinds,
                "train": int(progress.get("foundation_settings", {}).get("train_frames", 0)),
            },
            "md_temperatures_K": list(campaign.plan["temperatures"]),
            "rattle_amplitudes_A": list(campaign.plan["rattle"]),
            "max_strain": campaign.plan["max_strain"],
            "replay_frames": n_replay,
            "heldout_frames": n_heldout,
        },
        "heldout_errors": json.loads((campaign.data / "errors.json").read_text()),
        "build": {
            "command": progress.get("command"),
            "seconds": dict(seconds),
            "total_seconds": round(sum(seconds.values()), 1),
            "machine": progress.get("machine"),
        },
    }


def card_markdown(card: dict[str, Any]) -> str:
    """The human-readable card."""
    model, data, build = card["model"], card["data"], card["build"]
    lines = [
        f"# `{card['name']}`: a MOF foundation MACE model",
        "",
        f"**{card['purpose']}**",
        "",
        "## Model",
        "",
        f"{model['architecture']}, {model['num_channels']} channels, max_L {model['max_L']}, "
        f"{model['num_interactions']} interactions, correlation {model['correlation']}, "
        f"r_max {model['r_max']} A, "
        f"{model['parameters']} parameters, {model['size_bytes'] / 1e6:.2f} MB ({model['dtype']}, "
        f"mace-torch {model['mace_torch']}). Species: {', '.join(model['species'])}. "
        f"Trained {model['training']['epochs_run']} epochs on {model['training']['device']} "
        f"in {model['training']['seconds']} s, loss {model['training']['loss']}; "
        f"E0s: {model['training']['E0s']}.",
        "",
        "## Data",
        "",
        f"Labels: {data['labels']['method']} by {data['labels']['program']} "
        f"{data['labels']['program_version']} "
        f"({data['labels']['quantities']}), {data['labels']['failed_frames']} frames failed. "
        f"Structures: {data['source']}. Guests: {', '.join(data['guests'])} (0-4 per cell, and isolated).",
        "",
        f"Frames: {data['frames']['total']} ("
        + ", ".join(f"{k} {v}" for k, v in data["frames"]["per_kind"].items())
        + f"), {data['frames']['train']} of them trained on. MD at {data['md_temperatures_K']} K with a "
        f"bootstrap model; rattles {data['rattle_amplitudes_A']} A; "
        f"strains up to +-{100 * data['max_strain']:.0f} %.",
        "",
        "| framework | role | atoms | frames | energy MAE (meV/atom) | forces MAE (meV/A) | mean abs force "
        "(meV/A) | stress MAE (meV/A^3) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    errors = card["heldout_errors"]
    for name, fw in data["frameworks"].items():
        err = errors.get(name, {})
        lines.append(
            f"| {name} | {fw['role']} | {fw['atoms']} | {fw['frames']} "
            f"| {err.get('energy_mae_mev_per_atom', '')} "
            f"| {err.get('forces_mae_mev_per_a', '')} | {err.get('mean_abs_force_mev_per_a', '')} "
            f"| {err.get('stress_mae_mev_per_a3', '')} |"
        )
    allerr = errors["all held out"]
    lines += [
        f"| **all held out** | | | {allerr['n_frames']} | {allerr['energy_mae_mev_per_atom']} "
        f"| {allerr['forces_mae_mev_per_a']} | {allerr['mean_abs_force_mev_per_a']} "
        f"| {allerr['stress_mae_mev_per_a3']} |",
        "",
        "## Files",
        "",
        *[f"- `{f['path']}` sha256 `{f['sha256']}`" for f in card["files"].values()],
        "",
        f"`replay.extxyz.gz`: {data['replay_frames']} training frames for multihead fine-tuning "
        "(`replay_file`); "
        f"`heldout.extxyz.gz`: {data['heldout_frames']} frames of the held-out and demo frameworks, "
        "for checks.",
        "",
        "## Build",
        "",
        f"`{build['command']}` ({build['machine']}). Seconds per stage (resumed runs added up):",
        "",
        *[f"- {k}: {v}" for k, v in build["seconds"].items()],
        f"- total: {build['total_seconds']}",
        "",
    ]
    return "\n".join(lines)


def _training_log(campaign: Campaign) -> dict[str, Any]:
    """Epochs trained so far and the newest validation line, from mace's log in the work folder."""
    logs = sorted((campaign.work / "foundation").glob("**/*.log"), key=lambda p: p.stat().st_mtime)
    epochs, last = 0, ""
    for path in logs[-1:]:
        for line in path.read_text(errors="replace").splitlines():
            match = re.search(r"Epoch (\d+)", line)
            if match:
                epochs = max(epochs, int(match.group(1)) + 1)
                last = line.strip()
    return {"epochs": epochs, "last": last}


def status_lines(campaign: Campaign) -> list[str]:
    """Where the campaign stands: stages, frames labelled, epochs trained, time spent and left."""
    progress, c = campaign.progress, campaign
    frameworks = progress.get("frameworks", {})
    labels = progress.get("labels", {})
    seconds = progress.get("seconds", {})
    lines = [f"campaign ({progress['plan']} plan): data {c.data}, work {c.work}"]
    if not frameworks:
        return [*lines, "nothing done yet: run `python scripts/build_foundation.py` to start"]
    n_fw = len(frameworks)
    roles = {}
    for info in frameworks.values():
        roles[info["role"]] = roles.get(info["role"], 0) + 1
    lines.append(f"frameworks: {n_fw} ({', '.join(f'{k} {v}' for k, v in roles.items())})")
    lines.append(f"E0s: {'done' if (c.data / 'e0s.json').is_file() else 'to do'}")
    lines.append(f"cells: {'done' if (c.data / 'cells.extxyz.gz').is_file() else 'to do'}")
    per_frame = []
    for kind in ("initial", "md"):
        done = labels.get(kind, {})
        n = sum(f["n_labelled"] for f in done.values())
        lines.append(f"labels {kind}: {len(done)}/{n_fw} frameworks, {n} frames")
        per_frame += [f["seconds"] / max(1, f["n_in"]) for f in done.values() if f.get("seconds")]
    lines.append(f"frames labelled in all: {c.labelled_count()}")
    lines.append(f"bootstrap model: {'done' if c.bootstrap_model().is_file() else 'to do'}")
    training = _training_log(c)
    target = progress.get("foundation_settings", {}).get(
        "max_num_epochs", c.plan["foundation"]["max_num_epochs"]
    )
    state = "done" if c.model_path().is_file() else f"{training['epochs']}/{target} epochs"
    lines.append(f"training: {state}" + (f" ({training['last'][:120]})" if training["last"] else ""))
    lines.append(f"evaluation: {'done' if (c.data / 'errors.json').is_file() else 'to do'}")
    # a stage's seconds are added when it ends; the frameworks labelled so far count while it runs
    running = {
        f"label_{kind}": sum(f.get("seconds", 0.0) for f in labels.get(kind, {}).values())
        for kind in ("initial", "md")
    }
    shown = dict(seconds)
    for stage, so_far in (("label_initial", running["label_initial"]), ("md", running["label_md"])):
        shown[stage] = max(shown.get(stage, 0.0), so_far)
    spent = sum(shown.values())
    lines.append(
        f"time spent: {spent / 3600:.2f} h ({', '.join(f'{k} {v:.0f} s' for k, v in shown.items())})"
    )
    left = []
    md_left = n_fw - len(labels.get("md", {}))
    init_left = n_fw - len(labels.get("initial", {}))
    if per_frame and (md_left or init_left):
        plan = c.plan
        initial_per_cell = len(plan["rattle"]) + plan["strains"]
        md_per_cell = len(plan["temperatures"]) * plan["md_frames"]
        cells_per_framework = 1 + len(plan["loadings"])
        frames_left = cells_per_framework * (init_left * initial_per_cell + md_left * md_per_cell)
        label_s = frames_left * float(np.mean(per_frame))
        left.append(f"labelling about {label_s / 3600:.1f} h ({frames_left} frames at the rate so far)")
    if training["epochs"] and not c.model_path().is_file() and seconds.get("train"):
        per_epoch = seconds["train"] / training["epochs"]
        left.append(f"training about {(target - training['epochs']) * per_epoch / 3600:.1f} h")
    lines.append("time left: " + (", ".join(left) if left else "unknown until a stage has run"))
    return lines


__all__ = ["evaluate", "package", "status_lines", "train_foundation"]
