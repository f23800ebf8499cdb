"""Label a structure set with CP2K: energies, forces (and stress), per-frame lineage, per-frame failures."""

from __future__ import annotations

import os
from collections.abc import Mapping

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, if_, while_
from aiida.plugins import DataFactory

from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.cp2k import inputs as inputs_mod
from aiida_mofmlp.workflows.cp2k.base import (
    Cp2kSinglePointWorkChain,
    deep_merge_options,
    options_for_code,
)
from aiida_mofmlp.workflows.cp2k.inputs import Cp2kProtocolMixin
from aiida_mofmlp.workflows.functions.labels import (
    extract_frames,
    frame_key,
    guest_energies,
    guest_in_box,
    label_frames,
    merge_structure_sets,
    record_failures,
)
from aiida_mofmlp.workflows.labelling import define_labelling_contract

GuestMoleculeData = DataFactory("mofmlp.guest")


def _kind_elements(parameters: Mapping) -> set[str] | None:
    kinds = parameters.get("FORCE_EVAL", {}).get("SUBSYS", {}).get("KIND")
    if kinds is None:
        return None
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return {str(kind.get("ELEMENT", kind.get("_"))) for kind in kinds}


def validate_inputs(inputs, _):
    """Every element of the set (and of the guests) must have a &KIND (DFT) or xTB parameters."""
    parameters = inputs.get("single_point", {}).get("cp2k", {}).get("parameters")
    structures = inputs.get("structures")
    if parameters is None or structures is None:
        return None
    parameters = parameters.get_dict()
    elements = set(structures.species)
    for guest in inputs.get("guests", {}).values():
        elements.update(guest.symbols)
    if inputs_mod.is_xtb(parameters):
        message = inputs_mod.check_elements(inputs_mod.get_protocol("fast"), elements)
        return f"structures: {message}" if message else None
    known = _kind_elements(parameters)
    if known is None:
        return (
            "single_point.cp2k.parameters: no FORCE_EVAL/SUBSYS/KIND sections (basis sets, pseudopotentials)"
        )
    missing = sorted(elements - known)
    if missing:
        return (
            f"structures: elements {missing} have no &KIND section (basis set/pseudopotential) in "
            f"single_point.cp2k.parameters; the parameters cover {sorted(known)}"
        )
    return None


