"""The active-learning decisions and frame bookkeeping (calcfunctions, validators, builders) on small data."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from ase import Atoms
from ase.build import molecule

from aiida_mofmlp.common import frames as fr
from aiida_mofmlp.common.loading import fold_guests, place_guests
from aiida_mofmlp.data import GuestMoleculeData, StructureSetData
from aiida_mofmlp.workflows.active_learning.workchain import (
    ActiveLearningWorkChain,
    validate_inputs,
    validate_parameters,
)
from aiida_mofmlp.workflows.functions import active_learning as alf


def _framework() -> Atoms:
    """A 10 Angstrom cubic cell with a few framework atoms near one corner."""
    atoms = Atoms(
        "Zn2O2", positions=[[0, 0, 0], [2, 0, 0], [0, 2, 0], [2, 2, 0]], cell=[10, 10, 10], pbc=True
    )
    atoms.set_array(fr.GUEST_ID_KEY, np.zeros(4, dtype=int))
    return atoms


def _deviation(sigma, framework=None, guest=None) -> orm.ArrayData:
    node = orm.ArrayData()
    node.set_array("sigma_max", np.asarray(sigma, float))
    node.set_array("sigma_max_framework", np.asarray(framework if framework is not None else sigma, float))
    node.set_array("sigma_max_guest", np.asarray(guest if guest is not None else sigma, float))
    return node


def _explored(loadings) -> StructureSetData:
    frames = []
    guest = GuestMoleculeData.builtin("CO2").get_ase()
    for loading in loadings:
        atoms = place_guests(_framework(), guest, loading) if loading else _framework()
        frames.append(atoms)
    return StructureSetData.from_frames(frames)


def test_place_and_fold_guests_keep_molecules_whole():
    guest = GuestMoleculeData.builtin("CO2").get_ase()
    loaded = place_guests(_framework(), guest, 2)
    assert fr.n_guests(loaded) == 2
    assert len(loaded) == 4 + 2 * len(guest)
    # a 2x1x1 supercell snapshot folds back into the unit cell with the same guests, bonds intact
    snapshot = loaded.repeat((2, 1, 1))
    ids = fr.guest_ids(loaded)
    snapshot.set_array(fr.GUEST_ID_KEY, np.concatenate([ids, np.where(ids > 0, ids + 2, 0)]))
    folded = fold_guests(_framework(), snapshot, 2)
    assert fr.n_guests(folded) == 2
    carbon = [i for i, s in enumerate(folded.get_chemical_symbols()) if s == "C"]
    for c in carbon:
        assert min(
            folded.get_distance(c, j, mic=True) for j in range(len(folded)) if j != c
        ) == pytest.approx(1.16, abs=0.02)
    assert fold_guests(_framework(), snapshot, 5) is None  # only 4 guests in the snapshot


def test_assess_exploration_converges_only_when_every_loading_is_trusted(aiida_profile):
    explored = _explored([0, 0, 1, 1])
    settings = {"trust": {"lo": 0.06, "hi": 0.24}, "converged_fraction": 0.5, "n_blowups": 0}
    result = alf.assess_exploration(explored, _deviation([0.01, 0.02, 0.1, 0.03]), orm.Dict(settings))
    summary = result["summary"].get_dict()
    assert summary["converged"] is True  # loading 1: half below lo, which meets 0.5
    assert summary["per_loading"]["1"]["n_candidates"] == 1
    window = result["window_sigma"].get_array("sigma_max")
    assert window.tolist() == [0.0, 0.0, 0.1, 0.0]

    strict = {**settings, "converged_fraction": 0.95}
    summary = alf.assess_exploration(explored, _deviation([0.01, 0.02, 0.1, 0.03]), orm.Dict(strict))
    assert summary["summary"]["converged"] is False
    above = alf.assess_exploration(explored, _deviation([0.01, 0.02, 0.03, 0.5]), orm.Dict(settings))
    assert above["summary"]["converged"] is False  # one frame above hi
    assert np.isinf(above["window_sigma"].get_array("sigma_max")[3])
    blown = alf.assess_exploration(explored, _deviation([0.01] * 4), orm.Dict({**settings, "n_blowups": 1}))
    assert blown["summary"]["converged"] is False


def test_per_group_trust_window_use_each_groups_sigma(aiida_profile):
    deviation = {
        "sigma_max": np.array([0.1, 0.1]),
        "sigma_max_framework": np.array([0.02, 0.1]),
        "sigma_max_guest": np.array([0.1, np.nan]),
    }
    trust = {"lo": 0.06, "hi": 0.24, "framework": [0.05, 0.2], "guest": [0.15, 0.5]}
    trusted, failed = alf.classify(deviation, trust)
    assert trusted.tolist() == [True, False]  # frame 0: guest 0.1 < 0.15 and framework 0.02 < 0.05
    assert failed.tolist() == [False, False]
    trusted, _ = alf.classify(deviation, {"lo": 0.06, "hi": 0.24})
    assert trusted.tolist() == [False, False]


def test_extend_training_set_tags_iteration_and_keeps_previous(aiida_profile):
    labelled = []
    for shift in (0.0, 0.1):
        atoms = _framework()
        atoms.positions[0, 0] += shift
        fr.set_labels(atoms, energy=-1.0 - shift, forces=np.zeros((4, 3)))
        atoms.info[fr.PREDICTED_ENERGY_KEY] = 5.0
        labelled.append(atoms)
    first = alf.extend_training_set(orm.Int(0), labelled=StructureSetData.from_frames(labelled[:1]))
    second = alf.extend_training_set(
        orm.Int(1), labelled=StructureSetData.from_frames(labelled[1:]), previous=first
    )
    frames = second.get_frames()
    assert [atoms.info["iteration"] for atoms in frames] == [0, 1]
    assert all(fr.PREDICTED_ENERGY_KEY not in atoms.info for atoms in frames)
    assert first.uuid in [link.node.uuid for link in second.creator.base.links.get_incoming().all()]


def test_pick_random_frames_per_loading_is_seeded(aiida_profile):
    frames = _explored([0] * 6 + [1] * 3)
    settings = orm.Dict({"n_per_loading": 2, "seed": 3, "skip": 1})
    first = alf.pick_random_frames(frames, settings)
    again = alf.pick_random_frames(frames, settings)
    indices = [atoms.info["parent_index"] for atoms in first.get_frames()]
    assert indices == [atoms.info["parent_index"] for atoms in again.get_frames()]
    assert len(indices) == 4 and 0 not in indices and 6 not in indices  # the first of each loading skipped
    assert sorted(fr.n_guests(atoms) for atoms in first.get_frames()) == [0, 0, 1, 1]


def test_build_starting_frames_places_guests_without_snapshots(aiida_profile):
    structure = orm.StructureData(ase=_framework())
    guest = GuestMoleculeData.builtin("CO2")
    frames = alf.build_starting_frames(structure, orm.Dict({"loadings": [1, 3]}), guest=guest).get_frames()
    assert [fr.n_guests(atoms) for atoms in frames] == [0, 1, 3]
    assert [atoms.info["source"] for atoms in frames] == ["cif", "placed", "placed"]


def test_validation_errors_compare_ensemble_mean_with_labels(aiida_profile):
    frames = []
    for energy in (-10.0, -12.0):
        atoms = _framework()
        fr.set_labels(atoms, energy=energy, forces=np.ones((4, 3)))
        frames.append(atoms)
    deviation = orm.ArrayData()
    deviation.set_array("energies", np.array([[-10.4, -12.0], [-10.0, -12.4]]))  # mean off by 0.2 eV
    deviation.set_array("forces_mean", np.full((8, 3), 1.5))
    deviation.set_array("atom_offsets", np.array([0, 4, 8]))
    result = alf.validation_errors(StructureSetData.from_frames(frames), deviation)
    metrics = result["metrics"].get_dict()
    assert metrics["mae_e_per_atom"] == pytest.approx(0.2 / 4)
    assert metrics["mae_f"] == pytest.approx(0.5)
    assert metrics["rmse_f"] == pytest.approx(0.5)
    predicted = result["frames"].get_frame(1)
    assert predicted.info[fr.PREDICTED_ENERGY_KEY] == pytest.approx(-12.2)
    assert not any("stress" in key for key in metrics)  # no stress prediction, no stress error


def test_validation_errors_add_stress_when_labelled_and_predicted(aiida_profile):
    frames = []
    for loading, stress in ((0, np.full(6, 0.01)), (1, None)):
        atoms = _framework()
        atoms.info["loading"] = loading
        fr.set_labels(atoms, energy=-10.0, forces=np.ones((4, 3)), stress=stress)
        frames.append(atoms)
    deviation = orm.ArrayData()
    deviation.set_array("energies", np.array([[-10.0, -10.0], [-10.0, -10.0]]))
    deviation.set_array("forces_mean", np.ones((8, 3)))
    deviation.set_array("atom_offsets", np.array([0, 4, 8]))
    deviation.set_array("stress_mean", np.array([[0.03, 0.01, 0.01, 0.01, 0.01, -0.02], np.zeros(6)]))
    result = alf.validation_errors(StructureSetData.from_frames(frames), deviation)
    metrics = result["metrics"].get_dict()
    assert metrics["n_frames_stress"] == 1  # only the stress-labelled frame
    assert metrics["mae_stress"] == pytest.approx((0.02 + 0.03) / 6)
    assert metrics["mae_stress_gpa"] == pytest.approx((0.02 + 0.03) / 6 * 160.2176634)
    assert metrics["units"]["mae_stress"] == "eV/Angstrom^3"
    assert metrics["per_loading"]["0"]["mae_stress"] == pytest.approx(metrics["mae_stress"])
    assert "mae_stress" not in metrics["per_loading"]["1"]
    np.testing.assert_allclose(
        result["frames"].get_frame(0).info[fr.PREDICTED_STRESS_KEY], deviation.get_array("stress_mean")[0]
    )


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"loadings": [0, 1]}, "positive integers"),
        ({"trust": {"lo": 0.3, "hi": 0.2}}, "0 < lo < hi"),
        ({"temperatures": []}, "non-empty"),
        ({"converged_fraction": 1.5}, "(0, 1]"),
        ({"selection_per_loading": -1}, "non-negative integer"),
        ({"first_iteration": 4, "max_iterations": 2}, "first_iteration <= max_iterations"),
        ({"trust": {"lo": 0.06, "hi": 0.24, "guest": [0.3]}}, "trust.guest"),
        ({"temperature": 300}, "unknown keys ['temperature']"),
        ({"gcmc": {"pressures_bar": [-1.0]}}, "positive numbers (bar)"),
        ({"initial_sampling": {"md_steps": 0}}, "initial_sampling.md_steps=0"),
        ({"gcmc": {"pressures_bar": [1.0], "fugacity": "virial"}}, "parameters.gcmc:"),
    ],
)
def test_bad_loop_parameters_are_named(parameters, message):
    error = validate_parameters(orm.Dict(parameters))
    assert error is not None and message in error


def test_loadings_need_a_guest_and_models_need_every_element(aiida_profile, tmp_path):
    from aiida_mofmlp.data import MaceModelData
    from aiida_mofmlp.engines.mace.foundation import make_small_model

    structure = orm.StructureData(ase=_framework())
    inputs = {"structure": structure, "parameters": orm.Dict({"loadings": [1]})}
    assert "needs the `guest` input" in validate_inputs(inputs)
    model = MaceModelData.from_file(make_small_model(["Zn", "O"], tmp_path / "m.model"))
    inputs.update(guest=GuestMoleculeData.builtin("CO2"), foundation_model=model)
    assert "['C']" in validate_inputs(inputs)  # the guest's carbon is missing from the model
    no_start = {"structure": structure, "parameters": orm.Dict({"initial_sampling": {"enabled": False}})}
    assert "initial_training_set" in validate_inputs(no_start)


def test_builder_from_protocol_resolves_every_stage(aiida_profile, mofmlp_codes, tmp_path):
    from aiida_mofmlp.data import MaceModelData
    from aiida_mofmlp.engines.mace.foundation import make_small_model

    structure = orm.StructureData(ase=molecule("H2O", vacuum=4.0, pbc=True))
    model = MaceModelData.from_file(make_small_model(["H", "O", "C"], tmp_path / "m.model"))
    with pytest.raises(ValueError, match="missing"):
        ActiveLearningWorkChain.get_builder_from_protocol(structure, model, {"cp2k": mofmlp_codes["cp2k"]})
    with pytest.raises(ValueError, match="unknown keys"):
        ActiveLearningWorkChain.get_builder_from_protocol(
            structure, model, mofmlp_codes, overrides={"lammps": {}}
        )
    builder = ActiveLearningWorkChain.get_builder_from_protocol(
        structure,
        model,
        mofmlp_codes,
        guest="CO2",
        protocol="fast",
        overrides={"parameters": {"loadings": [2]}},
    )
    params = builder.parameters.get_dict()
    assert params["loadings"] == [2] and params["protocol"] == "fast"
    assert params["selection"]["method"] == "fps"  # the fast selection protocol, resolved
    assert builder.training.ensemble_size.value == 2
    bigger = ActiveLearningWorkChain.get_builder_from_protocol(
        structure, model, mofmlp_codes, guest="CO2", protocol="fast", overrides={"mace": {"ensemble_size": 3}}
    )
    assert bigger.training.ensemble_size.value == 3
    assert "ensemble_size" not in bigger.training.train.train.parameters.get_dict()
    assert builder.raspa.parameters["snapshot_loadings"] == [2]
    assert "structure" not in builder.md.md
    seed000 = ActiveLearningWorkChain.get_builder_from_protocol(structure, model, mofmlp_codes, guest="CO2")
    params = seed000.parameters.get_dict()
    assert params["loadings"] == [1, 4, 8, 12] and params["temperatures"] == [100.0, 300.0, 500.0]
    assert params["trust"] == {"lo": 0.06, "hi": 0.24}
    assert seed000.training.ensemble_size.value == 4


def test_xtb_labelling_engine_is_chosen_by_parameter(aiida_profile, mofmlp_codes, tmp_path):
    """``parameters.labelling.engine: xtb`` fills ``xtb_labelling``, needs no CP2K code, and is validated."""
    from aiida_mofmlp.data import MaceModelData
    from aiida_mofmlp.engines.mace.foundation import make_small_model

    structure = orm.StructureData(ase=molecule("H2O", vacuum=4.0, pbc=True))
    model = MaceModelData.from_file(make_small_model(["H", "O", "C"], tmp_path / "m.model"))
    codes = {kind: code for kind, code in mofmlp_codes.items() if kind != "cp2k"}
    xtb = {"parameters": {"labelling": {"engine": "xtb"}}, "xtb": {"frames_per_job": 7}}
    builder = ActiveLearningWorkChain.get_builder_from_protocol(
        structure, model, codes, guest="CO2", protocol="fast", overrides=xtb
    )
    assert "code" not in builder.labelling.single_point.cp2k  # no CP2K code needed or given
    assert builder.xtb_labelling.frames_per_job.value == 7
    assert builder.xtb_labelling.xtb.xtb.code.uuid == mofmlp_codes["xtb"].uuid
    assert builder.xtb_labelling.xtb.xtb.parameters["method"] == "GFN1-xTB"
    with pytest.raises(ValueError, match=r"codes: missing \['xtb'\]"):
        ActiveLearningWorkChain.get_builder_from_protocol(
            structure, model, {k: c for k, c in codes.items() if k != "xtb"}, overrides=xtb
        )
    with pytest.raises(ValueError, match="valid: cp2k, xtb"):
        ActiveLearningWorkChain.get_builder_from_protocol(
            structure, model, codes, overrides={"parameters": {"labelling": {"engine": "dft"}}}
        )
    inputs = {
        "structure": structure,
        "guest": GuestMoleculeData.builtin("CO2"),
        "parameters": orm.Dict({"labelling": {"engine": "xtb"}}),
    }
    assert "needs the `xtb_labelling` inputs" in validate_inputs(inputs)
    inputs["xtb_labelling"] = {"frames_per_job": orm.Int(2)}
    inputs["parameters"] = orm.Dict({"labelling": {"engine": "xtb"}, "initial_sampling": {"aimd_steps": 10}})
    assert "runs CP2K AIMD" in validate_inputs(inputs)


def test_collect_frames_tags_frames_and_drops_collapsed_ones(aiida_profile):
    good = _framework()
    collapsed = _framework()
    collapsed.positions[1] = collapsed.positions[0] + [0.3, 0, 0]  # the frame before an MD blow-up
    trajectory = StructureSetData.from_frames([good, collapsed])
    pool = alf.collect_frames(
        orm.Dict({"run": {"target_temperature": 300.0, "iteration": 2}}), run=trajectory
    )
    assert len(pool) == 1 and pool.base.attributes.get("n_dropped_too_close") == 1
    atoms = pool.get_frame(0)
    assert atoms.info["target_temperature"] == 300.0 and atoms.info["loading"] == 0


def test_tabulate_iterations_fills_rows_from_the_decisions(aiida_profile):
    rows = [
        {"iteration": 0, "n_explored": 10, "n_selected": 4, "n_labelled": 4},
        {"iteration": 1, "n_training": 4, "valid_mae_f": None, "n_selected": 2, "converged": False},
        {"iteration": 2, "n_training": 6, "valid_mae_f": 0.1, "n_selected": 0},
    ]
    explored = _explored([0, 1])
    settings = {"trust": {"lo": 0.06, "hi": 0.24}, "converged_fraction": 0.5, "n_blowups": 0}
    first = alf.assess_exploration(explored, _deviation([0.01, 0.1]), orm.Dict(settings))["summary"]
    second = alf.assess_exploration(explored, _deviation([0.01, 0.02]), orm.Dict(settings))["summary"]
    table = alf.tabulate_iterations(
        orm.List(rows),
        orm.Dict({"trust": settings["trust"], "converged_fraction": 0.5}),
        convergence_01=first,
        convergence_02=second,
    )
    assert table.creator is not None and table.creator.process_label == "tabulate_iterations"
    result = table.get_dict()
    assert result["n_iterations"] == 2 and result["converged"] is True  # iteration 2 converged
    assert result["rows"][0] == rows[0]  # the initial sampling has no decision
    assert result["rows"][1]["converged"] is False and result["rows"][1]["n_candidates"] == 1
    assert result["rows"][1]["per_loading"] == first["per_loading"]
    assert result["rows"][2]["fraction_below_lo"] == 1.0 and result["rows"][2]["valid_mae_f"] == 0.1
    assert result["units"] == {"sigma": "eV/Angstrom", "valid_mae_f": "eV/Angstrom"}
    # the property stop rule: sigma converged in iteration 2 but the properties did not agree
    rows[2]["properties_agree"] = False
    checked = alf.tabulate_iterations(
        orm.List(rows),
        orm.Dict({"trust": settings["trust"], "converged_fraction": 0.5, "stop": "both"}),
        convergence_01=first,
        convergence_02=second,
    ).get_dict()
    assert checked["rows"][2]["sigma_converged"] is True and checked["rows"][2]["converged"] is False
    assert checked["converged"] is False and checked["stop"] == "both"


def test_tabulate_iterations_of_a_restart_is_headed_by_the_earlier_rows(aiida_profile):
    settings = orm.Dict({"trust": {"lo": 0.06, "hi": 0.24}, "converged_fraction": 0.5})
    earlier = [
        {"iteration": 0, "n_selected": 4},
        {"iteration": 1, "n_training": 4, "converged": False},
        {"iteration": 2, "n_training": 6, "converged": False},  # killed before iteration 2 finished
    ]
    previous = alf.tabulate_iterations(orm.List(earlier[:2]), settings)
    rows = [{"iteration": 2, "n_training": 6, "converged": True}]
    table = alf.tabulate_iterations(orm.List(rows), settings, previous=previous).get_dict()
    assert [row["iteration"] for row in table["rows"]] == [0, 1, 2]
    assert [row.get("previous_run", False) for row in table["rows"]] == [True, True, False]
    assert table["rows"][2]["converged"] is True and table["converged"] is True
    assert table["n_iterations"] == 2 and table["continues"] == previous.uuid
    # a second restart keeps the first run's rows and the marks
    again = alf.tabulate_iterations(orm.List([{"iteration": 3}]), settings, previous=orm.Dict(table))
    assert [row["iteration"] for row in again.get_dict()["rows"]] == [0, 1, 2, 3]
    # the restart's own rows win over a previous row of the same iteration
    overlap = alf.tabulate_iterations(orm.List(earlier[1:2]), settings, previous=previous).get_dict()
    assert [row["iteration"] for row in overlap["rows"]] == [0, 1]
    assert "previous_run" not in overlap["rows"][1]


def test_loop_defaults_and_protocols_come_from_the_protocol_file():
    from aiida_mofmlp.workflows.active_learning.settings import default_parameters, override_keys

    assert ActiveLearningWorkChain.get_default_protocol() == "balanced"
    assert set(ActiveLearningWorkChain.get_available_protocols()) == {"fast", "balanced", "stringent"}
    defaults = default_parameters()
    assert defaults["loadings"] == [] and defaults["first_iteration"] == 1
    assert set(override_keys()) == {
        "parameters",
        "cp2k",
        "xtb",
        "mace",
        "md",
        "deviation",
        "raspa",
        "selection",
    }
    fast = ActiveLearningWorkChain.get_protocol_inputs("fast")["parameters"]
    assert set(fast) == set(defaults)  # every protocol is a delta over the defaults
    assert fast["max_iterations"] == 3 and fast["stages"]["cp2k"] == "fast"
    error = validate_parameters(orm.Dict({"max_iteration": 3}))
    assert "unknown keys ['max_iteration']" in error and "'max_iterations'" in error


def test_builder_overrides_may_be_a_yaml_file(aiida_profile, mofmlp_codes, tmp_path):
    import yaml

    from aiida_mofmlp.data import MaceModelData
    from aiida_mofmlp.engines.mace.foundation import make_small_model

    structure = orm.StructureData(ase=molecule("H2O", vacuum=4.0, pbc=True))
    model = MaceModelData.from_file(make_small_model(["H", "O", "C"], tmp_path / "m.model"))
    overrides = {
        "parameters": {"loadings": [3], "max_iterations": 2},
        "mace": {"ensemble_size": 3, "train": {"train": {"parameters": {"max_num_epochs": 2}}}},
        "md": {"md": {"parameters": {"steps": 50}}},
    }
    path = tmp_path / "overrides.yaml"
    path.write_text(yaml.safe_dump(overrides))
    from_file = ActiveLearningWorkChain.get_builder_from_protocol(
        structure, model, mofmlp_codes, guest="CO2", protocol="fast", overrides=path
    )
    from_dict = ActiveLearningWorkChain.get_builder_from_protocol(
        structure, model, mofmlp_codes, guest="CO2", protocol="fast", overrides=overrides
    )
    params = from_file.parameters.get_dict()
    assert params == from_dict.parameters.get_dict()
    assert params["loadings"] == [3] and params["max_iterations"] == 2
    assert from_file.training.ensemble_size.value == 3
    assert from_file.training.train.train.parameters["max_num_epochs"] == 2
    assert "training_set" not in from_file.training.train.train  # the loop sets it per iteration
    assert "first_seed" not in from_file.training
    assert from_file.md.md.parameters["steps"] == 50
    assert from_file.raspa.parameters["snapshot_loadings"] == [3]
