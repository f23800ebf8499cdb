"""Label and model lineage: which CP2K or xTB calculations and settings made a set's labels, which model
was trained on which set.

Every labelled frame records ``calc_uuid``, the calculation (CP2K or ``mofmlp-xtb``) that produced its
labels; :func:`label_provenance` resolves those calculations (parameters, code, program version) and checks
that each
is also an ancestor of the set in the provenance graph. :func:`model_lineage` goes from a model to its
training calculation, training set, foundation model and the CP2K settings of its labels;
:func:`models_trained_on` goes the other way.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from aiida import orm

from aiida_mofmlp.tools.queries import (
    TRAIN_PROCESS_TYPE,
    QueryError,
    load_node,
    returning_runs,
    run_context,
    training_calculation,
)

__all__ = [
    "calculations_by_uuid",
    "cp2k_settings",
    "describe_method",
    "label_provenance",
    "label_settings",
    "model_lineage",
    "models_trained_on",
    "settings_id",
    "summarise_labels",
    "xtb_settings",
]

CP2K_PROCESS_TYPE = "aiida.calculations:cp2k"
XTB_PROCESS_TYPE = "aiida.calculations:mofmlp.xtb"
#: the calculations whose outputs are labels
LABEL_PROCESS_TYPES = (CP2K_PROCESS_TYPE, XTB_PROCESS_TYPE)
#: xTB engine settings that change the converged result (the SCF path settings do not)
XTB_PHYSICS_KEYS = ("method", "electronic_temperature", "accuracy")
#: SCF keys that steer how CP2K converges, not the converged result (left out of :func:`settings_id`)
SCF_PATH_KEYS = ("SCF_GUESS", "MAX_SCF", "MIXING", "OT", "DIAGONALIZATION")
_CP2K_OUTPUT = "aiida.out"
_VERSION_PATTERN = re.compile(r"CP2K\|\s*version string:\s*(.+?)\s*$")


def _physics_parameters(parameters: Mapping) -> dict:
    """FORCE_EVAL of a CP2K input without what only steers the run: printing, the restart file and the
    SCF path (:data:`SCF_PATH_KEYS`), which change how the SCF converges but not what it converges to."""
    force_eval = copy.deepcopy(dict(parameters.get("FORCE_EVAL", {})))
    force_eval.pop("PRINT", None)
    dft = force_eval.get("DFT", {})
    dft.pop("WFN_RESTART_FILE_NAME", None)
    scf = dft.get("SCF", {})
    for key in SCF_PATH_KEYS:
        scf.pop(key, None)
    if isinstance(scf.get("OUTER_SCF"), Mapping):
        scf["OUTER_SCF"].pop("MAX_SCF", None)
    return force_eval


def settings_id(parameters: Mapping) -> str:
    """Short stable id of the CP2K settings that determine a label (``cp2k-`` + 10 hex digits).

    Built from FORCE_EVAL without printing, restart file and the SCF path keys (:data:`SCF_PATH_KEYS`);
    GLOBAL (run type, walltime) is left out. Smearing, thresholds, functional, basis, grids count: a frame
    labelled after an SCF escalation that switched smearing on gets another id.
    """
    text = json.dumps(_physics_parameters(parameters), sort_keys=True, default=str)
    return "cp2k-" + hashlib.sha256(text.encode()).hexdigest()[:10]


def _section_values(section: Any) -> list[Mapping]:
    if section is None:
        return []
    items = section if isinstance(section, list) else [section]
    return [item for item in items if isinstance(item, Mapping)]


def describe_method(parameters: Mapping) -> str:
    """Human-readable level of theory of a CP2K input, e.g. ``PBE+D3 (GPW), DZVP-MOLOPT-SR-GTH, ...``."""
    force_eval = parameters.get("FORCE_EVAL", {})
    dft = force_eval.get("DFT", {})
    qs_method = str(dft.get("QS", {}).get("METHOD", "GPW")).upper()
    smear = dft.get("SCF", {}).get("SMEAR")
    smearing = ""
    if isinstance(smear, Mapping) and str(smear.get("_", "ON")).upper() in ("ON", "TRUE", ".TRUE."):
        temperature = smear.get("ELECTRONIC_TEMPERATURE", "?")
        smearing = f", {smear.get('METHOD', 'FERMI_DIRAC')} smearing {temperature} K"
    if qs_method == "XTB":
        gfn = dft.get("QS", {}).get("XTB", {}).get("GFN_TYPE", 1)
        return f"GFN{gfn}-xTB (CP2K){smearing}"
    functional = dft.get("XC", {}).get("XC_FUNCTIONAL", {})
    if isinstance(functional, Mapping):
        name = functional.get("_") or next((key for key in functional if key != "_"), "unknown functional")
    else:
        name = str(functional)
    vdw = dft.get("XC", {}).get("VDW_POTENTIAL", {})
    pair = vdw.get("PAIR_POTENTIAL", {}) if isinstance(vdw, Mapping) else {}
    dispersion = {"DFTD3": "+D3", "DFTD3(BJ)": "+D3(BJ)", "DFTD2": "+D2"}.get(
        str(pair.get("TYPE", "")).upper(), ""
    )
    parts = [f"{name}{dispersion} ({qs_method})"]
    kinds = _section_values(force_eval.get("SUBSYS", {}).get("KIND"))
    basis = sorted({str(kind["BASIS_SET"]).split("-q")[0] for kind in kinds if kind.get("BASIS_SET")})
    potentials = sorted({str(kind["POTENTIAL"]).split("-q")[0] for kind in kinds if kind.get("POTENTIAL")})
    parts += ["/".join(basis)] if basis else []
    parts += ["/".join(potentials)] if potentials else []
    grid = dft.get("MGRID", {})
    if "CUTOFF" in grid:
        parts.append(f"CUTOFF {grid['CUTOFF']} Ry")
    if "REL_CUTOFF" in grid:
        parts.append(f"REL_CUTOFF {grid['REL_CUTOFF']} Ry")
    return ", ".join(parts) + smearing


def _cp2k_version(calc: orm.CalcJobNode) -> str | None:
    """'CP2K version 2023.1' from the header of the calculation's retrieved output, else None."""
    if "retrieved" not in calc.outputs:
        return None
    retrieved = calc.outputs.retrieved
    if _CP2K_OUTPUT not in retrieved.base.repository.list_object_names():
        return None
    with retrieved.base.repository.open(_CP2K_OUTPUT, "r") as handle:
        for number, line in enumerate(handle):
            match = _VERSION_PATTERN.search(line)
            if match:
                return match.group(1)
            if number > 400:
                break
    return None


