"""Selection in AiiDA: select_frames calcfunction, SelectCalculation + SelectParser, SelectionWorkChain."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin

from aiida_mofmlp.common import frames as fr

SMALL = {"soap": {"r_cut": 4.5, "n_max": 3, "l_max": 2}}


def _md_frames(n_frames: int = 40, seed: int = 5) -> list:
    """A short EMT Langevin trajectory of Cu32 (+1 H guest in half of the frames), labelled with EMT."""
    rng = np.random.default_rng(seed)
    frames = []
    for loading in (0, 1):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
        guest_id = np.zeros(len(atoms), dtype=int)
        if loading:
            atoms.append("H")
            atoms.positions[-1] = (1.805, 1.805, 1.805)
            guest_id = np.append(guest_id, 1)
        atoms.arrays["guest_id"] = guest_id
        atoms.calc = EMT()
        dyn = Langevin(atoms, 2 * units.fs, temperature_K=800, friction=0.05, rng=rng, fixcm=False)
        for _ in range(n_frames // 2):
            dyn.run(3)
            frame = atoms.copy()
            fr.set_labels(frame, energy=atoms.get_potential_energy(), forces=atoms.get_forces())
            frame.info["loading"] = loading
            frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def frames():
    return _md_frames()


@pytest.fixture
def pool(aiida_profile, frames):
    from aiida_mofmlp.data.structure_set import StructureSetData

    return StructureSetData.from_frames(frames).store()


@pytest.fixture
def training(aiida_profile, frames):
    from aiida_mofmlp.data.structure_set import StructureSetData

    return StructureSetData.from_frames(frames[::8]).store()


def _sigma(n: int) -> orm.ArrayData:
    node = orm.ArrayData()
    node.set_array("sigma_max", np.linspace(0.0, 0.3, n))
    return node.store()


def test_select_frames_calcfunction(pool, training, frames):
    from aiida_mofmlp.workflows.functions.selection import select_frames

    params = {
        **SMALL,
        "method": "fps",
        "quota": 3,
        "group_by": "loading",
        "sigma_window": [0.05, 0.25],
        "dedup_threshold": 1e-5,
    }
    outputs, node = run_get_node(
        select_frames,
        pool=pool,
        parameters=orm.Dict(params),
        training_set=training,
        sigma=_sigma(len(frames)),
    )
    assert node.is_finished_ok
    report = outputs["report"].get_dict()
    sigma = np.linspace(0.0, 0.3, len(frames))
    assert report["n_selected"] == 6 and report["groups"]["0"]["n_selected"] == 3
    assert all(0.05 <= sigma[i] <= 0.25 for i in report["selected"])
    selected = outputs["selected"]
    assert selected.count == 6
    assert [f.info["parent_index"] for f in selected.iter_frames()] == report["selected"]
    assert not set(report["selected"]) & set(range(0, len(frames), 8))  # training frames are never re-picked
    assert outputs["map"].get_array("pool_xy").shape == (len(frames), 2)
    assert outputs["map"].get_array("training_xy").shape == (training.count, 2)
    assert selected.base.links.get_incoming().first().node.pk == node.pk


def test_select_calculation_runs_engine_and_parses(pool, training, mofmlp_codes):
    from aiida_mofmlp.calculations.select import SelectCalculation

    code = mofmlp_codes["select"]
    assert code is not None, "mofmlp-select is not installed in the environment"
    params = {**SMALL, "method": "kmeans", "n_select": 5}
    outputs, node = run_get_node(
        SelectCalculation, code=code, pool=pool, training_set=training, parameters=orm.Dict(params)
    )
    assert node.is_finished_ok, node.exit_message
    report = outputs["report"].get_dict()
    assert report["n_selected"] == outputs["selected"].count == 5
    assert outputs["map"].get_array("selected").tolist() == report["selected"]
    with outputs["map_figure"].open(mode="rb") as handle:
        assert handle.read(4) == b"\x89PNG"


def test_select_calculation_exit_codes(pool, mofmlp_codes):
    from aiida_mofmlp.calculations.select import SelectCalculation

    code = mofmlp_codes["select"]
    # every pool frame already labelled: CBAD finds no new bin -> ERROR_NO_FRAME_SELECTED
    params = {"method": "cbad", "map": {"enabled": False}}
    _, node = run_get_node(
        SelectCalculation, code=code, pool=pool, training_set=pool, parameters=orm.Dict(params)
    )
    assert node.exit_status == SelectCalculation.exit_codes.ERROR_NO_FRAME_SELECTED.status
    # the engine rejects an element missing from soap.species -> ERROR_INVALID_INPUT naming it
    params = {"method": "fps", "n_select": 2, "soap": {**SMALL["soap"], "species": ["Cu"]}}
    _, node = run_get_node(SelectCalculation, code=code, pool=pool, parameters=orm.Dict(params))
    assert node.exit_status == SelectCalculation.exit_codes.ERROR_INVALID_INPUT.status
    assert "missing from soap.species" in node.exit_message


def test_select_calculation_validates_inputs(pool, mofmlp_codes):
    from aiida_mofmlp.calculations.select import SelectCalculation

    code = mofmlp_codes["select"]
    with pytest.raises(ValueError, match=r"sigma: 3 values for a pool of 40 frames"):
        run_get_node(SelectCalculation, code=code, pool=pool, sigma=_sigma(3))
    with pytest.raises(ValueError, match=r"sigma_window is set but no `sigma`"):
        run_get_node(
            SelectCalculation, code=code, pool=pool, parameters=orm.Dict({"sigma_window": [0.06, 0.24]})
        )
    with pytest.raises(ValueError, match=r"unknown selection parameter"):
        run_get_node(SelectCalculation, code=code, pool=pool, parameters=orm.Dict({"n_clusters": 3}))


def test_selection_workchain_from_protocol(pool, mofmlp_codes):
    from aiida_mofmlp.workflows.selection.base import SelectionWorkChain, get_parameters_from_protocol

    assert get_parameters_from_protocol("balanced")["soap"] == {
        "r_cut": 6.0,
        "n_max": 9,
        "l_max": 3,
        "framework_only": False,
    }
    with pytest.raises(ValueError, match="unknown selection protocol 'huge'"):
        get_parameters_from_protocol("huge")
    builder = SelectionWorkChain.get_builder_from_protocol(
        mofmlp_codes["select"],
        pool,
        protocol="fast",
        overrides={"select": {"parameters": {"n_select": 4, **SMALL, "pca_components": 5}}},
    )
    outputs, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    assert outputs["report"]["method"] == "fps"
    assert outputs["selected"].count == 4