class LabellingWorkChain(Cp2kProtocolMixin, WorkChain):
    """Label every frame of a StructureSetData with CP2K single points.

    Frames run in waves of at most ``max_concurrent`` Cp2kSinglePointWorkChains. After each wave one
    calcfunction takes that wave's parsed ``labels`` nodes and writes its labelled frames (eV, eV/Angstrom,
    eV/Angstrom^3 under the REF_* keys, ``calc_uuid`` = the producing calculation); a final calcfunction
    merges the waves. A frame still failing after its restarts is listed with its reason in ``failed``
    (made by the calcfunction ``record_failures``) and skipped; the work chain fails only when more than
    ``max_failed_fraction`` of the frames fail. Optional ``guests`` get an isolated-molecule reference
    energy with the same settings.
    """

    _protocol_file = "cp2k.yaml"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        define_labelling_contract(spec, 8, "At most this many single points run at the same time (one wave).")
        spec.expose_inputs(
            Cp2kSinglePointWorkChain,
            namespace="single_point",
            exclude=("cp2k.structure", "cp2k.parent_calc_folder"),
            namespace_options={
                "help": "Inputs of each frame's Cp2kSinglePointWorkChain (the structure is set)."
            },
        )
        spec.input(
            "compute_stress",
            valid_type=orm.Bool,
            default=lambda: orm.Bool(False),
            help="Also label the stress (the parameters must print STRESS_TENSOR).",
        )
        spec.inputs.validator = validate_inputs

        spec.outline(
            cls.setup,
            while_(cls.frames_left)(cls.launch_wave, cls.collect_wave),
            if_(cls.has_guests)(cls.collect_guests),
            cls.finalize,
        )

    # --- protocol ------------------------------------------------------------------------------------
    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        structures: StructureSetData,
        protocol: str | None = None,
        overrides: Mapping | str | os.PathLike | None = None,
        compute_stress: bool = False,
        options: Mapping | None = None,
        guests: Mapping[str, orm.Data] | None = None,
        max_concurrent: int | None = None,
        max_failed_fraction: float | None = None,
    ):
        """A builder labelling ``structures`` with CP2K protocol ``fast``, ``balanced`` or ``stringent``.

        ``overrides`` (a dict or the path of a YAML file) is deep-merged into the protocol (see
        protocols/cp2k.yaml). ``max_concurrent`` and ``max_failed_fraction`` default to the protocol's
        ``labelling`` block. Raises ValueError, before anything runs, when an element of the frames or
        guests has no basis set/pseudopotential.
        """
        settings = cls.get_protocol_inputs(protocol, overrides)
        labelling = settings["labelling"]
        elements = set(structures.species)
        for guest in (guests or {}).values():
            elements.update(guest.symbols)
        parameters = inputs_mod.build_parameters(settings, elements, compute_stress=compute_stress)
        builder = cls.get_builder()
        builder.structures = structures
        builder.single_point.cp2k.code = code
        builder.single_point.cp2k.parameters = orm.Dict(parameters)
        builder.single_point.cp2k.metadata.options = options_for_code(
            code, deep_merge_options(settings, options)
        )
        builder.single_point.max_iterations = orm.Int(settings["max_iterations"])
        builder.single_point.walltime_fraction = orm.Float(settings["walltime_fraction"])
        builder.compute_stress = orm.Bool(compute_stress)
        builder.max_concurrent = orm.Int(
            labelling["max_concurrent"] if max_concurrent is None else max_concurrent
        )
        builder.max_failed_fraction = orm.Float(
            labelling["max_failed_fraction"] if max_failed_fraction is None else max_failed_fraction
        )
        builder.guest_box = orm.Float(labelling["guest_box"])
        if guests:
            builder.guests = dict(guests)
        return builder

    # --- outline -------------------------------------------------------------------------------------
    def setup(self):
        """Queue all frame indices."""
        self.ctx.pending = list(range(len(self.inputs.structures)))
        self.ctx.wave = 0
        self.ctx.batches = []
        self.ctx.failed = []
        self.ctx.current = []

    def frames_left(self) -> bool:
        return bool(self.ctx.pending)

    def has_guests(self) -> bool:
        return bool(self.inputs.get("guests"))

    def _single_point_inputs(self, structure: orm.StructureData, label: str) -> AttributeDict:
        inputs = AttributeDict(self.exposed_inputs(Cp2kSinglePointWorkChain, "single_point"))
        inputs.cp2k = AttributeDict(inputs.cp2k)
        inputs.cp2k.structure = structure
        inputs.metadata = {"call_link_label": label}
        return inputs

    def launch_wave(self):
        """Submit the next ``max_concurrent`` frames (and, in the first wave, the isolated guests)."""
        size = self.inputs.max_concurrent.value
        indices, self.ctx.pending = self.ctx.pending[:size], self.ctx.pending[size:]
        self.ctx.current = indices
        structures = extract_frames(self.inputs.structures, orm.List(indices))
        futures = {}
        for index in indices:
            key = frame_key(index)
            futures[key] = self.submit(
                Cp2kSinglePointWorkChain, **self._single_point_inputs(structures[key], key)
            )
        if self.ctx.wave == 0 and self.has_guests():
            for name, guest in self.inputs.guests.items():
                box = guest_in_box(guest, self.inputs.guest_box)
                inputs = self._single_point_inputs(box, f"guest_{name}")
                futures[f"guest_{name}"] = self.submit(Cp2kSinglePointWorkChain, **inputs)
        self.report(
            f"wave {self.ctx.wave}: labelling frames {indices[0]}..{indices[-1]} ({len(indices)} frames)"
        )
        self.ctx.wave += 1
        return ToContext(**futures)

    def collect_wave(self):
        """Label the successful frames of the wave with one calcfunction; record the failed ones."""
        labels, ok = {}, []
        for index in self.ctx.current:
            key = frame_key(index)
            node = self.ctx[key]
            if node.is_finished_ok:
                labels[key] = node.outputs.labels
                ok.append(index)
            else:
                reason = node.exit_message or (
                    "excepted" if node.is_excepted else f"process state {node.process_state}"
                )
                self.ctx.failed.append(
                    {
                        "index": index,
                        "reason": reason,
                        "exit_status": node.exit_status,
                        "workchain_uuid": node.uuid,
                    }
                )
                self.report(f"frame {index} could not be labelled: {reason}")
            del self.ctx[key]
        if ok:
            batch = label_frames(self.inputs.structures, orm.List(ok), self.inputs.compute_stress, **labels)
            self.ctx.batches.append(batch.pk)

    def collect_guests(self):
        """Reference energies of the isolated guests."""
        labels, failed = {}, []
        for name in self.inputs.guests:
            node = self.ctx[f"guest_{name}"]
            if node.is_finished_ok:
                labels[name] = node.outputs.labels
            else:
                failed.append(f"{name}: {node.exit_message}")
        if failed:
            return self.exit_codes.ERROR_GUEST_REFERENCE_FAILED.format(guests="; ".join(failed))
        self.out("guest_energies", guest_energies(**labels))
        return None

    def finalize(self):
        """Merge the labelled waves, report the failures, and fail when too many frames failed."""
        total = len(self.inputs.structures)
        if self.ctx.batches:
            batches = {f"batch_{k}": orm.load_node(pk) for k, pk in enumerate(self.ctx.batches)}
            labelled = batches["batch_0"] if len(batches) == 1 else merge_structure_sets(**batches)
            self.out("labelled", labelled)
        self.out("failed", record_failures(orm.List(self.ctx.failed), orm.Int(total)))
        fraction = self.inputs.max_failed_fraction.value
        if len(self.ctx.failed) > fraction * total:
            return self.exit_codes.ERROR_TOO_MANY_FAILURES.format(
                failed=len(self.ctx.failed), total=total, fraction=fraction
            )
        self.report(f"labelled {total - len(self.ctx.failed)} of {total} frames")
        return None
