"""Publishing a labelled dataset: extxyz + metadata card + model files (a whole run: :mod:`.archive`).

:func:`export_dataset` writes into an empty directory

* ``train.extxyz`` (and ``valid.extxyz`` with ``valid_fraction``, ``test.extxyz`` from a test set or a run's
  validation frames): reference labels under ``REF_energy`` / ``REF_forces`` / ``REF_stress`` (eV, eV/Å,
  eV/Å^3 Voigt), per-atom ``guest_id`` and per-frame provenance: ``calc_uuid`` (the CP2K calculation of the
  label), ``cp2k_settings`` (id of its settings, listed in the card), ``code_versions``, ``cp2k_code``,
  ``protocol`` (when known) and ``split``. Model predictions (``MACE_*``) are not exported. The files train
  with ``mace_run_train --energy_key REF_energy --forces_key REF_forces`` unchanged.
* ``dataset.yaml`` (or ``.json``): the metadata card (units, keys, DFT settings, counts, elements, splits,
  models, license, citation, file hashes, a suggested ``mace_run_train`` command line and, when the models'
  training or the run's validation reports them, ``stress_errors`` in eV/Å^3 and GPa).
* ``models/<label>.model``: the model files, with their sha256 checked against the nodes.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from aiida import orm

from aiida_mofmlp.common import frames as fr
from aiida_mofmlp.common.serialise import to_jsonable
from aiida_mofmlp.common.staging import staged_directory

__all__ = [
    "CARD_NAMES",
    "DEFAULT_LICENSE",
    "DatasetExport",
    "ExportError",
    "export_dataset",
    "read_card",
]

DEFAULT_LICENSE = "CC-BY-4.0"
CARD_FORMAT = "aiida-mofmlp dataset card"
CARD_VERSION = 1
CARD_NAMES = {"yaml": "dataset.yaml", "json": "dataset.json"}
SPLITS = ("train", "valid", "test")
#: per-frame provenance keys written into the exported extxyz (besides the frame's own metadata)
PROVENANCE_KEYS = ("calc_uuid", "cp2k_settings", "cp2k_code", "code_versions", "protocol", "split")
_PREDICTION_INFO = (fr.PREDICTED_ENERGY_KEY, fr.PREDICTED_STRESS_KEY)
_PREDICTION_ARRAYS = (fr.PREDICTED_FORCES_KEY,)


class ExportError(ValueError):
    """An export got an invalid argument or source; the message says what is valid."""


@dataclass
class DatasetExport:
    """What :func:`export_dataset` wrote: the card (as a dict), its path, the split files and models."""

    directory: Path
    card: dict[str, Any]
    card_path: Path
    splits: dict[str, Path] = field(default_factory=dict)
    models: dict[str, Path] = field(default_factory=dict)

    def mace_train_args(self) -> list[str]:
        """``mace_run_train`` data arguments for the exported files (paths absolute)."""
        return _train_args(self.card, str(self.directory))


# ----------------------------------------------------------------------------------------------------
# sources
# ----------------------------------------------------------------------------------------------------


def resolve_node(identifier: int | str | orm.Node) -> orm.Node:
    """The node of a pk, UUID (prefix) or label, or the node itself; ExportError when there is none."""
    from aiida_mofmlp.tools.queries import QueryError, load_node

    try:
        return load_node(identifier, "source")
    except QueryError as exc:
        raise ExportError(str(exc)) from None


def _resolve_source(source: orm.Node) -> dict[str, Any]:
    """Training set, test set, models (label -> node) and run of a run, process, set or model node."""
    from aiida_mofmlp.data.mace_model import MaceModelData
    from aiida_mofmlp.data.structure_set import StructureSetData
    from aiida_mofmlp.tools.queries import AL_PROCESS_TYPE, TRAIN_PROCESS_TYPE

    resolved: dict[str, Any] = {"training_set": None, "test_set": None, "models": {}, "run": None}
    if isinstance(source, StructureSetData):
        resolved["training_set"] = source
    elif isinstance(source, MaceModelData):
        creator = source.creator
        if creator is None or creator.process_type != TRAIN_PROCESS_TYPE:
            raise ExportError(
                f"model <{source.pk}> was not made by a training calculation, so it has no training set; "
                "give a trained model, a structure set or a run"
            )
        resolved["training_set"] = creator.inputs.training_set
        resolved["models"] = {"model_0": source}
    elif isinstance(source, orm.ProcessNode):
        outputs = source.outputs
        if "models" in outputs:
            resolved["models"] = {label: outputs.models[label] for label in sorted(outputs.models)}
        if "training_set" in outputs:
            resolved["training_set"] = outputs.training_set
        elif resolved["models"]:
            first = next(iter(resolved["models"].values()))
            if first.creator is not None and "training_set" in first.creator.inputs:
                resolved["training_set"] = first.creator.inputs.training_set
        if "validation_frames" in outputs:
            resolved["test_set"] = outputs.validation_frames
        if source.process_type == AL_PROCESS_TYPE:
            resolved["run"] = source
    if resolved["training_set"] is None:
        raise ExportError(
            f"node <{source.pk}> ({type(source).__name__}) gives no training set; give an active-learning "
            "run, a process with `models` outputs, a labelled StructureSetData or a trained MaceModelData"
        )
    return resolved


# ----------------------------------------------------------------------------------------------------
# frames
# ----------------------------------------------------------------------------------------------------


def _split_indices(count: int, valid_fraction: float, seed: int) -> np.ndarray:
    """Indices of the frames held out for validation (sorted)."""
    if not 0.0 <= valid_fraction < 1.0:
        raise ExportError(f"valid_fraction={valid_fraction!r} must be in [0, 1)")
    if valid_fraction == 0.0:
        return np.zeros(0, dtype=int)
    if count < 2:
        raise ExportError(f"valid_fraction > 0 needs at least 2 frames; the training set has {count}")
    n_valid = min(count - 1, max(1, round(valid_fraction * count)))
    return np.sort(np.random.default_rng(seed).permutation(count)[:n_valid])


def _calc_uuids(sets: Iterable) -> set[str]:
    uuids: set[str] = set()
    for structure_set in sets:
        for atoms in structure_set.iter_frames():
            if atoms.info.get("calc_uuid"):
                uuids.add(str(atoms.info["calc_uuid"]))
    return uuids


def _label_settings(uuids: Iterable[str]) -> dict[str, dict[str, Any]]:
    from aiida_mofmlp.tools.lineage import calculations_by_uuid, cp2k_settings

    return {uuid: cp2k_settings(calc) for uuid, calc in calculations_by_uuid(uuids).items()}


def _annotated(structure_set, split_of, settings, protocol) -> Iterator[tuple[str, Any]]:
    """(split, frame) with prediction keys removed and provenance keys added."""
    for index, atoms in enumerate(structure_set.iter_frames()):
        for key in _PREDICTION_INFO:
            atoms.info.pop(key, None)
        for key in _PREDICTION_ARRAYS:
            if key in atoms.arrays:
                del atoms.arrays[key]
        split = split_of(index)
        label = settings.get(str(atoms.info.get("calc_uuid", "")))
        if label is not None:
            atoms.info["cp2k_settings"] = label["settings_id"]
            if label["code"]:
                atoms.info["cp2k_code"] = label["code"]
            atoms.info["code_versions"] = _code_versions(label)
        if protocol:
            atoms.info["protocol"] = protocol
        atoms.info["split"] = split
        yield split, atoms


def _code_versions(label: Mapping[str, Any]) -> str:
    parts = []
    if label.get("cp2k_version"):
        parts.append(str(label["cp2k_version"]).replace("CP2K version", "CP2K").strip())
    if label.get("aiida_cp2k_version"):
        parts.append(f"aiida-cp2k {label['aiida_cp2k_version']}")
    if label.get("aiida_core_version"):
        parts.append(f"aiida-core {label['aiida_core_version']}")
    return "; ".join(parts) or "unknown"


class _SplitWriter:
    """Append frames to one extxyz file per split and count what was written."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.handles: dict[str, Any] = {}
        self.counts: dict[str, Counter] = {}
        self.elements: set[str] = set()
        self.labels = {"energy": True, "forces": True, "stress": True, "any_stress": False}
        self.n_atoms = 0
        self.settings: Counter[str] = Counter()

    def write(self, split: str, atoms) -> None:
        from ase.io import write

        if split not in self.handles:
            self.handles[split] = open(self.directory / f"{split}.extxyz", "w")  # noqa: SIM115
            self.counts[split] = Counter()
        atoms.calc = None
        write(self.handles[split], atoms, format="extxyz")
        counts = self.counts[split]
        counts["n_frames"] += 1
        counts[f"loading {atoms.info.get('loading', 'unknown')}"] += 1
        counts[f"iteration {atoms.info.get('iteration', 'unknown')}"] += 1
        counts[f"config_type {atoms.info.get('config_type', 'unknown')}"] += 1
        self.n_atoms += len(atoms)
        self.elements.update(atoms.get_chemical_symbols())
        self.labels["energy"] &= fr.ENERGY_KEY in atoms.info
        self.labels["forces"] &= fr.FORCES_KEY in atoms.arrays
        self.labels["stress"] &= fr.STRESS_KEY in atoms.info
        self.labels["any_stress"] |= fr.STRESS_KEY in atoms.info
        self.settings[atoms.info.get("cp2k_settings", "none")] += 1

    def close(self) -> dict[str, Path]:
        for handle in self.handles.values():
            handle.close()
        return {split: self.directory / f"{split}.extxyz" for split in self.handles}


