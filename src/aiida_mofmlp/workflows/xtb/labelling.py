"""XtbLabellingWorkChain: GFN-xTB labels of a structure set, the same contract as the CP2K labelling."""

from __future__ import annotations

import os
from collections.abc import Mapping

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, if_, while_

from aiida_mofmlp.common.protocols import deep_merge
from aiida_mofmlp.data.guest import GuestMoleculeData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.xtb.label import unsupported_elements
from aiida_mofmlp.workflows.functions.labels import record_failures
from aiida_mofmlp.workflows.functions.xtb import (
    batch_key,
    guest_energies_from_set,
    guests_in_boxes,
    merge_labelled_batches,
    subset_frames,
)
from aiida_mofmlp.workflows.labelling import define_labelling_contract, validate_positive
from aiida_mofmlp.workflows.protocols.utils import ProtocolMixin
from aiida_mofmlp.workflows.xtb.base import XtbBaseWorkChain

#: inputs of this work chain that a protocol sets besides the exposed ``xtb`` namespace
SETTINGS = ("frames_per_job", "max_concurrent", "max_failed_fraction", "guest_box")


def validate_inputs(inputs, _ctx=None) -> str | None:
    """Every element of the frames and guests has GFN-xTB parameters."""
    elements = set(inputs["structures"].species) if "structures" in inputs else set()
    for guest in (inputs.get("guests") or {}).values():
        elements.update(guest.symbols)
    missing = unsupported_elements(elements)
    if missing:
        return f"structures/guests: elements {missing} have no GFN-xTB parameters (H to Rn only)"
    return None


