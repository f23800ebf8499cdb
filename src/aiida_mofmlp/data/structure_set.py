"""A set of structures (frames) of varying size, optionally labelled, stored as one extxyz file."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np
from aiida import orm
from ase import Atoms

from aiida_mofmlp.common import frames as fr
from aiida_mofmlp.common.units import UNITS


class StructureSetData(orm.Data):
    """Frames (frameworks with or without guests) with optional energy, forces, stress and metadata.

    The frames live in the node's repository as ``frames.extxyz`` using the keys of
    :mod:`aiida_mofmlp.common.frames`; summary attributes (count, species, which labels are present,
    units, sha256) are queryable without opening the file.
    """

    filename = "frames.extxyz"

    def __init__(self, frames: Iterable[Atoms] | None = None, filepath: str | Path | None = None, **kwargs):
        super().__init__(**kwargs)
        if frames is not None and filepath is not None:
            raise ValueError("give either `frames` or `filepath`, not both")
        if frames is not None:
            self._set_frames(frames)
        elif filepath is not None:
            self._set_file(Path(filepath))

    # --- construction -------------------------------------------------------------------------------
    @classmethod
    def from_frames(cls, frames: Iterable[Atoms], **kwargs) -> StructureSetData:
        """A new node holding ``frames`` (ASE Atoms with labels under the REF_* keys)."""
        return cls(frames=frames, **kwargs)

    @classmethod
    def from_file(cls, path: str | Path, **kwargs) -> StructureSetData:
        """A new node from an extxyz file written with the REF_* key convention."""
        return cls(filepath=path, **kwargs)

    @classmethod
    def from_structures(cls, structures: Sequence[orm.StructureData], **kwargs) -> StructureSetData:
        """A new node from StructureData nodes (unlabelled frames; the source UUID is kept per frame)."""
        frames = []
        for structure in structures:
            atoms = structure.get_ase()
            if structure.is_stored:
                atoms.info["parent_uuid"] = structure.uuid
            frames.append(atoms)
        return cls(frames=frames, **kwargs)

    def _set_frames(self, frames: Iterable[Atoms]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / self.filename
            fr.write_frames(frames, path)
            self._set_file(path)

    def _set_file(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"structure set file {path} does not exist")
        summary = summarise(fr.iter_frames(path))
        if summary["count"] == 0:
            raise ValueError(f"structure set file {path} holds no frames; give at least one frame")
        self.base.repository.put_object_from_file(str(path), self.filename)
        self.base.attributes.set_many({**summary, "sha256": fr.sha256_of_file(path), "units": dict(UNITS)})

    # --- access -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def open_extxyz(self) -> Iterator[IO[str]]:
        """Open the extxyz file of the set as a text handle."""
        with self.base.repository.open(self.filename, "r") as handle:
            yield handle

    def iter_frames(self) -> Iterator[Atoms]:
        """Iterate over the frames one at a time, never holding the whole set in memory."""
        with self.open_extxyz() as handle:
            yield from fr.iter_frames(handle)

    def get_frames(self, indices: Iterable[int] | None = None) -> list[Atoms]:
        """All frames, or those at ``indices`` (in the order given)."""
        if indices is None:
            return list(self.iter_frames())
        wanted = [int(i) for i in indices]
        for i in wanted:
            if not 0 <= i < self.count:
                raise IndexError(f"frame index {i} out of range for a set of {self.count} frames")
        picked: dict[int, Atoms] = {}
        targets = set(wanted)
        for i, atoms in enumerate(self.iter_frames()):
            if i in targets:
                picked[i] = atoms
                if len(picked) == len(targets):
                    break
        return [picked[i].copy() for i in wanted]

    def get_frame(self, index: int) -> Atoms:
        """One frame as ASE Atoms (negative indices count from the end)."""
        if index < 0:
            index += self.count
        return self.get_frames([index])[0]

    def get_structure(self, index: int) -> orm.StructureData:
        """One frame as an (unstored) StructureData."""
        return orm.StructureData(ase=self.get_frame(index))

    def write_extxyz(self, path: str | Path) -> Path:
        """Copy the extxyz file of the set to ``path``."""
        path = Path(path)
        with self.base.repository.open(self.filename, "rb") as source, open(path, "wb") as target:
            while block := source.read(1 << 20):
                target.write(block)
        return path

    def __len__(self) -> int:
        return self.count

    @property
    def count(self) -> int:
        """Number of frames."""
        return self.base.attributes.get("count")

    @property
    def species(self) -> list[str]:
        """Sorted chemical symbols present in any frame."""
        return self.base.attributes.get("species")

    @property
    def sha256(self) -> str:
        """SHA-256 of the extxyz file."""
        return self.base.attributes.get("sha256")

    @property
    def has_energy(self) -> bool:
        return self.base.attributes.get("has_energy")

    @property
    def has_forces(self) -> bool:
        return self.base.attributes.get("has_forces")

    @property
    def has_stress(self) -> bool:
        return self.base.attributes.get("has_stress")

    @property
    def periodic(self) -> bool | None:
        """Whether every frame is periodic in 3 directions (None for sets stored before this was recorded)."""
        return self.base.attributes.get("periodic", None)

    @property
    def units(self) -> dict:
        return self.base.attributes.get("units")


def summarise(frames: Iterable[Atoms]) -> dict:
    """Attributes describing a stream of frames: count, species, atom counts, labels, metadata keys."""
    count = 0
    species: set[str] = set()
    n_atoms: list[int] = []
    labelled = {key: True for key in fr.LABEL_KEYS}
    metadata: set[str] = set()
    n_with_guests = 0
    periodic = True
    for atoms in frames:
        count += 1
        periodic &= bool(np.all(atoms.pbc)) and atoms.cell.rank == 3
        species.update(atoms.get_chemical_symbols())
        n_atoms.append(len(atoms))
        labelled[fr.ENERGY_KEY] &= fr.ENERGY_KEY in atoms.info
        labelled[fr.FORCES_KEY] &= fr.FORCES_KEY in atoms.arrays
        labelled[fr.STRESS_KEY] &= fr.STRESS_KEY in atoms.info
        metadata.update(key for key in atoms.info if key in fr.METADATA_KEYS)
        n_with_guests += fr.n_guests(atoms) > 0
    return {
        "count": count,
        "species": sorted(species),
        "n_atoms_min": int(min(n_atoms)) if n_atoms else 0,
        "n_atoms_max": int(max(n_atoms)) if n_atoms else 0,
        "n_atoms_total": int(np.sum(n_atoms)) if n_atoms else 0,
        "n_frames_with_guests": int(n_with_guests),
        "has_energy": bool(count and labelled[fr.ENERGY_KEY]),
        "has_forces": bool(count and labelled[fr.FORCES_KEY]),
        "has_stress": bool(count and labelled[fr.STRESS_KEY]),
        "metadata_keys": sorted(metadata),
        "periodic": bool(count and periodic),
    }
