"""CP2K protocols, generated inputs (file regression), SCF escalation and output parsing (no CP2K run)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiida_cp2k.utils import Cp2kInput

from aiida_mofmlp.workflows import _cp2k_inputs as ci
from aiida_mofmlp.workflows.cp2k_single_point import abort_message

DATA = Path(__file__).parent / "test_cp2k_inputs"
MOF_ELEMENTS = ["Zn", "O", "C", "H"]


@pytest.mark.parametrize("protocol", ["fast", "balanced", "stringent"])
def test_protocol_input_regression(protocol, file_regression):
    """The CP2K input each protocol generates for a Zn/O/C/H framework (with stress)."""
    settings = ci.get_protocol(protocol)
    parameters = ci.build_parameters(settings, MOF_ELEMENTS, compute_stress=True)
    file_regression.check(Cp2kInput(parameters).render(), extension=".inp")


def test_stringent_matches_reference_settings():
    """SCIENCE.md section 1: PBE + D3, DZVP-MOLOPT-SR-GTH, GTH, 4 grids, 600/50 Ry, factor 3, Gamma."""
    parameters = ci.build_parameters(ci.get_protocol("stringent"), ["Zn", "O"])
    dft = parameters["FORCE_EVAL"]["DFT"]
    assert dft["MGRID"] == {"NGRIDS": 4, "CUTOFF": 600, "REL_CUTOFF": 50, "PROGRESSION_FACTOR": 3}
    assert dft["XC"]["XC_FUNCTIONAL"]["_"] == "PBE"
    assert dft["XC"]["VDW_POTENTIAL"]["PAIR_POTENTIAL"]["TYPE"] == "DFTD3"
    assert "KPOINTS" not in dft
    kinds = {kind["_"]: kind for kind in parameters["FORCE_EVAL"]["SUBSYS"]["KIND"]}
    assert kinds["Zn"] == {"_": "Zn", "BASIS_SET": "DZVP-MOLOPT-SR-GTH-q12", "POTENTIAL": "GTH-PBE-q12"}
    assert kinds["O"]["POTENTIAL"] == "GTH-PBE-q6"


def test_kinds_exist_in_cp2k_data_files():
    """Every generated basis/pseudopotential name exists in the CP2K data files installed here."""
    data_dir = Path("/usr/share/cp2k")
    if not (data_dir / "BASIS_MOLOPT").is_file():
        pytest.skip("CP2K data files not found in /usr/share/cp2k")
    basis_names = set((data_dir / "BASIS_MOLOPT").read_text().split())
    potential_names = set((data_dir / "GTH_POTENTIALS").read_text().split())
    settings = ci.get_protocol("stringent")
    for kind in ci.kind_sections(settings, settings["valence"]):
        assert kind["BASIS_SET"] in basis_names, kind
        assert kind["POTENTIAL"] in potential_names, kind


def test_overrides_deep_merge():
    """Overrides change single keys and keep their siblings."""
    overrides = {
        "parameters": {"FORCE_EVAL": {"DFT": {"MGRID": {"CUTOFF": 300}}}},
        "options": {"queue_name": "q"},
    }
    settings = ci.get_protocol("stringent", overrides)
    mgrid = settings["parameters"]["FORCE_EVAL"]["DFT"]["MGRID"]
    assert mgrid["CUTOFF"] == 300 and mgrid["REL_CUTOFF"] == 50 and mgrid["NGRIDS"] == 4
    assert settings["options"]["queue_name"] == "q"
    assert settings["options"]["resources"]["num_machines"] == 1
    assert ci.get_protocol("stringent")["parameters"]["FORCE_EVAL"]["DFT"]["MGRID"]["CUTOFF"] == 600


def test_override_kind_for_missing_element():
    """An element without a basis fails with a clear message, and an explicit kind fixes it."""
    settings = ci.get_protocol("balanced")
    with pytest.raises(ValueError, match=r"elements \['La'\] have no basis set/pseudopotential"):
        ci.build_parameters(settings, ["La", "O"])
    fixed = ci.get_protocol(
        "balanced", {"kinds": {"La": {"basis_set": "DZVP-MOLOPT-SR-GTH-q11", "potential": "GTH-PBE-q11"}}}
    )
    kinds = {
        kind["_"]: kind for kind in ci.build_parameters(fixed, ["La", "O"])["FORCE_EVAL"]["SUBSYS"]["KIND"]
    }
    assert kinds["La"]["POTENTIAL"] == "GTH-PBE-q11"


def test_xtb_element_check():
    assert ci.check_elements(ci.get_protocol("fast"), ["Zn", "C", "H"]) is None
    message = ci.check_elements(ci.get_protocol("fast"), ["Fr", "H"])
    assert "['Fr']" in message and "GFN1-xTB" in message


def test_unknown_protocol():
    with pytest.raises(
        ValueError, match="unknown CP2K protocol 'ultra'; valid protocols: fast, balanced, stringent"
    ):
        ci.get_protocol("ultra")


def test_escalate_scf_stages():
    base = ci.build_parameters(ci.get_protocol("stringent"), ["H"])
    first = ci.escalate_scf(base, 1)
    assert first["FORCE_EVAL"]["DFT"]["SCF"]["MAX_SCF"] == 100
    assert first["FORCE_EVAL"]["DFT"]["SCF"]["SCF_GUESS"] == "RESTART"
    assert first["FORCE_EVAL"]["DFT"]["WFN_RESTART_FILE_NAME"] == ci.WFN_RESTART_FILE
    second = ci.escalate_scf(first, 2)
    scf = second["FORCE_EVAL"]["DFT"]["SCF"]
    assert "OT" not in scf and "OUTER_SCF" not in scf
    assert scf["SMEAR"]["METHOD"] == "FERMI_DIRAC" and scf["SCF_GUESS"] == "ATOMIC"
    assert "WFN_RESTART_FILE_NAME" not in second["FORCE_EVAL"]["DFT"]
    third = ci.escalate_scf(second, 3)
    assert third["FORCE_EVAL"]["DFT"]["SCF"]["MIXING"]["ALPHA"] < scf["MIXING"]["ALPHA"]
    assert base["FORCE_EVAL"]["DFT"]["SCF"]["MAX_SCF"] == 50  # the input is not modified
    with pytest.raises(ValueError, match=r"SCF stage must be in 1\.\.3"):
        ci.escalate_scf(base, 4)


def test_parse_single_point_units():
    """Hartree -> eV, Hartree/Bohr -> eV/Angstrom, GPa (CP2K sign) -> eV/Angstrom^3 (ASE sign)."""
    parsed = ci.parse_single_point((DATA / "xtb_h2o_unconverged.out").read_text())
    assert parsed["energy"] == pytest.approx(-5.748029349502604 * 27.211386245988)
    assert parsed["forces"].shape == (3, 3)
    assert parsed["forces"][0, 1] == pytest.approx(0.01233907 * 27.211386245988 / 0.529177210903)
    assert parsed["stress"][0, 0] == pytest.approx(5.91765594117e-01 / 160.21766208)
    assert parsed["stress"][2, 2] == pytest.approx(-7.36789933901e-02 / 160.21766208)
    assert parsed["scf_converged"] is False
    assert parsed["completed"] is True
    assert parsed["walltime_exceeded"] is False


def test_parse_abort():
    text = (DATA / "xtb_oh_abort.out").read_text()
    parsed = ci.parse_single_point(text)
    assert parsed["energy"] is None and parsed["forces"] is None
    assert abort_message(text) == "Use the LSD option for an odd number of electrons"