def _grouped(counts: Counter, prefix: str) -> dict[str, int]:
    return {key[len(prefix) + 1 :]: value for key, value in sorted(counts.items()) if key.startswith(prefix)}


# ----------------------------------------------------------------------------------------------------
# the card
# ----------------------------------------------------------------------------------------------------


def _train_args(card: Mapping[str, Any], directory: str) -> list[str]:
    files = card["splits"]
    args = [f"--train_file={directory}/{files['train']['file']}"]
    if "valid" in files:
        args.append(f"--valid_file={directory}/{files['valid']['file']}")
    if "test" in files:
        args.append(f"--test_file={directory}/{files['test']['file']}")
    keys = card["keys"]
    args += [f"--energy_key={keys['energy']}", f"--forces_key={keys['forces']}"]
    if card["labels"]["stress"]:
        args.append(f"--stress_key={keys['stress']}")
    return args


def _model_entry(label: str, model, path: Path, directory: Path) -> dict[str, Any]:
    from aiida_mofmlp.tools.queries import TRAIN_PROCESS_TYPE

    attributes = model.base.attributes
    creator = model.creator
    trained_on = None
    if creator is not None and creator.process_type == TRAIN_PROCESS_TYPE:
        trained_on = creator.inputs.training_set.sha256
    return {
        "label": label,
        "file": str(path.relative_to(directory)),
        "uuid": model.uuid,
        "sha256": model.sha256,
        "architecture": model.architecture,
        "species": model.species,
        "r_max": model.r_max,
        "heads": model.heads,
        "head": model.head,
        "seed": attributes.get("seed", None),
        "training_mode": attributes.get("training_mode", None),
        "foundation_sha256": model.parent_sha256,
        "training_set_sha256": trained_on,
        "model_cards": _model_cards(model),
    }


