"""The loop's strategies (temperature ramp, AIMD + flat histogram): schedules, stop rules, selections."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from ase.build import bulk, molecule

from aiida_mofmlp.common import frames as fr
from aiida_mofmlp.data import StructureSetData
from aiida_mofmlp.workflows.active_learning.strategies import (
    STRATEGIES,
    ramp_decision,
    ramp_schedule,
    ramp_temperature,
)
from aiida_mofmlp.workflows.active_learning.workchain import (
    ActiveLearningWorkChain,
    validate_inputs,
    validate_parameters,
)
from aiida_mofmlp.workflows.functions import active_learning as alf
from aiida_mofmlp.workflows.functions.selection import select_frames

PAPER_RAMP = {"start_K": 100.0, "step_K": 100.0, "top_K": 1000.0}


def test_ramp_rises_by_100_K_per_iteration_up_to_1000_K():
    schedule = ramp_schedule(PAPER_RAMP, 12)
    assert schedule[:10] == [100.0 * k for k in range(1, 11)]
    assert schedule[10:] == [1000.0, 1000.0]  # held at the top until an iteration adds nothing
    assert ramp_temperature({"start_K": 150.0, "step_K": 50.0, "top_K": 300.0}, 3) == 250.0


def test_ramp_stops_only_when_an_iteration_at_the_top_adds_no_frame():
    assert ramp_decision(1000.0, 1000.0, 0)["converged"] is True
    assert ramp_decision(1000.0, 1000.0, 1)["converged"] is False
    assert ramp_decision(900.0, 1000.0, 0)["converged"] is False  # nothing new, but still rising
    assert ramp_decision(900.0, 1000.0, 0)["at_top_temperature"] is False


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"strategy": "random_walk"}, "valid: uncertainty, temperature_ramp, aimd_flat_histogram"),
        ({"strategy": "temperature_ramp", "temperature_ramp": {"step_K": 0.0}}, "the ramp must rise"),
        ({"strategy": "temperature_ramp", "temperature_ramp": {"step_K": -100.0}}, "step_K=-100.0"),
        (
            {"strategy": "temperature_ramp", "temperature_ramp": {"start_K": 500.0, "top_K": 300.0}},
            "top_K=300.0 is below start_K=500.0",
        ),
        (
            {"strategy": "temperature_ramp", "temperature_ramp": {"cbad": {"bond_width": 0.0}}},
            "cbad.bond_width must be > 0",
        ),
        ({"strategy": "temperature_ramp", "temperature_ramp": {"n_runs": 0}}, "n_runs=0"),
        (
            {"strategy": "aimd_flat_histogram", "aimd_flat_histogram": {"n_bins": None, "bin_width": -0.01}},
            "bin_width=-0.01 must be a positive number (eV/atom)",
        ),
        (
            {"strategy": "aimd_flat_histogram", "aimd_flat_histogram": {"n_bins": 0}},
            "n_bins=0 must be a positive integer",
        ),
        (
            {"strategy": "aimd_flat_histogram", "aimd_flat_histogram": {"bin_width": 0.01}},
            "exactly one of n_bins or bin_width",
        ),
        (
            {"strategy": "aimd_flat_histogram", "aimd_flat_histogram": {"temperatures": []}},
            "aimd_flat_histogram.temperatures=[]",
        ),
        ({"labelling": {"compute_stress": "yes"}}, "compute_stress='yes'"),
    ],
)
def test_bad_strategy_settings_are_named(parameters, message):
    error = validate_parameters(orm.Dict(parameters))
    assert error is not None and message in error, error


def test_strategy_defaults_are_valid():
    for strategy in STRATEGIES:
        assert validate_parameters(orm.Dict({"strategy": strategy})) is None


def test_aimd_without_a_cp2k_code_is_refused(aiida_profile, mofmlp_codes, tmp_path):
    from aiida_mofmlp.data import MaceModelData
    from aiida_mofmlp.engines.mace.foundation import make_small_model

    structure = orm.StructureData(ase=molecule("H2O", vacuum=4.0, pbc=True))
    model = MaceModelData.from_file(make_small_model(["H", "O"], tmp_path / "m.model"))
    codes = {kind: code for kind, code in mofmlp_codes.items() if kind != "cp2k"}
    overrides = {"parameters": {"strategy": "aimd_flat_histogram", "labelling": {"engine": "xtb"}}}
    with pytest.raises(ValueError, match=r"codes: missing \['cp2k'\]"):
        ActiveLearningWorkChain.get_builder_from_protocol(structure, model, codes, overrides=overrides)
    inputs = {
        "structure": structure,
        "parameters": orm.Dict(overrides["parameters"]),
        "xtb_labelling": {"frames_per_job": orm.Int(2)},
    }
    message = validate_inputs(inputs)
    assert "strategy='aimd_flat_histogram' runs CP2K AIMD" in message and "`labelling`" in message


def test_strategy_presets_follow_the_papers(aiida_profile, mofmlp_codes, tmp_path):
    """Ramp: stress labels and a stress weight; AIMD: the paper's temperatures, no stress weight."""
    from aiida_mofmlp.data import MaceModelData
    from aiida_mofmlp.engines.mace.foundation import make_small_model

    structure = orm.StructureData(ase=molecule("H2O", vacuum=4.0, pbc=True))
    model = MaceModelData.from_file(make_small_model(["H", "O"], tmp_path / "m.model"))
    ramp = ActiveLearningWorkChain.get_builder_from_protocol(
        structure,
        model,
        mofmlp_codes,
        protocol="stringent",
        overrides={"parameters": {"strategy": "temperature_ramp", "labelling": {"engine": "xtb"}}},
    )
    params = ramp.parameters.get_dict()
    assert params["strategy"] == "temperature_ramp" and params["temperature_ramp"]["n_runs"] == 50
    assert ramp_schedule(params["temperature_ramp"], 10)[-1] == 1000.0
    assert params["labelling"]["compute_stress"] is True
    assert ramp.xtb_labelling.xtb.xtb.parameters["compute_stress"] is True
    assert ramp.training.train.train.parameters["stress_weight"] > 0
    cp2k_ramp = ActiveLearningWorkChain.get_builder_from_protocol(
        structure, model, mofmlp_codes, overrides={"parameters": {"strategy": "temperature_ramp"}}
    )
    assert cp2k_ramp.labelling.compute_stress.value is True
    aimd = ActiveLearningWorkChain.get_builder_from_protocol(
        structure, model, mofmlp_codes, overrides={"parameters": {"strategy": "aimd_flat_histogram"}}
    )
    params = aimd.parameters.get_dict()["aimd_flat_histogram"]
    assert params["temperatures"] == [300.0, 1500.0] and params["md_temperatures"] == [1500.0]
    assert aimd.training.train.train.parameters["stress_weight"] == 0.0
    plain = ActiveLearningWorkChain.get_builder_from_protocol(structure, model, mofmlp_codes)
    assert plain.parameters["strategy"] == "uncertainty"
    assert "stress_weight" not in plain.training.train.train.parameters.get_dict()
    assert plain.labelling.compute_stress.value is False


