"""Configure step: guest, loadings, temperatures, protocol, foundation model, trust, ensemble, properties,
codes and resources per stage.

:meth:`ConfigureModel.validate` returns the messages the work chains' validators would give, before any
job runs; :meth:`overrides`, :meth:`options` and :meth:`codes` are the arguments of
``ActiveLearningWorkChain.get_builder_from_protocol``.
"""

from __future__ import annotations

from collections.abc import Iterable

import traitlets as tl

from aiida_mofmlp.app.messages import readable_error
from aiida_mofmlp.common.trust import DEFAULT_TRUST, TrustWindow
from aiida_mofmlp.workflows.properties.registry import PROPERTIES

#: stages of the loop with a code and CalcJob options (the keys of get_builder_from_protocol's ``options``)
STAGES = ("xtb", "cp2k", "raspa", "train", "md", "deviation")
#: what each stage does, for the view
STAGE_LABELS = {
    "xtb": "GFN1-xTB labels (tblite)",
    "cp2k": "CP2K labels",
    "raspa": "RASPA guest snapshots",
    "train": "MACE fine-tuning",
    "md": "LAMMPS+MACE MD",
    "deviation": "ensemble deviation",
}
#: packaged size presets (workflows/protocols/overrides) a user can start from
SIZE_PRESETS = {"protocol": None, "demo": "demo", "tiny": "tiny"}
#: property work chains offered when their entry point loads (label -> entry point)
PROPERTY_WORKFLOWS = {entry.label: entry.entry_point for entry in PROPERTIES.values()}
SHIPPED_FOUNDATION = "shipped small MOF foundation"


def available_properties() -> dict[str, str]:
    """The property work chains whose entry point loads (label -> entry point)."""
    from aiida.plugins import WorkflowFactory

    found = {}
    for label, entry_point in PROPERTY_WORKFLOWS.items():
        try:
            WorkflowFactory(entry_point)
        except Exception:  # not written yet, or broken: not offered
            continue
        found[label] = entry_point
    return found


def protocols() -> dict[str, str]:
    """ActiveLearningWorkChain's protocols with their descriptions."""
    from aiida_mofmlp.workflows.active_learning.workchain import ActiveLearningWorkChain

    return {
        name: info["description"] for name, info in ActiveLearningWorkChain.get_available_protocols().items()
    }


def builtin_guests() -> list[str]:
    from aiida_mofmlp.data.guest import BUILTIN_GUESTS

    return list(BUILTIN_GUESTS)


def parse_numbers(text: str, kind: type = float) -> list:
    """``"1, 4 8"`` -> [1, 4, 8]; ValueError naming the bad item."""
    values = []
    for item in text.replace(",", " ").split():
        try:
            values.append(kind(item))
        except ValueError:
            raise ValueError(f"{item!r} is not a {'whole number' if kind is int else 'number'}") from None
    return values


def stored_models(limit: int = 50) -> list[tuple[str, int]]:
    """(description, pk) of the newest MaceModelData nodes of the profile."""
    from aiida import orm

    from aiida_mofmlp.data.mace_model import MaceModelData

    query = orm.QueryBuilder().append(
        MaceModelData, project=["id", "attributes.filename", "attributes.species"]
    )
    query.order_by({MaceModelData: {"ctime": "desc"}}).limit(limit)
    return [(f"<{pk}> {name} ({', '.join(species or [])})", pk) for pk, name, species in query.all()]


#: computer property (``computer.set_property``) with the app's resource limits, e.g. {"max_machines": 16}
LIMIT_PROPERTY = "mofmlp_app_limits"
#: limits when the computer states none: one machine on a scheduler-less computer, a week of walltime
DEFAULT_LIMITS = {"max_machines": 64, "max_mpiprocs_per_machine": 256, "max_wallclock_seconds": 7 * 24 * 3600}


def computer_limits(computer) -> dict[str, int]:
    """The largest resources the app lets a user request on ``computer``: its ``mofmlp_app_limits`` property
    over :data:`DEFAULT_LIMITS`; a computer without a batch scheduler (``core.direct``) runs on one machine
    with at most its default MPI processes per machine (or this machine's cores)."""
    import os

    limits = dict(DEFAULT_LIMITS)
    if computer.scheduler_type == "core.direct":
        cores = computer.get_default_mpiprocs_per_machine() or os.cpu_count() or 1
        limits.update(max_machines=1, max_mpiprocs_per_machine=int(cores))
    stated = computer.get_property(LIMIT_PROPERTY, None) or {}
    limits.update({key: int(value) for key, value in stated.items() if key in DEFAULT_LIMITS})
    return limits


