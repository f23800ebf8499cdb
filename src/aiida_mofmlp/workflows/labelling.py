"""The contract every labelling work chain shares (CP2K, xTB): ports, outputs and exit codes.

A labelling work chain takes ``structures`` and returns ``labelled`` (REF_* labels, ``parent_index`` = the
frame's index in ``structures``, ``calc_uuid`` = the calculation that produced the label), ``failed`` (index,
reason, exit status and work chain of every frame left without labels, made by a calcfunction) and, with
``guests``, ``guest_energies``; it fails only when more than ``max_failed_fraction`` of the frames fail.
The active-learning loop uses any of them through this contract.
"""

from __future__ import annotations

from aiida import orm

from aiida_mofmlp.data.guest import GuestMoleculeData
from aiida_mofmlp.data.structure_set import StructureSetData


def validate_fraction(value, _ctx=None) -> str | None:
    """``max_failed_fraction`` lies in [0, 1]."""
    if value is not None and not 0.0 <= value.value <= 1.0:
        return f"max_failed_fraction must be in [0, 1], got {value.value}"
    return None


def validate_positive(value, _ctx=None) -> str | None:
    """A count of at least 1."""
    if value is not None and value.value < 1:
        return f"must be at least 1, got {value.value}"
    return None


def define_labelling_contract(spec, max_concurrent: int, concurrency_help: str) -> None:
    """Add the shared inputs, outputs and exit codes of a labelling work chain to ``spec``."""
    spec.input("structures", valid_type=StructureSetData, help="The frames to label.")
    spec.input(
        "max_concurrent",
        valid_type=orm.Int,
        default=lambda: orm.Int(max_concurrent),
        validator=validate_positive,
        help=concurrency_help,
    )
    spec.input(
        "max_failed_fraction",
        valid_type=orm.Float,
        default=lambda: orm.Float(0.1),
        validator=validate_fraction,
        help="The work chain fails when more than this fraction of the frames cannot be labelled.",
    )
    spec.input_namespace(
        "guests",
        valid_type=GuestMoleculeData,
        required=False,
        dynamic=True,
        help="Guest molecules whose isolated reference energy is computed with the same settings.",
    )
    spec.input(
        "guest_box",
        valid_type=orm.Float,
        default=lambda: orm.Float(12.0),
        help="Edge (Angstrom) of the cubic box holding an isolated guest.",
    )
    spec.output("labelled", valid_type=StructureSetData, required=False, help="The labelled frames.")
    spec.output(
        "failed",
        valid_type=orm.Dict,
        help="Frames that could not be labelled: index, reason, exit status and work chain UUID.",
    )
    spec.output(
        "guest_energies",
        valid_type=orm.Dict,
        required=False,
        help="Isolated-guest reference energies in eV, keyed by guest name.",
    )
    spec.exit_code(
        410,
        "ERROR_TOO_MANY_FAILURES",
        message="{failed} of {total} frames failed, more than max_failed_fraction={fraction}",
    )
    spec.exit_code(
        420, "ERROR_GUEST_REFERENCE_FAILED", message="the isolated-guest calculation failed: {guests}"
    )