def _model_cards(model) -> list[dict[str, Any]]:
    """The model cards (``card`` outputs of finished ModelCardWorkChains) of ``model``, oldest first."""
    from aiida_mofmlp.workflows.properties.model_card import ModelCardWorkChain

    return [{"uuid": card.uuid, **card.get_dict()} for card in ModelCardWorkChain.cards_of(model)]


#: the stress-error keys of :func:`aiida_mofmlp.common.metrics.stress_metrics` copied onto the card
STRESS_ERROR_KEYS = ("n_frames_stress", "mae_stress", "rmse_stress", "mae_stress_gpa", "rmse_stress_gpa")


def _stress_errors(resolved: Mapping[str, Any]) -> dict[str, Any] | None:
    """Stress errors known for the source: each model's train/valid errors (its training calculation's
    ``metrics``) and the run's ensemble-mean validation errors; None when nothing reports one."""
    from aiida_mofmlp.common.metrics import STRESS_METRIC_UNITS

    def picked(metrics: Mapping[str, Any]) -> dict[str, Any]:
        return {key: metrics[key] for key in STRESS_ERROR_KEYS if metrics.get(key) is not None}

    known: dict[str, Any] = {}
    for label, model in resolved["models"].items():
        creator = model.creator
        if creator is None or "metrics" not in creator.outputs:
            continue
        metrics = creator.outputs.metrics.get_dict()
        entry = {split: picked(metrics.get(split) or {}) for split in ("train", "valid")}
        entry = {split: values for split, values in entry.items() if values}
        if entry:
            known.setdefault("models", {})[label] = entry
    run = resolved["run"]
    if run is not None and "validation" in run.outputs:
        validation = picked(run.outputs.validation.get_dict())
        if validation:
            known["validation"] = validation
    if not known:
        return None
    known["units"] = dict(STRESS_METRIC_UNITS)
    known["definition"] = "predicted - reference per Voigt component (xx yy zz yz xz xy), ASE sign"
    return known


