"""The property stop rule: the loop learns until its ensemble reproduces the labelling method's properties.

``parameters.stop`` decides when the loop stops:

* ``sigma`` (default): the ensemble's deviation converged (``converged_fraction`` below ``trust.lo``);
* ``both``: once sigma has converged, :class:`ReferenceCheckWorkChain` runs on the ensemble (V0, bulk
  modulus, binding energy on the iteration's loaded frames, Gamma phonons, each against the labelling
  method); a property outside its tolerance sends the reference's frames behind it to the labelling and the
  loop goes on, until the properties agree or ``max_iterations``;
* ``property``: the check runs every iteration and alone decides the stop (sigma is reported, not used).

The check's ensemble rows go into the iteration table (``reference_check``) and each table into
``history.reference_check_<k>``. Inputs ``reference_code`` (a ``mofmlp-reference-check`` code) and
``reference_overrides`` (overrides of the check's protocol, e.g. its ``tolerances``).
"""

from __future__ import annotations

from aiida import orm

from aiida_mofmlp.workflows.functions import labels as label_functions

STOP_MODES = ("sigma", "property", "both")


def define_reference_spec(spec) -> None:
    """Inputs ``reference_code`` and ``reference_overrides``; exit code 413."""
    spec.input(
        "reference_code",
        valid_type=orm.AbstractCode,
        required=False,
        help="mofmlp-reference-check code: the property stop rule (parameters.stop property or both).",
    )
    spec.input(
        "reference_overrides",
        valid_type=orm.Dict,
        required=False,
        help="Overrides of the reference check's protocol (reference_check.yaml), e.g. tolerances.",
    )
    spec.exit_code(
        413,
        "ERROR_REFERENCE_CHECK_FAILED",
        message="The reference check of iteration {iteration} failed: {detail}",
    )


def validate_stop_inputs(inputs, params: dict) -> str | None:
    """``stop`` is known and, when it needs the reference check, its code is given."""
    mode = params.get("stop", "sigma")
    if mode not in STOP_MODES:
        return f"parameters.stop={mode!r} is not valid; valid: {', '.join(STOP_MODES)}"
    if mode != "sigma" and "reference_code" not in inputs:
        return (
            f"parameters.stop={mode!r} needs the reference check: give reference_code (the "
            "mofmlp-reference-check code that `aiida-mofmlp setup` creates)"
        )
    return None


class ReferenceStep:
    """Mixin of ActiveLearningWorkChain: the reference check and the stop rule it drives."""

    def _stop_mode(self) -> str:
        return self.ctx.params.get("stop", "sigma")

    def should_check_reference(self) -> bool:
        """``property``: every iteration; ``both``: when sigma converged in this iteration."""
        mode = self._stop_mode()
        if mode == "sigma" or self.ctx.models is None:
            return False
        return mode == "property" or bool(self.ctx.get("sigma_converged"))

    def run_reference_check(self):
        """The ensemble against the labelling method on the framework and this iteration's loaded frames."""
        from aiida_mofmlp.workflows.properties.reference_check import ReferenceCheckWorkChain

        overrides = (
            self.inputs.reference_overrides.get_dict() if "reference_overrides" in self.inputs else None
        )
        builder = ReferenceCheckWorkChain.get_builder_from_protocol(
            self.inputs.structure,
            dict(self.ctx.models),
            {"reference": self.inputs.reference_code},
            protocol=self.ctx.params.get("protocol") or None,
            overrides=overrides,
            validation_frames=self.ctx.explored,
        )
        builder.metadata.call_link_label = f"reference_check_{self._tag()}"
        node = self.submit(builder)
        self.report(f"iteration {self.ctx.iteration}: reference check ReferenceCheckWorkChain<{node.pk}>")
        self.to_context(reference_check=node)

    def inspect_reference_check(self):
        """Record the table; stop when the properties agree, else label the frames behind the failures."""
        node = self.ctx.reference_check
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_REFERENCE_CHECK_FAILED.format(
                iteration=self.ctx.iteration, detail=f"{node.process_label}<{node.pk}>: {node.exit_message}"
            )
        table = node.outputs.table
        self._out_history(f"reference_check_{self._tag()}", table)
        values = table.get_dict()
        self.ctx.row["reference_check"] = [
            {
                key: row.get(key)
                for key in ("property", "reference", "value", "spread", "difference", "unit", "passed")
            }
            for row in values["rows"]
            if row["model"] == "ensemble"
        ]
        self.ctx.row["properties_agree"] = values["passed"]
        last = self.ctx.iteration >= int(self.ctx.params["max_iterations"])
        if values["passed"]:
            self.ctx.row["converged"] = True
            self.ctx.stop, self.ctx.exit = True, None
            self.report(f"iteration {self.ctx.iteration}: the properties agree with the reference; stopping")
            return None
        failed = ", ".join(values["failed"])
        if last:
            self.ctx.row["converged"] = False
            self.ctx.stop = True
            self.ctx.exit = self.exit_codes.WARNING_NOT_CONVERGED.format(iterations=self.ctx.iteration)
            self.report(
                f"iteration {self.ctx.iteration}: {failed} still outside tolerance at the last iteration"
            )
            return None
        self.ctx.row["converged"] = False
        self.ctx.stop, self.ctx.exit = False, None
        self.ctx.reference_frames = node.outputs.untrusted_frames
        self.report(
            f"iteration {self.ctx.iteration}: {failed} outside tolerance; labelling the "
            f"{len(node.outputs.untrusted_frames)} reference frame(s) behind them and going on"
        )
        return None

    def add_reference_frames(self):
        """The reference check's frames join this iteration's selection (also when it found no candidate)."""
        frames = self.ctx.get("reference_frames")
        if frames is None:
            return
        self.ctx.reference_frames = None
        if self.ctx.to_label is None:
            self.ctx.to_label = frames
            if (
                self.ctx.exit is not None
                and self.ctx.exit.status == self.exit_codes.WARNING_NO_CANDIDATES.status
            ):
                self.ctx.stop, self.ctx.exit = False, None
        else:
            self.ctx.to_label = label_functions.merge_structure_sets(
                batch_0=self.ctx.to_label, batch_1=frames
            )
        self.ctx.row["n_selected"] = len(self.ctx.to_label)
        self.ctx.row["n_reference_frames"] = len(frames)
