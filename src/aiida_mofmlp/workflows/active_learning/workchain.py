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
from aiida.engine import ToContext, WorkChain, if_, while_

from aiida_mofmlp.data.guest import GuestMoleculeData
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.active_learning.builders import builder_from_protocol, builder_restart
from aiida_mofmlp.workflows.active_learning.properties_step import PropertiesStep, define_properties_spec
from aiida_mofmlp.workflows.active_learning.settings import (
    PROTOCOL_FILE,
    resolve_parameters,
    validate_inputs,
    validate_parameters,
)
from aiida_mofmlp.workflows.active_learning.strategies import STOP_RULES, ramp_temperature
from aiida_mofmlp.workflows.cp2k.aimd import AimdWorkChain
from aiida_mofmlp.workflows.cp2k.labelling import LabellingWorkChain
from aiida_mofmlp.workflows.functions import active_learning as alf
from aiida_mofmlp.workflows.lammps.base import LammpsMdBaseWorkChain
from aiida_mofmlp.workflows.mace.deviation import DeviationBaseWorkChain
from aiida_mofmlp.workflows.mace.ensemble import EnsembleTrainingWorkChain
from aiida_mofmlp.workflows.protocols.utils import ProtocolMixin
from aiida_mofmlp.workflows.raspa.isotherm import IsothermWorkChain
from aiida_mofmlp.workflows.selection.base import select_frames
from aiida_mofmlp.workflows.xtb.labelling import XtbLabellingWorkChain

__all__ = (
    "ActiveLearningWorkChain",
    "resolve_parameters",
    "validate_inputs",
    "validate_parameters",
)