def _software() -> dict[str, str]:
    from aiida_mofmlp.tools.environment import package_version

    names = ("aiida-mofmlp", "aiida-core", "aiida-cp2k", "mace-torch", "ase")
    return {name: package_version(name) for name in names}


def _write_card(card: Mapping[str, Any], path: Path) -> None:
    if path.suffix == ".json":
        path.write_text(json.dumps(card, indent=2) + "\n")
    else:
        import yaml

        path.write_text(yaml.safe_dump(dict(card), sort_keys=False, allow_unicode=True, width=100))


def read_card(path: str | Path) -> dict[str, Any]:
    """The metadata card of an exported dataset (a ``dataset.yaml``/``.json`` file or its directory)."""
    path = Path(path)
    if path.is_dir():
        found = [path / name for name in CARD_NAMES.values() if (path / name).is_file()]
        if not found:
            raise ExportError(f"{path} holds no dataset card ({' or '.join(CARD_NAMES.values())})")
        path = found[0]
    text = path.read_text()
    if path.suffix == ".json":
        return json.loads(text)
    import yaml

    return yaml.safe_load(text)


# ----------------------------------------------------------------------------------------------------
# export_dataset
# ----------------------------------------------------------------------------------------------------


def export_dataset(
    source: int | str | orm.Node,
    directory: str | Path,
    *,
    valid_fraction: float = 0.0,
    seed: int = 0,
    test_set=None,
    include_models: bool = True,
    license: str = DEFAULT_LICENSE,
    citation: str | Mapping[str, Any] | None = None,
    authors: Sequence[str] | None = None,
    name: str | None = None,
    description: str | None = None,
    protocol: str | None = None,
    card_format: str = "yaml",
    overwrite: bool = False,
) -> DatasetExport:
    """Export the labelled dataset of ``source`` into ``directory`` (see the module docstring).

    ``source``: an active-learning run (final training set, its validation frames as the test split, final
    models, protocol from its extras), any process with ``models`` outputs, a labelled StructureSetData, or
    a trained MaceModelData (its training set and itself); a pk or UUID also works. ``valid_fraction`` of
    the training frames (random, ``seed``) go to ``valid.extxyz``; ``test_set`` overrides the test split.
    """
    if card_format not in CARD_NAMES:
        raise ExportError(f"card_format {card_format!r} is not valid; valid: {sorted(CARD_NAMES)}")
    node = resolve_node(source)
    resolved = _resolve_source(node)
    training_set = resolved["training_set"]
    if test_set is not None:
        resolved["test_set"] = resolve_node(test_set)
    for role in ("training_set", "test_set"):
        labelled = resolved[role]
        if labelled is not None and not (labelled.has_energy and labelled.has_forces):
            raise ExportError(
                f"{role} <{labelled.pk}> is not labelled (energy: {labelled.has_energy}, forces: "
                f"{labelled.has_forces}); export labelled frames only"
            )
    run = resolved["run"]
    if protocol is None and run is not None:
        protocol = run.base.extras.get("mofmlp", {}).get("protocol")
    held_out = set(_split_indices(len(training_set), valid_fraction, seed).tolist())
    options = {
        "name": name,
        "description": description,
        "license": license,
        "citation": citation,
        "authors": list(authors or []),
        "protocol": protocol,
        "valid_fraction": valid_fraction,
        "seed": seed,
    }
    final = Path(directory).resolve()
    owned = {*(f"{split}.extxyz" for split in SPLITS), *CARD_NAMES.values(), "models"}
    with staged_directory(final, overwrite, error=ExportError, owned=owned) as staging:
        export = _write_export(
            node, resolved, staging, held_out, include_models, card_format, protocol, options
        )
    # the files now live in ``final``: the same names under the folder that replaced the staging one
    return DatasetExport(
        final,
        export.card,
        final / export.card_path.name,
        {split: final / path.name for split, path in export.splits.items()},
        {label: final / "models" / path.name for label, path in export.models.items()},
    )