def _si(strain: float = 0.0):
    atoms = bulk("Si", "diamond", a=5.43 * (1 + strain), cubic=True)
    return atoms


def test_displaced_copies_are_seeded_and_tagged_per_run(aiida_profile):
    start = _si()
    start.info["loading"] = 0
    frames = StructureSetData.from_frames([start, start.copy()])
    settings = orm.Dict({"n_copies": 3, "displacement_A": 0.05, "seed": 7})
    copies = alf.displace_frames(frames, settings)
    again = alf.displace_frames(frames, settings)
    assert len(copies) == 6
    assert [atoms.info["run"] for atoms in copies.iter_frames()] == list(range(6))
    assert [atoms.info["parent_index"] for atoms in copies.iter_frames()] == [0, 0, 0, 1, 1, 1]
    shifts = np.concatenate([atoms.positions - start.positions for atoms in copies.iter_frames()])
    assert 0.03 < shifts.std() < 0.07  # Gaussian of 0.05 Angstrom per component
    for one, two in zip(copies.iter_frames(), again.iter_frames(), strict=True):
        np.testing.assert_allclose(one.positions, two.positions)


def _cbad_pool(n_runs: int = 4, frames_per_run: int = 3):
    """Frames of ``n_runs`` runs; each run holds a frame identical to the labelled one (no new bin)."""
    reference = _si()
    rng = np.random.default_rng(1)
    frames = []
    for run in range(n_runs):
        for index in range(frames_per_run):
            atoms = reference.copy()
            if index:  # strained and rattled: new cell and bond bins
                atoms.set_cell(atoms.cell * (1 + 0.02 * (run + index)), scale_atoms=True)
                atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
            atoms.info.update({"run": run, "loading": 0})
            frames.append(atoms)
    labelled = fr.set_labels(reference.copy(), energy=0.0, forces=np.zeros((len(reference), 3)))
    return StructureSetData.from_frames(frames), StructureSetData.from_frames([labelled])


CBAD_PARAMETERS = {"method": "cbad", "group_by": "run", "quota": 1, "map": {"enabled": False}}


