"""Structure intake: CIF -> checked ``StructureData``.

Bad structures fail here, with a message naming the problem and what would be valid, instead of inside a
CP2K job hours later. Errors raise :class:`StructureIntakeError` (a ``ValueError``); warnings are emitted with
category :class:`StructureIntakeWarning` and also returned.

* :func:`read_cif_atoms` parses a CIF (ase's tokenizer, our own site handling): unknown element symbols,
  partial occupancy and sites of different elements that coincide are refused; symmetry images are expanded
  with vectorised numpy and merged when they coincide (special positions, sites listed twice).
* :func:`check_structure` is a pure check of an ``ase.Atoms``: 3D periodic cell, unknown elements, overlapping
  atoms (minimum image, neighbour list), cell too small for a cutoff (suggests the supercell), likely missing
  hydrogens (warning).
* :func:`load_cif` does both and returns ``(StructureData, warnings)``.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from ase import Atoms
from ase.cell import Cell
from ase.data import chemical_symbols, covalent_radii
from ase.io.cif import parse_cif
from ase.neighborlist import neighbor_list

from aiida_mofmlp.common.geometry import perpendicular_widths, supercell_for_cutoff

if TYPE_CHECKING:
    from aiida.orm import CifData, StructureData

__all__ = [
    "IntakeIssue",
    "IntakeReport",
    "StructureIntakeError",
    "StructureIntakeWarning",
    "check_structure",
    "element_from_cif_symbol",
    "load_cif",
    "perpendicular_widths",
    "read_cif_atoms",
    "suggest_supercell",
]

#: Kinds of errors (``StructureIntakeError.kind``) and warnings (``IntakeIssue.kind``).
ERROR_KINDS = (
    "unreadable",  # file missing or CIF syntax the parser cannot read
    "no_structure",  # no data block with atom sites, or several and none chosen
    "no_cell",  # no (or degenerate) 3D periodic cell
    "partial_occupancy",
    "unknown_element",
    "overlap",
    "cell_too_small",
    "too_large",  # more atoms or a longer cell edge than the limits (MAX_ATOMS, MAX_CELL_LENGTH)
)
#: default limits of intake (keyword arguments ``max_atoms`` and ``max_cell_length`` raise them): a CIF beyond
#: them is refused before its symmetry is expanded (10^5 atoms took 20 s and 1.2 GB; 10^6 never returned)
MAX_ATOMS = 20_000
MAX_CELL_LENGTH = 500.0  # Angstrom
WARNING_KINDS = ("duplicate_sites", "missing_hydrogen", "undercoordinated_carbon")

_ELEMENTS = frozenset(chemical_symbols[1:])
_BOND_TOLERANCE = 0.4  # Å added to the sum of covalent radii to call two atoms bonded
_MAX_LISTED = 5  # items named in a message before "... and N more"


class StructureIntakeError(ValueError):
    """A structure intake refuses; ``kind`` is one of :data:`ERROR_KINDS`, ``issues`` all errors found."""

    def __init__(self, message: str, kind: str, issues: Sequence[IntakeIssue] = ()) -> None:
        super().__init__(message)
        self.kind = kind
        self.issues = list(issues) or [IntakeIssue(kind, message)]

    @property
    def kinds(self) -> list[str]:
        """Kinds of every error found (the first is ``kind``)."""
        return [issue.kind for issue in self.issues]


class StructureIntakeWarning(UserWarning):
    """A structure that intake accepts but that is probably not what the user wants (e.g. missing H)."""


@dataclass
class IntakeIssue:
    """One problem found by intake: ``kind`` (see ERROR_KINDS / WARNING_KINDS), message, machine details."""

    kind: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


@dataclass
class IntakeReport:
    """Result of :func:`check_structure`: errors make the structure unusable, warnings do not."""

    errors: list[IntakeIssue] = field(default_factory=list)
    warnings: list[IntakeIssue] = field(default_factory=list)
    supercell: tuple[int, int, int] | None = None  # repeat making the cell valid for r_cut, when too small

    @property
    def ok(self) -> bool:
        """True when there is no error."""
        return not self.errors

    def raise_for_errors(self, name: str = "structure") -> None:
        """Raise :class:`StructureIntakeError` listing every error, if there is any."""
        if self.errors:
            lines = [f"{name} failed structure intake ({len(self.errors)} problem(s)):"]
            lines += [f"- {issue.message}" for issue in self.errors]
            raise StructureIntakeError("\n".join(lines), self.errors[0].kind, self.errors)

    def emit_warnings(self, name: str = "structure", stacklevel: int = 3) -> None:
        """Issue every warning with ``warnings.warn`` (category :class:`StructureIntakeWarning`)."""
        for issue in self.warnings:
            warnings.warn(f"{name}: {issue.message}", StructureIntakeWarning, stacklevel=stacklevel)


def _listing(items: Sequence[str], limit: int = _MAX_LISTED) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" ... and {len(items) - limit} more" if len(items) > limit else "")


# ----------------------------------------------------------------------------------------------------
# Elements
# ----------------------------------------------------------------------------------------------------


def element_from_cif_symbol(text: Any) -> str | None:
    """Chemical element of a CIF type symbol or label ('Zn', 'Zn2+', 'ZN', 'O3a', 'H1B', 'D'), else None.

    The leading letters must be an element symbol (case-insensitive) or its first one or two letters when
    followed by a non-letter. Deuterium 'D' maps to 'H'. Dummy atoms ('Xx', 'Du', 'Q', 'X'), centroids
    ('Cg1') and unknown values ('?', '.') give None.
    """
    if not isinstance(text, str):
        return None
    match = re.match(r"[A-Za-z]+", text.strip())
    if match is None:
        return None
    letters = match.group(0)
    candidate = letters[0].upper() + letters[1:].lower()
    if candidate == "D":
        return "H"
    if candidate in _ELEMENTS:
        return candidate
    return None


# ----------------------------------------------------------------------------------------------------
# CIF reading
# ----------------------------------------------------------------------------------------------------


def _read_text(source: str | os.PathLike | CifData) -> tuple[str, str]:
    """Text and display name of a CIF given as a path or a CifData node."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise StructureIntakeError(
                f"cannot read CIF file {str(path)!r}: {exc.strerror or exc}; give the path of an existing, "
                "readable .cif file",
                "unreadable",
            ) from None
        return raw.decode("utf-8", errors="replace"), path.name
    if hasattr(source, "open") and hasattr(source, "filename"):  # aiida CifData / SinglefileData
        with source.open(mode="rb") as handle:
            raw = handle.read()
        label = f"CifData<{source.pk}>" if getattr(source, "pk", None) is not None else "CifData"
        return raw.decode("utf-8", errors="replace"), f"{source.filename} ({label})"
    raise StructureIntakeError(
        f"cannot read a CIF from {type(source).__name__}; give a path (str or Path) or an aiida CifData node",
        "unreadable",
    )