def _write_export(node, resolved, directory, held_out, include_models, card_format, protocol, options):
    training_set = resolved["training_set"]

    sets = [resolved[role] for role in ("training_set", "test_set") if resolved[role] is not None]
    settings = _label_settings(_calc_uuids(sets))
    writer = _SplitWriter(directory)
    try:
        for split, atoms in _annotated(
            training_set, lambda i: "valid" if i in held_out else "train", settings, protocol
        ):
            writer.write(split, atoms)
        if resolved["test_set"] is not None:
            for split, atoms in _annotated(resolved["test_set"], lambda _: "test", settings, protocol):
                writer.write(split, atoms)
    finally:
        split_files = writer.close()

    models: dict[str, Path] = {}
    model_entries = []
    if include_models and resolved["models"]:
        (directory / "models").mkdir()
        for label, model in resolved["models"].items():
            path = directory / "models" / f"{label}.model"
            with model.open(mode="rb") as source_handle, open(path, "wb") as target:
                shutil.copyfileobj(source_handle, target)
            if fr.sha256_of_file(path) != model.sha256:
                raise ExportError(f"model {label} <{model.pk}>: the copied file does not match its sha256")
            models[label] = path
            model_entries.append(_model_entry(label, model, path, directory))

    card = _build_card(
        node=node,
        resolved=resolved,
        writer=writer,
        split_files=split_files,
        settings=settings,
        model_entries=model_entries,
        options=options,
        directory=directory,
    )
    card_path = directory / CARD_NAMES[card_format]
    _write_card(card, card_path)
    return DatasetExport(directory, card, card_path, split_files, models)


