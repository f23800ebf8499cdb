"""REPEAT / RESP framework charges from the real CP2K (PBE-D3, small grids) for RASPA, and their bad input.

The test system is a water molecule in a periodic 5 Angstrom box (a tiny molecular crystal, 3 atoms): the
CP2K single point with the &RESP fit takes a few seconds on one core.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms

from aiida_mofmlp.data.guest import GuestMoleculeData
from aiida_mofmlp.parsers.parse_raw.cp2k import RESP_CHARGES_FILE, parse_resp_charges
from aiida_mofmlp.workflows.functions.adsorption import framework_charges_from_cp2k
from aiida_mofmlp.workflows.functions.raspa import cif_charges, prepare_framework, write_force_field
from aiida_mofmlp.workflows.properties.adsorption import (
    AdsorptionWorkChain,
    cp2k_charges_builder,
    resp_section,
    validate_inputs,
)
from aiida_mofmlp.workflows.raspa.isotherm import IsothermWorkChain, default_parameters

os.environ["OMP_NUM_THREADS"] = "1"

#: PBE-D3 / DZVP-MOLOPT-SR-GTH (protocol balanced) with small grids to keep the test short
SMALL_GRIDS = {
    "parameters": {"FORCE_EVAL": {"DFT": {"MGRID": {"CUTOFF": 200, "REL_CUTOFF": 30, "NGRIDS": 3}}}}
}


def water_crystal() -> orm.StructureData:
    """A water molecule (mirror-symmetric about x = 2.5) in a periodic cubic 5 Angstrom box."""
    atoms = Atoms(
        "OH2",
        positions=[[2.5, 2.5, 2.5], [3.257, 3.086, 2.5], [1.743, 3.086, 2.5]],
        cell=[5.0, 5.0, 5.0],
        pbc=True,
    )
    return orm.StructureData(ase=atoms)


def cp2k_settings(protocol: str = "balanced") -> dict:
    """``settings.cp2k`` of the work chain: the protocol's defaults with small grids."""
    defaults = AdsorptionWorkChain.get_protocol_inputs(None)["settings"]["cp2k"]
    return {**defaults, "protocol": protocol, "overrides": SMALL_GRIDS}


def test_resp_section_of_each_method():
    repeat = resp_section("repeat", {"SPHERE_SAMPLING": {"AUTO_VDW_RADII_TABLE": "UFF"}})
    assert repeat["USE_REPEAT_METHOD"] is True and repeat["RESTRAIN_HEAVIES_TO_ZERO"] is False
    assert repeat["SPHERE_SAMPLING"] == {"AUTO_VDW_RADII_TABLE": "UFF"}
    assert repeat["PRINT"] == {"RESP_CHARGES_TO_FILE": {}}
    resp = resp_section("resp", {"PRINT": {"V_RESP_CUBE": {}}})
    assert resp["USE_REPEAT_METHOD"] is False and resp["RESTRAIN_HEAVIES_TO_ZERO"] is True
    assert resp["PRINT"] == {"V_RESP_CUBE": {}, "RESP_CHARGES_TO_FILE": {}}


def test_parse_resp_charges_orders_atoms_and_refuses_garbage():
    text = " RESP charges:\n  Type |   Atom   |    Charge\n\n"
    text += "  RESP       2  H     0.4\n  RESP       1  O    -0.8\n"
    kinds, charges = parse_resp_charges(text + "  RESP       3  H     0.4\n  Total  0.0\n")
    assert kinds == ["O", "H", "H"]
    assert np.allclose(charges, [-0.8, 0.4, 0.4])
    with pytest.raises(ValueError, match=r"atom indices are not 1\.\.2"):
        parse_resp_charges(text.replace("RESP       1", "RESP       5"))
    with pytest.raises(ValueError, match="no 'RESP <index> <kind> <charge>' lines"):
        parse_resp_charges("nothing here")


