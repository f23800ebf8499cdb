"""CBAD selection: cell parameters, bonds, angles and dihedrals binned by atom-type combination.

After Sharma & Sanvito, npj Comput. Mater. 2024, DOI 10.1038/s41524-024-01427-y.

Every frame becomes a set of occupied bins ``(descriptor type, int(value / width))``: the cell lengths
a, b, c and angles alpha, beta, gamma, and for each bond / angle / dihedral type (a combination of atom
types) the bins its values fall in. Atom types are, by default, chemically distinct environments as in the
paper: the element with its bonded neighbours' elements (``C[CCH]`` an aromatic C-H carbon, ``C[COO]`` a
carboxylate carbon, ``O[CZn]``), so that a carboxylate C-C bond and a ring C-C bond fill different bins;
``atom_types: element`` gives the plain element combinations (``C-H``, ``O-Zn-O``). Frames are visited in
a seeded random order and a frame is accepted when it occupies at least one bin that no accepted (or already
labelled) frame occupies.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from ase import Atoms
from ase.neighborlist import NeighborList, natural_cutoffs

TOPOLOGIES = ("first", "each")
ATOM_TYPES = ("environment", "element")


@dataclass
class CbadSettings:
    """Bin widths (Angstrom, degrees) and how the bond graph is found.

    The bond graph comes from ASE's natural (covalent) radii times ``bond_scale``. With
    ``topology="first"`` it is built once per composition (same atomic numbers in the same order) from the
    first such frame and reused, so thermal stretching never creates or breaks bonds; ``"each"`` rebuilds it
    for every frame. Bond vectors use the minimum image by fractional rounding, valid for bonds shorter than
    half the cell's thinnest width. ``atom_types``: ``environment`` (element and bonded neighbours' elements)
    or ``element``.
    """

    cell_length_width: float = 0.05
    cell_angle_width: float = 0.5
    bond_width: float = 0.02
    angle_width: float = 2.0
    dihedral_width: float = 10.0
    bond_scale: float = 1.15
    topology: str = "first"
    use_cell: bool = True
    use_dihedrals: bool = True
    atom_types: str = "environment"

    @classmethod
    def from_dict(cls, values: dict | None) -> CbadSettings:
        values = dict(values or {})
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"cbad: unknown key(s) {unknown}; valid keys: {sorted(cls.__dataclass_fields__)}"
            )
        settings = cls(**values)
        for name in ("cell_length_width", "cell_angle_width", "bond_width", "angle_width", "dihedral_width"):
            if not float(getattr(settings, name)) > 0:
                raise ValueError(f"cbad.{name} must be > 0, got {getattr(settings, name)}")
        if not float(settings.bond_scale) > 0:
            raise ValueError(f"cbad.bond_scale must be > 0, got {settings.bond_scale}")
        if settings.topology not in TOPOLOGIES:
            raise ValueError(f"cbad.topology must be one of {TOPOLOGIES}, got {settings.topology!r}")
        if settings.atom_types not in ATOM_TYPES:
            raise ValueError(f"cbad.atom_types must be one of {ATOM_TYPES}, got {settings.atom_types!r}")
        return settings

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Topology:
    """Bonded pairs, angles and dihedrals of one composition, with their type indices."""

    bonds: np.ndarray  # (n, 2)
    bond_types: np.ndarray
    angles: np.ndarray  # (n, 3), centre in the middle
    angle_types: np.ndarray
    dihedrals: np.ndarray  # (n, 4)
    dihedral_types: np.ndarray


class BinRegistry:
    """Maps ``(descriptor type key, bin index)`` to a dense integer id shared by all frames."""

    def __init__(self) -> None:
        self.type_keys: list[str] = []
        self._type_index: dict[str, int] = {}
        self._bin_ids: dict[tuple[int, int], int] = {}

    def type_index(self, key: str) -> int:
        if key not in self._type_index:
            self._type_index[key] = len(self.type_keys)
            self.type_keys.append(key)
        return self._type_index[key]

    def ids(self, pairs: np.ndarray) -> np.ndarray:
        """Dense ids of unique ``(type index, bin)`` rows."""
        out = np.empty(len(pairs), dtype=np.int64)
        for n, (t, b) in enumerate(pairs.tolist()):
            key = (t, b)
            if key not in self._bin_ids:
                self._bin_ids[key] = len(self._bin_ids)
            out[n] = self._bin_ids[key]
        return out

    @property
    def n_bins(self) -> int:
        return len(self._bin_ids)

    def describe(self, bin_id: int) -> tuple[str, int]:
        """The type key and bin index of a dense id (slow; for reports)."""
        for (t, b), value in self._bin_ids.items():
            if value == bin_id:
                return self.type_keys[t], b
        raise KeyError(bin_id)


def atom_type_names(symbols: Sequence[str], neighbours: Sequence[Sequence[int]], kind: str) -> list[str]:
    """The type of each atom: its element, or (``environment``) the element with its bonded neighbours'
    elements in alphabetical order, e.g. ``C[CCH]``."""
    if kind == "element":
        return list(symbols)
    pairs = zip(symbols, neighbours, strict=True)
    return [f"{symbol}[{''.join(sorted(symbols[j] for j in near))}]" for symbol, near in pairs]


def build_topology(atoms: Atoms, settings: CbadSettings, registry: BinRegistry) -> Topology:
    """Bond graph from natural radii x ``bond_scale``, then all angles and dihedrals along it."""
    elements = atoms.get_chemical_symbols()
    cutoffs = natural_cutoffs(atoms, mult=float(settings.bond_scale))
    nl = NeighborList(cutoffs, self_interaction=False, bothways=True, skin=0.0)
    nl.update(atoms)
    neighbours: list[list[int]] = []
    pairs = set()
    for i in range(len(atoms)):
        idx, _ = nl.get_neighbors(i)
        unique = sorted({int(j) for j in idx if j != i})
        neighbours.append(unique)
        pairs.update((i, j) for j in unique if i < j)
    bonds = np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)
    symbols = atom_type_names(elements, neighbours, settings.atom_types)

    def key(names: Sequence[str]) -> str:
        names = list(names)
        return "-".join(min(names, names[::-1]))

    bond_types = np.array([registry.type_index("bond:" + key([symbols[i], symbols[j]])) for i, j in bonds])
    angles = [
        (a, b, c)
        for b in range(len(atoms))
        for ia, a in enumerate(neighbours[b])
        for c in neighbours[b][ia + 1 :]
    ]
    angles_arr = np.array(angles, dtype=np.int64).reshape(-1, 3)
    angle_types = np.array(
        [registry.type_index("angle:" + key([symbols[a], symbols[b], symbols[c]])) for a, b, c in angles]
    )
    dihedrals = []
    if settings.use_dihedrals:
        for b, c in bonds.tolist():
            for a in neighbours[b]:
                if a == c:
                    continue
                for d in neighbours[c]:
                    if d in (b, a):
                        continue
                    dihedrals.append((a, b, c, d))
    dihedrals_arr = np.array(dihedrals, dtype=np.int64).reshape(-1, 4)
    dihedral_types = np.array(
        [registry.type_index("dihedral:" + key([symbols[i] for i in quad])) for quad in dihedrals]
    )
    return Topology(
        bonds,
        bond_types.astype(np.int64).reshape(-1),
        angles_arr,
        angle_types.astype(np.int64).reshape(-1),
        dihedrals_arr,
        dihedral_types.astype(np.int64).reshape(-1),
    )


def _vectors(atoms: Atoms):
    """A function ``(i, j) -> minimum-image vectors r_j - r_i`` for index arrays (fractional rounding)."""
    if not atoms.pbc.any():
        pos = atoms.positions
        return lambda i, j: pos[j] - pos[i]
    cell = atoms.cell.array
    frac = np.linalg.solve(cell.T, atoms.positions.T).T
    pbc = atoms.pbc

    def vectors(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        d = frac[j] - frac[i]
        d[:, pbc] -= np.round(d[:, pbc])
        return d @ cell

    return vectors


def _angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    cos = np.einsum("ij,ij->i", u, v) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _dihedral(b1: np.ndarray, b2: np.ndarray, b3: np.ndarray) -> np.ndarray:
    n1 = np.cross(b1, b2)
    n2 = np.cross(b2, b3)
    m1 = np.cross(n1, b2 / np.linalg.norm(b2, axis=1, keepdims=True))
    x = np.einsum("ij,ij->i", n1, n2)
    y = np.einsum("ij,ij->i", m1, n2)
    return np.degrees(np.arctan2(y, x))


_OFFSET = 1 << 31


def frame_bins(atoms: Atoms, topology: Topology, settings: CbadSettings, registry: BinRegistry) -> np.ndarray:
    """Sorted unique dense bin ids occupied by one frame."""
    vec = _vectors(atoms)
    codes: list[np.ndarray] = []

    def add(types: np.ndarray, values: np.ndarray, width: float) -> None:
        bins = np.floor(values / width).astype(np.int64)
        codes.append(np.unique(types.astype(np.int64) * (1 << 32) + (bins + _OFFSET)))

    if settings.use_cell and atoms.pbc.all():
        names = ("a", "b", "c", "alpha", "beta", "gamma")
        types = np.array([registry.type_index("cell:" + name) for name in names])
        widths = np.array([settings.cell_length_width] * 3 + [settings.cell_angle_width] * 3)
        add(types, atoms.cell.cellpar() / widths, 1.0)
    if len(topology.bonds):
        i, j = topology.bonds.T
        add(topology.bond_types, np.linalg.norm(vec(i, j), axis=1), settings.bond_width)
    if len(topology.angles):
        a, b, c = topology.angles.T
        add(topology.angle_types, _angle(vec(b, a), vec(b, c)), settings.angle_width)
    if len(topology.dihedrals):
        a, b, c, d = topology.dihedrals.T
        add(topology.dihedral_types, _dihedral(vec(a, b), vec(b, c), vec(c, d)), settings.dihedral_width)
    if not codes:
        return np.zeros(0, dtype=np.int64)
    unique = np.unique(np.concatenate(codes))
    pairs = np.stack([unique >> 32, (unique & ((1 << 32) - 1)) - _OFFSET], axis=1)
    return np.unique(registry.ids(pairs))


def cbad_bins(
    frames: Iterable[Atoms], settings: CbadSettings | dict | None = None, registry: BinRegistry | None = None
) -> tuple[list[np.ndarray], BinRegistry]:
    """Occupied bins of every frame (streaming: one frame in memory at a time), and the registry."""
    if not isinstance(settings, CbadSettings):
        settings = CbadSettings.from_dict(settings)
    registry = registry or BinRegistry()
    topologies: dict[bytes, Topology] = {}
    out = []
    for atoms in frames:
        if settings.topology == "each":
            topology = build_topology(atoms, settings, registry)
        else:
            signature = atoms.numbers.tobytes()
            if signature not in topologies:
                topologies[signature] = build_topology(atoms, settings, registry)
            topology = topologies[signature]
        out.append(frame_bins(atoms, topology, settings, registry))
    return out, registry


def cbad_accept(
    bin_sets: Sequence[np.ndarray],
    order: Sequence[int],
    known: Iterable[np.ndarray] = (),
    max_frames: int | None = None,
) -> tuple[list[int], list[int]]:
    """Visit frames in ``order``; accept one when it occupies a bin not yet seen.

    ``known`` holds the bin sets of already labelled frames. Returns the accepted indices in acceptance
    order and the number of new bins each brought.
    """
    seen: set[int] = set()
    for bins in known:
        seen.update(bins.tolist())
    accepted: list[int] = []
    new_counts: list[int] = []
    for index in order:
        if max_frames is not None and len(accepted) >= max_frames:
            break
        bins = set(bin_sets[index].tolist())
        new = bins - seen
        if new:
            accepted.append(int(index))
            new_counts.append(len(new))
            seen |= new
    return accepted, new_counts
