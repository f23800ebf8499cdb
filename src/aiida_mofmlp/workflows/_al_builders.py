"""Builders of the ActiveLearningWorkChain: from protocols, and to continue a previous run."""

from __future__ import annotations

import copy

from aiida import orm

from aiida_mofmlp.common.protocols import deep_merge, read_protocol_file
from aiida_mofmlp.data.guest import GuestMoleculeData
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows._al_settings import OVERRIDE_KEYS, get_protocol, resolve_parameters
from aiida_mofmlp.workflows.deviation import DeviationBaseWorkChain
from aiida_mofmlp.workflows.isotherm import IsothermWorkChain
from aiida_mofmlp.workflows.labelling import LabellingWorkChain
from aiida_mofmlp.workflows.lammps_md import LammpsMdBaseWorkChain
from aiida_mofmlp.workflows.mace_train import get_protocol as get_mace_protocol
from aiida_mofmlp.workflows.selection import get_parameters_from_protocol


def builder_from_protocol(
    cls,
    structure: orm.StructureData,
    foundation_model: MaceModelData,
    codes: dict[str, orm.AbstractCode],
    guest: GuestMoleculeData | str | None = None,
    protocol: str | None = None,
    overrides: dict | None = None,
    options: dict | None = None,
    initial_training_set: StructureSetData | None = None,
    replay_set: StructureSetData | None = None,
):
    """See :meth:`ActiveLearningWorkChain.get_builder_from_protocol` (``cls``: the work chain class)."""
    missing = sorted({"cp2k", "train", "md", "deviation"} - set(codes))
    if missing:
        raise ValueError(f"codes: missing {missing}; give a code for cp2k, train, md, deviation (and raspa)")
    overrides = copy.deepcopy(overrides or {})
    options = options or {}
    unknown = sorted(set(overrides) - set(OVERRIDE_KEYS))
    if unknown:
        raise ValueError(f"overrides: unknown keys {unknown}; valid: {', '.join(OVERRIDE_KEYS)}")
    settings = get_protocol(protocol)
    stages = settings["stages"]
    guest_node = GuestMoleculeData.builtin(guest) if isinstance(guest, str) else guest
    params = deep_merge(copy.deepcopy(settings["parameters"]), overrides.get("parameters", {}))
    if guest_node is None:
        params["loadings"] = []
    params["protocol"] = protocol or read_protocol_file("active_learning.yaml")["default_protocol"]
    params["stages"] = dict(stages)
    params["selection"] = get_parameters_from_protocol(stages["selection"], overrides.get("selection"))

    builder = cls.get_builder()
    builder.structure = structure
    builder.foundation_model = foundation_model
    if guest_node is not None:
        builder.guest = guest_node
    if initial_training_set is not None:
        builder.initial_training_set = initial_training_set

    frames = [structure.get_ase()] + ([guest_node.get_ase()] if guest_node is not None else [])
    labelling = LabellingWorkChain.get_builder_from_protocol(
        codes["cp2k"],
        StructureSetData.from_frames(frames),
        protocol=stages["cp2k"],
        overrides=overrides.get("cp2k"),
        options=options.get("cp2k"),
    )
    builder.labelling = labelling._inputs(prune=True)
    builder.labelling.pop("structures", None)
    builder.labelling.pop("max_concurrent", None)
    builder.labelling.pop("max_failed_fraction", None)

    mace_overrides = dict(overrides.get("mace") or {})
    ensemble_size = mace_overrides.pop("ensemble_size", None)
    mace = get_mace_protocol(stages["mace"], {"train": mace_overrides})
    if ensemble_size is not None:
        mace["ensemble_size"] = int(ensemble_size)
    train = mace["train"]
    if replay_set is None and not mace_overrides.get("mode"):
        train["mode"] = "naive"  # multihead replay needs the foundation's data (`replay_set`)
    builder.training.ensemble_size = orm.Int(int(mace["ensemble_size"]))
    builder.training.train.max_iterations = orm.Int(3)
    builder.training.train.train.code = codes["train"]
    builder.training.train.train.parameters = orm.Dict(train)
    builder.training.train.train.metadata.options = deep_merge(mace["options"], options.get("train") or {})
    if replay_set is not None:
        builder.training.train.train.replay_set = replay_set

    md_overrides = deep_merge(copy.deepcopy(settings.get("md") or {}), overrides.get("md", {}))
    md = LammpsMdBaseWorkChain.get_builder_from_protocol(
        codes["md"],
        structure,
        foundation_model,
        protocol=stages["md"],
        overrides=md_overrides,
        options=options.get("md"),
    )
    builder.md = md._inputs(prune=True)
    builder.md["md"].pop("structure", None)
    builder.md["md"].pop("model", None)

    deviation = DeviationBaseWorkChain.get_builder_from_protocol(
        codes["deviation"],
        StructureSetData.from_frames(frames[:1]),
        [foundation_model, foundation_model],
        protocol=stages["mace"],
        overrides=overrides.get("deviation"),
        options=options.get("deviation"),
    )
    builder.deviation = deviation._inputs(prune=True)
    builder.deviation["deviation"].pop("frames", None)
    builder.deviation["deviation"].pop("models", None)

    if guest_node is not None and params["loadings"] and "raspa" in codes:
        raspa_overrides = {
            "run_widom": False,
            "run_isotherm": False,
            "run_snapshots": True,
            "snapshot_loadings": list(params["loadings"]),
            "temperature": float(params["raspa_temperature"]),
            "seed": int(params["seed"]),
            **(overrides.get("raspa") or {}),
        }
        raspa = IsothermWorkChain.get_builder_from_protocol(
            codes["raspa"],
            structure,
            guest_node,
            protocol=stages["raspa"],
            overrides=raspa_overrides,
            options=options.get("raspa"),
        )
        builder.raspa = raspa._inputs(prune=True)
        builder.raspa.pop("structure", None)
        builder.raspa.pop("guest", None)
    builder.parameters = orm.Dict(params)
    return builder


def builder_restart(previous: orm.WorkflowNode, overrides: dict | None = None):
    """A builder continuing ``previous`` (failed, killed or unconverged) from its last training set.

    The last ``history.training_set_XX`` becomes ``initial_training_set``; the ensemble trained on it
    (``history.models_YY`` with YY = XX + 1), when present, becomes ``initial_models``; no label is
    recomputed. ``overrides`` (loop parameters) are deep-merged, e.g. ``{"max_iterations": 8}``.
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
    models_key = f"models_{last + 1:02d}"
    if models_key in history:
        builder.initial_models = dict(history[models_key].items())
    elif "initial_models" in builder:
        del builder["initial_models"]
    return builder
