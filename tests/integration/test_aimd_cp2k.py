"""CP2K AIMD (GFN1-xTB, NVT Nose-Hoover) through AimdWorkChain: trajectory as a labelled structure set."""

from __future__ import annotations

import os

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms

from aiida_mofmlp.common import frames as fr
from aiida_mofmlp.workflows.cp2k.aimd import AimdWorkChain, md_parameters
from aiida_mofmlp.workflows.cp2k.base import Cp2kSinglePointWorkChain
from aiida_mofmlp.workflows.cp2k.inputs import get_protocol

os.environ["OMP_NUM_THREADS"] = "1"


def water_box() -> orm.StructureData:
    atoms = Atoms(
        "OH2",
        positions=[[2.5, 2.5, 2.5], [3.257, 3.086, 2.5], [1.743, 3.086, 2.5]],
        cell=[5.0, 5.0, 5.0],
        pbc=True,
    )
    return orm.StructureData(ase=atoms)


def test_md_input_is_nvt_nose_hoover_with_per_step_forces():
    parameters = md_parameters(get_protocol("fast"), {"O", "H"}, 300.0, 20, 0.5, 100.0)
    md = parameters["MOTION"]["MD"]
    assert parameters["GLOBAL"]["RUN_TYPE"] == "MD"
    assert (md["ENSEMBLE"], md["TIMESTEP"], md["TEMPERATURE"], md["STEPS"]) == ("NVT", 0.5, 300.0, 20)
    assert md["THERMOSTAT"]["TYPE"] == "NOSE"
    assert parameters["MOTION"]["PRINT"]["FORCES"]["EACH"]["MD"] == 1
    assert "FORCES" not in parameters["FORCE_EVAL"].get("PRINT", {})


def test_bad_md_settings_are_named(aiida_profile, require_code):
    with pytest.raises(ValueError, match="all must be positive"):
        AimdWorkChain.get_builder_from_protocol(require_code("cp2k"), water_box(), "fast", steps=0)


@pytest.mark.integration
def test_aimd_trajectory_is_labelled_in_ev_and_matches_a_single_point(require_code):
    """4 steps of xTB MD: 5 frames; frame 0 equals a single point of the input structure (units)."""
    code = require_code("cp2k")
    structure = water_box()
    builder = AimdWorkChain.get_builder_from_protocol(code, structure, "fast", temperature=300.0, steps=4)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_status
    trajectory = results["trajectory"]
    assert trajectory.count == 5
    assert trajectory.has_energy and trajectory.has_forces
    frames = trajectory.get_frames()
    calculation = node.called[0]
    assert {atoms.info["calc_uuid"] for atoms in frames} == {calculation.uuid}
    assert calculation.outputs.md_trajectory.get_array("forces").shape == (5, 3, 3)
    assert [atoms.info["step"] for atoms in frames] == [0, 1, 2, 3, 4]
    assert all(atoms.info["source"] == "aimd" and atoms.info["temperature"] == 300.0 for atoms in frames)
    assert not np.allclose(frames[0].positions, frames[-1].positions)

    _, sp_node = run_get_node(Cp2kSinglePointWorkChain.get_builder_from_protocol(code, structure, "fast"))
    assert sp_node.is_finished_ok
    from aiida_mofmlp.workflows.functions.labels import read_labels

    labels = read_labels(sp_node.outputs.labels)
    assert fr.get_energy(frames[0]) == pytest.approx(labels["energy"], abs=1e-4)
    np.testing.assert_allclose(fr.get_forces(frames[0]), labels["forces"], atol=1e-3)