class ActiveLearningWorkChain(PropertiesStep, ProtocolMixin, WorkChain):
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
                if_(cls.should_label)(
                    cls.select_candidates,
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
        self.ctx.temperatures = [float(t) for t in self.ctx.params["temperatures"]]
        if self.ctx.strategy == "aimd_flat_histogram":  # the MLP explores at high temperature
            self.ctx.temperatures = [
                float(t) for t in self.ctx.params["aimd_flat_histogram"]["md_temperatures"]
            ]
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

    def _md_inputs(self, structure, model, label: str, temperature: float, index: int, **parameters):
        inputs = AttributeDict(self.exposed_inputs(LammpsMdBaseWorkChain, "md"))
        inputs.md = AttributeDict(inputs.md)
        base = inputs.md.parameters.get_dict() if "parameters" in inputs.md else {}
        seed = int(self.ctx.params["seed"]) + 1000 * self.ctx.iteration + index + 1
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

    # --- initial sampling ----------------------------------------------------------------------------
    def should_sample_initially(self) -> bool:
        return bool(self.ctx.params["initial_sampling"]["enabled"])

    def run_initial_sampling(self):
        """Foundation-model MD of the empty framework per temperature; RASPA snapshots; optional AIMD."""
        framework = alf.build_starting_frames(self.inputs.structure, orm.Dict({"loadings": []}))
        self.ctx.empty_runs = self._submit_md_grid(
            framework,
            [0],
            self.inputs.foundation_model,
            "sampling",
            self.ctx.temperatures,
            wait=False,  # the loaded runs need only RASPA's snapshots: they start alongside these
            **self._sampling_md_length(),
        )
        if self.ctx.loadings and "raspa" in self.inputs:
            inputs = AttributeDict(self.exposed_inputs(IsothermWorkChain, "raspa"))
            inputs.structure = self.inputs.structure
            inputs.guest = self.inputs.guest
            inputs.metadata = {"call_link_label": "raspa_snapshots"}
            self.to_context(raspa=self.submit(IsothermWorkChain, **inputs))
        aimd_steps = int(self.ctx.params["initial_sampling"]["aimd_steps"])
        if aimd_steps > 0:
            labelling = self.exposed_inputs(LabellingWorkChain, "labelling")
            cp2k = labelling["single_point"]["cp2k"]
            builder = AimdWorkChain.get_builder_from_protocol(
                cp2k["code"],
                self.inputs.structure,
                protocol=self.ctx.params["stages"].get("cp2k"),
                steps=aimd_steps,
                options=dict(cp2k["metadata"]["options"]),
            )
            builder.metadata.call_link_label = "aimd"
            self.to_context(aimd=self.submit(builder))
        self.report(
            f"initial sampling: {len(self.ctx.empty_runs)} MD run(s) of the empty framework"
            + (", RASPA snapshots" if "raspa" in self.ctx else "")
            + (f", AIMD {aimd_steps} steps" if aimd_steps else "")
        )

    def run_loaded_sampling(self):
        """A starting frame per loading (RASPA guests folded into the cell), then MD per temperature."""
        snapshots = None
        if "raspa" in self.ctx:
            node = self.ctx.raspa
            if "snapshots" in node.outputs:
                snapshots = node.outputs.snapshots
            else:
                self.report(
                    f"RASPA {node.process_label}<{node.pk}> gave no snapshots; placing guests instead"
                )
        kwargs = {"snapshots": snapshots} if snapshots is not None else {}
        if "guest" in self.inputs:
            kwargs["guest"] = self.inputs.guest
        self.ctx.starting_frames = alf.build_starting_frames(
            self.inputs.structure, orm.Dict({"loadings": self.ctx.loadings}), **kwargs
        )
        self._out_history("starting_frames", self.ctx.starting_frames)
        self.ctx.loaded_runs = self._submit_md_grid(
            self.ctx.starting_frames,
            range(1, len(self.ctx.starting_frames)),
            self.inputs.foundation_model,
            "sampling",
            self.ctx.temperatures,
            **self._sampling_md_length(),
        )
        self._await_pending()

    def _sampling_md_length(self) -> dict:
        """``steps`` / ``dump_interval`` of the foundation-model MD when ``initial_sampling`` sets them."""
        sampling = self.ctx.params["initial_sampling"]
        lengths = {}
        if sampling.get("md_steps"):
            lengths["steps"] = int(sampling["md_steps"])
        if sampling.get("dump_interval"):
            lengths["dump_interval"] = int(sampling["dump_interval"])
        return lengths

    def select_initial(self):
        """Pool = sampling MD frames + starting frames (+ AIMD); pick per loading with SOAP."""
        extra = {"starting_frames": self.ctx.starting_frames}
        tags = {"starting_frames": {"iteration": 0}}
        self._join_extra_candidates(extra, tags)
        if "aimd" in self.ctx:
            if self.ctx.aimd.is_finished_ok:
                extra["aimd"] = self.ctx.aimd.outputs.trajectory
                tags["aimd"] = {"source": "aimd", "iteration": 0}
            else:
                self.report(
                    f"AIMD <{self.ctx.aimd.pk}> failed ({self.ctx.aimd.exit_message}); going on without"
                )
        pool, blowups, _ = self._collect_md({**self.ctx.empty_runs, **self.ctx.loaded_runs}, extra, tags)
        if pool is None or len(pool) == 0:
            return self.exit_codes.ERROR_INITIAL_SAMPLING_FAILED.format(
                detail="no MD frames and no starting frames"
            )
        self._out_history("pool_00", pool)
        sizes = self.ctx.params["initial_selection"]
        quota = {
            "0": int(sizes["framework"]),
            **{str(n): int(sizes["per_loading"]) for n in self.ctx.loadings},
        }
        parameters = {
            **self.ctx.params["selection"],
            "group_by": "loading",
            "quota": quota,
            "sigma_window": None,
        }
        outputs = select_frames(pool=pool, parameters=orm.Dict(parameters), **self._training_kwargs())
        self._out_history("selection_00", outputs["report"])
        if "map" in outputs:
            self._out_history("map_00", outputs["map"])
        if "selected" not in outputs:
            return self.exit_codes.ERROR_INITIAL_SAMPLING_FAILED.format(
                detail="the selection picked no frame"
            )
        self.ctx.to_label = outputs["selected"]
        self.ctx.row.update(
            {"n_explored": len(pool), "n_blowups": blowups, "n_selected": len(outputs["selected"])}
        )
        self.report(
            f"initial sampling: {len(pool)} frames, {blowups} MD blow-up(s); "
            f"selected {len(outputs['selected'])}"
        )
        return None

    def _join_extra_candidates(self, extra: dict, tags: dict) -> None:
        """Add ``extra_candidates`` (once) to the sets ``extra`` that _collect_md merges into a pool."""
        if not self.ctx.extra_pending:
            return
        given = dict(self.inputs.extra_candidates)
        for key, frames in given.items():
            extra[f"extra_{key}"] = frames
            tag = {"source": "extra_candidates", "extra_key": key, "iteration": self.ctx.iteration}
            if self.ctx.strategy == "temperature_ramp":
                tag["run"] = f"extra_{key}"  # CBAD: at most frames_per_run of each extra set
            tags[f"extra_{key}"] = tag
        self.report(
            f"extra candidates: {sum(len(frames) for frames in given.values())} frame(s) of {sorted(given)} "
            f"joined to the pool of iteration {self.ctx.iteration}"
        )
        self.ctx.extra_pending = False

    # --- initial sampling: AIMD and flat histogram (strategy aimd_flat_histogram) ----------------------
    def samples_with_aimd(self) -> bool:
        return self.ctx.strategy == "aimd_flat_histogram"

    def run_aimd_sampling(self):
        """CP2K AIMD of the framework at every temperature of ``aimd_flat_histogram.temperatures``."""
        settings = self.ctx.params["aimd_flat_histogram"]
        cp2k = self.exposed_inputs(LabellingWorkChain, "labelling")["single_point"]["cp2k"]
        self.ctx.aimd_runs = {}
        for temperature in settings["temperatures"]:
            builder = AimdWorkChain.get_builder_from_protocol(
                cp2k["code"],
                self.inputs.structure,
                protocol=self.ctx.params["stages"].get("cp2k"),
                temperature=float(temperature),
                steps=int(settings["aimd_steps"]),
                timestep_fs=float(settings["timestep_fs"]),
                thermostat_timecon_fs=float(settings["thermostat_timecon_fs"]),
                discard_steps=settings.get("discard_steps"),
                options=dict(cp2k["metadata"]["options"]),
            )
            key = f"aimd_T{round(float(temperature))}"
            builder.metadata.call_link_label = key
            self.to_context(**{key: self.submit(builder)})
            self.ctx.aimd_runs[key] = {
                "source": "aimd",
                "target_temperature": float(temperature),
                "iteration": 0,
            }
        self.report(
            f"initial sampling: CP2K AIMD of {settings['aimd_steps']} steps at {settings['temperatures']} K"
        )

    def select_flat_histogram(self):
        """Pool = the AIMD frames with their labels; one frame per energy-per-atom bin (flat histogram)."""
        settings = self.ctx.params["aimd_flat_histogram"]
        sets, tags = {}, {"drop_stress": True}
        for key, tag in self.ctx.aimd_runs.items():
            node = self.ctx[key]
            if not node.is_finished_ok or "trajectory" not in node.outputs:
                self.report(
                    f"AIMD {key}: {node.process_label}<{node.pk}> gave no frames ({node.exit_message})"
                )
                continue
            sets[key], tags[key] = node.outputs.trajectory, tag
        if not sets:
            return self.exit_codes.ERROR_INITIAL_SAMPLING_FAILED.format(detail="no AIMD run gave frames")
        pool = alf.collect_labelled_frames(orm.Dict(tags), **sets)
        self._out_history("pool_00", pool)
        histogram = {"n_bins": settings.get("n_bins"), "bin_width": settings.get("bin_width")}
        parameters = {
            **self.ctx.params["selection"],
            "method": "flat_histogram",
            "n_select": int(settings.get("n_bins") or 0),
            "flat_histogram": histogram,
            "group_by": None,
            "quota": None,
            "sigma_window": None,
        }
        outputs = select_frames(pool=pool, parameters=orm.Dict(parameters))
        report = outputs["report"]
        self._out_history("selection_00", report)
        if "map" in outputs:
            self._out_history("map_00", outputs["map"])
        if "selected" not in outputs:
            return self.exit_codes.ERROR_INITIAL_SAMPLING_FAILED.format(
                detail="the flat histogram picked nothing"
            )
        selected = outputs["selected"]
        numbers = report.get_dict()["flat_histogram"]["all"]
        self.ctx.row.update(
            {
                "n_explored": len(pool),
                "n_selected": len(selected),
                "n_bins": numbers["n_bins"],
                "n_empty_bins": numbers["n_empty_bins"],
                "energy_range_eV_per_atom": [numbers["edges"][0], numbers["edges"][-1]],
            }
        )
        if settings["relabel"]:  # the loop's labeller labels the picks (labels and predictions stripped)
            self.ctx.to_label = alf.collect_frames(orm.Dict({}), selected=selected)
        else:  # the AIMD energies and forces are the labels
            kwargs = {"previous": self.ctx.training_set} if self.ctx.training_set is not None else {}
            self.ctx.training_set = alf.extend_training_set(orm.Int(0), labelled=selected, **kwargs)
            self._out_history("training_set_00", self.ctx.training_set)
            self.ctx.row.update({"n_labelled": len(selected), "n_failed": 0})
        self.report(
            f"flat histogram: {len(pool)} AIMD frames in {numbers['n_bins']} energy bins "
            f"({numbers['n_empty_bins']} empty); picked {len(selected)}"
            + ("" if settings["relabel"] else f"; training set 0 holds {len(self.ctx.training_set)} frames")
        )
        return None

    def _training_kwargs(self) -> dict:
        return {"training_set": self.ctx.training_set} if self.ctx.training_set is not None else {}

    # --- labelling -----------------------------------------------------------------------------------
    def _submit_labelling(self, structures: StructureSetData, max_failed_fraction: float, label: str):
        """Submit the labelling work chain of ``parameters.labelling.engine`` (CP2K or xTB)."""
        engine = self.ctx.params["labelling"].get("engine", "cp2k")
        process, namespace = (
            (XtbLabellingWorkChain, "xtb_labelling") if engine == "xtb" else (LabellingWorkChain, "labelling")
        )
        inputs = AttributeDict(self.exposed_inputs(process, namespace))
        inputs.structures = structures
        inputs.max_concurrent = orm.Int(int(self.ctx.params["labelling"]["max_concurrent"]))
        inputs.max_failed_fraction = orm.Float(float(max_failed_fraction))
        inputs.metadata = {"call_link_label": label}
        return self.submit(process, **inputs)

    def run_labelling(self):
        """Labels of the selected frames (CP2K or xTB, ``parameters.labelling.engine``)."""
        settings = self.ctx.params["labelling"]
        node = self._submit_labelling(
            self.ctx.to_label, settings["max_failed_fraction"], f"label_iteration_{self._tag()}"
        )
        return ToContext(labelling=node)

    def inspect_labelling(self):
        """Training set k = training set k-1 + the new labels (a calcfunction: its own node)."""
        node = self.ctx.labelling
        failed = node.outputs.failed.get_dict().get("count", 0) if "failed" in node.outputs else None
        if not node.is_finished_ok or "labelled" not in node.outputs:
            return self.exit_codes.ERROR_LABELLING_FAILED.format(
                iteration=self.ctx.iteration, detail=f"{node.process_label}<{node.pk}>: {node.exit_message}"
            )
        labelled = node.outputs.labelled
        kwargs = {
            "labelled": labelled,
            **({"previous": self.ctx.training_set} if self.ctx.training_set else {}),
        }
        self.ctx.training_set = alf.extend_training_set(orm.Int(self.ctx.iteration), **kwargs)
        self._out_history(f"training_set_{self._tag()}", self.ctx.training_set)
        self.ctx.row.update({"n_labelled": len(labelled), "n_failed": failed})
        self.report(
            f"iteration {self.ctx.iteration}: labelled {len(labelled)} frame(s), {failed} failed; "
            f"training set now {len(self.ctx.training_set)} frames"
        )
        return None

    # --- the loop ------------------------------------------------------------------------------------
    def prepare_loop(self):
        """Training set 0 and the starting frame of every loading; first iteration number."""
        if self.should_sample_initially():
            self.ctx.rows.append(self.ctx.row)
            self._out_history("iterations_00", self._tabulate())
        if self.ctx.starting_frames is None:
            kwargs = {"training_set": self.ctx.training_set}
            if "guest" in self.inputs:
                kwargs["guest"] = self.inputs.guest
            self.ctx.starting_frames = alf.build_starting_frames(
                self.inputs.structure, orm.Dict({"loadings": self.ctx.loadings}), **kwargs
            )
            self._out_history("starting_frames", self.ctx.starting_frames)
        self.ctx.iteration = int(self.ctx.params["first_iteration"])

    def should_iterate(self) -> bool:
        return not self.ctx.stop and self.ctx.iteration <= int(self.ctx.params["max_iterations"])

    def run_training(self):
        """Fine-tune the ensemble on the current training set (skipped when ``initial_models`` apply)."""
        self.ctx.row = {"iteration": self.ctx.iteration, "n_training": len(self.ctx.training_set)}
        if self.ctx.models is not None and self.ctx.iteration == int(self.ctx.params["first_iteration"]):
            self.report(f"iteration {self.ctx.iteration}: using the given initial_models, no training")
            return None
        if self.ctx.models is not None and self.ctx.get("trained_on") == self.ctx.training_set.uuid:
            self.report(
                f"iteration {self.ctx.iteration}: no new labels since the last training; same ensemble"
            )
            return None
        self.ctx.trained_on = self.ctx.training_set.uuid
        inputs = AttributeDict(self.exposed_inputs(EnsembleTrainingWorkChain, "training"))
        train = AttributeDict(inputs.train)
        train.train = AttributeDict(train.train)
        train.train.training_set = self.ctx.training_set
        train.train.foundation_model = self.inputs.foundation_model
        inputs.train = train
        inputs.first_seed = orm.Int(int(self.ctx.params["seed"]) + 100 * self.ctx.iteration)
        inputs.metadata = {"call_link_label": f"train_iteration_{self._tag()}"}
        return ToContext(training=self.submit(EnsembleTrainingWorkChain, **inputs))

    def inspect_training(self):
        """Keep the ensemble; record the members' validation error."""
        if "training" not in self.ctx:
            self.ctx.row["valid_mae_f"] = None
            return None
        node = self.ctx.pop("training")
        if not node.is_finished_ok:
            self.report(f"{node.process_label}<{node.pk}> failed: {node.exit_message}")
            return self.exit_codes.ERROR_TRAINING_FAILED.format(iteration=self.ctx.iteration)
        self.ctx.models = dict(node.outputs.models.items())
        for label, model in self.ctx.models.items():
            self._out_history(f"models_{self._tag()}.{label}", model)
        self.ctx.row["valid_mae_f"] = node.outputs.summary.get("mean_valid_mae_f")
        return None

    def _model_0(self) -> MaceModelData:
        return self.ctx.models[sorted(self.ctx.models)[0]]

    def run_exploration(self):
        """MD per loading and temperature with model 0 from the starting frames; MD-GCMC when asked.

        Strategy temperature_ramp: NPT runs from displaced copies at the iteration's temperature instead.
        """
        if self.ctx.strategy == "temperature_ramp":
            return self._run_ramp_exploration()
        frames = self.ctx.starting_frames
        self.ctx.explore_runs = self._submit_md_grid(
            frames, range(len(frames)), self._model_0(), f"explore_{self._tag()}", self.ctx.temperatures
        )
        gcmc = self.ctx.params["gcmc"]
        if gcmc["pressures_bar"] and "guest" in self.inputs:
            runs = self._submit_md_grid(
                frames, [0], self._model_0(), f"gcmc_{self._tag()}", self.ctx.temperatures, gcmc=dict(gcmc)
            )
            self.ctx.explore_runs.update({key: {**tags, "source": "md_gcmc"} for key, tags in runs.items()})

    def _run_ramp_exploration(self):
        """``n_runs`` NPT runs per starting frame from displaced copies, at the iteration's temperature."""
        ramp = self.ctx.params["temperature_ramp"]
        temperature = ramp_temperature(ramp, self.ctx.iteration)
        self.ctx.ramp_temperature = temperature
        settings = {
            "n_copies": int(ramp["n_runs"]),
            "displacement_A": float(ramp["displacement_A"]),
            "seed": int(self.ctx.params["seed"]) + 1000 * self.ctx.iteration,
        }
        copies = alf.displace_frames(self.ctx.starting_frames, orm.Dict(settings))
        self._out_history(f"displaced_{self._tag()}", copies)
        md = {"ensemble": "npt", "pressure_bar": float(ramp["pressure_bar"]), "barostat": ramp["barostat"]}
        if ramp.get("steps"):
            md["steps"] = int(ramp["steps"])
        self.ctx.explore_runs = {}
        for index, atoms in enumerate(copies.iter_frames()):
            key = f"ramp_{self._tag()}_run_{index:03d}"
            inputs = self._md_inputs(copies, self._model_0(), key, temperature, index, **md)
            self.to_context(**{key: self.submit(LammpsMdBaseWorkChain, **inputs)})
            self.ctx.explore_runs[key] = {
                "loading": int(atoms.info.get("loading", 0)),
                "target_temperature": temperature,
                "iteration": self.ctx.iteration,
                "run": index,
            }
        self.report(
            f"iteration {self.ctx.iteration}: {len(copies)} NPT run(s) at {temperature:g} K "
            f"({ramp['pressure_bar']} bar) from copies displaced by {ramp['displacement_A']} A"
        )
        return None

    def run_deviation(self):
        """Merge the explored frames (with the extra candidates, first time); ensemble deviation of each."""
        extra, tags = {}, {}
        self._join_extra_candidates(extra, tags)
        explored, blowups, failed = self._collect_md(self.ctx.explore_runs, extra, tags)
        if explored is None:
            return self.exit_codes.ERROR_EXPLORATION_FAILED.format(iteration=self.ctx.iteration)
        self.ctx.explored = explored
        self._out_history(f"explored_{self._tag()}", explored)
        self.ctx.row.update({"n_explored": len(explored), "n_blowups": blowups, "n_md_failed": failed})
        inputs = AttributeDict(self.exposed_inputs(DeviationBaseWorkChain, "deviation"))
        inputs.deviation = AttributeDict(inputs.deviation)
        inputs.deviation.frames = explored
        inputs.deviation.models = self.ctx.models
        inputs.metadata = {"call_link_label": f"deviation_iteration_{self._tag()}"}
        return ToContext(deviation=self.submit(DeviationBaseWorkChain, **inputs))

    def assess(self):
        """Converged? (a calcfunction records the decision and the selection window)."""
        node = self.ctx.deviation
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_DEVIATION_FAILED.format(iteration=self.ctx.iteration)
        self._out_history(f"deviation_{self._tag()}", node.outputs.deviation)
        settings = {
            "trust": self.ctx.params["trust"],
            "converged_fraction": self.ctx.params["converged_fraction"],
            "n_blowups": self.ctx.row.get("n_blowups", 0),
        }
        result = alf.assess_exploration(self.ctx.explored, node.outputs.deviation, orm.Dict(settings))
        summary = result["summary"]
        self.ctx.window_sigma = result["window_sigma"]
        numbers = summary.get_dict()
        for key in alf.DECISION_KEYS:
            self.ctx.row[key] = numbers[key]
        self.ctx.row.update({"n_selected": 0, "n_labelled": 0, "n_failed": 0})
        if self.ctx.strategy == "temperature_ramp":  # sigma only reported; CBAD and the ramp decide
            self._out_history(f"trust_{self._tag()}", summary)
            self.ctx.trust_summary = summary
            return None
        self._out_history(f"convergence_{self._tag()}", summary)
        self.ctx.decisions[f"convergence_{self._tag()}"] = summary
        if numbers["converged"]:
            self.ctx.stop = True
        elif self.ctx.iteration >= int(self.ctx.params["max_iterations"]):
            self.ctx.stop = True
            self.ctx.exit = self.exit_codes.WARNING_NOT_CONVERGED.format(iterations=self.ctx.iteration)
        return None

    def should_label(self) -> bool:
        return not self.ctx.stop

    def select_candidates(self):
        """Candidates in [lo, hi]: the most diverse ``selection_per_loading`` per loading, de-duplicated.

        Strategy temperature_ramp: CBAD over the explored frames instead, then the ramp's stop decision.
        """
        if self.ctx.strategy == "temperature_ramp":
            return self._select_cbad()
        trust = self.ctx.params["trust"]
        parameters = {
            **self.ctx.params["selection"],
            "group_by": "loading",
            "quota": int(self.ctx.params["selection_per_loading"]),
            "sigma_window": [float(trust["lo"]), float(trust["hi"])],
        }
        outputs = select_frames(
            pool=self.ctx.explored,
            parameters=orm.Dict(parameters),
            sigma=self.ctx.window_sigma,
            **self._training_kwargs(),
        )
        self._out_history(f"selection_{self._tag()}", outputs["report"])
        if "map" in outputs:
            self._out_history(f"map_{self._tag()}", outputs["map"])
        if "selected" not in outputs:
            self.ctx.to_label = None
            self.ctx.stop = True
            self.ctx.exit = self.exit_codes.WARNING_NO_CANDIDATES.format(iteration=self.ctx.iteration)
            return
        self.ctx.to_label = outputs["selected"]
        self.ctx.row["n_selected"] = len(self.ctx.to_label)

    def _select_cbad(self):
        """At most ``frames_per_run`` frames per NPT run that fill a new CBAD bin; stop at the top if none."""
        ramp = self.ctx.params["temperature_ramp"]
        parameters = {
            **self.ctx.params["selection"],
            "method": "cbad",
            "cbad": dict(ramp.get("cbad") or {}),
            "group_by": "run",
            "quota": int(ramp["frames_per_run"]),
            "sigma_window": None,
            "seed": int(self.ctx.params["seed"]) + self.ctx.iteration,
        }
        outputs = select_frames(
            pool=self.ctx.explored, parameters=orm.Dict(parameters), **self._training_kwargs()
        )
        self._out_history(f"selection_{self._tag()}", outputs["report"])
        if "map" in outputs:
            self._out_history(f"map_{self._tag()}", outputs["map"])
        settings = {
            "temperature": float(self.ctx.ramp_temperature),
            "top_K": float(ramp["top_K"]),
            "n_runs": len(self.ctx.explore_runs),
        }
        decision = alf.assess_temperature_ramp(self.ctx.trust_summary, outputs["report"], orm.Dict(settings))
        self._out_history(f"convergence_{self._tag()}", decision)
        self.ctx.decisions[f"convergence_{self._tag()}"] = decision
        numbers = decision.get_dict()
        self.ctx.row.update({"converged": numbers["converged"], **numbers["row"]})
        self.ctx.row["n_selected"] = numbers["row"]["n_new_frames"]
        self.ctx.to_label = None
        if numbers["converged"]:
            self.ctx.stop = True
        elif self.ctx.iteration >= int(self.ctx.params["max_iterations"]):
            self.ctx.stop = True
            self.ctx.exit = self.exit_codes.WARNING_NOT_CONVERGED.format(iterations=self.ctx.iteration)
        elif "selected" in outputs:
            self.ctx.to_label = outputs["selected"]
        return None

    def has_selection(self) -> bool:
        return self.ctx.to_label is not None

    def close_iteration(self):
        """Report this iteration's numbers; next iteration."""
        row = self.ctx.row
        self.ctx.rows.append(row)
        loadings = ", ".join(
            f"{key}: {value['fraction_below_lo']:.0%}"
            for key, value in (row.get("per_loading") or {}).items()
        )
        mae = row.get("valid_mae_f")
        self.report(
            f"iteration {row['iteration']}: trained on {row.get('n_training')} frames "
            f"(validation MAE {'-' if mae is None else f'{mae:.3f}'} eV/A); "
            f"explored {row.get('n_explored')} frames "
            f"({row.get('n_blowups', 0)} blow-up(s)); below lo per loading {{{loadings}}}; "
            f"{row.get('n_above_hi')} above hi; {row.get('n_candidates')} candidates, "
            f"{row.get('n_selected')} selected, {row.get('n_labelled')} labelled, "
            f"{row.get('n_failed')} failed; "
            f"{'converged' if row.get('converged') else 'not converged'}"
            + (f" (ramp at {row['temperature_K']:g} K)" if "temperature_K" in row else "")
        )
        self._out_history(f"iterations_{self._tag()}", self._tabulate())
        self.ctx.iteration += 1

    # --- final validation ----------------------------------------------------------------------------
    def should_validate(self) -> bool:
        return bool(self.ctx.params["validation"]["enabled"]) and self.ctx.models is not None

    def run_validation_md(self):
        """A longer MD per loading with the final model 0."""
        settings = self.ctx.params["validation"]
        frames = self.ctx.starting_frames
        steps = int(settings["md_steps"])
        base = self.exposed_inputs(LammpsMdBaseWorkChain, "md")["md"]
        dump = int((base["parameters"].get_dict() if "parameters" in base else {}).get("dump_interval", 50))
        self.ctx.validation_runs = self._submit_md_grid(
            frames,
            range(len(frames)),
            self._model_0(),
            "validation",
            [float(settings["temperature"])],
            steps=steps,
            dump_interval=max(1, min(dump, steps // 10)),
        )

    def run_validation_labelling(self):
        """Random frames of each loading's validation MD, labelled with CP2K."""
        frames, _, _ = self._collect_md(self.ctx.validation_runs)
        if frames is None:
            self.ctx.validation_error = "no validation MD gave frames"
            return None
        settings = self.ctx.params["validation"]
        picked = alf.pick_random_frames(
            frames,
            orm.Dict(
                {
                    "n_per_loading": int(settings["n_per_loading"]),
                    "skip": int(settings.get("skip", 0)),
                    "seed": int(self.ctx.params["seed"]),
                }
            ),
        )
        return ToContext(validation_labelling=self._submit_labelling(picked, 1.0, "label_validation"))

    def run_validation_deviation(self):
        """Ensemble predictions on the labelled validation frames."""
        if self.ctx.get("validation_error"):
            return None
        node = self.ctx.validation_labelling
        if "labelled" not in node.outputs:
            self.ctx.validation_error = f"no validation frame could be labelled ({node.exit_message})"
            return None
        self.ctx.validation_labelled = node.outputs.labelled
        inputs = AttributeDict(self.exposed_inputs(DeviationBaseWorkChain, "deviation"))
        inputs.deviation = AttributeDict(inputs.deviation)
        inputs.deviation.frames = node.outputs.labelled
        inputs.deviation.models = self.ctx.models
        if node.outputs.labelled.has_stress:  # stress labels: also predict the stress, for its errors
            given = inputs.deviation.parameters.get_dict() if "parameters" in inputs.deviation else {}
            inputs.deviation.parameters = orm.Dict({**given, "compute_stress": True})
        inputs.metadata = {"call_link_label": "deviation_validation"}
        ensemble = self.submit(DeviationBaseWorkChain, **inputs)
        # the foundation's own predictions on the same frames (two copies: the engine wants an ensemble)
        inputs.deviation = AttributeDict(inputs.deviation)
        foundation = self.inputs.foundation_model
        inputs.deviation.models = {"model_0": foundation, "model_1": foundation}
        inputs.metadata = {"call_link_label": "deviation_validation_foundation"}
        reference = self.submit(DeviationBaseWorkChain, **inputs)
        return ToContext(validation_deviation=ensemble, validation_deviation_foundation=reference)

    def compute_validation(self):
        """MAE/RMSE of energy per atom and forces of the ensemble mean, overall and per loading."""
        if self.ctx.get("validation_error"):
            return None
        node = self.ctx.validation_deviation
        if not node.is_finished_ok:
            self.ctx.validation_error = f"{node.process_label}<{node.pk}> failed: {node.exit_message}"
            return None
        result = alf.validation_errors(self.ctx.validation_labelled, node.outputs.deviation)
        self.out("validation", result["metrics"])
        self.out("validation_frames", result["frames"])
        metrics = result["metrics"].get_dict()
        self.report(
            f"validation on {metrics['n_frames']} frames: energy MAE {1000 * metrics['mae_e_per_atom']:.2f} "
            f"meV/atom, force MAE {1000 * metrics['mae_f']:.1f} meV/A (RMSE {1000 * metrics['rmse_f']:.1f})"
        )
        reference = self.ctx.get("validation_deviation_foundation")
        if reference is not None and reference.is_finished_ok:
            foundation = alf.validation_errors(self.ctx.validation_labelled, reference.outputs.deviation)
            self.out("validation_foundation", foundation["metrics"])
            base = foundation["metrics"].get_dict()
            self.report(
                f"foundation on the same frames: energy MAE {1000 * base['mae_e_per_atom']:.2f} meV/atom, "
                f"force MAE {1000 * base['mae_f']:.1f} meV/A"
            )
        elif reference is not None:
            self.report(f"the foundation's validation deviation failed: {reference.exit_message}")
        return None

    def _tabulate(self) -> orm.Dict:
        """The iteration table of the rows so far (a calcfunction), headed by ``previous_iterations``."""
        settings = {key: self.ctx.params[key] for key in ("trust", "converged_fraction")}
        settings.update({"strategy": self.ctx.strategy, "stop_rule": STOP_RULES[self.ctx.strategy]})
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
