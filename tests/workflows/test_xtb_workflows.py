"""xTB labelling: XtbParser on real engine output, XtbBaseWorkChain handlers on fake nodes, builders."""

from __future__ import annotations

import json

import pytest
from aiida import orm
from ase.build import molecule

from aiida_mofmlp.calculations.xtb import XtbCalculation
from aiida_mofmlp.data.guest import GuestMoleculeData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.xtb.label import FAILURES_FILE, LABELLED_FILE, SUMMARY_FILE, run
from aiida_mofmlp.parsers.xtb import XtbParser
from aiida_mofmlp.workflows.xtb.base import XtbBaseWorkChain
from aiida_mofmlp.workflows.xtb.labelling import XtbLabellingWorkChain

CODES = XtbCalculation.exit_codes


def _water_box(shift: float = 0.0):
    atoms = molecule("H2O")
    atoms.positions[1, 0] += shift
    atoms.set_cell([6.0, 6.0, 6.0])
    atoms.pbc = True
    atoms.center()
    return atoms


@pytest.fixture
def xtb_code(aiida_localhost):
    return orm.InstalledCode(label="xtb", computer=aiida_localhost, filepath_executable="/bin/true").store()


@pytest.fixture(scope="module")
def engine_outputs(tmp_path_factory):
    """Real mofmlp-xtb output files for two water boxes."""
    work = tmp_path_factory.mktemp("xtb")
    from aiida_mofmlp.common.frames import write_frames

    write_frames([_water_box(), _water_box(0.05)], work / "frames.extxyz")
    run({"frames": "frames.extxyz"}, work)
    return {name: (work / name).read_text() for name in (LABELLED_FILE, FAILURES_FILE, SUMMARY_FILE)}


def _parse(generate_calc_job_node, retrieved):
    structures = StructureSetData.from_frames([_water_box(), _water_box(0.05)])
    node = generate_calc_job_node("mofmlp.xtb", inputs={"structures": structures}, retrieved=retrieved)
    return node, XtbParser.parse_from_node(node, store_provenance=False)


def test_parser_outputs_and_lineage(generate_calc_job_node, engine_outputs):
    node, (results, calcfunction) = _parse(generate_calc_job_node, engine_outputs)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    frames = results["labelled"].get_frames()
    assert [atoms.info["parent_index"] for atoms in frames] == [0, 1]
    assert all(atoms.info["calc_uuid"] == node.uuid for atoms in frames)
    assert results["failed"].get_dict() == {"count": 0, "total": 2, "frames": []}
    assert results["summary"]["method"] == "GFN1-xTB"


def test_parser_exit_codes(generate_calc_job_node, engine_outputs):
    missing = {k: v for k, v in engine_outputs.items() if k != SUMMARY_FILE}
    missing["stderr.txt"] = "mofmlp-xtb: error: frame 1 is not periodic in all three directions\n"
    _, (_, calcfunction) = _parse(generate_calc_job_node, missing)
    assert calcfunction.exit_status == CODES.ERROR_INVALID_INPUT.status
    assert "frame 1 is not periodic" in calcfunction.exit_message
    none_labelled = {
        LABELLED_FILE: "",
        FAILURES_FILE: json.dumps([{"index": 0, "reason": "SCF"}, {"index": 1, "reason": "SCF"}]),
        SUMMARY_FILE: json.dumps({"n_labelled": 0, "n_frames": 2}),
    }
    _, (results, calcfunction) = _parse(generate_calc_job_node, none_labelled)
    assert calcfunction.exit_status == CODES.ERROR_NO_FRAME_LABELLED.status
    assert results["failed"]["count"] == 2
    corrupt = {**engine_outputs, SUMMARY_FILE: "{not json"}
    _, (_, calcfunction) = _parse(generate_calc_job_node, corrupt)
    assert calcfunction.exit_status == CODES.ERROR_UNREADABLE_OUTPUT.status


@pytest.fixture
def base_workchain(generate_workchain, xtb_code):
    inputs = {
        "xtb": {
            "code": xtb_code,
            "structures": StructureSetData.from_frames([_water_box()]),
            "metadata": {"options": {"max_wallclock_seconds": 600}},
        }
    }
    process = generate_workchain(XtbBaseWorkChain, inputs)
    process.setup()
    return process


def test_walltime_handler_doubles_the_walltime(base_workchain, generate_calc_job_node):
    node = generate_calc_job_node("mofmlp.xtb", exit_status=CODES.ERROR_SCHEDULER_OUT_OF_WALLTIME.status)
    report = base_workchain.handle_out_of_walltime(node)
    assert report.do_break and report.exit_code.status == 0
    assert base_workchain.ctx.inputs.metadata["options"]["max_wallclock_seconds"] == 1200


def test_no_frame_labelled_is_not_retried(base_workchain, generate_calc_job_node):
    node = generate_calc_job_node("mofmlp.xtb", exit_status=CODES.ERROR_NO_FRAME_LABELLED.status)
    report = base_workchain.handle_no_frame_labelled(node)
    assert report.exit_code.status == XtbBaseWorkChain.exit_codes.ERROR_NO_FRAME_LABELLED.status


@pytest.mark.parametrize("protocol", ["fast", "balanced", "stringent"])
def test_builder_from_protocol(xtb_code, protocol, data_regression, serialize_builder):
    structures = StructureSetData.from_frames([_water_box()])
    builder = XtbLabellingWorkChain.get_builder_from_protocol(
        xtb_code, structures, protocol=protocol, guests={"CO2": GuestMoleculeData.builtin("CO2")}
    )
    data = serialize_builder(builder)
    data["xtb"]["xtb"]["code"] = "code"
    data_regression.check(data)


def test_builder_errors(xtb_code, tmp_path):
    structures = StructureSetData.from_frames([_water_box()])
    with pytest.raises(ValueError, match="unknown inputs"):
        XtbLabellingWorkChain.get_builder_from_protocol(xtb_code, structures, overrides={"batch": 3})
    uranium = _water_box()
    uranium[0].symbol = "U"
    with pytest.raises(ValueError, match=r"\['U'\]"):
        XtbLabellingWorkChain.get_builder_from_protocol(xtb_code, StructureSetData.from_frames([uranium]))
    path = tmp_path / "overrides.yaml"
    path.write_text("frames_per_job: 3\n")
    builder = XtbLabellingWorkChain.get_builder_from_protocol(xtb_code, structures, overrides=path)
    assert builder.frames_per_job.value == 3


def test_calculation_validators():
    from aiida_mofmlp.calculations.xtb import validate_parameters, validate_structures

    assert "valid: GFN1-xTB" in validate_parameters(orm.Dict({"method": "PBE"}))
    assert "set by the calculation" in validate_parameters(orm.Dict({"frames": "x.extxyz"}))
    flat = molecule("H2O")
    assert "not periodic" in validate_structures(StructureSetData.from_frames([flat]))
    assert validate_structures(StructureSetData.from_frames([_water_box()])) is None
