"""ActiveLearningWorkChain: the active-learning loop, composed from the component work chains.

The loop of Jin et al., Chem. Sci. 2026, DOI 10.1039/D5SC09058J (MIL-120 + CO2); docs/source/workflows.md
describes it step by step:

initial sampling (foundation-model MD of the empty framework per temperature; RASPA snapshots per loading,
folded into the unit cell, then MD from them; optional CP2K AIMD) -> selection (SOAP, quotas per loading)
-> CP2K labels -> training set 0 -> loop { ensemble training -> MD per loading and temperature with model 0
-> ensemble deviation -> converged? -> candidates in [lo, hi], diverse, de-duplicated -> labels -> training
set k } -> final validation (MD per loading, random frames labelled, errors of the ensemble mean).

Every frame set, label, model, selection and decision is a node made by a calcfunction or a CalcJob; the
per-iteration ones are attached as they are made under ``history`` so that a killed run can be continued
(:meth:`ActiveLearningWorkChain.get_builder_restart`).

``parameters.strategy`` chooses the recipe (:mod:`aiida_mofmlp.workflows.active_learning.strategies`): the
loop above (``uncertainty``), the temperature ramp with CBAD picks of Sharma & Sanvito, npj Comput. Mater.
2024, DOI 10.1038/s41524-024-01427-y (``temperature_ramp``: the exploration and the selection/stop steps
change), or AIMD with flat-histogram selection as training set 0 and then the uncertainty loop at high
temperature (Castel et al., Digital Discovery 2024, DOI 10.1039/d3dd00236e; ``aimd_flat_histogram``: the
initial sampling changes). ``extra_candidates`` (e.g. the ``untrusted_frames`` of property work chains) join
the pool of the initial selection, or of the first explored iteration when there is none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import WorkChain, if_, while_

from aiida_mofmlp.data.guest import GuestMoleculeData
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.active_learning.builders import builder_from_protocol, builder_restart
from aiida_mofmlp.workflows.active_learning.iteration_phase import IterationPhase
from aiida_mofmlp.workflows.active_learning.labelling_phase import LabellingPhase
from aiida_mofmlp.workflows.active_learning.properties_step import PropertiesStep, define_properties_spec
from aiida_mofmlp.workflows.active_learning.reference_step import ReferenceStep, define_reference_spec
from aiida_mofmlp.workflows.active_learning.sampling_phase import InitialSamplingPhase
from aiida_mofmlp.workflows.active_learning.settings import (
    PROTOCOL_FILE,
    resolve_parameters,
    validate_inputs,
    validate_parameters,
)
from aiida_mofmlp.workflows.active_learning.strategies import (
    Strategy,
    derived_seed,
    strategy_of,
)
from aiida_mofmlp.workflows.active_learning.validation_phase import ValidationPhase
from aiida_mofmlp.workflows.cp2k.labelling import LabellingWorkChain
from aiida_mofmlp.workflows.functions import active_learning as alf
from aiida_mofmlp.workflows.lammps.base import LammpsMdBaseWorkChain
from aiida_mofmlp.workflows.mace.deviation import DeviationBaseWorkChain
from aiida_mofmlp.workflows.mace.ensemble import EnsembleTrainingWorkChain
from aiida_mofmlp.workflows.protocols.utils import ProtocolMixin
from aiida_mofmlp.workflows.raspa.isotherm import IsothermWorkChain
from aiida_mofmlp.workflows.xtb.labelling import XtbLabellingWorkChain

__all__ = (
    "ActiveLearningWorkChain",
    "resolve_parameters",
    "validate_inputs",
    "validate_parameters",
)


class ActiveLearningWorkChain(
    InitialSamplingPhase,
    LabellingPhase,
    IterationPhase,
    ValidationPhase,
    PropertiesStep,
    ReferenceStep,
    ProtocolMixin,
    WorkChain,
):
    """Active learning of a MACE potential for a framework and its guest (Jin et al., Chem. Sci. 2026)."""

    _protocol_file = PROTOCOL_FILE

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            "structure", valid_type=orm.StructureData, help="The framework (see tools.intake.load_cif)."
        )
        spec.input("guest", valid_type=GuestMoleculeData, required=False, help="The adsorbate, if any.")
        spec.input(
            "foundation_model", valid_type=MaceModelData, help="The model fine-tuned at every iteration."
        )
        spec.input(
            "parameters",
            valid_type=orm.Dict,
            default=lambda: orm.Dict({}),
            validator=validate_parameters,
            help="Loop settings; keys left out take their defaults from protocols/active_learning.yaml.",
        )
        spec.input(
            "initial_training_set",
            valid_type=StructureSetData,
            required=False,
            help="Labelled frames to start from: merged into training set 0 (or, without initial sampling, "
            "training set 0 itself; a restart passes the last training set here).",
        )
        spec.input_namespace(
            "initial_models",
            valid_type=MaceModelData,
            required=False,
            dynamic=True,
            help="An ensemble already trained on `initial_training_set`: the first iteration skips training.",
        )
        spec.input_namespace(
            "extra_candidates",
            valid_type=StructureSetData,
            required=False,
            dynamic=True,
            help="Unlabelled frames to consider as candidates, e.g. the `untrusted_frames` of property work "
            "chains: joined to the pool of the initial selection, or (no initial SOAP selection: initial "
            "sampling off or strategy aimd_flat_histogram) to the explored frames of the first iteration.",
        )
        spec.input(
            "previous_iterations",
            valid_type=orm.Dict,
            required=False,
            help="The iteration table of the run this one continues (set by get_builder_restart): its rows "
            "before this run's first iteration head this run's `iterations`.",
        )
        spec.expose_inputs(
            LabellingWorkChain,
            namespace="labelling",
            exclude=("structures", "max_concurrent", "max_failed_fraction"),
            namespace_options={
                "required": False,
                "populate_defaults": False,
                "help": "CP2K labelling (LabellingWorkChain) of every selected frame (labelling.engine "
                "cp2k); also the CP2K settings of the optional AIMD.",
            },
        )
        spec.expose_inputs(
            XtbLabellingWorkChain,
            namespace="xtb_labelling",
            exclude=("structures", "max_concurrent", "max_failed_fraction"),
            namespace_options={
                "required": False,
                "populate_defaults": False,
                "help": "GFN-xTB labelling (XtbLabellingWorkChain, tblite) of every selected frame "
                "(parameters.labelling.engine xtb).",
            },
        )
        spec.expose_inputs(
            EnsembleTrainingWorkChain,
            namespace="training",
            exclude=("train.train.training_set", "train.train.foundation_model", "first_seed"),
            namespace_options={
                "help": "Ensemble fine-tuning (EnsembleTrainingWorkChain) at every iteration."
            },
        )
        spec.expose_inputs(
            LammpsMdBaseWorkChain,
            namespace="md",
            exclude=("md.structure", "md.model", "keep_frames_on_blowup"),
            namespace_options={"help": "LAMMPS+MACE MD; parameters.temperature/steps are set per run."},
        )
        spec.expose_inputs(
            DeviationBaseWorkChain,
            namespace="deviation",
            exclude=("deviation.frames", "deviation.models"),
            namespace_options={"help": "Ensemble force deviation of the explored frames."},
        )
        spec.expose_inputs(
            IsothermWorkChain,
            namespace="raspa",
            exclude=("structure", "guest"),
            namespace_options={
                "required": False,
                "populate_defaults": False,
                "help": "RASPA snapshots of the guest at each loading (without it guests are placed in the "
                "emptiest spots of the cell).",
            },
        )
        define_properties_spec(spec)
        define_reference_spec(spec)
        spec.inputs.validator = validate_inputs

        spec.outline(
            cls.setup,
            if_(cls.should_sample_initially)(
                if_(cls.samples_with_aimd)(
                    cls.run_aimd_sampling,
                    cls.select_flat_histogram,
                ).else_(
                    cls.run_initial_sampling,
                    cls.run_loaded_sampling,
                    cls.select_initial,
                ),
                if_(cls.has_selection)(cls.run_labelling, cls.inspect_labelling),
            ),
            cls.prepare_loop,
            while_(cls.should_iterate)(
                cls.run_training,
                cls.inspect_training,
                cls.run_exploration,
                cls.run_deviation,
                cls.assess,
                if_(cls.should_check_reference)(cls.run_reference_check, cls.inspect_reference_check),
                if_(cls.should_label)(
                    cls.select_candidates,
                    cls.add_reference_frames,
                    if_(cls.has_selection)(cls.run_labelling, cls.inspect_labelling),
                ),
                cls.close_iteration,
            ),
            if_(cls.should_validate)(
                cls.run_validation_md,
                cls.run_validation_labelling,
                cls.run_validation_deviation,
                cls.compute_validation,
            ),
            cls.finalize,
            if_(cls.should_run_properties)(cls.run_properties, cls.inspect_properties),
            cls.finish,
        )
        spec.output(
            "training_set", valid_type=StructureSetData, required=False, help="The final training set."
        )
        spec.output_namespace(
            "models", valid_type=MaceModelData, dynamic=True, help="Final ensemble; model_0 explores."
        )
        spec.output(
            "iterations", valid_type=orm.Dict, required=False, help="One row of numbers per iteration."
        )
        spec.output("validation", valid_type=orm.Dict, required=False, help="Final MAE/RMSE (eV/atom, eV/A).")
        spec.output(
            "validation_foundation",
            valid_type=orm.Dict,
            required=False,
            help="MAE/RMSE of the foundation model on the same validation frames: what fine-tuning gained. "
            "Energies compare only when the foundation was trained on the same level of theory.",
        )
        spec.output(
            "validation_frames",
            valid_type=StructureSetData,
            required=False,
            help="Validation frames with REF_* labels and MACE_* ensemble-mean predictions.",
        )
        spec.output_namespace(
            "history",
            dynamic=True,
            help="Per-iteration nodes: training_set_XX, explored_XX, deviation_XX, convergence_XX, "
            "selection_XX, map_XX, models_XX.model_k, iterations_XX (the table so far), starting_frames, "
            "pool_00; temperature_ramp also "
            "displaced_XX (the copies its NPT runs start from) and trust_XX (the sigma_max summary).",
        )
        spec.exit_code(
            401, "ERROR_INITIAL_SAMPLING_FAILED", message="Initial sampling gave no frames: {detail}"
        )
        spec.exit_code(
            402, "ERROR_LABELLING_FAILED", message="Labelling failed in iteration {iteration}: {detail}"
        )
        spec.exit_code(
            403, "ERROR_TRAINING_FAILED", message="Ensemble training failed in iteration {iteration}"
        )
        spec.exit_code(404, "ERROR_EXPLORATION_FAILED", message="No MD gave frames in iteration {iteration}")
        spec.exit_code(
            405, "ERROR_DEVIATION_FAILED", message="The ensemble deviation failed in iteration {iteration}"
        )
        spec.exit_code(406, "ERROR_VALIDATION_FAILED", message="The final validation failed: {detail}")
        spec.exit_code(
            410,
            "WARNING_NOT_CONVERGED",
            message="Not converged after {iterations} iteration(s); the outputs hold the last ensemble.",
        )
        spec.exit_code(
            411,
            "WARNING_NO_CANDIDATES",
            message="Not converged but no explored frame is a candidate in [lo, hi] (iteration {iteration}): "
            "widen the trust levels or explore differently.",
        )

    # --- builders ------------------------------------------------------------------------------------
    @classmethod
    def get_builder_from_protocol(
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
        """A builder for protocol ``fast`` / ``balanced`` / ``stringent`` of active_learning.yaml.

        ``codes``: ``cp2k``, ``train``, ``md``, ``deviation`` and, for RASPA snapshots, ``raspa``.
        ``overrides`` (a dict or the path of a YAML file holding one, e.g. ``protocols/overrides/demo.yaml``):
        ``parameters`` (loop settings), ``cp2k``, ``mace`` (train parameters, ``ensemble_size``), ``md``,
        ``deviation``, ``raspa``, ``selection`` — deep-merged over the protocol, then each stage's part is
        passed to that stage's ``get_builder_from_protocol``.
        ``options``: CalcJob options per stage (``cp2k``, ``train``, ``md``, ``deviation``, ``raspa``).
        ``replay_set``: frames of the foundation's training data for multihead replay fine-tuning (as in the
        paper); without it the fine-tuning is naive unless ``overrides['mace']['mode']`` says otherwise.
        """
        return builder_from_protocol(
            cls,
            structure,
            foundation_model,
            codes,
            guest,
            protocol,
            overrides,
            options,
            initial_training_set,
            replay_set,
        )

    @classmethod
    def get_builder_restart(cls, previous: orm.WorkflowNode, overrides: dict | None = None):
        """A builder continuing ``previous`` (failed, killed or unconverged) from its last training set.

        See :func:`aiida_mofmlp.workflows.active_learning.builders.builder_restart`.
        """
        return builder_restart(previous, overrides)

    # --- setup ---------------------------------------------------------------------------------------
    def setup(self):
        """Resolve parameters; tag the node for queries."""
        self.ctx.params = resolve_parameters(self.inputs.parameters.get_dict())
        self.ctx.strategy = self.ctx.params["strategy"]
        self.ctx.loadings = [int(n) for n in self.ctx.params["loadings"]]
        self.ctx.temperatures = self.strategy.temperatures(self.ctx.params)
        self.ctx.extra_pending = "extra_candidates" in self.inputs and bool(self.inputs.extra_candidates)
        self.ctx.iteration = 0
        self.ctx.rows = []
        self.ctx.row = {"iteration": 0}
        self.ctx.stop = False
        self.ctx.exit = None
        self.ctx.decisions = {}
        self.ctx.training_set = self.inputs.get("initial_training_set")
        self.ctx.models = dict(self.inputs.initial_models) if "initial_models" in self.inputs else None
        self.ctx.starting_frames = None
        self.ctx.to_label = None
        guest = self.inputs.get("guest")
        self.node.base.extras.set(
            "mofmlp",
            {
                "framework_formula": self.inputs.structure.get_formula(),
                "framework_label": self.inputs.structure.label,
                "guest": guest.name if guest is not None else None,
                "protocol": self.ctx.params.get("protocol"),
                "strategy": self.ctx.strategy,
            },
        )

    def _out_history(self, key: str, node: orm.Data) -> None:
        self.out(f"history.{key}", node)

    def _tag(self) -> str:
        return f"{self.ctx.iteration:02d}"

    @property
    def strategy(self) -> Strategy:
        """The strategy object of ``parameters.strategy``: it decides what differs between strategies."""
        return strategy_of(self.ctx.params)

    def _seed(self, stage: str, index: int = 0) -> int:
        """The seed of ``stage`` in this iteration (:func:`derived_seed`, the one formula)."""
        return derived_seed(self.ctx.params["seed"], stage, self.ctx.iteration, index)

    def _md_inputs(self, structure, model, label: str, temperature: float, index: int, **parameters):
        inputs = AttributeDict(self.exposed_inputs(LammpsMdBaseWorkChain, "md"))
        inputs.md = AttributeDict(inputs.md)
        base = inputs.md.parameters.get_dict() if "parameters" in inputs.md else {}
        seed = self._seed("md", index)
        settings = {
            **base,
            "temperature": float(temperature),
            "structure_index": int(index),
            "seed": seed,
            **parameters,
        }
        if settings.get("gcmc") is not None:  # MD-GCMC: the length is set per pressure
            settings.pop("steps", None)
            inputs.md.guest = self.inputs.guest
        inputs.md.parameters = orm.Dict(settings)
        inputs.md.structure = structure
        inputs.md.model = model
        inputs.keep_frames_on_blowup = orm.Bool(True)
        inputs.metadata = {"call_link_label": label}
        return inputs

    def _submit_md_grid(
        self,
        frames: StructureSetData,
        indices,
        model,
        prefix: str,
        temperatures,
        wait: bool = True,
        **parameters,
    ):
        """One MD per frame index and temperature; returns {context key: (tags)}.

        With ``wait=False`` the next step does not wait for them: their pks go to ``ctx.pending`` and a later
        step waits with ``_await_pending`` (so that they run alongside what that step submits).
        """
        runs = {}
        for index in indices:
            atoms = frames.get_frame(index)
            loading = int(atoms.info.get("loading", 0))
            for temperature in temperatures:
                key = f"{prefix}_loading_{loading}_T{round(temperature)}"
                future = self.submit(
                    LammpsMdBaseWorkChain,
                    **self._md_inputs(frames, model, key, temperature, index, **parameters),
                )
                if wait:
                    self.to_context(**{key: future})
                else:
                    self.ctx.pending = {**self.ctx.get("pending", {}), key: future.pk}
                runs[key] = {
                    "loading": loading,
                    "target_temperature": float(temperature),
                    "iteration": self.ctx.iteration,
                }
        return runs

    def _await_pending(self) -> None:
        """Make the next step wait for the processes that ``_submit_md_grid(wait=False)`` left running."""
        pending = self.ctx.pop("pending", None) or {}
        self.to_context(**{key: orm.load_node(pk) for key, pk in pending.items()})

    def _collect_md(self, runs: dict, extra: dict | None = None, extra_tags: dict | None = None):
        """Merge the trajectories of ``runs`` (+ ``extra`` sets); count blow-ups and failures."""
        sets, tags, blowups, failed = dict(extra or {}), dict(extra_tags or {}), 0, 0
        for key, tag in runs.items():
            node = self.ctx[key]
            if not node.is_finished_ok or "trajectory" not in node.outputs:
                failed += 1
                self.report(f"MD {key}: {node.process_label}<{node.pk}> gave no frames ({node.exit_message})")
                continue
            status = node.outputs.results.get("status", "completed")
            if status not in ("completed", "uncertain"):
                blowups += 1
            sets[key] = node.outputs.trajectory
            tags[key] = {"source": "md", **tag, "md_status": status}
        if not sets:
            return None, blowups, failed
        return alf.collect_frames(orm.Dict(tags), **sets), blowups, failed

    def _tabulate(self) -> orm.Dict:
        """The iteration table of the rows so far (a calcfunction), headed by ``previous_iterations``."""
        settings = {key: self.ctx.params[key] for key in ("trust", "converged_fraction")}
        settings.update({"strategy": self.ctx.strategy, "stop_rule": self.strategy.stop_rule})
        settings["stop"] = self.ctx.params.get("stop", "sigma")
        kwargs = {"previous": self.inputs.previous_iterations} if "previous_iterations" in self.inputs else {}
        return alf.tabulate_iterations(
            orm.List(self.ctx.rows), orm.Dict(settings), **kwargs, **self.ctx.decisions
        )

    # --- outputs -------------------------------------------------------------------------------------
    def finalize(self):
        """Final training set, ensemble and iteration table (a calcfunction of the rows and the decisions)."""
        if self.ctx.training_set is not None:
            self.out("training_set", self.ctx.training_set)
        if self.ctx.models:
            for label, model in self.ctx.models.items():
                self.out(f"models.{label}", model)
        self.out("iterations", self._tabulate())
        self.ctx.final_exit = self.ctx.exit
        if self.ctx.get("validation_error"):
            failed = self.exit_codes.ERROR_VALIDATION_FAILED
            self.ctx.final_exit = failed.format(detail=self.ctx.validation_error)
        elif self.ctx.exit is None:
            self.report(f"converged after iteration {self.ctx.rows[-1]['iteration']}")

    def finish(self):
        """The loop's exit code, decided in finalize (or 412 by inspect_properties)."""
        return self.ctx.final_exit
