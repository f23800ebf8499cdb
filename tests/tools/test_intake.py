"""Structure intake: each failure on a tiny hand-written CIF, the pure checks, the StructureData result."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from aiida_mofmlp.tools.intake import (
    StructureIntakeError,
    StructureIntakeWarning,
    check_structure,
    element_from_cif_symbol,
    load_cif,
    perpendicular_widths,
    read_cif_atoms,
    suggest_supercell,
)

DATA = Path(__file__).parent / "data"


def _read(name: str, **kwargs):
    return read_cif_atoms(DATA / name, **kwargs)


# --- reading ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "element"),
    [
        ("Zn", "Zn"),
        ("Zn2+", "Zn"),
        ("ZN", "Zn"),
        ("zn1", "Zn"),
        ("O3a", "O"),
        ("H1B", "H"),
        ("Si4+", "Si"),
        ("D", "H"),
        ("Xx", None),
        ("Du", None),
        ("X", None),
        ("Q1", None),
        ("Cg1", None),
        ("?", None),
        (".", None),
        ("", None),
        (3, None),
    ],
)
def test_element_from_cif_symbol(text, element):
    assert element_from_cif_symbol(text) == element


def test_valid_p1_cif_reads_all_sites_with_labels():
    atoms, labels, issues = _read("methane_p1.cif")
    assert atoms.get_chemical_formula() == "CH4"
    assert labels == ["C1", "H1", "H2", "H3", "H4"]
    assert issues == []
    assert np.allclose(atoms.cell.lengths(), 10.0)
    assert atoms.pbc.all()
    report = check_structure(atoms, labels=labels)
    assert report.ok and report.warnings == []


def test_cartesian_coordinates_give_the_same_structure():
    fractional, _, _ = _read("methane_p1.cif")
    cartesian, _, _ = _read("methane_cartesian.cif")
    assert np.allclose(fractional.positions, cartesian.positions, atol=1e-6)


def test_space_group_symbol_expands_special_positions_without_overlaps():
    atoms, _, issues = _read("rocksalt_fm-3m.cif")
    assert atoms.get_chemical_formula() == "Cl4Na4"
    assert issues == []
    assert check_structure(atoms).ok
    distances = atoms.get_all_distances(mic=True)[np.triu_indices(8, 1)]
    assert distances.min() == pytest.approx(5.64 / 2, abs=1e-6)


def test_symmetry_images_on_special_positions_are_merged_and_duplicate_sites_warned():
    atoms, labels, issues = _read("inversion_special_positions.cif")
    # Zn1 and O1 (0.0004 off the inversion centre: images 0.016 Å apart) once each, O2 and O3 twice
    assert sorted(labels) == ["O1", "O2", "O2", "O3", "O3", "Zn1"]
    assert [issue.kind for issue in issues] == ["duplicate_sites"]
    assert "O3b = O3" in issues[0].message
    assert check_structure(atoms, labels=labels).ok


def test_symmetry_images_that_really_overlap_are_an_error():
    atoms, labels, _ = _read("inversion_overlap.cif")
    report = check_structure(atoms, labels=labels)
    assert [issue.kind for issue in report.errors] == ["overlap"]
    assert "site O1" in report.errors[0].message
    assert "0.400 Å" in report.errors[0].message


def test_partial_occupancy_names_the_sites():
    with pytest.raises(StructureIntakeError, match="partial occupancy") as info:
        _read("partial_occupancy.cif")
    assert info.value.kind == "partial_occupancy"
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "O1a: 0.5" in message and "O1b" in message and "Zn1" not in message
    assert "every occupancy 1" in message


def test_unknown_element_names_the_site_and_valid_symbols():
    with pytest.raises(StructureIntakeError, match=r"Xx1 \('Xx'\)") as info:
        _read("unknown_element.cif")
    assert info.value.kind == "unknown_element"
    assert "element symbol" in str(info.value)


def test_mixed_site_is_an_overlap_error():
    with pytest.raises(StructureIntakeError, match=r"Al1 \(Al\) and Si1 \(Si\)") as info:
        _read("mixed_site.cif")
    assert info.value.kind == "overlap"


def test_unparseable_cif_names_the_file_and_problem():
    with pytest.raises(StructureIntakeError) as info:
        _read("unparseable.cif")
    assert info.value.kind == "unreadable"
    assert "unparseable.cif" in str(info.value)
    assert "incomplete row" in str(info.value)
    assert info.value.__cause__ is None  # no traceback from inside ase


def test_missing_file_and_non_cif_input():
    with pytest.raises(StructureIntakeError, match=r"no_such\.cif") as info:
        read_cif_atoms(DATA / "no_such.cif")
    assert info.value.kind == "unreadable"
    with pytest.raises(StructureIntakeError, match="give a path"):
        read_cif_atoms(42)


def test_several_blocks_need_a_choice(tmp_path):
    with pytest.raises(StructureIntakeError, match="first, second") as info:
        _read("two_blocks.cif")
    assert info.value.kind == "no_structure"
    assert _read("two_blocks.cif", block="second")[0].get_chemical_symbols() == ["Cu"]
    assert _read("two_blocks.cif", block=0)[0].get_chemical_symbols() == ["Zn"]
    no_sites = tmp_path / "no_sites.cif"
    no_sites.write_text("data_empty\n_cell_length_a 5\n")
    with pytest.raises(StructureIntakeError, match="no data block has atom sites"):
        read_cif_atoms(no_sites)


def test_missing_cell_and_non_numeric_coordinate(tmp_path):
    text = (DATA / "methane_p1.cif").read_text()
    no_cell = tmp_path / "no_cell.cif"
    no_cell.write_text("\n".join(line for line in text.splitlines() if not line.startswith("_cell_length_c")))
    with pytest.raises(StructureIntakeError, match="no complete unit cell") as info:
        read_cif_atoms(no_cell)
    assert info.value.kind == "no_cell"
    unknown_x = tmp_path / "unknown_x.cif"
    unknown_x.write_text(text.replace("H2 H 0.4371", "H2 H ?"))
    with pytest.raises(StructureIntakeError, match=r"site H2 has coordinate _atom_site_fract_x = '\?'"):
        read_cif_atoms(unknown_x)


SPLIT_LOOPS = """data_split
_cell_length_a 10
_cell_length_b 10
_cell_length_c 10
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
loop_
_atom_site_label
_atom_site_type_symbol
{labels}
loop_
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
{coordinates}
"""


@pytest.mark.parametrize(("n_labels", "n_coordinates"), [(5, 3), (3, 5)], ids=["short-coordinates", "long"])
def test_columns_of_other_lengths_than_the_sites_are_refused(tmp_path, n_labels, n_coordinates):
    """Labels and coordinates in two loops of different lengths: refused, never atoms at arbitrary places
    (an O at 0,0,0 was seen) nor an IndexError."""
    labels = "\n".join(f"O{i} O" for i in range(n_labels))
    coordinates = "\n".join(f"0.{i + 1} 0.{i + 2} 0.{i + 3}" for i in range(n_coordinates))
    path = tmp_path / "split.cif"
    path.write_text(SPLIT_LOOPS.format(labels=labels, coordinates=coordinates))
    with pytest.raises(StructureIntakeError) as info:
        read_cif_atoms(path)
    assert info.value.kind == "unreadable"
    assert f"has {n_coordinates} value(s) but the atom sites are {n_labels}" in str(info.value)


def test_size_limits_refuse_before_expanding_and_can_be_raised(tmp_path):
    text = (DATA / "methane_p1.cif").read_text()
    huge_cell = tmp_path / "huge_cell.cif"
    huge_cell.write_text(text.replace("_cell_length_a    10", "_cell_length_a    1e12"))
    with pytest.raises(StructureIntakeError, match="cell edge of 1e\\+12 Å is longer than the limit") as info:
        read_cif_atoms(huge_cell)
    assert info.value.kind == "too_large"
    with pytest.raises(StructureIntakeError, match="5 atom sites, more than the limit of 4 atoms"):
        read_cif_atoms(DATA / "methane_p1.cif", max_atoms=4)
    atoms, _, _ = read_cif_atoms(DATA / "methane_p1.cif", max_atoms=5)
    assert len(atoms) == 5
    # symmetry: 5 sites x 2 operations may give 10 atoms
    inverted = tmp_path / "inverted.cif"
    inverted.write_text(text.replace(" 'x,y,z'", " 'x,y,z'\n '-x,-y,-z'"))
    with pytest.raises(StructureIntakeError, match="5 sites x 2 symmetry operations give up to 10 atoms"):
        read_cif_atoms(inverted, max_atoms=9)


# --- pure checks --------------------------------------------------------------------------------------------


def test_overlap_through_periodic_boundary_names_atoms_and_distance():
    atoms, labels, _ = _read("overlap_pbc.cif")
    report = check_structure(atoms, labels=labels)
    assert not report.ok
    (error,) = report.errors
    assert error.kind == "overlap"
    assert "atom 1 (O, site O1) - atom 2 (O, site O2): 0.250 Å" in error.message
    assert error.details["pairs"] == [(1, 2, pytest.approx(0.25))]
    with pytest.raises(StructureIntakeError, match="overlapping atoms") as info:
        report.raise_for_errors("overlap_pbc.cif")
    assert info.value.kind == "overlap"
    assert "overlap_pbc.cif" in str(info.value)
    # a smaller threshold accepts the pair
    assert check_structure(atoms, min_distance=0.2).ok


def test_atom_overlapping_its_own_image_in_a_tiny_cell():
    atoms = Atoms("Cu", cell=[0.3, 5.0, 5.0], pbc=True)
    (error,) = [issue for issue in check_structure(atoms).errors if issue.kind == "overlap"]
    assert "atom 0 (Cu) - atom 0 (Cu): 0.300 Å" in error.message


def test_dummy_atoms_and_non_periodic_structures_are_errors():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.numbers[0] = 0
    report = check_structure(atoms)
    assert [issue.kind for issue in report.errors] == ["unknown_element"]
    assert "atom 0 (X)" in report.errors[0].message
    molecule_only = molecule("CH4")
    assert [issue.kind for issue in check_structure(molecule_only).errors] == ["no_cell"]
    assert check_structure(Atoms(cell=np.eye(3) * 5, pbc=True)).errors[0].kind == "no_structure"


def test_cell_too_small_suggests_the_supercell():
    atoms, _, _ = _read("methane_p1.cif")
    report = check_structure(atoms, r_cut=6.0)
    assert [issue.kind for issue in report.errors] == ["cell_too_small"]
    assert report.supercell == (2, 2, 2)
    assert "(2, 2, 2)" in report.errors[0].message and "12.0 Å" in report.errors[0].message
    assert check_structure(atoms.repeat(report.supercell), r_cut=6.0).ok
    assert check_structure(atoms, r_cut=5.0).ok  # widths equal to 2 * r_cut are valid


def test_supercell_uses_perpendicular_widths_of_triclinic_cells():
    atoms = Atoms("Zn", cell=[[10.0, 0, 0], [8.0, 6.0, 0], [0, 0, 25.0]], pbc=True)
    assert np.allclose(perpendicular_widths(atoms.cell), [6.0, 10 * 6 / 10.0, 25.0])
    assert suggest_supercell(atoms.cell, 6.0) == (2, 2, 1)
    report = check_structure(atoms, r_cut=6.0)
    assert report.supercell == (2, 2, 1)
    assert check_structure(atoms.repeat(report.supercell), r_cut=6.0).errors == []
    with pytest.raises(ValueError, match="r_cut must be a positive"):
        check_structure(atoms, r_cut=-1.0)


def test_undercoordinated_carbon_warns_missing_hydrogens():
    atoms, labels, _ = _read("benzene_missing_h.cif")
    report = check_structure(atoms, labels=labels)
    assert report.ok
    assert [issue.kind for issue in report.warnings] == ["undercoordinated_carbon"]
    assert report.warnings[0].details["indices"] == [1, 2, 3, 4, 5]
    assert "likely missing hydrogens" in report.warnings[0].message
    assert check_structure(atoms, check_hydrogens=False).warnings == []


def test_carbon_without_any_hydrogen_warns_but_linear_carbon_is_saturated():
    atoms, labels, _ = _read("co2_no_h.cif")
    report = check_structure(atoms, labels=labels)
    assert report.ok
    assert [issue.kind for issue in report.warnings] == ["missing_hydrogen"]


def test_pure_carbon_and_saturated_organics_give_no_hydrogen_warning():
    graphite_like = bulk("C", "diamond", a=3.57, cubic=True)
    assert check_structure(graphite_like).warnings == []
    methane, _, _ = _read("methane_p1.cif")
    assert check_structure(methane).warnings == []


# --- load_cif -> StructureData ------------------------------------------------------------------------------


def test_load_cif_returns_structure_data(aiida_profile):
    with warnings.catch_warnings():
        warnings.simplefilter("error", StructureIntakeWarning)
        structure, issues = load_cif(DATA / "methane_p1.cif", r_cut=4.0)
    assert issues == []
    assert structure.get_formula() == "CH4"
    assert np.allclose(structure.cell, np.eye(3) * 10.0)
    assert structure.pbc == (True, True, True)


def test_load_cif_auto_supercell(aiida_profile):
    structure, _ = load_cif(DATA / "methane_p1.cif", r_cut=6.0, supercell="auto")
    assert len(structure.sites) == 40
    assert np.allclose(np.diag(structure.cell), 20.0)
    with pytest.raises(StructureIntakeError, match=r"supercell repeat \(2, 2, 2\)") as info:
        load_cif(DATA / "methane_p1.cif", r_cut=6.0)
    assert info.value.kind == "cell_too_small"
    with pytest.raises(ValueError, match="needs r_cut"):
        load_cif(DATA / "methane_p1.cif", supercell="auto")


def test_load_cif_from_cifdata_warns_and_returns_warnings(aiida_profile):
    from aiida.orm import CifData

    # lazy: CifData's eager parsing needs PyCifRW, which intake does not use
    cif = CifData(file=str(DATA / "benzene_missing_h.cif"), parse_policy="lazy")
    with pytest.warns(StructureIntakeWarning, match="likely missing hydrogens"):
        structure, issues = load_cif(cif)
    assert [issue.kind for issue in issues] == ["undercoordinated_carbon"]
    assert structure.get_formula() == "C6H"


def test_load_cif_reports_every_structural_error(aiida_profile):
    with pytest.raises(StructureIntakeError) as info:
        load_cif(DATA / "overlap_pbc.cif", r_cut=6.0)
    assert info.value.kinds == ["cell_too_small", "overlap"]
    assert "2 problem(s)" in str(info.value)


# --- the same intake in an isolated child process (the app's kernel uses it) -----------------------------


def test_isolated_intake_gives_what_load_cif_gives(aiida_profile):
    from aiida_mofmlp.tools.intake_isolated import load_cif_isolated

    structure, issues = load_cif_isolated(DATA / "benzene_missing_h.cif")
    reference, reference_issues = load_cif(DATA / "benzene_missing_h.cif")
    assert structure.get_formula() == reference.get_formula() == "C6H"
    assert structure.label == reference.label == "benzene_missing_h"
    assert np.allclose(structure.get_ase().positions, reference.get_ase().positions)
    assert np.allclose(structure.cell, reference.cell)
    assert [(i.kind, i.message) for i in issues] == [(i.kind, i.message) for i in reference_issues]
    repeated, _ = load_cif_isolated(DATA / "methane_p1.cif", r_cut=6.0, supercell=(2, 2, 2))
    assert len(repeated.sites) == 40


def test_isolated_intake_passes_errors_with_their_details(aiida_profile):
    from aiida_mofmlp.tools.intake_isolated import load_cif_isolated

    with pytest.raises(StructureIntakeError) as info:
        load_cif_isolated(DATA / "overlap_pbc.cif", r_cut=6.0)
    assert info.value.kinds == ["cell_too_small", "overlap"]
    assert info.value.issues[0].details["supercell"] == [2, 2, 2]
    with pytest.raises(ValueError, match="three positive integers"):
        load_cif_isolated(DATA / "methane_p1.cif", supercell=(0, 1, 1))
    with pytest.raises(StructureIntakeError, match=r"unparseable\.cif") as info:
        load_cif_isolated(DATA / "unparseable.cif")
    assert info.value.kind == "unreadable"


def test_isolated_intake_refuses_what_exceeds_its_time_or_memory(aiida_profile):
    from aiida_mofmlp.tools.intake_isolated import load_cif_isolated

    with pytest.raises(StructureIntakeError, match=r"more than 0.05 s; refused") as info:
        load_cif_isolated(DATA / "methane_p1.cif", timeout=0.05)
    assert info.value.kind == "too_large"
    with pytest.raises(StructureIntakeError, match=r"out of memory\) within its limits of 60 s and 40 MiB"):
        load_cif_isolated(DATA / "methane_p1.cif", memory=40 * 1024**2)
