"""WidomParser on real ``mofmlp-widom`` outputs: results, the all-overlap failure, refused input."""

from __future__ import annotations

import pytest
from ase.io import read

from aiida_mofmlp.common.frames import write_frames
from aiida_mofmlp.data.guest import BUILTIN_GUESTS
from aiida_mofmlp.engines.adsorption.widom import ARRAYS_FILE, RESULTS_FILE, run_widom
from aiida_mofmlp.engines.io import STDERR_FILENAME
from aiida_mofmlp.engines.mace.toy import build_tiny_model
from aiida_mofmlp.parsers.widom import WidomParser

pytestmark = pytest.mark.integration

CO2 = {"symbols": BUILTIN_GUESTS["CO2"]["symbols"], "positions": BUILTIN_GUESTS["CO2"]["positions"]}


@pytest.fixture(scope="module")
def engine_outputs(tmp_path_factory, raspa_share_dir):
    """Retrieved files of two real runs: a normal one and one whose every insertion overlaps."""
    path = tmp_path_factory.mktemp("widom_parser")
    build_tiny_model(["H", "C", "N", "O", "Zn"], path / "tiny.model")
    write_frames([read(raspa_share_dir / "structures" / "cif" / "ZnBDCdabco.cif")], path / "frames.extxyz")
    outputs = {}
    for name, overlap in (("ok", 1.0), ("all_overlap", 30.0)):
        workdir = path / name
        workdir.mkdir()
        settings = {
            "frames": str(path / "frames.extxyz"),
            "model": str(path / "tiny.model"),
            "guest": CO2,
            "insertions_per_frame": 6,
            "overlap_distance": overlap,
            "n_blocks": 2,
        }
        run_widom(settings, workdir)
        outputs[name] = {name: (workdir / name).read_bytes() for name in (RESULTS_FILE, ARRAYS_FILE)}
    return outputs


@pytest.fixture
def parse(generate_calc_job_node):
    def _parse(retrieved: dict):
        node = generate_calc_job_node("mofmlp.widom", exit_status=None, retrieved=retrieved)
        return WidomParser.parse_from_node(node, store_provenance=False)

    return _parse


def test_outputs_with_units(parse, engine_outputs):
    outputs, calcfunction = parse(engine_outputs["ok"])
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    widom = outputs["widom"].get_dict()
    assert widom["henry_coefficient"] > 0 and widom["henry_coefficient_unit"] == "mol/kg/Pa"
    assert widom["adsorption_energy_unit"] == "kJ/mol"
    insertions = outputs["insertions"]
    assert insertions.get_array("delta_energy").shape == (6,)
    assert insertions.base.attributes.get("units")["delta_energy"] == "eV"


def test_every_insertion_overlapping_is_a_named_failure(parse, engine_outputs):
    _, calcfunction = parse(engine_outputs["all_overlap"])
    assert calcfunction.exit_status == 410
    assert "lower parameters.overlap_distance" in calcfunction.exit_message


def test_refused_input_and_missing_output(parse):
    stderr = "mofmlp-widom: error: temperature must be > 0 K, got -1\n"
    _, calcfunction = parse({STDERR_FILENAME: stderr})
    assert calcfunction.exit_status == 302
    assert "temperature must be > 0 K" in calcfunction.exit_message
    _, calcfunction = parse({STDERR_FILENAME: "Killed\n"})
    assert calcfunction.exit_status == 300
    assert "widom.json" in calcfunction.exit_message
