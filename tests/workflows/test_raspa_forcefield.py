"""Force-field writers, unit-cell choice, validators and snapshot reconstruction for the RASPA work chain."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from aiida_mofmlp.data.guest import BUILTIN_GUESTS
from aiida_mofmlp.parsers.parse_raw import raspa as raw
from aiida_mofmlp.workflows.raspa import forcefield as ff
from aiida_mofmlp.workflows.raspa import results as rr
from aiida_mofmlp.workflows.raspa.isotherm import PARAMETER_KEYS, get_protocol, validate_parameters


def _sites(name):
    guest = BUILTIN_GUESTS[name]
    return [
        dict(site, position=site.get("position", guest["positions"][site.get("atom", 0)]))
        for site in guest["sites"]
    ]


def test_uff_values_match_published_lj_parameters():
    # well-known UFF values in K / Angstrom (e.g. RASPA's and many GCMC papers' tables)
    assert ff.UFF["C"] == pytest.approx((52.84, 3.431), abs=0.02)
    assert ff.UFF["O"] == pytest.approx((30.19, 3.118), abs=0.02)
    assert ff.UFF["H"] == pytest.approx((22.14, 2.571), abs=0.02)
    assert ff.UFF["Zn"] == pytest.approx((62.40, 2.462), abs=0.02)


def test_missing_element_names_it_and_extra_parameters_fill_it():
    with pytest.raises(ValueError, match=r"Xx.*force_field_parameters"):
        ff.framework_lj_parameters(["C", "Xx"])
    params = ff.framework_lj_parameters(["C", "Xx"], {"Xx": {"epsilon": 10.0, "sigma": 3.0}})
    assert params["Xx"] == (10.0, 3.0)
    with pytest.raises(ValueError, match="epsilon"):
        ff.framework_lj_parameters(["Xx"], {"Xx": {"eps": 1}})


def test_force_field_files_for_co2():
    sites = _sites("CO2")
    lj = ff.framework_lj_parameters(["Zn", "O", "C", "H"])
    pseudo = ff.pseudo_atoms_def(lj, sites).splitlines()
    assert pseudo[1] == "6"  # 4 framework elements + C_co2 + O_co2
    assert any(line.startswith("C_co2") and "+0.700000" in line for line in pseudo)
    mixing = ff.mixing_rules_def(lj, sites)
    assert "Lorentz-Berthelot" in mixing
    assert "O_co2      lennard-jones 79.0000 3.0500" in mixing
    molecule = ff.molecule_def("CO2", sites, 304.1, 7.38e6, 0.22).splitlines()
    assert molecule[molecule.index("# atomic positions") + 1].startswith("0 C_co2 0.000000 0.000000 0.000000")
    assert "0 1 RIGID_BOND" in molecule and "1 2 RIGID_BOND" in molecule


def test_sites_without_lj_are_none_and_inconsistent_labels_fail():
    mixing = ff.mixing_rules_def({}, _sites("N2"))
    assert "N_com      none" in mixing
    bad = [
        *_sites("CO2"),
        {"label": "O_co2", "charge": 0.0, "epsilon": 1.0, "sigma": 1.0, "position": [0, 0, 0]},
    ]
    with pytest.raises(ValueError, match="O_co2"):
        ff.guest_site_types(bad)


def test_unit_cells_from_perpendicular_widths():
    cubic = np.eye(3) * 10.0
    assert ff.perpendicular_widths(cubic) == pytest.approx([10, 10, 10])
    assert ff.unit_cells_for_cutoff(cubic, 12.0) == [3, 3, 3]
    assert ff.unit_cells_for_cutoff(cubic, 5.0) == [1, 1, 1]
    # a sheared cell: lengths 10 but the width along c is 10 * sin(60 deg)
    sheared = np.array([[10, 0, 0], [5, 8.660254, 0], [0, 0, 30]])
    assert ff.perpendicular_widths(sheared)[0] == pytest.approx(8.660254, abs=1e-5)
    assert ff.unit_cells_for_cutoff(sheared, 12.0) == [3, 3, 1]


def test_p1_cif_round_trips_through_ase(tmp_path):
    from ase.io import read

    atoms = Atoms("ZnO", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=[5, 6, 7, 90, 95, 90], pbc=True)
    path = tmp_path / "x.cif"
    path.write_text(ff.p1_cif(atoms, charges=[1.0, -1.0]))
    back = read(path)
    assert back.get_chemical_symbols() == ["Zn", "O"]
    assert back.cell.cellpar() == pytest.approx(atoms.cell.cellpar())
    with pytest.raises(ValueError, match="one charge per atom"):
        ff.p1_cif(atoms, charges=[1.0])


def test_validate_parameters_messages():
    assert validate_parameters({}) is None
    assert "framework_charges" in validate_parameters({"framework_charges": "ddec"})
    assert "pyeqeq" in validate_parameters({"framework_charges": "eqeq"})
    assert "pressures" in validate_parameters({"pressures": [1.0, -2.0]})
    assert "snapshot_loadings" in validate_parameters({"snapshot_loadings": [0]})
    assert "unknown parameters" in validate_parameters({"pressure": [1.0]})
    assert "equilibration_tolerance" in validate_parameters({"equilibration_tolerance": -1})


@pytest.mark.parametrize("name", ["fast", "balanced", "stringent"])
def test_protocols_are_valid(name):
    parameters = get_protocol(name)
    assert set(parameters) == PARAMETER_KEYS
    assert validate_parameters(parameters) is None


def test_protocols_get_longer():
    cycles = [get_protocol(name)["prod_cycles"] for name in ("fast", "balanced", "stringent")]
    assert cycles == sorted(cycles) and cycles[0] < cycles[-1]


OUTPUT = """Number of molecules:
====================