def cp2k_settings(calc: orm.CalcJobNode) -> dict[str, Any]:
    """What produced a CP2K label: settings id, level of theory, code, CP2K and plugin versions, input."""
    parameters = calc.inputs.parameters.get_dict() if "parameters" in calc.inputs else {}
    code = calc.inputs.code if "code" in calc.inputs else None
    version = calc.base.attributes.get("version", {}) or {}
    return {
        "calc_uuid": calc.uuid,
        "calc_pk": calc.pk,
        "settings_id": settings_id(parameters),
        "method": describe_method(parameters),
        "code": code.full_label if code is not None else None,
        "cp2k_version": _cp2k_version(calc),
        "aiida_cp2k_version": version.get("plugin"),
        "aiida_core_version": version.get("core"),
        "force_eval": _physics_parameters(parameters),
    }


def xtb_settings(calc: orm.CalcJobNode) -> dict[str, Any]:
    """What produced an xTB label: settings id, method, code, tblite version, the method's settings."""
    from aiida_mofmlp.engines.xtb.label import DEFAULTS as XTB_DEFAULTS

    given = calc.inputs.parameters.get_dict() if "parameters" in calc.inputs else {}
    physics = {key: given.get(key, XTB_DEFAULTS[key]) for key in XTB_PHYSICS_KEYS}
    summary = calc.outputs.summary.get_dict() if "summary" in calc.outputs else {}
    code = calc.inputs.code if "code" in calc.inputs else None
    version = calc.base.attributes.get("version", {}) or {}
    program = f"tblite {summary['program_version']}" if summary.get("program_version") else "tblite"
    text = json.dumps(physics, sort_keys=True, default=str)
    return {
        "calc_uuid": calc.uuid,
        "calc_pk": calc.pk,
        "settings_id": "xtb-" + hashlib.sha256(text.encode()).hexdigest()[:10],
        "method": f"{physics['method']} ({program}), T_el {physics['electronic_temperature']} K",
        "code": code.full_label if code is not None else None,
        "cp2k_version": None,
        "program_version": summary.get("program_version"),
        "aiida_cp2k_version": None,
        "aiida_core_version": version.get("core"),
        "force_eval": physics,
    }


