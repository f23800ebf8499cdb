"""Settings of the active-learning loop: defaults (protocols/active_learning.yaml) and input validation."""

from __future__ import annotations

import copy
from types import SimpleNamespace

from aiida_mofmlp.common.protocols import deep_merge
from aiida_mofmlp.common.schema import tree_type_problem
from aiida_mofmlp.common.trust import TrustWindow
from aiida_mofmlp.engines.xtb.label import unsupported_elements
from aiida_mofmlp.workflows.active_learning.strategies import strategy_of, validate_strategy
from aiida_mofmlp.workflows.cp2k.labelling import validate_inputs as validate_labelling_inputs
from aiida_mofmlp.workflows.protocols.utils import read_protocol_file

#: the loop's protocol file (workflows/protocols); its ``default_inputs`` hold the parameter defaults
PROTOCOL_FILE = "active_learning.yaml"


def default_inputs() -> dict:
    """A copy of ``default_inputs`` of active_learning.yaml (the shape of the builder's ``overrides``)."""
    return copy.deepcopy(read_protocol_file(PROTOCOL_FILE)["default_inputs"])


def default_parameters() -> dict:
    """The loop parameters' defaults: ``default_inputs.parameters`` of active_learning.yaml."""
    return default_inputs()["parameters"]


def override_keys() -> tuple[str, ...]:
    """The keys of get_builder_from_protocol's ``overrides`` (``parameters`` and one per stage)."""
    return tuple(default_inputs())


def resolve_parameters(parameters: dict) -> dict:
    """``parameters`` deep-merged over :func:`default_parameters`."""
    return deep_merge(default_parameters(), parameters)


def _positive_int(params: dict, path: str) -> str | None:
    value = params
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return f"parameters.{path} must be a non-negative integer, got {value!r}"
    return None


#: loop parameters that also take null although their default is not null
NULLABLE_PARAMETERS = ("aimd_flat_histogram.n_bins",)


def validate_parameters(node, _ctx=None) -> str | None:
    """Loop parameters: known keys, loadings, temperatures, trust levels, sizes."""
    if node is None:
        return None
    raw = node.get_dict()
    valid = default_parameters()
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        return f"parameters: unknown keys {unknown}; valid: {sorted(valid)}"
    message = tree_type_problem(raw, valid, "parameters", NULLABLE_PARAMETERS)
    if message:
        return message
    params = resolve_parameters(raw)
    loadings = params["loadings"]
    if not isinstance(loadings, list) or any(not isinstance(n, int) or n < 1 for n in loadings):
        return f"parameters.loadings={loadings!r} must be a list of positive integers (guests per cell)"
    if len(set(loadings)) != len(loadings):
        return f"parameters.loadings={loadings!r} has duplicates"
    temperatures = params["temperatures"]
    if not temperatures or any(not isinstance(t, int | float) or t <= 0 for t in temperatures):
        return f"parameters.temperatures={temperatures!r} must be a non-empty list of positive numbers (K)"
    message = TrustWindow.problem(params["trust"], "parameters.trust")
    if message:
        return message
    pressures = params["gcmc"].get("pressures_bar") or []
    if any(not isinstance(p, int | float) or p <= 0 for p in pressures):
        return f"parameters.gcmc.pressures_bar={pressures!r} must be positive numbers (bar)"
    if pressures:
        from aiida_mofmlp.common.errors import InputError
        from aiida_mofmlp.engines.lammps.md_settings import load_settings

        try:
            load_settings({"gcmc": {**params["gcmc"], "guest": "guest.json"}})
        except InputError as error:
            return f"parameters.gcmc: {error}"
    if not 0 < float(params["converged_fraction"]) <= 1:
        return f"parameters.converged_fraction={params['converged_fraction']!r} must be in (0, 1]"
    for path in (
        "max_iterations",
        "first_iteration",
        "selection_per_loading",
        "initial_selection.framework",
        "initial_selection.per_loading",
        "validation.md_steps",
        "validation.n_per_loading",
        "initial_sampling.aimd_steps",
    ):
        message = _positive_int(params, path)
        if message:
            return message
    for key in ("md_steps", "dump_interval"):
        value = params["initial_sampling"].get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            return f"parameters.initial_sampling.{key}={value!r} must be a positive integer or null"
    if params["first_iteration"] < 1 or params["max_iterations"] < params["first_iteration"]:
        return (
            f"parameters: need 1 <= first_iteration <= max_iterations, got first_iteration="
            f"{params['first_iteration']}, max_iterations={params['max_iterations']}"
        )
    if not isinstance(params["labelling"].get("compute_stress", False), bool):
        value = params["labelling"]["compute_stress"]
        return f"parameters.labelling.compute_stress={value!r} must be true or false"
    return validate_strategy(params)