Component 0 [CO2]
-------------------------------------------------------------
\tBlock[ 0] 10.0           [-]
\tBlock[ 1] 10.0           [-]
\tBlock[ 2] 12.0           [-]
\tBlock[ 3] 14.0           [-]
\tBlock[ 4] 14.0           [-]
\t------------------------------------------------------------------------------
\tAverage loading absolute                             12.0 +/-       1.0 [-]
"""


def test_loading_blocks_and_drift():
    blocks = raw.loading_blocks(OUTPUT)
    assert blocks == [10.0, 10.0, 12.0, 14.0, 14.0]
    assert raw.relative_drift(blocks) == pytest.approx(4.0 / 12.0)
    assert raw.relative_drift([0.0, 0.0, 0.1, 0.2]) == pytest.approx(0.15)  # floor of 1 molecule
    assert raw.relative_drift([1.0]) is None
    assert raw.loading_blocks("no such section") == []


def test_snapshot_rebuilds_whole_linear_co2_across_the_boundary():
    guest = BUILTIN_GUESTS["CO2"]
    site_ref = np.array(
        [s["position"] if "position" in s else guest["positions"][s["atom"]] for s in guest["sites"]]
    )
    atom_ref = np.array(guest["positions"], dtype=float)
    # one CO2 straddling the x boundary of a 10 Angstrom box, written wrapped (as RASPA may)
    axis = np.array([1.0, 1.0, 0.0]) / np.sqrt(2)
    centre = np.array([9.9, 5.0, 5.0])
    sites = np.array([centre, centre + 1.16 * axis, centre - 1.16 * axis]) % 10.0
    restart = "\n".join(f"Adsorbate-atom-position: 0 {k} {x} {y} {z}" for k, (x, y, z) in enumerate(sites))
    parsed = raw.restart_guest_sites(restart, 3)
    framework = Atoms("Zn", positions=[[0, 0, 0]], cell=np.eye(3) * 10.0, pbc=True)
    frame = rr.build_snapshot(framework, [1, 1, 1], ["C", "O", "O"], atom_ref, site_ref, parsed)
    ids = frame.arrays["guest_id"]
    assert ids.tolist() == [0, 1, 1, 1]
    c, o1, o2 = frame.positions[1:]
    assert np.linalg.norm(o1 - c) == pytest.approx(1.16)
    assert np.linalg.norm(o2 - o1) == pytest.approx(2.32)
    assert 0.0 <= frame.get_scaled_positions(wrap=False)[1][0] < 1.0  # centre wrapped into the cell


def test_snapshot_single_site_guest_gets_full_molecule():
    guest = BUILTIN_GUESTS["CH4"]
    atom_ref = np.array(guest["positions"], dtype=float)
    atom_ref -= atom_ref[0]
    framework = Atoms("Zn", positions=[[0, 0, 0]], cell=np.eye(3) * 10.0, pbc=True)
    sites = np.array([[[5.0, 5.0, 5.0]]])
    frame = rr.build_snapshot(framework, [1, 1, 1], guest["symbols"], atom_ref, np.zeros((1, 3)), sites)
    methane = frame[frame.arrays["guest_id"] == 1]
    assert methane.get_chemical_symbols() == ["C", "H", "H", "H", "H"]
    assert methane.get_distances(0, [1, 2, 3, 4]) == pytest.approx([1.087] * 4, abs=1e-6)


def test_min_guest_contact_ignores_atoms_of_the_same_molecule():
    atoms = Atoms(
        "ZnCOO", positions=[[0, 0, 0], [3, 0, 0], [4.16, 0, 0], [1.84, 0, 0]], cell=[20, 20, 20], pbc=True
    )
    atoms.arrays["guest_id"] = np.array([0, 1, 1, 1])
    assert rr.min_guest_contact(atoms) == pytest.approx(1.84)
    atoms.arrays["guest_id"] = np.zeros(4, dtype=int)
    assert rr.min_guest_contact(atoms) is None


def test_enthalpy_of_adsorption_reads_kj_per_mol_and_drops_nan():
    text = (
        "Enthalpy of adsorption:\n=======================\n\n\tTotal enthalpy of adsorption\n"
        "\t----------------------------\n\tBlock[ 0] -2865.50193        [K]\n"
        "\t------------------------------------------------------------------------------\n"
        "\tAverage          -2775.07386 +/-         226.512216 [K]\n"
        "\t                   -23.07325 +/-           1.883328 [KJ/MOL]\n"
    )
    assert raw.enthalpy_of_adsorption(text) == (pytest.approx(-23.07325), pytest.approx(1.883328))
    assert raw.enthalpy_of_adsorption(text.replace("-23.07325", "nan")) == (None, None)
    assert raw.enthalpy_of_adsorption("nothing here") == (None, None)