def _float(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return float(str(value).split("(")[0])
    except ValueError:
        return None


def _choose_block(blocks: list, name: str, block: str | int | None):
    def has_sites(candidate) -> bool:
        has_symbols = "_atom_site_type_symbol" in candidate or "_atom_site_label" in candidate
        has_xyz = all(f"_atom_site_fract_{x}" in candidate for x in "xyz") or all(
            f"_atom_site_cartn_{x}" in candidate for x in "xyz"
        )
        return has_symbols and has_xyz

    with_sites = [candidate for candidate in blocks if has_sites(candidate)]
    names = [candidate.name for candidate in with_sites]
    if isinstance(block, int):
        if not 0 <= block < len(with_sites):
            raise StructureIntakeError(
                f"{name}: block index {block} is out of range; valid: 0..{len(with_sites) - 1} ({names})",
                "no_structure",
            )
        return with_sites[block]
    if isinstance(block, str):
        for candidate in with_sites:
            if candidate.name == block:
                return candidate
        raise StructureIntakeError(
            f"{name}: no data block named {block!r} with atom sites; blocks with atom sites: {names}",
            "no_structure",
        )
    if not with_sites:
        raise StructureIntakeError(
            f"{name}: no data block has atom sites; a structure needs a loop with _atom_site_label or "
            "_atom_site_type_symbol and _atom_site_fract_x/y/z (or _atom_site_Cartn_x/y/z)",
            "no_structure",
        )
    if len(with_sites) > 1:
        raise StructureIntakeError(
            f"{name}: {len(with_sites)} data blocks have atom sites ({_listing(names)}); choose one with "
            "block=NAME or block=INDEX",
            "no_structure",
        )
    return with_sites[0]


def _column(block, tag: str, count: int, name: str = "CIF") -> list | None:
    """The ``count`` values of ``tag`` (a single value repeated); None when absent.

    Raises :class:`StructureIntakeError` when the column has another length than the sites' (a CIF whose
    coordinates are shorter than its labels would otherwise give atoms at arbitrary positions).
    """
    value = block.get(tag)
    if value is None:
        return None
    if not isinstance(value, list):
        return [value] * count
    if len(value) != count:
        raise StructureIntakeError(
            f"{name}: column {tag} has {len(value)} value(s) but the atom sites are {count}; every "
            "_atom_site_ column needs one value per site (one loop_ with all of them)",
            "unreadable",
        )
    return list(value)


def _symmetry_operations(block, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Rotations (M, 3, 3) and translations (M, 3) of the block (identity when no symmetry is given).

    Listed operations (``_symmetry_equiv_pos_as_xyz`` ...) are used as given, centring included; without
    them, the space group number or Hermann-Mauguin symbol is looked up in ase's tables.
    """
    from ase.spacegroup.spacegroup import parse_sitesym

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ase warns about settings it does not interpret
            sitesym = block._get_sitesym()
            if sitesym:
                rotations, translations = parse_sitesym([str(operation) for operation in sitesym])
            else:
                operations = block.get_spacegroup(True).get_symop()
                rotations = np.array([rotation for rotation, _ in operations])
                translations = np.array([translation for _, translation in operations])
    except Exception as exc:  # ase raises many kinds (KeyError, AssertionError, SpacegroupError ...)
        raise StructureIntakeError(
            f"{name}: cannot interpret the symmetry of the CIF ({type(exc).__name__}: {exc}); give valid "
            "_symmetry_equiv_pos_as_xyz / _space_group_symop_operation_xyz operations, a known space group, "
            "or the full P1 cell",
            "unreadable",
        ) from None
    return np.asarray(rotations, dtype=float), np.asarray(translations, dtype=float)


def read_cif_atoms(
    source: str | os.PathLike | CifData,
    *,
    merge_distance: float = 0.1,
    occupancy_tolerance: float = 0.01,
    block: str | int | None = None,
    max_atoms: int = MAX_ATOMS,
    max_cell_length: float = MAX_CELL_LENGTH,
) -> tuple[Atoms, list[str], list[IntakeIssue]]:
    """Read a CIF into a full-cell ``ase.Atoms`` (symmetry expanded), refusing what cannot be a structure.

    Returns ``(atoms, labels, warnings)`` with one CIF site label per atom. Raises
    :class:`StructureIntakeError` for an unreadable CIF, no or several structure blocks, a missing cell,
    unknown element symbols, partial occupancy (``|occupancy - 1| > occupancy_tolerance``) and sites of
    different elements that coincide (closer than ``merge_distance``, Å). Symmetry images closer than
    ``merge_distance`` to an image of the same element are merged into the first one: sites on special
    positions (also when given with few decimals) and sites listed twice. A cell edge longer than
    ``max_cell_length`` (Å) or more than ``max_atoms`` atoms (counted before merging symmetry images) is
    refused before the symmetry is expanded.
    """
    text, name = _read_text(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blocks = list(parse_cif(io.StringIO(text)))
    except Exception as exc:  # ase's tokenizer raises RuntimeError/ValueError/... on malformed files
        raise StructureIntakeError(
            f"cannot parse CIF {name}: {type(exc).__name__}: {exc}. A valid CIF has data_ blocks of "
            "'_tag value' items and loop_ tables with a whole number of rows (values per row = tags).",
            "unreadable",
        ) from None
    if not blocks:
        raise StructureIntakeError(f"{name}: no data_ block found; is this a CIF file?", "unreadable")
    chosen = _choose_block(blocks, name, block)
    first_column = chosen.get("_atom_site_type_symbol", chosen.get("_atom_site_label"))
    count = len(first_column) if isinstance(first_column, list) else 1
    name = f"{name} [data_{chosen.name}]" if len(blocks) > 1 else name

    labels_raw = _column(chosen, "_atom_site_label", count, name)
    types_raw = _column(chosen, "_atom_site_type_symbol", count, name)
    labels = [str(label) for label in labels_raw] if labels_raw else [f"site{i + 1}" for i in range(count)]

    # --- elements (the type symbol when given, else the label)
    symbols: list[str] = []
    unknown: list[str] = []
    deuterium_sites: set[int] = set()
    for index in range(count):
        given = types_raw[index] if types_raw and types_raw[index] not in ("?", ".") else None
        if given is None:
            given = labels_raw[index] if labels_raw else "?"
        element = element_from_cif_symbol(given)
        if element is None:
            unknown.append(f"{labels[index]} ({given!r})")
        elif re.match(r"[Dd](?![A-Za-z])", str(given)):
            deuterium_sites.add(index)
        symbols.append(element or "X")
    if unknown:
        raise StructureIntakeError(
            f"{name}: {len(unknown)} site(s) have no chemical element: {_listing(unknown)}. Valid: an "
            "element symbol in _atom_site_type_symbol (or the label), optionally followed by digits, "
            "letters after a digit or a charge (e.g. 'Zn', 'Zn1', 'Zn2+', 'O3a'); remove dummy atoms or "
            "replace them with the real element",
            "unknown_element",
        )

    # --- occupancy
    occupancies = _column(chosen, "_atom_site_occupancy", count, name)
    if occupancies is not None:
        partial = []
        for label, value in zip(labels, occupancies, strict=True):
            if value in ("?", "."):
                continue
            number = _float(value)
            if number is None or abs(number - 1.0) > occupancy_tolerance:
                partial.append(f"{label}: {value}")
        if partial:
            raise StructureIntakeError(
                f"{name}: partial occupancy: {len(partial)} site(s) have _atom_site_occupancy != 1 "
                f"({_listing(partial)}). Intake needs an ordered structure (every occupancy 1 within "
                f"{occupancy_tolerance}): keep one configuration of the disordered part, delete the "
                "alternative sites and set their occupancy to 1",
                "partial_occupancy",
            )

    # --- cell
    cellpar = chosen.get_cellpar()
    cellpar_values = [_float(value) for value in cellpar] if cellpar is not None else None
    if cellpar_values is None or any(value is None for value in cellpar_values):
        raise StructureIntakeError(
            f"{name}: no complete unit cell (_cell_length_a/b/c and _cell_angle_alpha/beta/gamma, numbers); "
            "a framework needs a 3D periodic cell",
            "no_cell",
        )
    try:
        cell = Cell.new(cellpar_values)
    except Exception as exc:
        raise StructureIntakeError(
            f"{name}: cell parameters {cellpar_values} do not form a cell ({exc}); lengths must be > 0 and "
            "the angles must describe a cell of nonzero volume",
            "no_cell",
        ) from None
    if cell.rank < 3 or not abs(cell.volume) > 1e-6:
        raise StructureIntakeError(
            f"{name}: cell parameters {cellpar_values} give a zero-volume cell; a framework needs a 3D "
            "periodic cell",
            "no_cell",
        )
    if max(cellpar_values[:3]) > max_cell_length:
        raise StructureIntakeError(
            f"{name}: a cell edge of {max(cellpar_values[:3]):.6g} Å is longer than the limit of "
            f"{max_cell_length:g} Å; check the CIF's _cell_length_a/b/c (or pass a larger max_cell_length)",
            "too_large",
        )
    if count > max_atoms:
        raise StructureIntakeError(
            f"{name}: {count} atom sites, more than the limit of {max_atoms} atoms (pass a larger max_atoms "
            "to read it anyway; MLP training cells are usually a few hundred atoms)",
            "too_large",
        )

    # --- coordinates
    fractional = all(f"_atom_site_fract_{x}" in chosen for x in "xyz")
    tags = [f"_atom_site_fract_{x}" if fractional else f"_atom_site_cartn_{x}" for x in "xyz"]
    columns = [_column(chosen, tag, count, name) for tag in tags]
    missing = [tag for tag, column in zip(tags, columns, strict=True) if column is None]
    if missing:
        raise StructureIntakeError(
            f"{name}: no {', '.join(missing)}: every site needs three coordinates (_atom_site_fract_x/y/z "
            "or _atom_site_Cartn_x/y/z)",
            "unreadable",
        )
    coordinates = np.empty((count, 3))
    for axis, column in enumerate(columns):
        for index, value in enumerate(column):
            number = _float(value)
            if number is None or not math.isfinite(number):
                raise StructureIntakeError(
                    f"{name}: site {labels[index]} has coordinate {tags[axis]} = {value!r}; every site needs "
                    "three numeric coordinates",
                    "unreadable",
                )
            coordinates[index, axis] = number
    if not fractional:
        coordinates = cell.scaled_positions(coordinates)

    # --- symmetry expansion (vectorised; ase's crystal() is O(N^2) in Python for large P1 cells)
    if not 0 < merge_distance < 0.5:
        raise ValueError(f"merge_distance must be in (0, 0.5) Å, got {merge_distance!r}")
    rotations, translations = _symmetry_operations(chosen, name)
    bound = count * len(rotations)
    if bound > max_atoms:
        raise StructureIntakeError(
            f"{name}: {count} sites x {len(rotations)} symmetry operations give up to {bound} atoms, more "
            f"than the limit of {max_atoms} (pass a larger max_atoms to read it anyway)",
            "too_large",
        )
    numbers = np.array([chemical_symbols.index(symbol) for symbol in symbols])
    images = np.einsum("mij,nj->nmi", rotations, coordinates) + translations[np.newaxis, :, :]
    images = np.mod(images, 1.0).reshape(-1, 3)
    images[images >= 1.0] = 0.0
    site_of_image = np.repeat(np.arange(count), len(rotations))
    # cheap first pass: identical images of one site (special positions) keep their first occurrence
    grid = np.mod(np.rint(images * 1e4).astype(np.int64), 10_000)
    _, distinct = np.unique(np.column_stack([site_of_image, grid]), axis=0, return_index=True)
    distinct.sort()
    images, site_of_image = images[distinct], site_of_image[distinct]
    keep, merged_sites, clash = _merge_images(images, cell, site_of_image, numbers, merge_distance)
    if clash:
        described = [f"{labels[a]} ({symbols[a]}) and {labels[b]} ({symbols[b]})" for a, b in clash]
        raise StructureIntakeError(
            f"{name}: overlapping atoms: sites of different elements occupy the same position (closer "
            f"than {merge_distance} Å) after applying the symmetry operations: {_listing(described)}. A site "
            "can hold one element only (a mixed site is partial occupancy); keep one of them",
            "overlap",
        )
    issues = []
    if merged_sites:
        merged = [f"{labels[later]} = {labels[earlier]}" for earlier, later in merged_sites]
        issues.append(
            IntakeIssue(
                "duplicate_sites",
                f"{len(merged_sites)} listed site(s) coincide with a symmetry image of another site of the "
                f"same element and were merged ({_listing(merged)})",
                {"pairs": merged},
            )
        )
    atoms_sites = site_of_image[keep]
    atoms = Atoms(numbers=numbers[atoms_sites], cell=cell, scaled_positions=images[keep], pbc=True)
    deuterium = [i for i, site in enumerate(atoms_sites) if site in deuterium_sites]
    if deuterium:
        masses = atoms.get_masses()
        masses[deuterium] = 2.01410
        atoms.set_masses(masses)
    atoms.info["source"] = name
    return atoms, [labels[site] for site in atoms_sites], issues


def _merge_images(
    images: np.ndarray, cell: Cell, site_of_image: np.ndarray, numbers: np.ndarray, merge_distance: float
) -> tuple[np.ndarray, list[tuple[int, int]], list[tuple[int, int]]]:
    """Images to keep (first of each group closer than ``merge_distance``), merged site pairs, clashes."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    total = len(images)
    points = Atoms(numbers=np.ones(total, dtype=int), cell=cell, scaled_positions=images, pbc=True)
    first, second = neighbor_list("ij", points, merge_distance)
    pairs = np.column_stack([first, second])[first < second]
    if len(pairs) == 0:
        return np.arange(total), [], []
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(total, total))
    _, group = connected_components(graph, directed=False)
    leader = np.full(group.max() + 1, total)
    np.minimum.at(leader, group, np.arange(total))
    keep = np.sort(leader)
    # pairs joining images of different sites: merged duplicates (same element) or clashes (different)
    site_a, site_b = site_of_image[pairs[:, 0]], site_of_image[pairs[:, 1]]
    between = site_a != site_b
    merged, clash = set(), set()
    for a, b in zip(site_a[between], site_b[between], strict=True):
        earlier, later = (int(a), int(b)) if a < b else (int(b), int(a))
        (merged if numbers[a] == numbers[b] else clash).add((earlier, later))
    return keep, sorted(merged), sorted(clash)


# ----------------------------------------------------------------------------------------------------
# Structure checks
# ----------------------------------------------------------------------------------------------------


def suggest_supercell(cell: Cell | np.ndarray, r_cut: float) -> tuple[int, int, int]:
    """Smallest repeat (na, nb, nc) whose perpendicular widths are all at least ``2 * r_cut`` (Å)."""
    if not r_cut > 0:
        raise ValueError(f"r_cut must be a positive distance in Å, got {r_cut!r}")
    return supercell_for_cutoff(cell, r_cut)


def _atom_name(atoms: Atoms, index: int, labels: Sequence[str] | None) -> str:
    symbol = chemical_symbols[atoms.numbers[index]]
    if labels is not None and labels[index] != symbol:
        return f"atom {index} ({symbol}, site {labels[index]})"
    return f"atom {index} ({symbol})"


def check_structure(
    atoms: Atoms,
    r_cut: float | None = None,
    min_distance: float = 0.5,
    *,
    labels: Sequence[str] | None = None,
    check_hydrogens: bool = True,
) -> IntakeReport:
    """Check a periodic structure for use in the workflows; never raises for a bad structure.

    Errors: not 3D periodic, unknown elements (atomic number 0), atoms closer than ``min_distance`` (Å,
    minimum image), perpendicular widths below ``2 * r_cut`` (``report.supercell`` is the repeat that fixes
    it). Warnings: organic structure without any H, carbon atoms with fewer bonded neighbours than a
    saturated carbon can have (<= 1 neighbour, or 2 non-collinear ones) within covalent radii + 0.4 Å.
    ``labels`` (one per atom, e.g. CIF site labels) name atoms in messages.
    """
    report = IntakeReport()
    if labels is not None and len(labels) != len(atoms):
        raise ValueError(
            f"labels has {len(labels)} entries but atoms has {len(atoms)}; give one label per atom"
        )
    if len(atoms) == 0:
        report.errors.append(IntakeIssue("no_structure", "the structure has no atoms"))
        return report
    if not all(atoms.pbc) or atoms.cell.rank < 3 or not abs(atoms.cell.volume) > 1e-6:
        report.errors.append(
            IntakeIssue(
                "no_cell",
                f"the structure is not 3D periodic (pbc={atoms.pbc.tolist()}, cell rank {atoms.cell.rank}); "
                "a framework needs a cell of nonzero volume and pbc=(True, True, True)",
            )
        )
        return report

    unknown = np.flatnonzero(atoms.numbers == 0)
    if len(unknown):
        names = [_atom_name(atoms, int(i), labels) for i in unknown]
        report.errors.append(
            IntakeIssue(
                "unknown_element",
                f"{len(unknown)} atom(s) are not a chemical element (dummy 'X'): {_listing(names)}; valid: "
                "real elements only, remove dummy atoms",
                {"indices": unknown.tolist()},
            )
        )

    if r_cut is not None:
        if not r_cut > 0:
            raise ValueError(f"r_cut must be a positive distance in Å, got {r_cut!r}")
        widths = perpendicular_widths(atoms.cell)
        if np.any(widths < 2.0 * r_cut - 1e-9):
            report.supercell = suggest_supercell(atoms.cell, r_cut)
            shown = ", ".join(f"{axis}: {width:.2f}" for axis, width in zip("abc", widths, strict=True))
            report.errors.append(
                IntakeIssue(
                    "cell_too_small",
                    f"cell too small for cutoff r_cut = {r_cut} Å: perpendicular widths ({shown} Å) must "
                    f"each be >= 2*r_cut = {2 * r_cut} Å; use the supercell repeat {report.supercell} "
                    f"(atoms.repeat({report.supercell}) or load_cif(..., supercell={report.supercell}) or "
                    "supercell='auto')",
                    {"widths": widths.tolist(), "supercell": list(report.supercell)},
                )
            )

    radii = np.maximum(covalent_radii[atoms.numbers] + _BOND_TOLERANCE / 2.0, min_distance / 2.0 + 1e-6)
    first, second, distance, vector, shift = neighbor_list("ijdDS", atoms, radii)

    close = distance < min_distance
    if np.any(close):
        i, j, d, s = first[close], second[close], distance[close], shift[close]
        # each pair appears twice (i, j) and (j, i); an atom near its own image: keep the positive shift
        positive_shift = (s[:, 0] > 0) | ((s[:, 0] == 0) & ((s[:, 1] > 0) | ((s[:, 1] == 0) & (s[:, 2] > 0))))
        unique = (i < j) | ((i == j) & positive_shift)
        order = np.argsort(d[unique])
        pairs = [
            (int(a), int(b), float(c))
            for a, b, c in zip(i[unique][order], j[unique][order], d[unique][order], strict=True)
        ]
        described = [
            f"{_atom_name(atoms, a, labels)} - {_atom_name(atoms, b, labels)}: {c:.3f} Å" for a, b, c in pairs
        ]
        report.errors.append(
            IntakeIssue(
                "overlap",
                f"overlapping atoms: {len(pairs)} pair(s) closer than {min_distance} Å (minimum image): "
                f"{_listing(described)}. Valid: every interatomic distance >= {min_distance} Å; remove "
                "duplicated atoms or alternative positions of disordered groups",
                {"pairs": pairs[:100]},
            )
        )

    if check_hydrogens:
        report.warnings.extend(_hydrogen_warnings(atoms, labels, first, second, vector))
    return report


def _hydrogen_warnings(
    atoms: Atoms, labels: Sequence[str] | None, first: np.ndarray, second: np.ndarray, vector: np.ndarray
) -> list[IntakeIssue]:
    numbers = atoms.numbers
    carbon = numbers == 6
    if not np.any(carbon):
        return []
    issues = []
    only_carbon = bool(np.all(carbon))  # graphite, nanotubes: no H expected
    if not np.any(numbers == 1) and not only_carbon:
        issues.append(
            IntakeIssue(
                "missing_hydrogen",
                f"the structure has {int(carbon.sum())} C atoms but no H atom; CIFs from X-ray diffraction "
                "often omit hydrogens: add them (e.g. with a structure editor) unless the framework really "
                "has none",
            )
        )
    # neighbours of carbon atoms (vector = r_j - r_i, minimum image included via the shifts)
    from_carbon = carbon[first]
    c_index, c_vector = first[from_carbon], vector[from_carbon]
    coordination = np.bincount(c_index, minlength=len(atoms))
    suspicious = [int(i) for i in np.flatnonzero(carbon & (coordination <= 1))]
    two = np.flatnonzero(carbon & (coordination == 2))
    if len(two):
        in_two = np.isin(c_index, two)
        order = np.argsort(c_index[in_two], kind="stable")
        vectors = c_vector[in_two][order].reshape(-1, 2, 3)
        cosine = np.einsum("ij,ij->i", vectors[:, 0], vectors[:, 1]) / (
            np.linalg.norm(vectors[:, 0], axis=1) * np.linalg.norm(vectors[:, 1], axis=1)
        )
        bent = cosine > math.cos(math.radians(150.0))  # sp2/sp3 carbon with 2 neighbours lacks H
        suspicious += [int(i) for i in two[bent]]
    if suspicious and not only_carbon:
        suspicious.sort()
        names = [_atom_name(atoms, i, labels) for i in suspicious]
        issues.append(
            IntakeIssue(
                "undercoordinated_carbon",
                f"likely missing hydrogens: {len(suspicious)} C atom(s) have fewer bonded neighbours (within "
                f"covalent radii + {_BOND_TOLERANCE} Å) than a saturated carbon: {_listing(names)}; expected "
                "3-4 neighbours, or 2 collinear ones (nitrile, alkyne)",
                {"indices": suspicious},
            )
        )
    return issues


# ----------------------------------------------------------------------------------------------------
# CIF -> StructureData
# ----------------------------------------------------------------------------------------------------


def load_cif(
    source: str | os.PathLike | CifData,
    r_cut: float | None = None,
    min_distance: float = 0.5,
    *,
    supercell: tuple[int, int, int] | Literal["auto"] | None = None,
    merge_distance: float = 0.1,
    occupancy_tolerance: float = 0.01,
    check_hydrogens: bool = True,
    block: str | int | None = None,
    max_atoms: int = MAX_ATOMS,
    max_cell_length: float = MAX_CELL_LENGTH,
) -> tuple[StructureData, list[IntakeIssue]]:
    """Read, check and convert a CIF (path or ``CifData``) to ``StructureData``.

    ``supercell`` repeats the cell before the checks: a tuple (na, nb, nc), or ``'auto'`` for the smallest
    repeat with perpendicular widths >= 2 * ``r_cut``. Raises :class:`StructureIntakeError` naming every
    problem; returns the structure and the warnings, which are also issued as
    :class:`StructureIntakeWarning`.
    """

    atoms, warnings_ = checked_cif_atoms(
        source,
        r_cut,
        min_distance,
        supercell=supercell,
        merge_distance=merge_distance,
        occupancy_tolerance=occupancy_tolerance,
        check_hydrogens=check_hydrogens,
        block=block,
        max_atoms=max_atoms,
        max_cell_length=max_cell_length,
    )
    name = atoms.info["source"]
    IntakeReport(warnings=warnings_).emit_warnings(name)
    return structure_from_atoms(atoms), warnings_


def structure_from_atoms(atoms: Atoms) -> StructureData:
    """The unstored ``StructureData`` of checked ``atoms``, labelled with the framework's name."""
    from aiida.orm import StructureData

    structure = StructureData(ase=atoms)
    structure.label = Path(str(atoms.info.get("source", "structure"))).stem  # e.g. "MIL-47", for queries
    return structure


def checked_cif_atoms(
    source: str | os.PathLike | CifData,
    r_cut: float | None = None,
    min_distance: float = 0.5,
    *,
    supercell: tuple[int, int, int] | Literal["auto"] | None = None,
    merge_distance: float = 0.1,
    occupancy_tolerance: float = 0.01,
    check_hydrogens: bool = True,
    block: str | int | None = None,
    max_atoms: int = MAX_ATOMS,
    max_cell_length: float = MAX_CELL_LENGTH,
) -> tuple[Atoms, list[IntakeIssue]]:
    """The reading and checks of :func:`load_cif` without AiiDA: ``(atoms, warnings)``, or raises."""
    atoms, labels, issues = read_cif_atoms(
        source,
        merge_distance=merge_distance,
        occupancy_tolerance=occupancy_tolerance,
        block=block,
        max_atoms=max_atoms,
        max_cell_length=max_cell_length,
    )
    name = atoms.info["source"]
    if supercell is not None:
        if supercell == "auto":
            if r_cut is None:
                raise ValueError("supercell='auto' needs r_cut (Å), the cutoff the cell must accommodate")
            repeat = suggest_supercell(atoms.cell, r_cut)
        else:
            repeat = tuple(int(n) for n in supercell)
            if len(repeat) != 3 or min(repeat) < 1:
                raise ValueError(
                    f"supercell must be three positive integers (na, nb, nc) or 'auto', got {supercell!r}"
                )
        if repeat != (1, 1, 1):
            atoms = atoms.repeat(repeat)
            labels = labels * int(np.prod(repeat))
        atoms.info["supercell"] = list(repeat)
    report = check_structure(atoms, r_cut, min_distance, labels=labels, check_hydrogens=check_hydrogens)
    report.raise_for_errors(name)
    return atoms, issues + report.warnings
