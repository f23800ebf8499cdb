"""The reference check's decisions: each property of each model against the labelling method.

:func:`reference_table` is the plain comparison (used by the calcfunction, the model card and the loop's
property stop rule); :func:`compare_with_reference` stores it; :func:`untrusted_check_frames` picks the
reference-labelled frames behind the properties that failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mofmlp.data.structure_set import StructureSetData

REFERENCE = "reference"
ENSEMBLE = "ensemble"
#: property -> (tolerance key, unit of the value, relative tolerance?)
TOLERANCE_KEYS = {
    "volume": ("volume_percent", "Angstrom^3", True),
    "bulk_modulus": ("bulk_modulus_percent", "GPa", True),
    "binding_energy": ("binding_energy_kj_mol", "kJ/mol per guest", False),
    "gamma": ("gamma_thz", "THz", False),
}
#: property -> the ``check_task`` of the check frames behind it
CHECK_TASK = {"volume": "eos", "bulk_modulus": "eos", "binding_energy": "binding_energy", "gamma": "gamma"}
#: acoustic modes left out of the Gamma comparison (zero by translation invariance)
ACOUSTIC_MODES = 3


def tolerance_problems(tolerances: Mapping[str, Any]) -> list[str]:
    """Why ``tolerances`` is not valid (known keys, positive numbers)."""
    valid = sorted(key for key, _, _ in TOLERANCE_KEYS.values())
    problems = []
    for key, value in tolerances.items():
        if key not in valid:
            problems.append(f"tolerances: unknown key {key!r}; valid: {valid}")
        elif not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            problems.append(f"tolerances.{key}: {value!r} must be a positive number")
    return problems


def _scalar(values: Mapping[str, Any], prop: str) -> float | None:
    value = values.get(prop)
    if value is None:
        return None
    if prop == "binding_energy":
        return float(np.mean(value))
    if prop == "gamma":
        return float(np.mean(np.sort(value)[ACOUSTIC_MODES:]))
    return float(value)


def _row(prop: str, label: str, ref: Mapping, model: Mapping, tolerance: float) -> dict[str, Any]:
    reference, value = _scalar(ref, prop), _scalar(model, prop)
    row: dict[str, Any] = {"property": prop, "model": label, "reference": reference, "value": value}
    if prop == "gamma":
        ours, theirs = np.sort(model[prop])[ACOUSTIC_MODES:], np.sort(ref[prop])[ACOUSTIC_MODES:]
        if ours.shape != theirs.shape:
            raise ValueError(f"gamma: {label} has {ours.size} optical modes, the reference {theirs.size}")
        difference = float(np.mean(np.abs(ours - theirs)))  # MAE of the sorted optical frequencies
    else:
        difference = value - reference
    row["difference"] = difference
    if prop == "binding_energy":
        errors = np.asarray(model[prop], dtype=float) - np.asarray(ref[prop], dtype=float)
        row["frame_errors"] = errors.tolist()
        row["mae_per_frame"] = float(np.mean(np.abs(errors)))
    _, _, relative = TOLERANCE_KEYS[prop]
    if relative:
        row["relative_percent"] = 100.0 * difference / reference if reference else float("inf")
        row["passed"] = bool(abs(row["relative_percent"]) <= tolerance)
    else:
        row["passed"] = bool(abs(difference) <= tolerance)
    row["tolerance"] = tolerance
    return row


def _ensemble(models: list[Mapping], prop: str) -> Any:
    values = [model[prop] for model in models]
    if prop in ("binding_energy", "gamma"):
        return np.mean([np.sort(v) if prop == "gamma" else np.asarray(v) for v in values], axis=0).tolist()
    return float(np.mean(values))


def reference_table(results: Mapping[str, Any], tolerances: Mapping[str, float]) -> dict[str, Any]:
    """Rows (property, model, reference, value, difference, tolerance, passed) for every computed property.

    Each model gets a row and so does the ensemble (the mean of the models' values; for Gamma the mean of
    their sorted spectra), with ``spread``: the standard deviation of the models' values, the ensemble's
    own uncertainty on the number (None with one model). A property passes when the ensemble's row is
    within its tolerance: percent for volume and bulk modulus, kJ/mol for the mean binding energy per
    guest, THz for the mean absolute error of the sorted optical Gamma frequencies. ``passed`` is True
    when every property passes.
    """
    calculators = results["calculators"]
    ref = calculators[REFERENCE]
    labels = sorted(label for label in calculators if label != REFERENCE)
    rows, properties = [], {}
    for prop, (key, unit, _) in TOLERANCE_KEYS.items():
        if prop not in ref or key not in tolerances:
            continue
        tolerance = float(tolerances[key])
        with_prop = [label for label in labels if prop in calculators[label]]
        for label in with_prop:
            rows.append({**_row(prop, label, ref, calculators[label], tolerance), "unit": unit})
        if not with_prop:
            continue
        ensemble = {prop: _ensemble([calculators[label] for label in with_prop], prop)}
        row = {**_row(prop, ENSEMBLE, ref, ensemble, tolerance), "unit": unit}
        values = [_scalar(calculators[label], prop) for label in with_prop]
        row["spread"] = float(np.std(values, ddof=1)) if len(values) > 1 else None  # the models' own
        rows.append(row)
        properties[prop] = row["passed"]
    return {
        "rows": rows,
        "properties": properties,
        "failed": sorted(prop for prop, passed in properties.items() if not passed),
        "passed": bool(properties) and all(properties.values()),
        "reference_method": results.get("reference_method"),
        "tolerances": dict(tolerances),
    }


@calcfunction
def merge_reference_results(**results: orm.Dict) -> orm.Dict:
    """One results Dict from the jobs of one check: the reference job's fields, every job's calculators."""
    merged = dict(results["reference"].get_dict())
    merged["calculators"], merged["seconds"] = {}, {}
    for job in results.values():
        values = job.get_dict()
        merged["calculators"].update(values["calculators"])
        merged["seconds"].update(values["seconds"])
    return orm.Dict(merged)


@calcfunction
def compare_with_reference(results: orm.Dict, tolerances: orm.Dict) -> orm.Dict:
    """The stored :func:`reference_table` of a reference check's ``results``."""
    return orm.Dict(reference_table(results.get_dict(), tolerances.get_dict()))


@calcfunction
def untrusted_check_frames(check_frames: StructureSetData, table: orm.Dict) -> StructureSetData:
    """The reference-labelled frames behind every failed property.

    A failed volume or bulk modulus gives the reference's EOS cells, failed Gamma frequencies the relaxed
    cell and its rattled copies, a failed binding energy the loaded frames whose ensemble error exceeds the
    tolerance with their framework and guests alone (``binding_index``: the loaded frame they belong to).
    """
    table_dict = table.get_dict()
    failed = set(table_dict["failed"])
    tasks = {CHECK_TASK[prop] for prop in failed}
    worst = set()
    for row in table_dict["rows"]:
        if row["property"] == "binding_energy" and row["model"] == ENSEMBLE and not row["passed"]:
            worst = {i for i, error in enumerate(row["frame_errors"]) if abs(error) > row["tolerance"]}
    frames = []
    for atoms in check_frames.iter_frames():
        task = atoms.info.get("check_task")
        if task not in tasks:
            continue
        if task == "binding_energy" and int(atoms.info["binding_index"]) not in worst:
            continue
        frames.append(atoms)
    return StructureSetData.from_frames(frames)