class XtbLabellingWorkChain(ProtocolMixin, WorkChain):
    """Label every frame of a StructureSetData with GFN-xTB (tblite), ``frames_per_job`` frames per job.

    Outputs as :class:`~aiida_mofmlp.workflows.cp2k.labelling.LabellingWorkChain`: ``labelled`` (REF_*
    labels, ``parent_index`` = index in ``structures``, ``calc_uuid`` = the XtbCalculation), ``failed``
    (index, reason, exit status and job of every frame without labels) and ``guest_energies``. The work chain
    fails only when more than ``max_failed_fraction`` of the frames could not be labelled.
    """

    _protocol_file = "xtb.yaml"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        define_labelling_contract(spec, 2, "Jobs running at the same time (one wave).")
        spec.expose_inputs(
            XtbBaseWorkChain,
            namespace="xtb",
            exclude=("xtb.structures",),
            namespace_options={"help": "Inputs of each batch's XtbBaseWorkChain (the frames are set)."},
        )
        spec.input(
            "frames_per_job",
            valid_type=orm.Int,
            default=lambda: orm.Int(50),
            validator=validate_positive,
            help="Frames labelled by one job.",
        )
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            while_(cls.batches_left)(cls.launch_wave, cls.collect_wave),
            if_(cls.has_guests)(cls.collect_guests),
            cls.finalize,
        )

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        structures: StructureSetData,
        protocol: str | None = None,
        overrides: Mapping | str | os.PathLike | None = None,
        options: Mapping | None = None,
        guests: Mapping[str, GuestMoleculeData] | None = None,
    ):
        """A builder labelling ``structures`` with protocol ``protocol`` of ``xtb.yaml``.

        ``overrides`` (a dict or a YAML path) is shaped like this work chain's inputs, e.g.
        ``{"frames_per_job": 20, "xtb": {"xtb": {"parameters": {"compute_stress": True}}}}``; ``options``
        is merged into each job's options. Raises ValueError, before anything runs, for elements beyond Rn.
        """
        inputs = cls.get_protocol_inputs(protocol, overrides)
        unknown = sorted(set(inputs) - {*SETTINGS, "xtb"})
        if unknown:
            raise ValueError(
                f"overrides: unknown inputs {unknown} of {cls.__name__}; valid: {[*SETTINGS, 'xtb']}"
            )
        elements = set(structures.species)
        for guest in (guests or {}).values():
            elements.update(guest.symbols)
        missing = unsupported_elements(elements)
        if missing:
            raise ValueError(f"elements {missing} have no GFN-xTB parameters (H to Rn only)")
        builder = cls.get_builder()
        builder.structures = structures
        job = inputs["xtb"]
        builder.xtb.xtb.code = code
        builder.xtb.xtb.parameters = orm.Dict(job["xtb"]["parameters"])
        builder.xtb.xtb.metadata.options = deep_merge(job["xtb"]["metadata"]["options"], options or {})
        builder.xtb.max_iterations = orm.Int(int(job["max_iterations"]))
        builder.frames_per_job = orm.Int(int(inputs["frames_per_job"]))
        builder.max_concurrent = orm.Int(int(inputs["max_concurrent"]))
        builder.max_failed_fraction = orm.Float(float(inputs["max_failed_fraction"]))
        builder.guest_box = orm.Float(float(inputs["guest_box"]))
        if guests:
            builder.guests = dict(guests)
        return builder

    # --- outline -------------------------------------------------------------------------------------
    def setup(self):
        """Cut the frame indices into batches of ``frames_per_job``."""
        size = self.inputs.frames_per_job.value
        total = len(self.inputs.structures)
        self.ctx.batches = [list(range(start, min(start + size, total))) for start in range(0, total, size)]
        self.ctx.next_batch = 0
        self.ctx.current = []
        self.ctx.merged = {}
        self.ctx.failed = []

    def batches_left(self) -> bool:
        return self.ctx.next_batch < len(self.ctx.batches)

    def has_guests(self) -> bool:
        return bool(self.inputs.get("guests"))

    def _job_inputs(self, structures: StructureSetData, label: str) -> AttributeDict:
        inputs = AttributeDict(self.exposed_inputs(XtbBaseWorkChain, "xtb"))
        inputs.xtb = AttributeDict(inputs.xtb)
        inputs.xtb.structures = structures
        inputs.metadata = {"call_link_label": label}
        return inputs

    def launch_wave(self):
        """Submit the next ``max_concurrent`` batches (and, with the first wave, the isolated guests)."""
        futures = {}
        self.ctx.current = []
        for _ in range(self.inputs.max_concurrent.value):
            if not self.batches_left():
                break
            index = self.ctx.next_batch
            indices = self.ctx.batches[index]
            subset = subset_frames(self.inputs.structures, orm.List(indices))
            futures[batch_key(index)] = self.submit(
                XtbBaseWorkChain, **self._job_inputs(subset, batch_key(index))
            )
            self.ctx.current.append(index)
            self.ctx.next_batch += 1
        if self.has_guests() and self.ctx.current[0] == 0:
            boxes = guests_in_boxes(self.inputs.guest_box, **self.inputs.guests)
            futures["guests"] = self.submit(XtbBaseWorkChain, **self._job_inputs(boxes, "guests"))
        first, last = self.ctx.batches[self.ctx.current[0]][0], self.ctx.batches[self.ctx.current[-1]][-1]
        self.report(f"labelling frames {first}..{last} in {len(self.ctx.current)} xTB job(s)")
        return ToContext(**futures)

    def collect_wave(self):
        """Keep each finished batch's labelled frames; record every frame without labels with its reason."""
        for index in self.ctx.current:
            node = self.ctx[batch_key(index)]
            indices = self.ctx.batches[index]
            if node.is_finished_ok or "labelled" in node.outputs:
                self.ctx.merged[index] = node.outputs.labelled.pk
                for item in node.outputs.failed["frames"]:
                    self.ctx.failed.append(
                        {
                            "index": indices[int(item["index"])],
                            "reason": item["reason"],
                            "exit_status": node.exit_status,
                            "workchain_uuid": node.uuid,
                        }
                    )
            else:
                reason = node.exit_message or f"process state {node.process_state}"
                self.report(f"batch {index} (frames {indices[0]}..{indices[-1]}) failed: {reason}")
                self.ctx.failed.extend(
                    {
                        "index": i,
                        "reason": reason,
                        "exit_status": node.exit_status,
                        "workchain_uuid": node.uuid,
                    }
                    for i in indices
                )

    def collect_guests(self):
        """Reference energies of the isolated guests."""
        node = self.ctx.guests
        if not node.is_finished_ok or len(node.outputs.labelled) != len(self.inputs.guests):
            detail = node.exit_message or f"{len(node.outputs.failed['frames'])} guest(s) without labels"
            return self.exit_codes.ERROR_GUEST_REFERENCE_FAILED.format(guests=detail)
        self.out("guest_energies", guest_energies_from_set(node.outputs.labelled))
        return None

    def finalize(self):
        """Merge the labelled batches, record the failures, and fail when too many frames failed."""
        total = len(self.inputs.structures)
        if self.ctx.merged:
            batches = {}
            for index, pk in sorted(self.ctx.merged.items()):
                batches[f"labelled_{index}"] = orm.load_node(pk)
                batches[f"indices_{index}"] = orm.List(self.ctx.batches[index])
            self.out("labelled", merge_labelled_batches(**batches))
        failures = sorted(self.ctx.failed, key=lambda item: item["index"])
        self.out("failed", record_failures(orm.List(failures), orm.Int(total)))
        fraction = self.inputs.max_failed_fraction.value
        if len(failures) > fraction * total:
            return self.exit_codes.ERROR_TOO_MANY_FAILURES.format(
                failed=len(failures), total=total, fraction=fraction
            )
        self.report(f"labelled {total - len(failures)} of {total} frames with xTB")
        return None
