"""Per-frame arrays of an MD trajectory: times, unwrapped positions, guest centres of mass, velocities.

``mofmlp-md`` with ``write_images: true`` stores the LAMMPS image flags of each atom (per-atom array
``image``, three integers); the unwrapped position is ``position + image @ cell``. Without image flags the
positions are unwrapped from frame to frame by the minimum image (valid when no atom moves more than half a
cell between two frames).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.geometry import find_mic

from aiida_mofmlp.common.frames import GUEST_ID_KEY
from aiida_mofmlp.engines.lammps.md_settings import IMAGE_KEY, VELOCITY_KEY  # velocity in Angstrom/ps


def frame_times_ps(frames: Sequence[Atoms]) -> np.ndarray:
    """Time of each frame in ps (info ``time_fs``)."""
    try:
        return np.array([float(f.info["time_fs"]) for f in frames]) * 1.0e-3
    except KeyError as error:
        raise ValueError("frames need info 'time_fs' (written by mofmlp-md) to give times") from error


def unwrapped_positions(frames: Sequence[Atoms]) -> np.ndarray:
    """Unwrapped positions (n_frames, n_atoms, 3) in Angstrom, from image flags or by minimum image."""
    if not frames:
        raise ValueError("no frames to unwrap")
    n_atoms = len(frames[0])
    if any(len(f) != n_atoms for f in frames):
        raise ValueError("unwrapping needs the same atoms in every frame (no GCMC insertions or deletions)")
    if all(IMAGE_KEY in f.arrays for f in frames):
        return np.stack([f.positions + f.arrays[IMAGE_KEY] @ f.cell.array for f in frames])
    positions = [frames[0].positions.copy()]
    for previous, frame in itertools.pairwise(frames):
        step, _ = find_mic(frame.positions - previous.positions, frame.cell, frame.pbc)
        positions.append(positions[-1] + step)
    return np.stack(positions)


def guest_centres_of_mass(frames: Sequence[Atoms]) -> np.ndarray:
    """Unwrapped centres of mass of the guest molecules, (n_frames, n_guests, 3) in Angstrom.

    A molecule split over a periodic boundary in the first frame is made whole by the minimum image
    around its first atom before its centre is taken.
    """
    ids = frames[0].arrays.get(GUEST_ID_KEY)
    if ids is None or not (ids > 0).any():
        raise ValueError("the frames hold no guest molecules (per-atom guest_id > 0)")
    positions = unwrapped_positions(frames)
    masses = frames[0].get_masses()
    first = frames[0]
    centres = []
    for guest in sorted(set(ids.tolist()) - {0}):
        members = np.flatnonzero(ids == guest)
        offsets, _ = find_mic(positions[0, members] - positions[0, members[0]], first.cell, first.pbc)
        whole = positions[0, members[0]] + offsets - positions[0, members]  # fixed per-atom shift
        weights = masses[members] / masses[members].sum()
        centres.append(((positions[:, members] + whole) * weights[None, :, None]).sum(axis=1))
    return np.stack(centres, axis=1)


def velocities(frames: Sequence[Atoms]) -> np.ndarray:
    """Velocities (n_frames, n_atoms, 3) in Angstrom/ps (``mofmlp-md`` with ``write_velocities``)."""
    if not all(VELOCITY_KEY in f.arrays for f in frames):
        raise ValueError(
            f"frames lack the per-atom '{VELOCITY_KEY}' array; run mofmlp-md with write_velocities: true"
        )
    return np.stack([f.arrays[VELOCITY_KEY] for f in frames])