class ConfigureModel(tl.HasTraits):
    """The user's choices for one active-learning run (all plain values; nodes are made on demand)."""

    guest = tl.Unicode("CO2")  # a built-in guest, or "" for the empty framework
    loadings = tl.Unicode("1")  # guests per cell, e.g. "1, 4, 8"
    temperatures = tl.Unicode("300")  # K
    protocol = tl.Unicode("fast")
    size_preset = tl.Unicode(
        "protocol"
    )  # SIZE_PRESETS key: the protocol's sizes or a packaged overrides file
    foundation = tl.Unicode(SHIPPED_FOUNDATION)  # SHIPPED_FOUNDATION, "pk:<n>" or "file:<path>"
    # the user vouches for a pickled model file (it is then opened once, in a process without the profile)
    trust_model_file = tl.Bool(False)
    trust_lo = tl.Float(DEFAULT_TRUST.lo)  # eV/Å
    trust_hi = tl.Float(DEFAULT_TRUST.hi)  # eV/Å
    ensemble_size = tl.Int(2)
    max_iterations = tl.Int(3)
    labelling_engine = tl.Unicode("xtb")
    properties = tl.List(tl.Unicode())  # labels of PROPERTY_WORKFLOWS run on the final ensemble
    code_labels = tl.Dict()  # stage -> code label (default: the codes of `aiida-mofmlp setup`)
    machines = tl.Dict()  # stage -> number of machines (0: the protocol's)
    mpiprocs = tl.Dict()  # stage -> MPI processes per machine (0: the protocol's)
    walltime = tl.Dict()  # stage -> max wallclock seconds (0: the protocol's)

    def __init__(self, **kwargs):
        from aiida_mofmlp.common.codes import code_label

        super().__init__(**kwargs)
        if not self.code_labels:
            self.code_labels = {stage: code_label(stage) for stage in STAGES}
        self.machines = {stage: 0 for stage in STAGES} | dict(self.machines)
        self.mpiprocs = {stage: 0 for stage in STAGES} | dict(self.mpiprocs)
        self.walltime = {stage: 0 for stage in STAGES} | dict(self.walltime)
        self.apply_preset(self.size_preset)

    # --- presets ------------------------------------------------------------------------------------
    def apply_preset(self, preset: str) -> None:
        """Fill loadings, temperatures, trust and sizes from protocol + packaged overrides ``preset``."""
        from aiida_mofmlp.workflows.active_learning.workchain import ActiveLearningWorkChain

        if preset not in SIZE_PRESETS:
            raise ValueError(f"size preset {preset!r} is not known; valid: {', '.join(SIZE_PRESETS)}")
        self.size_preset = preset
        inputs = ActiveLearningWorkChain.get_protocol_inputs(self.protocol, self._preset_overrides())
        params = inputs["parameters"]
        self.loadings = ", ".join(str(n) for n in params["loadings"]) or (self.loadings if self.guest else "")
        self.temperatures = ", ".join(f"{t:g}" for t in params["temperatures"])
        self.trust_lo, self.trust_hi = float(params["trust"]["lo"]), float(params["trust"]["hi"])
        self.max_iterations = int(params["max_iterations"])
        self.labelling_engine = params["labelling"].get("engine", "cp2k")
        mace = (inputs.get("mace") or {}).get("ensemble_size")
        if mace is None:
            from aiida_mofmlp.workflows.mace.ensemble import EnsembleTrainingWorkChain

            stage = params["stages"].get("mace")
            mace = EnsembleTrainingWorkChain.get_protocol_inputs(stage)["ensemble_size"]
        self.ensemble_size = int(mace)

    def _preset_overrides(self) -> dict:
        from aiida_mofmlp.workflows.protocols.utils import load_overrides, packaged_overrides_path

        name = SIZE_PRESETS.get(self.size_preset)
        return load_overrides(packaged_overrides_path(name)) if name else {}

    # --- builder arguments --------------------------------------------------------------------------
    def overrides(self) -> dict:
        """get_builder_from_protocol's ``overrides``: the preset's file with the user's choices on top."""
        from aiida_mofmlp.common.protocols import deep_merge

        choices = {
            "parameters": {
                "loadings": parse_numbers(self.loadings, int) if self.guest else [],
                "temperatures": parse_numbers(self.temperatures),
                "trust": {"lo": float(self.trust_lo), "hi": float(self.trust_hi)},
                "max_iterations": int(self.max_iterations),
                "labelling": {"engine": self.labelling_engine},
            },
            "mace": {"ensemble_size": int(self.ensemble_size)},
        }
        return deep_merge(self._preset_overrides(), choices)

    def options(self) -> dict:
        """get_builder_from_protocol's ``options``: resources and walltime per stage (0: the protocol's)."""
        options = {}
        for stage in self.needed_stages():
            stage_options = {}
            resources = {
                key: int(values[stage])
                for key, values in (
                    ("num_machines", self.machines),
                    ("num_mpiprocs_per_machine", self.mpiprocs),
                )
                if int(values[stage]) > 0
            }
            if resources:
                stage_options["resources"] = resources
            if int(self.walltime[stage]) > 0:
                stage_options["max_wallclock_seconds"] = int(self.walltime[stage])
            if stage_options:
                options[stage] = stage_options
        return options

    def needed_stages(self) -> list[str]:
        """Stages the run uses: the labelling engine, RASPA when there is a guest, training, MD, deviation."""
        stages = [self.labelling_engine]
        if self.guest:
            stages.append("raspa")
        return [*stages, "train", "md", "deviation"]

    def codes(self) -> dict:
        """Code nodes per needed stage (NotExistent and friends propagate; see :meth:`validate`)."""
        from aiida import orm

        return {stage: orm.load_code(self.code_labels[stage]) for stage in self.needed_stages()}

    def guest_node(self):
        from aiida_mofmlp.data.guest import GuestMoleculeData

        return GuestMoleculeData.builtin(self.guest) if self.guest else None

    def foundation_node(self):
        """The foundation MaceModelData (stored): the shipped one, a stored node, or an uploaded file."""
        from aiida import orm

        from aiida_mofmlp.data.mace_model import MaceModelData

        if self.foundation == SHIPPED_FOUNDATION:
            return MaceModelData.small_mof_foundation()
        kind, _, value = self.foundation.partition(":")
        if kind == "pk":
            node = orm.load_node(int(value))
            if not isinstance(node, MaceModelData):
                raise ValueError(
                    f"foundation model: node {value} is a {type(node).__name__}, not a MaceModelData"
                )
            return node
        if kind == "file":
            return MaceModelData.get_or_create(value, trusted=self.trust_model_file)
        raise ValueError(
            f"foundation model {self.foundation!r}: give {SHIPPED_FOUNDATION!r}, 'pk:<n>' or 'file:<path>'"
        )

    def replay_set(self):
        """The shipped foundation's replay sample when fine-tuning it (multihead replay), else None."""
        if self.foundation != SHIPPED_FOUNDATION:
            return None
        from aiida_mofmlp.data.foundation import small_mof_foundation_replay

        return small_mof_foundation_replay()

    # --- validation ---------------------------------------------------------------------------------
    def validate(self, elements: Iterable[str] = ()) -> list[str]:
        """Messages naming the input, the bad value and what would be valid (empty: ready to submit).

        ``elements``: the framework's elements, checked with the guest's against the foundation model.
        """
        messages = []
        if self.protocol not in protocols():
            messages.append(f"protocol {self.protocol!r} is not known; valid: {', '.join(protocols())}")
        if self.guest and self.guest not in builtin_guests():
            messages.append(
                f"guest {self.guest!r} is not a built-in guest; valid: {', '.join(builtin_guests())}"
            )
        messages += self._number_messages()
        message = TrustWindow.problem({"lo": self.trust_lo, "hi": self.trust_hi}, "trust window")
        if message:
            messages.append(message)
        if self.ensemble_size < 2:
            messages.append(
                f"ensemble size {self.ensemble_size}: the deviation needs at least 2 models; valid: 2 or more"
            )
        if self.max_iterations < 1:
            messages.append(f"iterations {self.max_iterations}: valid: 1 or more")
        if not messages:  # the choices parse: the loop's own validator has the last word
            messages += self._loop_messages()
        messages += self._resource_messages()
        messages += self._limit_messages()
        messages += self._code_messages()
        messages += self._model_messages(set(elements))
        return messages

    def _loop_messages(self) -> list[str]:
        """What ActiveLearningWorkChain's parameter validator says about the resolved settings (the same
        check the work chain runs on submission; the app does not repeat the loop's rules)."""
        from aiida import orm

        from aiida_mofmlp.workflows.active_learning.builders import resolved_inputs
        from aiida_mofmlp.workflows.active_learning.settings import validate_parameters
        from aiida_mofmlp.workflows.active_learning.workchain import ActiveLearningWorkChain

        try:
            inputs = resolved_inputs(ActiveLearningWorkChain, self.protocol, self.overrides())
        except (TypeError, ValueError) as error:
            return [f"settings: {error}"]
        message = validate_parameters(orm.Dict(inputs["parameters"]))
        return [f"settings: {message}"] if message else []

    def _number_messages(self) -> list[str]:
        messages = []
        try:
            loadings = parse_numbers(self.loadings, int)
            if self.guest and (not loadings or min(loadings) < 1):
                messages.append(
                    f"loadings {self.loadings!r}: give positive whole numbers of {self.guest} per cell, "
                    "e.g. 1, 4"
                )
            if len(set(loadings)) != len(loadings):
                messages.append(f"loadings {self.loadings!r} has duplicates")
        except ValueError as error:
            messages.append(
                f"loadings {self.loadings!r}: {error}; give whole numbers of guests per cell, e.g. 1, 4"
            )
        try:
            temperatures = parse_numbers(self.temperatures)
            if not temperatures or min(temperatures) <= 0:
                messages.append(
                    f"temperatures {self.temperatures!r}: give positive temperatures in K, e.g. 300"
                )
        except ValueError as error:
            messages.append(
                f"temperatures {self.temperatures!r}: {error}; give temperatures in K, e.g. 300, 500"
            )
        return messages

    def _resource_messages(self) -> list[str]:
        messages = []
        for stage in self.needed_stages():
            for name, values, minimum in (
                ("machines", self.machines, 1),
                ("MPI processes", self.mpiprocs, 1),
                ("walltime (s)", self.walltime, 60),
            ):
                value = values.get(stage)
                if not isinstance(value, int) or isinstance(value, bool) or (value != 0 and value < minimum):
                    messages.append(
                        f"{STAGE_LABELS[stage]}: {name} = {value!r}; valid: 0 (the protocol's) or a whole "
                        f"number >= {minimum}"
                    )
        return messages

    def _limit_messages(self) -> list[str]:
        """Resources above what the stage's computer allows (:func:`computer_limits`)."""
        from aiida import orm

        messages = []
        for stage in self.needed_stages():
            try:
                computer = orm.load_code(self.code_labels.get(stage, "")).computer
            except Exception:  # a missing code is reported by _code_messages
                continue
            limits = computer_limits(computer)
            for name, values, key in (
                ("machines", self.machines, "max_machines"),
                ("MPI processes", self.mpiprocs, "max_mpiprocs_per_machine"),
                ("walltime (s)", self.walltime, "max_wallclock_seconds"),
            ):
                value = values.get(stage)
                if isinstance(value, int) and not isinstance(value, bool) and value > limits[key]:
                    messages.append(
                        f"{STAGE_LABELS[stage]}: {name} = {value} is more than computer {computer.label!r} "
                        f"allows ({limits[key]}); set its `{LIMIT_PROPERTY}` property to raise the limit"
                    )
        return messages

    def _code_messages(self) -> list[str]:
        from aiida import orm
        from aiida.common.exceptions import MultipleObjectsError, NotExistent

        messages = []
        for stage in self.needed_stages():
            label = self.code_labels.get(stage, "")
            try:
                orm.load_code(label)
            except (NotExistent, MultipleObjectsError, ValueError) as error:
                messages.append(
                    f"{STAGE_LABELS[stage]}: code {label!r} not found in this profile "
                    f"({type(error).__name__}); "
                    "run `aiida-mofmlp setup` or choose an existing code"
                )
        return messages

    def foundation_species(self) -> list[str]:
        """Elements the chosen foundation describes, read without storing anything (an uploaded file is
        converted to the safe form once, in a subprocess, and only when :attr:`trust_model_file` is set)."""
        kind, _, value = self.foundation.partition(":")
        if kind != "file":
            return list(self.foundation_node().species or [])
        from aiida_mofmlp.data.mace_model import describe_model_file

        return list(describe_model_file(value, trusted=self.trust_model_file)["species"])

    def _model_messages(self, elements: set[str]) -> list[str]:
        try:
            species = set(self.foundation_species())
        except Exception as error:
            return [readable_error(error, "loading the foundation model")]
        if not species:
            return []
        messages = []
        guest = self.guest_node() if self.guest in builtin_guests() else None
        if guest is not None:
            missing = sorted(set(guest.symbols) - species)
            if missing:
                messages.append(
                    f"guest {self.guest}: the foundation model does not describe {missing} (it knows "
                    f"{sorted(species)}); choose another guest or a foundation model covering these elements"
                )
        missing = sorted(elements - species)
        if missing:
            messages.append(
                f"framework: the foundation model does not describe {missing} (it knows {sorted(species)}); "
                "choose a foundation model covering every element"
            )
        return messages
