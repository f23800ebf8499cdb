"""Labelling of the selected frames (CP2K or xTB, as ``parameters.labelling.engine`` says) and the growing
training set; used after the initial selection and after each iteration's selection.

A mixin of :class:`~aiida_mofmlp.workflows.active_learning.workchain.ActiveLearningWorkChain`.
"""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext

from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.cp2k.labelling import LabellingWorkChain
from aiida_mofmlp.workflows.functions import active_learning as alf
from aiida_mofmlp.workflows.xtb.labelling import XtbLabellingWorkChain


class LabellingPhase:
    """Label the frames in ``ctx.to_label`` and add them to the training set."""

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
