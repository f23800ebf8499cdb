"""Calcfunctions that move frames in and out of CP2K calculations with per-frame provenance.

* :func:`extract_frames` turns the frames of one batch of a StructureSetData into StructureData nodes
  (the CP2K inputs), so each calculation's structure links back to the set it came from.
* :func:`label_frames` takes the ``labels`` nodes (ArrayData made by the ``mofmlp.cp2k`` parser) of one
  batch of finished calculations and returns the labelled frames of that batch: each label is linked to
  the parsed node, hence to the calculation, that produced it, and the frame records that calculation's
  UUID as ``calc_uuid``.
* :func:`merge_structure_sets` concatenates the batch sets into the final labelled set.
* :func:`guest_in_box` and :func:`guest_energies` compute isolated-guest reference energies.
* :func:`record_failures` turns the failed frames of a labelling run into its ``failed`` output.

Batches keep every calcfunction small: thousands of frames become many small steps, never one giant one.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mofmlp.common import frames as fr
from aiida_mofmlp.data.structure_set import StructureSetData


def frame_key(index: int) -> str:
    """Link label of frame ``index`` of a set (``frame_12``)."""
    return f"frame_{index}"


def key_index(key: str) -> int:
    """Frame index from a :func:`frame_key` label."""
    return int(key.rsplit("_", 1)[1])


def read_labels(labels: orm.ArrayData, n_atoms: int | None = None) -> dict:
    """Energy (eV), forces (eV/Angstrom) and stress (eV/Angstrom^3 or None) of a parsed ``labels`` node.

    Raises ValueError when the node lacks the energy or forces, or the force count is not ``n_atoms``.
    """
    names = labels.get_arraynames()
    energy = labels.base.attributes.get("energy", None)
    if energy is None or "forces" not in names:
        raise ValueError(f"labels node <{labels.pk}> has no energy or no forces (arrays: {names})")
    forces = labels.get_array("forces")
    if n_atoms is not None and len(forces) != n_atoms:
        raise ValueError(f"labels node <{labels.pk}> has {len(forces)} forces, expected {n_atoms}")
    stress = labels.get_array("stress") if "stress" in names else None
    return {"energy": float(energy), "forces": forces, "stress": stress}


def _creator_uuid(node: orm.Data) -> str:
    creator = node.creator
    return creator.uuid if creator is not None else ""


def _structure_from_frame(atoms) -> orm.StructureData:
    atoms = atoms.copy()
    atoms.set_tags(0)  # kind names must be plain element symbols to match the &KIND sections
    atoms.pbc = True
    return orm.StructureData(ase=atoms)


@calcfunction
def extract_frames(structures: StructureSetData, indices: orm.List) -> dict:
    """StructureData of frames ``indices`` of ``structures``, as outputs ``frame_<index>``."""
    wanted = [int(i) for i in indices.get_list()]
    return {
        frame_key(i): _structure_from_frame(atoms)
        for i, atoms in zip(wanted, structures.get_frames(wanted), strict=True)
    }


@calcfunction
def label_frames(structures: StructureSetData, indices: orm.List, compute_stress: orm.Bool, **labels):
    """Frames ``indices`` of ``structures`` labelled from the parsed ``labels`` nodes ``frame_<index>``.

    Labels are stored in eV, eV/Angstrom and eV/Angstrom^3 under the REF_* keys; ``calc_uuid`` is the
    UUID of the CP2K calculation that produced each frame's labels and ``parent_index`` its index in
    ``structures``.
    """
    wanted = [int(i) for i in indices.get_list()]
    missing = [i for i in wanted if frame_key(i) not in labels]
    if missing:
        raise ValueError(f"no labels node given for frames {missing}")
    labelled = []
    for index, atoms in zip(wanted, structures.get_frames(wanted), strict=True):
        node = labels[frame_key(index)]
        parsed = read_labels(node, len(atoms))
        stress = parsed["stress"] if compute_stress.value else None
        if compute_stress.value and stress is None:
            raise ValueError(f"frame {index}: stress requested but labels node <{node.pk}> has none")
        fr.set_labels(atoms, energy=parsed["energy"], forces=parsed["forces"], stress=stress)
        atoms.info["calc_uuid"] = _creator_uuid(node)
        atoms.info["parent_index"] = index
        labelled.append(atoms)
    return StructureSetData.from_frames(labelled)


@calcfunction
def merge_structure_sets(**sets: StructureSetData) -> StructureSetData:
    """One set with the frames of ``sets`` in the order of their ``batch_<k>`` labels."""
    ordered = sorted(sets.items(), key=lambda item: key_index(item[0]))

    def frames():
        for _, node in ordered:
            yield from node.iter_frames()

    return StructureSetData.from_frames(frames())


def boxed_guest(atoms, size: float, name: str):
    """``atoms`` (a guest molecule) centred in a periodic cubic box of edge ``size`` Angstrom.

    Raises ValueError when the box leaves less than 6 Angstrom between the molecule and its images.
    """
    extent = np.ptp(atoms.positions, axis=0).max() if len(atoms) > 1 else 0.0
    if size < extent + 6.0:
        raise ValueError(f"guest box edge {size} Angstrom is too small for {name}: use >= {extent + 6.0:.1f}")
    atoms.set_cell([size, size, size])
    atoms.pbc = True
    atoms.center()
    return atoms


@calcfunction
def guest_in_box(guest: orm.Data, box: orm.Float) -> orm.StructureData:
    """The guest molecule alone, centred in a cubic periodic box of edge ``box`` Angstrom."""
    return _structure_from_frame(boxed_guest(guest.get_ase(), float(box.value), guest.name))


@calcfunction
def guest_energies(**labels: orm.ArrayData) -> orm.Dict:
    """Reference energies (eV) of isolated guests from the parsed ``labels`` nodes keyed by guest name."""
    result = {"units": "eV", "energies": {}, "calc_uuids": {}}
    for name, node in labels.items():
        result["energies"][name] = read_labels(node)["energy"]
        result["calc_uuids"][name] = _creator_uuid(node)
    return orm.Dict(result)


@calcfunction
def record_failures(failures: orm.List, total: orm.Int) -> orm.Dict:
    """The ``failed`` record of a labelling run: ``count``, ``total`` and the ``frames`` of ``failures``.

    Each entry of ``failures`` is a dict with the frame ``index``, the ``reason``, the ``exit_status`` and
    the ``workchain_uuid`` of its single-point work chain.
    """
    frames = [dict(entry) for entry in failures.get_list()]
    return orm.Dict({"count": len(frames), "total": int(total.value), "frames": frames})


@calcfunction
def aimd_trajectory(
    structure: orm.StructureData, trajectory: orm.TrajectoryData, metadata_in: orm.Dict
) -> StructureSetData:
    """MD frames with REF_energy (eV, potential) and REF_forces (eV/A), after ``discard_steps``.

    ``trajectory`` is the ``md_trajectory`` output of the ``mofmlp.cp2k`` parser (positions, cells,
    ``forces`` and ``energies`` per step, in Angstrom, eV/Angstrom and eV); ``calc_uuid`` of every frame is
    the CP2K calculation that produced it (the trajectory's creator).
    """
    info = metadata_in.get_dict()
    template = structure.get_ase()
    if list(trajectory.symbols) != template.get_chemical_symbols():
        raise ValueError(f"trajectory <{trajectory.pk}> has other atoms than the input structure")
    creator = trajectory.creator
    calc_uuid = creator.uuid if creator is not None else ""
    steps = trajectory.get_stepids()
    times = trajectory.get_times()
    cells = trajectory.get_cells()
    positions = trajectory.get_positions()
    forces = trajectory.get_array("forces")
    energies = trajectory.get_array("energies")
    frames = []
    for k, step in enumerate(steps):
        if int(step) < info["discard_steps"]:
            continue
        atoms = template.copy()
        atoms.positions = positions[k]
        if cells is not None:
            atoms.set_cell(cells[k])
        fr.set_labels(atoms, energy=float(energies[k]), forces=forces[k])
        atoms.info.update(
            source="aimd",
            temperature=info["temperature"],
            step=int(step),
            time_fs=None if times is None else float(times[k]),
            calc_uuid=calc_uuid,
        )
        frames.append(atoms)
    return StructureSetData.from_frames(frames)