def test_cbad_picks_at_most_one_frame_per_run_never_one_without_a_new_bin(aiida_profile):
    pool, training = _cbad_pool()
    outputs = select_frames(
        pool=pool, parameters=orm.Dict({**CBAD_PARAMETERS, "seed": 3}), training_set=training
    )
    report = outputs["report"].get_dict()
    picked = report["selected"]
    runs = [pool.get_frame(i).info["run"] for i in picked]
    assert len(runs) == len(set(runs)) and len(picked) <= 4  # at most one per run
    assert all(i % 3 != 0 for i in picked)  # the copies of the labelled frame fill no new bin
    assert all(n > 0 for n in report["cbad"]["new_bins_per_selected"])
    same = select_frames(
        pool=pool, parameters=orm.Dict({**CBAD_PARAMETERS, "seed": 3}), training_set=training
    )
    assert same["report"]["selected"] == picked  # the seed makes it reproducible
    # the labelled frame alone: nothing new, nothing picked
    copies = StructureSetData.from_frames([pool.get_frame(0), pool.get_frame(3)])
    nothing = select_frames(pool=copies, parameters=orm.Dict(CBAD_PARAMETERS), training_set=training)
    assert "selected" not in nothing and nothing["report"]["n_selected"] == 0


def test_temperature_ramp_decision_is_a_node_with_the_table_numbers(aiida_profile):
    trust = orm.Dict(
        {key: value for key, value in zip(alf.DECISION_KEYS, (0.5, 0, 3, {}, False), strict=True)}
        | {"units": {"sigma": "eV/Angstrom"}}
    )
    at_top = {"temperature": 1000.0, "top_K": 1000.0, "n_runs": 50}
    done = alf.assess_temperature_ramp(trust, orm.Dict({"n_selected": 0, "cbad": {}}), orm.Dict(at_top))
    assert done["converged"] is True and done["row"]["temperature_K"] == 1000.0
    going = alf.assess_temperature_ramp(trust, orm.Dict({"n_selected": 2}), orm.Dict(at_top))
    assert going["converged"] is False and going["row"]["n_new_frames"] == 2
    rows = orm.List([{"iteration": 0}, {"iteration": 1, "n_training": 4}])
    table = alf.tabulate_iterations(
        rows,
        orm.Dict(
            {"trust": {"lo": 0.1, "hi": 0.4}, "converged_fraction": 0.9, "strategy": "temperature_ramp"}
        ),
        convergence_01=done,
    ).get_dict()
    assert table["strategy"] == "temperature_ramp" and table["converged"] is True
    assert table["rows"][1]["temperature_K"] == 1000.0 and table["rows"][1]["stop"] is True


def _labelled_energies(energies_per_atom):
    frames = []
    for index, energy in enumerate(energies_per_atom):
        atoms = _si()
        atoms.positions += 0.01 * index
        fr.set_labels(atoms, energy=energy * len(atoms), forces=np.zeros((len(atoms), 3)))
        atoms.info["temperature"] = 300.0
        frames.append(atoms)
    return frames


def test_flat_histogram_picks_cover_the_energy_range_and_keep_labels(aiida_profile):
    rng = np.random.default_rng(0)
    energies = np.concatenate([rng.normal(-5.0, 0.01, 40), rng.normal(-4.8, 0.01, 3)])  # a crowded well
    trajectory = StructureSetData.from_frames(_labelled_energies(energies))
    stressed = _labelled_energies([-4.9])
    stressed[0].info[fr.STRESS_KEY] = np.ones(6)
    pool = alf.collect_labelled_frames(
        orm.Dict({"aimd_T300": {"source": "aimd"}, "drop_stress": True}),
        aimd_T300=trajectory,
        aimd_T600=StructureSetData.from_frames(stressed),
    )
    assert len(pool) == 44 and all(fr.STRESS_KEY not in atoms.info for atoms in pool.iter_frames())
    parameters = {"method": "flat_histogram", "n_select": 5, "map": {"enabled": False}}
    outputs = select_frames(pool=pool, parameters=orm.Dict(parameters))
    picked = [fr.get_energy(atoms) / len(atoms) for atoms in outputs["selected"].iter_frames()]
    every = [fr.get_energy(atoms) / len(atoms) for atoms in pool.iter_frames()]
    width = (max(every) - min(every)) / 5
    assert min(picked) < min(every) + width and max(picked) > max(every) - width  # both ends covered
    assert len(picked) == 5 - outputs["report"]["n_empty_bins"]  # one per occupied bin
    assert outputs["selected"].has_energy and outputs["selected"].has_forces  # AIMD labels kept
