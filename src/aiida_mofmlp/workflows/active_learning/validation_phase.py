"""The final validation: longer MD with the final model 0, random frames labelled, errors of the ensemble.

A mixin of :class:`~aiida_mofmlp.workflows.active_learning.workchain.ActiveLearningWorkChain` (its steps
read and write the work chain's context; the strategy object decides what differs between strategies).
"""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext

from aiida_mofmlp.workflows.functions import active_learning as alf
from aiida_mofmlp.workflows.lammps.base import LammpsMdBaseWorkChain
from aiida_mofmlp.workflows.mace.deviation import DeviationBaseWorkChain


class ValidationPhase:
    """Steps of the loop's validation phase (mixed into ActiveLearningWorkChain)."""

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
                    "seed": self._seed("validation"),
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
