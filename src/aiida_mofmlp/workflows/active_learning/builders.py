"""Builders of the ActiveLearningWorkChain: from protocols, and to continue a previous run."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
from aiida import orm

from aiida_mofmlp.common import frames as fr
from aiida_mofmlp.common.protocols import deep_merge
from aiida_mofmlp.data.guest import GuestMoleculeData
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.active_learning.settings import (
    PROTOCOL_FILE,
    default_parameters,
    override_keys,
    resolve_parameters,
)
from aiida_mofmlp.workflows.active_learning.strategies import STRATEGIES, strategy_of, strategy_preset
from aiida_mofmlp.workflows.cp2k.labelling import LabellingWorkChain
from aiida_mofmlp.workflows.lammps.base import LammpsMdBaseWorkChain
from aiida_mofmlp.workflows.mace.deviation import DeviationBaseWorkChain
from aiida_mofmlp.workflows.mace.ensemble import EnsembleTrainingWorkChain
from aiida_mofmlp.workflows.protocols.utils import load_overrides, read_protocol_file
from aiida_mofmlp.workflows.raspa.isotherm import IsothermWorkChain
from aiida_mofmlp.workflows.selection.base import get_parameters_from_protocol
from aiida_mofmlp.workflows.xtb.labelling import XtbLabellingWorkChain

#: the labelling work chains the loop can use (``parameters.labelling.engine``)
LABELLING_ENGINES = ("cp2k", "xtb")


def _child_inputs(builder, *drop: str) -> dict:
    """The pruned inputs of a child's ``builder`` without the ports ``drop`` (dotted paths)."""
    inputs = builder._inputs(prune=True)
    for path in drop:
        *parents, name = path.split(".")
        namespace = inputs
        for parent in parents:
            namespace = namespace.get(parent, {})
        namespace.pop(name, None)
    return inputs


def resolved_inputs(cls, protocol: str | None, overrides: Mapping | str | os.PathLike | None) -> dict:
    """The loop's settings for ``protocol`` and ``overrides`` (dict or YAML path): protocol, then the
    strategy's preset (protocols/active_learning.yaml ``strategies``), then the overrides; nothing stored.

    Raises ValueError naming an unknown override key or strategy.
    """
    overrides = load_overrides(overrides)
    valid = override_keys()
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"overrides: unknown keys {unknown}; valid: {', '.join(valid)}")
    strategy = (overrides.get("parameters") or {}).get("strategy") or default_parameters()["strategy"]
    if strategy not in STRATEGIES:
        valid = ", ".join(STRATEGIES)
        raise ValueError(f"parameters.strategy={strategy!r} is not a strategy; valid: {valid}")
    name = protocol or cls.get_default_protocol()
    preset = strategy_preset(read_protocol_file(PROTOCOL_FILE), strategy, name)
    inputs = cls.get_protocol_inputs(protocol, deep_merge(preset, overrides))
    return inputs


