"""One iteration: train the ensemble, explore, judge by the ensemble's deviation, select, stop or go on.

A mixin of :class:`~aiida_mofmlp.workflows.active_learning.workchain.ActiveLearningWorkChain` (its steps
read and write the work chain's context; the strategy object decides what differs between strategies).
"""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext

from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.workflows.active_learning.strategies import (
    ramp_temperature,
)
from aiida_mofmlp.workflows.functions import active_learning as alf
from aiida_mofmlp.workflows.functions.selection import select_frames
from aiida_mofmlp.workflows.lammps.base import LammpsMdBaseWorkChain
from aiida_mofmlp.workflows.mace.deviation import DeviationBaseWorkChain
from aiida_mofmlp.workflows.mace.ensemble import EnsembleTrainingWorkChain


class IterationPhase:
    """Steps of the loop's iteration phase (mixed into ActiveLearningWorkChain)."""

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
        inputs.first_seed = orm.Int(self._seed("training"))
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
        """This iteration's exploration, as the strategy decides (:meth:`explore_md_grid` by default)."""
        return self.strategy.explore(self)

    def explore_md_grid(self):
        """MD per loading and temperature with model 0 from the starting frames; MD-GCMC when asked."""
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

    def explore_ramp(self):
        """``n_runs`` NPT runs per starting frame from displaced copies, at the iteration's temperature."""
        ramp = self.ctx.params["temperature_ramp"]
        temperature = ramp_temperature(ramp, self.ctx.iteration)
        self.ctx.ramp_temperature = temperature
        settings = {
            "n_copies": int(ramp["n_runs"]),
            "displacement_A": float(ramp["displacement_A"]),
            "seed": self._seed("displace"),
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
        if not self.strategy.converges_by_trust:  # sigma only reported; the strategy's selection decides
            self._out_history(f"trust_{self._tag()}", summary)
            self.ctx.trust_summary = summary
            return None
        self._record_decision(summary, numbers["converged"])
        return None

    def _record_decision(self, decision: orm.Dict, converged: bool) -> None:
        """The one stop decision: converged, or the last iteration (not converged), or go on."""
        self._out_history(f"convergence_{self._tag()}", decision)
        self.ctx.decisions[f"convergence_{self._tag()}"] = decision
        self.ctx.sigma_converged = converged
        if converged and self.ctx.params.get("stop", "sigma") != "property":  # property: the check decides
            self.ctx.stop = True
        elif self.ctx.iteration >= int(self.ctx.params["max_iterations"]):
            self.ctx.stop = True
            self.ctx.exit = self.exit_codes.WARNING_NOT_CONVERGED.format(iterations=self.ctx.iteration)

    def _record_selection(self, outputs: dict, tag: str | None = None) -> None:
        """The one place a selection is recorded: its report and, when drawn, its map, under ``history``."""
        tag = self._tag() if tag is None else tag
        self._out_history(f"selection_{tag}", outputs["report"])
        if "map" in outputs:
            self._out_history(f"map_{tag}", outputs["map"])

    def should_label(self) -> bool:
        return not self.ctx.stop

    def select_candidates(self):
        """The frames to label, as the strategy decides (:meth:`select_in_trust_window` by default)."""
        return self.strategy.select(self)

    def select_in_trust_window(self):
        """Candidates in [lo, hi]: the most diverse ``selection_per_loading`` per loading, de-duplicated."""
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
        self._record_selection(outputs)
        if "selected" not in outputs:
            self.ctx.to_label = None
            self.ctx.stop = True
            self.ctx.exit = self.exit_codes.WARNING_NO_CANDIDATES.format(iteration=self.ctx.iteration)
            return
        self.ctx.to_label = outputs["selected"]
        self.ctx.row["n_selected"] = len(self.ctx.to_label)

    def select_cbad(self):
        """At most ``frames_per_run`` frames per NPT run that fill a new CBAD bin; stop at the top if none."""
        ramp = self.ctx.params["temperature_ramp"]
        parameters = {
            **self.ctx.params["selection"],
            "method": "cbad",
            "cbad": dict(ramp.get("cbad") or {}),
            "group_by": "run",
            "quota": int(ramp["frames_per_run"]),
            "sigma_window": None,
            "seed": self._seed("cbad"),
        }
        outputs = select_frames(
            pool=self.ctx.explored, parameters=orm.Dict(parameters), **self._training_kwargs()
        )
        self._record_selection(outputs)
        settings = {
            "temperature": float(self.ctx.ramp_temperature),
            "top_K": float(ramp["top_K"]),
            "n_runs": len(self.ctx.explore_runs),
        }
        decision = alf.assess_temperature_ramp(self.ctx.trust_summary, outputs["report"], orm.Dict(settings))
        numbers = decision.get_dict()
        self.ctx.row.update({"converged": numbers["converged"], **numbers["row"]})
        self.ctx.row["n_selected"] = numbers["row"]["n_new_frames"]
        self._record_decision(decision, numbers["converged"])
        self.ctx.to_label = None if self.ctx.stop else outputs.get("selected")
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
