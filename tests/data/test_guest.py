"""GuestMoleculeData: built-in guests and validation."""

import numpy as np
import pytest

from aiida_mofmlp.data import GuestMoleculeData
from aiida_mofmlp.data.guest import BUILTIN_GUESTS


@pytest.mark.parametrize("name", sorted(BUILTIN_GUESTS))
def test_builtin_guests_are_neutral_and_centred(aiida_profile, name):
    guest = GuestMoleculeData.builtin(name).store()
    total_charge = sum(site["charge"] for site in guest.sites)
    assert total_charge == pytest.approx(0.0, abs=1e-9)
    atoms = guest.get_ase()
    np.testing.assert_allclose(atoms.get_center_of_mass(), 0.0, atol=1e-9)
    assert set(atoms.arrays["guest_id"]) == {1}
    assert guest.molar_mass == pytest.approx(atoms.get_masses().sum())
    assert guest.critical_temperature > 0 and guest.critical_pressure > 0


def test_co2_geometry_and_trappe_parameters(aiida_profile):
    guest = GuestMoleculeData.builtin("co2")
    atoms = guest.get_ase()
    assert atoms.get_distance(0, 1) == pytest.approx(1.16)
    assert atoms.get_angle(1, 0, 2) == pytest.approx(180.0)
    oxygen = next(site for site in guest.sites if site["element"] == "O")
    assert (oxygen["epsilon"], oxygen["sigma"], oxygen["charge"]) == (79.0, 3.05, -0.35)
    assert guest.force_field == "TraPPE"


def test_dummy_site_is_kept_off_atoms(aiida_profile):
    guest = GuestMoleculeData.builtin("N2")
    dummy = next(site for site in guest.sites if site["element"] == "M")
    assert dummy["position"] == pytest.approx([0, 0, 0])
    assert len(guest.get_ase()) == 2


def test_unknown_guest_names_the_valid_ones(aiida_profile):
    with pytest.raises(ValueError, match="built-in guests: CO2, N2, H2, CH4, H2O"):
        GuestMoleculeData.builtin("SO2")


def test_custom_guest_validation(aiida_profile):
    with pytest.raises(ValueError, match="one position"):
        GuestMoleculeData(name="X", symbols=["Ar"], positions=[])
    with pytest.raises(ValueError, match="names atom 3"):
        GuestMoleculeData(
            name="Ar",
            symbols=["Ar"],
            positions=[[0, 0, 0]],
            sites=[{"label": "Ar", "atom": 3, "charge": 0, "epsilon": 119.8, "sigma": 3.4}],
        )
    argon = GuestMoleculeData(
        name="Ar",
        symbols=["Ar"],
        positions=[[1, 1, 1]],
        sites=[{"label": "Ar", "atom": 0, "charge": 0, "epsilon": 119.8, "sigma": 3.4}],
    )
    assert argon.positions == [[0, 0, 0]]
    # no critical constants: RASPA cannot write its molecule file; said before any job, not in a calcfunction
    assert "critical_temperature (K), critical_pressure (Pa), acentric_factor" in argon.force_field_problem()
    assert GuestMoleculeData.builtin("CO2").force_field_problem() is None


def test_guest_without_critical_constants_refused_by_the_builders(aiida_profile, mofmlp_codes):
    from aiida import orm

    from aiida_mofmlp.data.mace_model import MaceModelData
    from aiida_mofmlp.workflows.active_learning.workchain import ActiveLearningWorkChain
    from aiida_mofmlp.workflows.raspa.isotherm import IsothermWorkChain

    argon = GuestMoleculeData(
        name="Ar",
        symbols=["Ar"],
        positions=[[0, 0, 0]],
        sites=[{"label": "Ar", "atom": 0, "charge": 0, "epsilon": 119.8, "sigma": 3.4}],
    )
    assert "lacks critical_temperature" in IsothermWorkChain.spec().inputs["guest"].validator(argon, None)
    structure = orm.StructureData(cell=[[8, 0, 0], [0, 8, 0], [0, 0, 8]])
    structure.append_atom(position=(0, 0, 0), symbols="Zn")
    with pytest.raises(ValueError, match="guest: guest 'Ar' lacks critical_temperature"):
        ActiveLearningWorkChain.get_builder_from_protocol(
            structure, MaceModelData.small_mof_foundation(), dict(mofmlp_codes), guest=argon
        )


@pytest.mark.parametrize("name", ["../../x", "a b", "CO2\nCycles 1", "", "1abc", "x" * 33, "C;rm"])
def test_guest_names_that_could_name_files_elsewhere_are_refused(aiida_profile, name):
    """A guest's name becomes RASPA's and LAMMPS's file names and input lines: letters, digits, _ only."""
    with pytest.raises(ValueError, match="is not valid: it becomes a file name"):
        GuestMoleculeData(name=name, symbols=["Ar"], positions=[[0, 0, 0]])


def test_guest_name_rule_accepts_ordinary_names(aiida_profile):
    for name in ("CO2", "SF6", "my_guest", "x" * 32):
        assert GuestMoleculeData(name=name, symbols=["Ar"], positions=[[0, 0, 0]]).name == name
