"""SOAP descriptors of whole frames, computed in a stream so the per-atom matrix of a pool never exists.

One descriptor per frame: the mean over atoms (or over framework atoms only) of dscribe's per-atom SOAP
power spectrum. dscribe's ``average="outer"`` is exactly that mean and is computed inside dscribe per
frame, so memory is one frame's worth of per-atom data at a time plus the ``(n_frames, n_features)``
result.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from itertools import islice, pairwise

import numpy as np
from ase import Atoms

from aiida_mofmlp.common import frames as fr

AVERAGES = ("outer", "inner")


@dataclass
class SoapSettings:
    """SOAP hyper-parameters (Angstrom) and how per-atom spectra become one vector per frame.

    Defaults follow the MIL-120 reference (Jin et al., Chem. Sci. 2026): r_cut 6.0, n_max 9, l_max 3.
    ``framework_only`` averages over framework atoms (``guest_id == 0``) only, so that many guest
    molecules do not dominate the descriptor; guests still appear as neighbours of framework atoms.
    ``average="outer"`` is the mean of the per-atom power spectra; ``"inner"`` averages the expansion
    coefficients first (cheaper, less specific). ``normalize`` scales every frame vector to unit length.
    """

    r_cut: float = 6.0
    n_max: int = 9
    l_max: int = 3
    sigma: float = 1.0
    species: list[str] | None = None
    framework_only: bool = False
    average: str = "outer"
    normalize: bool = True
    chunk_size: int = 64
    n_jobs: int = 1
    dtype: str = "float32"

    @classmethod
    def from_dict(cls, values: dict | None) -> SoapSettings:
        """Settings from a plain dict, rejecting unknown keys and bad values with a clear message."""
        values = dict(values or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"soap: unknown key(s) {unknown}; valid keys: {sorted(known)}")
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not self.r_cut > 1.0:
            raise ValueError(f"soap.r_cut must be > 1 Angstrom, got {self.r_cut}")
        if int(self.n_max) < 1 or int(self.l_max) < 0:
            raise ValueError(f"soap.n_max must be >= 1 and soap.l_max >= 0, got {self.n_max}, {self.l_max}")
        if self.average not in AVERAGES:
            raise ValueError(f"soap.average must be one of {AVERAGES}, got {self.average!r}")
        if int(self.chunk_size) < 1:
            raise ValueError(f"soap.chunk_size must be >= 1, got {self.chunk_size}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"soap.dtype must be 'float32' or 'float64', got {self.dtype!r}")

    def as_dict(self) -> dict:
        return asdict(self)


def collect_species(frames: Iterable[Atoms]) -> list[str]:
    """Sorted chemical symbols present in any of ``frames``."""
    species: set[str] = set()
    for atoms in frames:
        species.update(atoms.get_chemical_symbols())
    return sorted(species)


def _soap(settings: SoapSettings, species: Sequence[str], periodic: bool, average: str):
    from dscribe.descriptors import SOAP

    return SOAP(
        r_cut=float(settings.r_cut),
        n_max=int(settings.n_max),
        l_max=int(settings.l_max),
        sigma=float(settings.sigma),
        species=list(species),
        periodic=periodic,
        average=average,
        dtype="float64",
    )


def _chunks(frames: Iterable[Atoms], size: int) -> Iterator[list[Atoms]]:
    iterator = iter(frames)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _centres(atoms: Atoms, framework_only: bool) -> list[int] | None:
    if not framework_only:
        return None
    centres = np.flatnonzero(fr.guest_ids(atoms) == 0)
    if centres.size == 0:
        raise ValueError(
            "soap.framework_only is set but a frame has no framework atom (every guest_id > 0); "
            "unset framework_only or fix the guest_id array"
        )
    return centres.tolist()


def _check_species(atoms: Atoms, species: set[str], index: int) -> None:
    missing = set(atoms.get_chemical_symbols()) - species
    if missing:
        raise ValueError(
            f"frame {index} contains element(s) {sorted(missing)} missing from soap.species {sorted(species)}"
        )


def soap_descriptors(
    frames: Iterable[Atoms],
    settings: SoapSettings | dict | None = None,
    species: Sequence[str] | None = None,
) -> np.ndarray:
    """One averaged SOAP vector per frame, shape ``(n_frames, n_features)``, streaming over ``frames``.

    Frames are processed ``chunk_size`` at a time; only the averaged vectors are kept. ``species``
    (or ``settings.species``) must cover every element of every frame; frames with a cell use
    periodic SOAP, frames without one non-periodic SOAP.
    """
    if not isinstance(settings, SoapSettings):
        settings = SoapSettings.from_dict(settings)
    species = list(species or settings.species or [])
    if not species:
        raise ValueError("soap_descriptors needs `species` (or soap.species): the elements of the pool")
    species_set = set(species)
    builders = {}
    rows: list[np.ndarray] = []
    index = 0
    for chunk in _chunks(frames, int(settings.chunk_size)):
        for periodic in (False, True):
            part = [atoms for atoms in chunk if bool(atoms.pbc.any()) == periodic]
            if part and periodic not in builders:
                builders[periodic] = _soap(settings, species, periodic, settings.average)
        for atoms in chunk:
            _check_species(atoms, species_set, index)
            index += 1
        centres = [_centres(atoms, settings.framework_only) for atoms in chunk]
        if int(settings.n_jobs) > 1 and len({bool(a.pbc.any()) for a in chunk}) == 1:
            builder = builders[bool(chunk[0].pbc.any())]
            block = builder.create(
                chunk, centers=None if centres[0] is None else centres, n_jobs=int(settings.n_jobs)
            )
            rows.append(np.asarray(block, dtype=settings.dtype).reshape(len(chunk), -1))
            continue
        for atoms, centre in zip(chunk, centres, strict=True):
            vector = builders[bool(atoms.pbc.any())].create(atoms, centers=centre)
            rows.append(np.asarray(vector, dtype=settings.dtype).reshape(1, -1))
    if not rows:
        raise ValueError("soap_descriptors got no frames")
    descriptors = np.vstack(rows)
    if settings.normalize:
        descriptors = normalize_rows(descriptors)
    return descriptors


def soap_descriptors_naive(
    frames: Sequence[Atoms], settings: SoapSettings | dict | None = None, species: Sequence[str] | None = None
) -> np.ndarray:
    """Reference implementation: the full per-atom SOAP matrix of all frames, then per-frame means.

    Holds ``sum(n_atoms) x n_features`` numbers at once; used only by tests and benchmarks to check and
    to compare against :func:`soap_descriptors`.
    """
    if not isinstance(settings, SoapSettings):
        settings = SoapSettings.from_dict(settings)
    species = list(species or settings.species or [])
    frames = list(frames)
    periodic = bool(frames[0].pbc.any())
    builder = _soap(settings, species, periodic, "off")
    centres = [_centres(atoms, settings.framework_only) for atoms in frames]
    per_atom = [builder.create(atoms, centers=c) for atoms, c in zip(frames, centres, strict=True)]
    matrix = np.vstack(per_atom)  # the full per-atom matrix of the pool, on purpose
    bounds = np.cumsum([0] + [len(block) for block in per_atom])
    descriptors = np.vstack([matrix[a:b].mean(axis=0) for a, b in pairwise(bounds)])
    descriptors = descriptors.astype(settings.dtype)
    if settings.normalize:
        descriptors = normalize_rows(descriptors)
    return descriptors


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows of a float matrix scaled to unit Euclidean length, in place (zero rows left as they are)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    matrix = matrix if np.issubdtype(matrix.dtype, np.floating) else matrix.astype(np.float64)
    matrix /= norms.astype(matrix.dtype)  # in place: no second copy of a large descriptor matrix
    return matrix