def _build_card(
    *, node, resolved, writer, split_files, settings, model_entries, options, directory
) -> dict[str, Any]:
    from aiida_mofmlp.common.units import UNITS
    from aiida_mofmlp.tools.queries import run_info

    training_set, run = resolved["training_set"], resolved["run"]
    by_id: dict[str, dict[str, Any]] = {}
    for label in settings.values():
        entry = by_id.setdefault(
            label["settings_id"],
            {
                "settings_id": label["settings_id"],
                "method": label["method"],
                "codes": set(),
                "code_versions": set(),
                "n_calculations": 0,
                "force_eval": label["force_eval"],
            },
        )
        entry["codes"].add(label["code"])
        entry["code_versions"].add(_code_versions(label))
        entry["n_calculations"] += 1
    for key, entry in by_id.items():
        entry["n_frames"] = writer.settings.get(key, 0)
    splits = {}
    for split, path in split_files.items():
        counts = writer.counts[split]
        splits[split] = {
            "file": path.name,
            "n_frames": counts["n_frames"],
            "sha256": fr.sha256_of_file(path),
            "by_loading": _grouped(counts, "loading"),
            "by_iteration": _grouped(counts, "iteration"),
            "by_config_type": _grouped(counts, "config_type"),
        }
    source: dict[str, Any] = {
        "node_uuid": node.uuid,
        "node_type": type(node).__name__,
        "training_set_uuid": training_set.uuid,
        "training_set_sha256": training_set.sha256,
    }
    if resolved["test_set"] is not None:
        source["test_set_uuid"] = resolved["test_set"].uuid
        source["test_set_sha256"] = resolved["test_set"].sha256
    if run is not None:
        info = run_info(run)
        source["run"] = {
            key: info.get(key)
            for key in (
                "uuid",
                "ctime",
                "status",
                "framework_formula",
                "framework_label",
                "guest",
                "protocol",
                "n_iterations",
                "converged",
                "valid_mae_e_per_atom",
                "valid_mae_f",
            )
        }
    n_frames = sum(entry["n_frames"] for entry in splits.values())
    default_name = f"aiida-mofmlp dataset {training_set.uuid[:8]}"
    card: dict[str, Any] = {
        "format": CARD_FORMAT,
        "format_version": CARD_VERSION,
        "name": options["name"] or default_name,
        "description": options["description"] or "",
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "license": options["license"],
        "citation": options["citation"],
        "authors": options["authors"],
        "units": {
            **UNITS,
            "stress": f"{UNITS.get('stress', 'eV/Angstrom^3')}, Voigt order xx yy zz yz xz xy",
            "loading": "guest molecules per cell",
        },
        "keys": {
            "energy": fr.ENERGY_KEY,
            "forces": fr.FORCES_KEY,
            "stress": fr.STRESS_KEY,
            "guest_id": fr.GUEST_ID_KEY,
            "provenance": list(PROVENANCE_KEYS),
        },
        "labels": {
            "energy": writer.labels["energy"],
            "forces": writer.labels["forces"],
            "stress": writer.labels["stress"],
            "stress_in_some_frames": writer.labels["any_stress"],
        },
        "counts": {
            "n_frames": n_frames,
            "n_atoms": writer.n_atoms,
            "n_frames_without_calculation": writer.settings.get("none", 0),
        },
        "elements": sorted(writer.elements),
        "splits": splits,
        "split_rule": {
            "valid_fraction": options["valid_fraction"],
            "seed": options["seed"],
            "test": "run validation frames" if resolved["test_set"] is not None else None,
        },
        "protocol": options["protocol"],
        "dft": {"settings": sorted(by_id.values(), key=lambda entry: -entry["n_frames"])},
        "source": source,
        "models": model_entries,
        "software": _software(),
    }
    stress_errors = _stress_errors(resolved)
    if stress_errors is not None:
        card["stress_errors"] = stress_errors
    card["training"] = {"mace_run_train": _train_args(card, ".")}
    card["files"] = {
        entry["file"]: {"sha256": entry["sha256"], "bytes": (directory / entry["file"]).stat().st_size}
        for entry in [*splits.values(), *model_entries]
    }
    return to_jsonable(card)