@pytest.mark.integration
@pytest.mark.parametrize("method", ["repeat", "resp"])
def test_cp2k_charges_are_neutral_polar_and_reach_raspa(require_code, method):
    """Real CP2K: O negative, H positive and equal by symmetry, sum exactly zero; RASPA's CIF carries them."""
    code = require_code("cp2k")
    structure = water_crystal()
    builder = cp2k_charges_builder(code, structure, method, cp2k_settings())
    resp = builder.cp2k.parameters.get_dict()["FORCE_EVAL"]["PROPERTIES"]["RESP"]
    assert resp["USE_REPEAT_METHOD"] is (method == "repeat")
    assert resp["SPHERE_SAMPLING"]["AUTO_VDW_RADII_TABLE"] == "UFF"
    start = time.perf_counter()
    results, node = run_get_node(builder)
    elapsed = time.perf_counter() - start
    assert node.is_finished_ok, node.exit_message
    assert RESP_CHARGES_FILE in results["retrieved"].base.repository.list_object_names()

    assert results["resp_charges"].creator.process_label == "Cp2kCalculation"  # made by the CalcJob's parser
    result = framework_charges_from_cp2k(structure, results["resp_charges"], orm.Str(method))
    charges = result["charges"].get_array("charges")
    attributes = result["charges"].base.attributes.all
    print(f"{method} charges (e) O, H, H: {np.round(charges, 4).tolist()} ({elapsed:.1f} s)", attributes)
    assert abs(charges.sum()) < 1e-12  # made exactly neutral (CP2K prints 6 decimals)
    assert abs(attributes["total_before"]) < 1e-5  # CP2K's fit already constrains the total charge
    assert attributes["method"] == {"repeat": "CP2K REPEAT", "resp": "CP2K RESP"}[method]
    assert attributes["unit"] == "e"
    assert attributes["fit_rms"] > 0 and attributes["fit_rrms"] > 0
    assert charges[0] < -0.2 and charges[1] > 0.1 and charges[2] > 0.1
    assert charges[1] == pytest.approx(charges[2], abs=0.02)  # the two H are mirror images
    if method == "repeat":
        assert -1.0 < charges[0] < -0.5  # REPEAT water oxygen (TIP3P: -0.834 e)

    # what the AdsorptionWorkChain hands to RASPA: the charged CIF with framework_charges 'cif'
    cif = result["cif"]
    raspa_builder = IsothermWorkChain.get_builder_from_protocol(
        require_code("raspa"),
        cif,
        GuestMoleculeData.builtin("CO2"),
        protocol="fast",
        overrides={"parameters": {"framework_charges": "cif", "pressures": [1.0], "cutoff": 6.0}},
    )
    assert raspa_builder.parameters["framework_charges"] == "cif"
    parameters = orm.Dict({**default_parameters(), **raspa_builder.parameters.get_dict()})
    raspa_framework = prepare_framework(raspa_builder.structure, parameters)  # IsothermWorkChain.setup
    assert np.allclose(cif_charges(raspa_framework), charges, atol=1e-5)
    summary = write_force_field(raspa_framework, raspa_builder.guest, parameters)["summary"]
    assert summary["electrostatics"] == "Ewald" and summary["framework_charges"] == "cif"


@pytest.fixture
def adsorption_inputs(tiny_models) -> dict:
    return {
        "structure": water_crystal(),
        "guest": GuestMoleculeData.builtin("CO2"),
        "models": {"model_0": tiny_models["model_0"]},
        "pressures": orm.List([1.0]),
        "framework_charges": orm.Str("repeat"),
        "codes": {},
    }


@pytest.mark.parametrize("how", ["fast protocol", "xTB by hand"])
def test_repeat_with_the_xtb_protocol_is_refused_before_any_job(
    mofmlp_codes, tiny_models, adsorption_inputs, how
):
    """framework_charges repeat with CP2K's GFN1-xTB protocol: a clear error, no job started."""
    settings = {"cp2k": {"protocol": "fast"}}
    if how == "xTB by hand":  # a DFT protocol turned into xTB by its parameter overrides is refused too
        settings = {"cp2k": {"overrides": {"parameters": {"FORCE_EVAL": {"DFT": {"QS": {"METHOD": "XTB"}}}}}}}
    message = validate_inputs({**adsorption_inputs, "settings": orm.Dict(settings)})
    assert message is not None and message.startswith("framework_charges: 'repeat' fits charges")
    assert "is GFN1-xTB; use 'xtb' charges for the xTB protocol" in message
    with pytest.raises(ValueError, match="use 'xtb' charges for the xTB protocol"):
        cp2k_charges_builder(mofmlp_codes["cp2k"], water_crystal(), "repeat", settings["cp2k"])

    # the whole work chain refuses it at launch, before any calculation
    builder = AdsorptionWorkChain.get_builder_from_protocol(
        water_crystal(),
        [tiny_models["model_0"]],
        {kind: mofmlp_codes[kind] for kind in ("md", "widom", "raspa", "cp2k")},
        protocol="fast",
        overrides={"pressures": [1.0], "loadings": [1], "framework_charges": "repeat", "settings": settings},
        guest="CO2",
    )
    n_jobs = orm.QueryBuilder().append(orm.CalcJobNode).count()
    with pytest.raises(ValueError, match="use 'xtb' charges for the xTB protocol"):
        run_get_node(builder)
    assert orm.QueryBuilder().append(orm.CalcJobNode).count() == n_jobs


