"""CP2K protocols, generated inputs (file regression) and SCF escalation (no CP2K run).

The output parsing is tested on real CP2K outputs in tests/parsers/test_cp2k_parser.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aiida_cp2k.utils import Cp2kInput

from aiida_mofmlp.workflows.cp2k import inputs as ci

DATA = Path(__file__).parent / "test_cp2k_inputs"
MOF_ELEMENTS = ["Zn", "O", "C", "H"]


@pytest.mark.parametrize("protocol", ["fast", "balanced", "stringent"])
def test_protocol_input_regression(protocol, file_regression):
    """The CP2K input each protocol generates for a Zn/O/C/H framework (with stress)."""
    settings = ci.get_protocol(protocol)
    parameters = ci.build_parameters(settings, MOF_ELEMENTS, compute_stress=True)
    file_regression.check(Cp2kInput(parameters).render(), extension=".inp")


def test_stringent_matches_reference_settings():
    """Jin et al., Chem. Sci. 2026: PBE + D3, DZVP-MOLOPT-SR-GTH, GTH, 4 grids, 600/50 Ry, factor 3, Gamma."""
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


# --- builders of the three CP2K work chains (ProtocolMixin, cp2k.yaml) ----------------------------------


@pytest.fixture
def cp2k_code(aiida_localhost):
    from aiida import orm

    return orm.InstalledCode(
        label="cp2k-builders",
        computer=aiida_localhost,
        filepath_executable="/usr/bin/cp2k.psmp",
        default_calc_job_plugin="cp2k",
    ).store()


def _water():
    from ase import Atoms

    return Atoms(
        "OH2", positions=[[2.5, 2.5, 2.5], [3.257, 3.086, 2.5], [1.743, 3.086, 2.5]], cell=[5] * 3, pbc=True
    )


def test_protocols_of_the_work_chains():
    from aiida_mofmlp.workflows.cp2k.aimd import AimdWorkChain
    from aiida_mofmlp.workflows.cp2k.base import Cp2kSinglePointWorkChain
    from aiida_mofmlp.workflows.cp2k.labelling import LabellingWorkChain

    for cls in (Cp2kSinglePointWorkChain, LabellingWorkChain, AimdWorkChain):
        assert cls._protocol_file == "cp2k.yaml"
        assert cls.get_default_protocol() == "fast"
        assert list(cls.get_available_protocols()) == ["fast", "balanced", "stringent"]
        assert cls.get_available_protocols()["fast"]["description"].startswith("GFN1-xTB")
    assert ci.available_protocols() == ["fast", "balanced", "stringent"]


@pytest.mark.parametrize("protocol", ["fast", "stringent"])
def test_single_point_builder(cp2k_code, serialize_builder, data_regression, protocol):
    from aiida import orm

    from aiida_mofmlp.workflows.cp2k.base import Cp2kSinglePointWorkChain

    builder = Cp2kSinglePointWorkChain.get_builder_from_protocol(
        cp2k_code, orm.StructureData(ase=_water()), protocol, compute_stress=True
    )
    assert builder.cp2k.metadata.options["parser_name"] == "mofmlp.cp2k"
    data_regression.check(serialize_builder(builder))


def test_labelling_builder(cp2k_code, serialize_builder, data_regression):
    from aiida_mofmlp.data.guest import GuestMoleculeData
    from aiida_mofmlp.data.structure_set import StructureSetData
    from aiida_mofmlp.workflows.cp2k.labelling import LabellingWorkChain

    builder = LabellingWorkChain.get_builder_from_protocol(
        cp2k_code,
        StructureSetData.from_frames([_water(), _water()]),
        protocol="fast",
        overrides={"max_iterations": 3, "options": {"max_wallclock_seconds": 600}},
        compute_stress=True,
        options={"queue_name": "debug"},
        guests={"CO2": GuestMoleculeData.builtin("CO2")},
        max_concurrent=2,
    )
    assert builder.single_point.max_iterations.value == 3
    assert builder.max_failed_fraction.value == 0.1  # from the protocol's labelling block
    data_regression.check(serialize_builder(builder))


def test_aimd_builder(cp2k_code, serialize_builder, data_regression, tmp_path):
    from aiida import orm

    from aiida_mofmlp.workflows.cp2k.aimd import AimdWorkChain

    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(
        "aimd:\n  timestep_fs: 1.0\n  discard_steps: 2\noptions:\n  max_wallclock_seconds: 900\n"
    )
    builder = AimdWorkChain.get_builder_from_protocol(
        cp2k_code, orm.StructureData(ase=_water()), "fast", overrides, steps=20, temperature=350.0
    )
    md = builder.cp2k.parameters["MOTION"]["MD"]
    assert (md["STEPS"], md["TIMESTEP"], md["TEMPERATURE"]) == (20, 1.0, 350.0)
    assert builder.discard_steps.value == 2
    assert builder.cp2k.metadata.options["max_wallclock_seconds"] == 900
    data_regression.check(serialize_builder(builder))


def test_aimd_builder_defaults_from_protocol(cp2k_code):
    from aiida import orm

    from aiida_mofmlp.workflows.cp2k.aimd import AimdWorkChain

    builder = AimdWorkChain.get_builder_from_protocol(cp2k_code, orm.StructureData(ase=_water()))
    md = builder.cp2k.parameters["MOTION"]["MD"]
    assert (md["STEPS"], md["TIMESTEP"], md["TEMPERATURE"]) == (10000, 0.5, 300.0)
    assert md["THERMOSTAT"]["NOSE"]["TIMECON"] == 100.0
    assert builder.temperature.value == 300.0 and builder.discard_steps.value == 0
