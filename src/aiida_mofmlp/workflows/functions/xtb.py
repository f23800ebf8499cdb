"""Calcfunctions of the xTB labelling: batches of frames in, labelled frames with set indices out."""

from __future__ import annotations

from aiida import orm
from aiida.engine import calcfunction

from aiida_mofmlp.common import frames as fr
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.functions.labels import boxed_guest


def batch_key(index: int) -> str:
    """Link label of batch ``index`` (``batch_3``)."""
    return f"batch_{index}"


@calcfunction
def subset_frames(structures: StructureSetData, indices: orm.List) -> StructureSetData:
    """Frames ``indices`` of ``structures``, in that order (one xTB job's input)."""
    return StructureSetData.from_frames(structures.get_frames([int(i) for i in indices.get_list()]))


@calcfunction
def merge_labelled_batches(**batches) -> StructureSetData:
    """One labelled set from ``labelled_<k>`` sets and their ``indices_<k>`` in the parent set.

    Each labelled frame's ``parent_index`` (its index within its batch) becomes the frame's index in the
    parent set; ``calc_uuid`` (the XtbCalculation) is kept. Frames are ordered by parent index.
    """
    merged = []
    for key in batches:
        if not key.startswith("labelled_"):
            continue
        indices = batches[f"indices_{key.removeprefix('labelled_')}"].get_list()
        for atoms in batches[key].iter_frames():
            atoms.info["parent_index"] = int(indices[int(atoms.info["parent_index"])])
            merged.append(atoms)
    merged.sort(key=lambda atoms: atoms.info["parent_index"])
    return StructureSetData.from_frames(merged)


@calcfunction
def guests_in_boxes(box: orm.Float, **guests: orm.Data) -> StructureSetData:
    """Each guest alone, centred in a cubic periodic box of edge ``box`` Angstrom (info ``guest``)."""
    frames = []
    for name, guest in sorted(guests.items()):
        atoms = boxed_guest(guest.get_ase(), float(box.value), name)
        atoms.info["guest"] = name
        frames.append(atoms)
    return StructureSetData.from_frames(frames)


@calcfunction
def guest_energies_from_set(labelled: StructureSetData) -> orm.Dict:
    """Reference energies (eV) of the isolated guests of a labelled :func:`guests_in_boxes` set."""
    result = {"units": "eV", "energies": {}, "calc_uuids": {}}
    for atoms in labelled.iter_frames():
        result["energies"][atoms.info["guest"]] = fr.get_energy(atoms)
        result["calc_uuids"][atoms.info["guest"]] = atoms.info.get("calc_uuid", "")
    return orm.Dict(result)