def validate_inputs(inputs, _ctx=None) -> str | None:
    """Guest, RASPA and starting data are consistent; every element can be labelled and fine-tuned."""
    params = resolve_parameters(inputs["parameters"].get_dict() if "parameters" in inputs else {})
    guest = inputs.get("guest")
    if params["loadings"] and guest is None:
        return f"parameters.loadings={params['loadings']} needs the `guest` input (the adsorbate)"
    if params["gcmc"].get("pressures_bar") and guest is None:
        return "parameters.gcmc.pressures_bar (MD-GCMC exploration) needs the `guest` input (the adsorbate)"
    engine = params["labelling"].get("engine", "cp2k")
    if engine not in ("cp2k", "xtb"):
        return f"parameters.labelling.engine={engine!r} is not a labelling engine; valid: cp2k, xtb"
    sampling = params["initial_sampling"]["enabled"]
    if not sampling and "initial_training_set" not in inputs:
        return (
            "initial_sampling.enabled is false: give `initial_training_set` (labelled frames) to start from"
        )
    from aiida_mofmlp.workflows.active_learning.properties_step import validate_properties_inputs

    problem = validate_properties_inputs(inputs, params["loadings"])
    if problem:
        return problem
    from aiida_mofmlp.workflows.active_learning.reference_step import validate_stop_inputs

    problem = validate_stop_inputs(inputs, params)
    if problem:
        return problem
    structure = inputs.get("structure")
    if structure is None:
        return None
    elements = set(structure.get_symbols_set())
    if guest is not None:
        elements.update(guest.symbols)
    labelling = inputs.get("labelling", {})
    if "single_point" in labelling:
        message = validate_labelling_inputs(
            {
                "single_point": labelling["single_point"],
                "structures": SimpleNamespace(species=sorted(elements)),
            },
            None,
        )
        if message:
            return f"labelling: {message}"
    missing = unsupported_elements(elements)
    if engine == "xtb" and missing:
        return f"xtb_labelling: elements {missing} have no GFN-xTB parameters (H to Rn only)"
    foundation = inputs.get("foundation_model")
    if foundation is not None and foundation.species:
        missing = sorted(elements - set(foundation.species))
        if missing:
            return (
                f"foundation_model: the framework/guest contain {missing}, which the model does not know "
                f"(it has {sorted(foundation.species)}); choose a foundation model covering every element"
            )
    for name, model in (inputs.get("initial_models") or {}).items():
        if model.species and not elements <= set(model.species):
            return f"initial_models.{name}: does not cover the elements {sorted(elements)}"
    return _labelling_inputs_given(inputs, params)


def _labelling_inputs_given(inputs, params: dict) -> str | None:
    """The labelling engine's namespace (and CP2K's, for AIMD) holds inputs."""
    engine = params["labelling"].get("engine", "cp2k")
    namespace = {"cp2k": "labelling", "xtb": "xtb_labelling"}[engine]
    if not inputs.get(namespace):
        return f"parameters.labelling.engine={engine!r} needs the `{namespace}` inputs (code and settings)"
    if int(params["initial_sampling"].get("aimd_steps") or 0) > 0 and not inputs.get("labelling"):
        return "parameters.initial_sampling.aimd_steps > 0 runs CP2K AIMD: give the CP2K `labelling` inputs"
    if strategy_of(params).samples_with_aimd and not inputs.get("labelling"):
        return (
            "parameters.strategy='aimd_flat_histogram' runs CP2K AIMD: give the CP2K `labelling` inputs "
            "(its single_point.cp2k.code is the CP2K code; get_builder_from_protocol needs codes['cp2k'])"
        )
    return None