def test_repeat_needs_the_cp2k_code_and_known_elements(adsorption_inputs):
    assert validate_inputs(adsorption_inputs) is None  # the default CP2K protocol (balanced) is DFT
    with_raspa = {**adsorption_inputs, "codes": {"raspa": "a RASPA code"}}
    assert "framework_charges: 'repeat' needs codes.cp2k" in validate_inputs(with_raspa)
    unknown = {**adsorption_inputs, "settings": orm.Dict({"cp2k": {"protocol": "precise"}})}
    assert "settings.cp2k: unknown CP2K protocol 'precise'" in validate_inputs(unknown)


#: the shortest AdsorptionWorkChain that still runs every step (tiny random MACE models, one pressure)
RUN_OVERRIDES = {
    "pressures": [10.0],
    "loadings": [1],
    "framework_charges": "repeat",
    "settings": {
        "gcmc": {
            "equilibration_steps": 10,
            "production_steps": 20,
            "attempt_interval": 1,
            "thermo_interval": 1,
            "dump_interval": 10,
            "n_blocks": 3,
            "peng_robinson_above": 1000.0,
        },
        "nvt": {"steps": 20, "thermo_interval": 2, "dump_interval": 10},
        "widom": {"insertions_per_frame": 10, "max_frames": 2},
        "raspa": {
            "protocol": "fast",
            "parameters": {"cutoff": 6.0, "widom_cycles": 10, "init_cycles": 10, "prod_cycles": 20},
        },
        "cp2k": {"overrides": SMALL_GRIDS},
    },
}


@pytest.mark.integration
def test_adsorption_workchain_hands_repeat_charges_to_raspa(mofmlp_codes, tiny_models):
    """The whole work chain with framework_charges repeat: CP2K job, charges node, RASPA with them."""
    missing = [kind for kind in ("md", "widom", "raspa", "cp2k") if mofmlp_codes.get(kind) is None]
    if missing:
        pytest.fail(f"programs {missing} are not installed; run the README's test command to install them")
    structure = water_crystal()
    builder = AdsorptionWorkChain.get_builder_from_protocol(
        structure,
        [tiny_models["model_0"], tiny_models["model_1"]],
        {kind: mofmlp_codes[kind] for kind in ("md", "widom", "raspa", "cp2k")},
        protocol="fast",
        overrides=RUN_OVERRIDES,
        guest="CO2",
    )
    start = time.perf_counter()
    results, node = run_get_node(builder)
    print(f"AdsorptionWorkChain with REPEAT charges: {time.perf_counter() - start:.1f} s")
    assert node.is_finished_ok, (node.exit_status, node.exit_message)

    outgoing = {link.link_label: link.node for link in node.base.links.get_outgoing().all()}
    cp2k = outgoing["charges_repeat"]
    assert cp2k.process_label == "Cp2kSinglePointWorkChain" and cp2k.is_finished_ok
    resp = cp2k.inputs.cp2k.parameters.get_dict()["FORCE_EVAL"]["PROPERTIES"]["RESP"]
    assert resp["USE_REPEAT_METHOD"] is True
    charges_node = results["framework_charges"]
    assert charges_node.creator.process_label == "framework_charges_from_cp2k"
    assert charges_node.base.attributes.get("method") == "CP2K REPEAT"
    charges = charges_node.get_array("charges")
    print("REPEAT charges (e) O, H, H:", np.round(charges, 4).tolist())
    assert abs(charges.sum()) < 1e-12
    assert charges[0] < -0.5 and min(charges[1:]) > 0.25
    # RASPA ran on the charged CIF made with those charges, with Ewald electrostatics
    raspa = outgoing["raspa_isotherm"]
    assert raspa.inputs.structure.uuid == charges_node.creator.outputs.cif.uuid
    assert raspa.outputs.force_field["framework_charges"] == "cif"
    assert raspa.outputs.force_field["electrostatics"] == "Ewald"
    assert np.allclose(cif_charges(raspa.outputs.framework), charges, atol=1e-5)