def label_settings(calc: orm.CalcJobNode) -> dict[str, Any]:
    """The settings of a labelling calculation: :func:`cp2k_settings` or :func:`xtb_settings`."""
    return xtb_settings(calc) if calc.process_type == XTB_PROCESS_TYPE else cp2k_settings(calc)


def _cp2k_ancestors(node: orm.Node) -> set[str]:
    """UUIDs of the labelling calculations (CP2K, xTB) among the ancestors of ``node``."""
    query = orm.QueryBuilder().append(orm.Node, filters={"id": node.pk}, tag="node")
    query.append(
        orm.CalcJobNode,
        with_descendants="node",
        filters={"process_type": {"in": list(LABEL_PROCESS_TYPES)}},
        project="uuid",
    )
    return {uuid for (uuid,) in query.iterall()}


def calculations_by_uuid(uuids: Iterable[str]) -> dict[str, orm.CalcJobNode]:
    """The calculation nodes of these UUIDs that exist in the profile, keyed by UUID."""
    uuids = sorted(set(uuids))
    found = {}
    for start in range(0, len(uuids), 500):
        query = orm.QueryBuilder().append(
            orm.CalcJobNode, filters={"uuid": {"in": uuids[start : start + 500]}}, project=["uuid", "*"]
        )
        found.update(dict(query.iterall()))
    return found


def label_provenance(structure_set, check_graph: bool = True) -> list[dict[str, Any]]:
    """Per frame: index, calc_uuid, iteration, loading, config_type and the CP2K settings of its labels.

    ``in_graph`` (with ``check_graph``) says whether that calculation is an ancestor of the set in the
    provenance graph; frames without ``calc_uuid`` or whose calculation is not in this profile get None
    for the calculation fields.
    """
    frames = []
    for index, atoms in enumerate(structure_set.iter_frames()):
        info = atoms.info
        frames.append(
            {
                "index": index,
                "calc_uuid": info.get("calc_uuid") or None,
                "iteration": info.get("iteration"),
                "loading": info.get("loading"),
                "config_type": info.get("config_type"),
            }
        )
    calcs = calculations_by_uuid(row["calc_uuid"] for row in frames if row["calc_uuid"])
    settings = {uuid: label_settings(calc) for uuid, calc in calcs.items()}
    ancestors = _cp2k_ancestors(structure_set) if check_graph and structure_set.is_stored else None
    for row in frames:
        found = settings.get(row["calc_uuid"]) if row["calc_uuid"] else None
        for key in ("settings_id", "method", "code", "cp2k_version", "aiida_cp2k_version"):
            row[key] = found[key] if found else None
        row["in_graph"] = None if ancestors is None or not row["calc_uuid"] else row["calc_uuid"] in ancestors
    return frames


def summarise_labels(structure_set, check_graph: bool = True) -> dict[str, Any]:
    """Counts of the set's labels by CP2K settings (with each settings' input), and the graph check."""
    rows = label_provenance(structure_set, check_graph=check_graph)
    by_settings: dict[str, dict[str, Any]] = {}
    calcs = calculations_by_uuid(row["calc_uuid"] for row in rows if row["settings_id"])
    for row in rows:
        key = row["settings_id"]
        if key is None:
            continue
        entry = by_settings.get(key)
        if entry is None:
            full = label_settings(calcs[row["calc_uuid"]])
            entry = by_settings[key] = {
                "settings_id": key,
                "method": full["method"],
                "codes": set(),
                "cp2k_versions": set(),
                "n_frames": 0,
                "n_calculations": 0,
                "force_eval": full["force_eval"],
                "_calcs": set(),
            }
        entry["n_frames"] += 1
        entry["_calcs"].add(row["calc_uuid"])
        entry["codes"].add(row["code"])
        entry["cp2k_versions"].add(row["cp2k_version"])
    settings = []
    for entry in by_settings.values():
        entry["n_calculations"] = len(entry.pop("_calcs"))
        entry["codes"] = sorted(str(value) for value in entry["codes"])
        entry["cp2k_versions"] = sorted(str(value) for value in entry["cp2k_versions"])
        settings.append(entry)
    settings.sort(key=lambda entry: -entry["n_frames"])
    linked = [row["in_graph"] for row in rows if row["in_graph"] is not None]
    return {
        "n_frames": len(rows),
        "n_with_calculation": sum(row["settings_id"] is not None for row in rows),
        "n_without_calculation": sum(row["settings_id"] is None for row in rows),
        "n_calculations": len({row["calc_uuid"] for row in rows if row["settings_id"]}),
        "settings": settings,
        "all_in_graph": all(linked) if linked else None,
        "not_in_graph": [row["index"] for row in rows if row["in_graph"] is False],
    }