def builder_from_protocol(
    cls,
    structure: orm.StructureData,
    foundation_model: MaceModelData,
    codes: dict[str, orm.AbstractCode],
    guest: GuestMoleculeData | str | None = None,
    protocol: str | None = None,
    overrides: Mapping | str | os.PathLike | None = None,
    options: dict | None = None,
    initial_training_set: StructureSetData | None = None,
    replay_set: StructureSetData | None = None,
):
    """See :meth:`ActiveLearningWorkChain.get_builder_from_protocol` (``cls``: the work chain class)."""
    options = options or {}
    inputs = resolved_inputs(cls, protocol, overrides)
    strategy = inputs["parameters"]["strategy"]
    guest_node = GuestMoleculeData.builtin(guest) if isinstance(guest, str) else guest
    params = inputs["parameters"]
    stages = params["stages"]
    engine = params["labelling"].get("engine", "cp2k")
    if engine not in LABELLING_ENGINES:
        raise ValueError(
            f"parameters.labelling.engine={engine!r} is not a labelling engine; "
            f"valid: {', '.join(LABELLING_ENGINES)}"
        )
    needed = {engine, "train", "md", "deviation"}
    if int(params["initial_sampling"].get("aimd_steps") or 0) > 0 or strategy_of(params).samples_with_aimd:
        needed.add("cp2k")  # AIMD runs CP2K whatever labels the frames
    if params.get("stop", "sigma") != "sigma":
        needed.add("reference")  # the property stop rule runs the reference check
    missing = sorted(needed - set(codes))
    if missing:
        raise ValueError(
            f"codes: missing {missing}; with labelling engine {engine!r} give codes for {sorted(needed)} "
            "(and raspa for guest snapshots)"
        )
    if guest_node is None:
        params["loadings"] = []
    params["protocol"] = protocol or cls.get_default_protocol()
    params["selection"] = get_parameters_from_protocol(stages["selection"], inputs["selection"] or None)

    builder = cls.get_builder()
    builder.structure = structure
    builder.foundation_model = foundation_model
    if guest_node is not None:
        builder.guest = guest_node
    if initial_training_set is not None:
        builder.initial_training_set = initial_training_set

    # the children's builders need frames and models; the loop sets them per run
    frames = [structure.get_ase()] + ([guest_node.get_ase()] if guest_node is not None else [])
    if "cp2k" in codes and (engine == "cp2k" or "cp2k" in needed):
        labelling = LabellingWorkChain.get_builder_from_protocol(
            codes["cp2k"],
            StructureSetData.from_frames(frames),
            protocol=stages["cp2k"],
            overrides=inputs["cp2k"] or None,
            compute_stress=bool(params["labelling"].get("compute_stress", False)) and engine == "cp2k",
            options=options.get("cp2k"),
        )
        builder.labelling = _child_inputs(labelling, "structures", "max_concurrent", "max_failed_fraction")
    if engine == "xtb":
        xtb_overrides = inputs.get("xtb") or {}
        if params["labelling"].get("compute_stress"):
            stress = {"xtb": {"xtb": {"parameters": {"compute_stress": True}}}}
            xtb_overrides = deep_merge(xtb_overrides, stress)
        xtb = XtbLabellingWorkChain.get_builder_from_protocol(
            codes["xtb"],
            StructureSetData.from_frames(frames),
            protocol=stages.get("xtb"),
            overrides=xtb_overrides or None,
            options=options.get("xtb"),
        )
        builder.xtb_labelling = _child_inputs(xtb, "structures", "max_concurrent", "max_failed_fraction")

    # a labelled stand-in for the training set, which the loop makes
    stress = np.zeros(6) if params["labelling"].get("compute_stress") else None  # when stress is trained
    stand_in = fr.set_labels(
        structure.get_ase(), energy=0.0, forces=np.zeros((len(structure.sites), 3)), stress=stress
    )
    training = EnsembleTrainingWorkChain.get_builder_from_protocol(
        codes["train"],
        StructureSetData.from_frames([stand_in]),
        foundation_model,
        protocol=stages["mace"],
        overrides=inputs["mace"],
        options=options.get("train"),
        replay_set=replay_set,
    )
    builder.training = _child_inputs(
        training, "train.train.training_set", "train.train.foundation_model", "first_seed"
    )

    md = LammpsMdBaseWorkChain.get_builder_from_protocol(
        codes["md"],
        structure,
        foundation_model,
        protocol=stages["md"],
        overrides=inputs["md"],
        options=options.get("md"),
    )
    builder.md = _child_inputs(md, "md.structure", "md.model")

    deviation = DeviationBaseWorkChain.get_builder_from_protocol(
        codes["deviation"],
        StructureSetData.from_frames(frames[:1]),
        [foundation_model, foundation_model],
        protocol=stages["mace"],
        overrides=inputs["deviation"] or None,
        options=options.get("deviation"),
    )
    builder.deviation = _child_inputs(deviation, "deviation.frames", "deviation.models")

    if guest_node is not None and params["loadings"] and "raspa" in codes:
        problem = guest_node.force_field_problem()
        if problem:
            raise ValueError(f"guest: {problem}")
        snapshots = {
            "run_widom": False,
            "run_isotherm": False,
            "run_snapshots": True,
            "snapshot_loadings": list(params["loadings"]),
            "temperature": float(params["raspa_temperature"]),
            "seed": int(params["seed"]),
        }
        raspa_overrides = deep_merge({"parameters": snapshots}, inputs["raspa"])
        raspa = IsothermWorkChain.get_builder_from_protocol(
            codes["raspa"],
            structure,
            guest_node,
            protocol=stages["raspa"],
            overrides=raspa_overrides,
            options=options.get("raspa"),
        )
        builder.raspa = _child_inputs(raspa, "structure", "guest")
    for other in STRATEGIES:  # only the chosen strategy's settings block (defaults fill the others)
        if other != strategy:
            params.pop(other, None)
    if "reference" in needed:
        builder.reference_code = codes["reference"]
    builder.parameters = orm.Dict(params)
    return builder


def latest_iteration_table(run: orm.WorkflowNode) -> orm.Dict | None:
    """The run's ``iterations`` table; while it runs, or after a kill, its last ``history.iterations_XX``."""
    if "iterations" in run.outputs:
        return run.outputs.iterations
    history = run.outputs.history if "history" in run.outputs else {}
    tables = sorted(key for key in history if key.startswith("iterations_"))
    return history[tables[-1]] if tables else None


def builder_restart(previous: orm.WorkflowNode, overrides: dict | None = None):
    """A builder continuing ``previous`` (failed, killed or unconverged) from its last training set.

    The last ``history.training_set_XX`` becomes ``initial_training_set``; the ensemble trained on it
    (``history.models_YY`` with YY = XX + 1), when present, becomes ``initial_models``; no label is
    recomputed. The iteration table of ``previous`` (:func:`latest_iteration_table`) becomes
    ``previous_iterations``, so the new run's table carries the earlier rows. ``overrides`` (loop parameters)
    are deep-merged, e.g. ``{"max_iterations": 8}``.
    """
    history = previous.outputs.history if "history" in previous.outputs else {}
    sets = sorted(key for key in history if key.startswith("training_set_"))
    if not sets:
        raise ValueError(
            f"{previous.process_label}<{previous.pk}> has no training set in history to restart from"
        )
    last = int(sets[-1].rsplit("_", 1)[1])
    builder = previous.get_builder_restart()
    params = resolve_parameters(previous.inputs.parameters.get_dict())
    params["initial_sampling"] = {**params["initial_sampling"], "enabled": False}
    params["first_iteration"] = last + 1
    params = deep_merge(params, overrides or {})
    params["max_iterations"] = max(int(params["max_iterations"]), params["first_iteration"])
    builder.parameters = orm.Dict(params)
    builder.initial_training_set = history[sets[-1]]
    table = latest_iteration_table(previous)
    if table is not None:
        builder.previous_iterations = table
    elif "previous_iterations" in builder:
        del builder["previous_iterations"]
    models_key = f"models_{last + 1:02d}"
    if models_key in history:
        builder.initial_models = dict(history[models_key].items())
    elif "initial_models" in builder:
        del builder["initial_models"]
    return builder