def _node_summary(node: orm.Node | None) -> dict[str, Any] | None:
    if node is None:
        return None
    summary = {"pk": node.pk, "uuid": node.uuid, "type": type(node).__name__}
    for key in ("sha256", "count", "species"):
        value = node.base.attributes.get(key, None)
        if value is not None:
            summary[key] = value
    return summary


def model_lineage(model: int | str | orm.Node, check_graph: bool = True) -> dict[str, Any]:
    """Where a model comes from: training calculation and its parameters, training set, foundation model,
    and the CP2K settings that produced its labels (see :func:`summarise_labels`), plus the runs that
    returned it. A model not made by a training calculation (a foundation model) has ``trained`` False.
    """
    from aiida_mofmlp.data.mace_model import MaceModelData

    model = load_node(model, "model")
    if not isinstance(model, MaceModelData):
        raise QueryError(f"node <{model.pk}> is a {type(model).__name__}, not a MaceModelData")
    runs = returning_runs([model.pk]).get(model.pk, [])
    lineage: dict[str, Any] = {
        "model": {
            **_node_summary(model),
            "architecture": model.architecture,
            "head": model.head,
            "r_max": model.r_max,
            "seed": model.base.attributes.get("seed", None),
            "parent_sha256": model.parent_sha256,
        },
        "runs": [{**run_context(run), "link_label": label} for run, label in runs],
    }
    calc = training_calculation(model)
    lineage["trained"] = calc is not None
    if calc is None:
        return lineage
    inputs = calc.inputs
    lineage["training"] = {
        "calc_pk": calc.pk,
        "calc_uuid": calc.uuid,
        "code": inputs.code.full_label if "code" in inputs else None,
        "parameters": inputs.parameters.get_dict() if "parameters" in inputs else {},
        "seed": inputs.seed.value if "seed" in inputs else None,
        "metrics": calc.outputs.metrics.get_dict() if "metrics" in calc.outputs else None,
    }
    for key in ("foundation_model", "validation_set", "replay_set"):
        lineage[key] = _node_summary(inputs[key] if key in inputs else None)  # noqa: SIM401
    training_set = inputs.training_set
    lineage["training_set"] = _node_summary(training_set)
    lineage["labels"] = summarise_labels(training_set, check_graph=check_graph)
    return lineage


def models_trained_on(node: int | str | orm.Node) -> list[orm.Node]:
    """Trained models whose training data descend from ``node`` (a CP2K calculation, a labelled set, ...).

    Follows data provenance (create and input links) forward to MaceModelData made by a training
    calculation; sorted by creation time.
    """
    from aiida_mofmlp.data.mace_model import MaceModelData

    node = load_node(node)
    query = orm.QueryBuilder().append(orm.Node, filters={"id": node.pk}, tag="origin")
    query.append(MaceModelData, with_ancestors="origin", project="*", tag="model")
    query.append(
        orm.CalcJobNode, with_outgoing="model", filters={"process_type": TRAIN_PROCESS_TYPE}, project="id"
    )
    models = {model.pk: model for model, _ in query.iterall()}
    return sorted(models.values(), key=lambda model: (model.ctime, model.pk))


# ----------------------------------------------------------------------------------------------------
# text output
# ----------------------------------------------------------------------------------------------------
