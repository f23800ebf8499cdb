"""Plots as data and files, from real model predictions, real training curves and a real selection map."""

from __future__ import annotations

import json

import numpy as np
import pytest
from aiida import orm
from click.testing import CliRunner

from aiida_mofmlp.cli import cli
from aiida_mofmlp.common import frames as fr
from aiida_mofmlp.tools.plots import (
    plot_learning_curve,
    plot_map,
    plot_parity,
    plot_run,
    plot_sigma_histograms,
    plot_soap_map,
    plot_training_curves,
    sigma_histogram_data,
)

pytestmark = pytest.mark.integration


def _image_shape(path) -> tuple[int, ...]:
    from matplotlib.image import imread

    return imread(path).shape


@pytest.fixture(scope="module")
def predicted(small_training_run, tmp_path_factory):
    """The labelled frames with the ensemble-mean predictions of the two trained models, and the deviation."""
    from aiida_mofmlp.engines.mace.deviation import compute_deviation

    folder = tmp_path_factory.mktemp("models")
    paths = []
    for index, model in enumerate(small_training_run["models"]):
        path = folder / f"model_{index}.model"
        with model.open(mode="rb") as handle:
            path.write_bytes(handle.read())
        paths.append(path)
    frames = small_training_run["labelled"].get_frames()
    deviation = compute_deviation(paths, frames)
    offsets = deviation["atom_offsets"]
    for index, atoms in enumerate(frames):
        atoms.info[fr.PREDICTED_ENERGY_KEY] = float(deviation["energy_mean"][index])
        atoms.arrays[fr.PREDICTED_FORCES_KEY] = deviation["forces_mean"][offsets[index] : offsets[index + 1]]
    return frames, deviation


def test_parity_data_and_image(predicted, tmp_path):
    frames, deviation = predicted
    plot = plot_parity(frames, tmp_path / "parity.png")
    data = plot.data
    n_atoms = np.array([len(atoms) for atoms in frames])
    assert len(data["energy_ref"]) == len(frames) and len(data["force_ref"]) == 3 * n_atoms.sum()
    reference = np.array([atoms.info[fr.ENERGY_KEY] for atoms in frames])
    np.testing.assert_allclose(data["energy_pred"], deviation["energy_mean"] / n_atoms)
    expected = np.mean(np.abs(deviation["energy_mean"] - reference) / n_atoms)
    assert data["metrics"]["mae_e_per_atom"] == pytest.approx(expected)
    forces = np.concatenate([atoms.arrays[fr.FORCES_KEY] for atoms in frames])
    diff = deviation["forces_mean"] - forces
    assert data["metrics"]["mae_f"] == pytest.approx(np.mean(np.abs(diff)))
    assert data["metrics"]["rmse_f"] == pytest.approx(np.sqrt(np.mean(diff**2)))
    assert _image_shape(plot.path)[0] > 100
    as_json = json.loads(json.dumps(plot.to_json()))
    assert len(as_json["data"]["force_pred"]) == len(data["force_pred"])
    unpredicted = [atoms.copy() for atoms in frames]
    del unpredicted[1].arrays[fr.PREDICTED_FORCES_KEY]
    with pytest.raises(ValueError, match="frame 1 lacks"):
        plot_parity(unpredicted)


def test_sigma_histograms_count_every_frame(predicted, tmp_path):
    _, deviation = predicted
    sigma = deviation["sigma_max"]
    by_iteration = {1: sigma, 2: sigma / 3.0, 3: np.append(sigma, np.nan)}
    plot = plot_sigma_histograms(by_iteration, tmp_path / "sigma.png", bins=10)
    data = plot.data
    lo, hi = data["trust"]["lo"], data["trust"]["hi"]
    every = np.concatenate([values[np.isfinite(values)] for values in by_iteration.values()])
    assert np.all(np.diff(data["edges"]) > 0)
    assert data["edges"][-1] >= max(lo, np.quantile(every, 0.99))
    for iteration, values in by_iteration.items():
        entry = data["iterations"][iteration]
        good = values[np.isfinite(values)]
        assert entry["counts"].sum() == len(good) and entry["n_nan"] == len(values) - len(good)
        assert entry["fraction_below_lo"] == pytest.approx(np.mean(good < lo))
        assert entry["fraction_above_hi"] == pytest.approx(np.mean(good > hi))
        fractions = entry["fraction_below_lo"] + entry["fraction_in_window"] + entry["fraction_above_hi"]
        assert fractions == pytest.approx(1.0)
    assert _image_shape(plot.path)[1] > 100
    narrow = sigma_histogram_data({1: sigma}, trust=(0.0, 1e-9))
    assert narrow["iterations"][1]["fraction_above_hi"] == pytest.approx(np.mean(sigma > 1e-9))


def test_training_curves_of_the_ensemble(small_training_run, tmp_path):
    plot = plot_training_curves(small_training_run["ensemble"], tmp_path / "curves.png")
    assert sorted(plot.data) == ["model_0", "model_1"]
    for index, model in enumerate(small_training_run["models"]):
        curves = model.creator.outputs.curves
        np.testing.assert_array_equal(plot.data[f"model_{index}"]["epoch"], curves.get_array("epoch"))
    assert plot.path.is_file()
    with pytest.raises(ValueError, match="has training curves"):
        plot_training_curves([small_training_run["foundation"]])


def test_soap_map_of_a_real_selection(small_training_run, tmp_path):
    from aiida_mofmlp.workflows.functions.selection import select_frames
    from aiida_mofmlp.workflows.selection.base import get_parameters_from_protocol

    labelled = small_training_run["labelled"]
    parameters = get_parameters_from_protocol("fast", {"n_select": 1, "pca_components": None})
    outputs = select_frames(pool=labelled, parameters=orm.Dict(parameters))
    map_node = outputs["map"]
    sigma = np.linspace(0.01, 0.3, len(labelled))
    plot = plot_soap_map(map_node, sigma, tmp_path / "map.png")
    assert plot.data["pool_xy"].shape == (len(labelled), 2)
    assert plot.data["selected"].tolist() == outputs["report"]["selected"]
    np.testing.assert_array_equal(plot.data["sigma"], sigma)
    assert plot_soap_map(map_node, sigma[:-1]).data["sigma"] is None  # wrong length: not used
    path = plot_map(map_node, None, tmp_path / "demo_map.png")
    assert path.is_file() and _image_shape(path)[0] > 100


# ----------------------------------------------------------------------------------------------------
# a finished active-learning run
# ----------------------------------------------------------------------------------------------------


def test_plots_of_a_whole_run(al_run, tmp_path):
    plots = plot_run(al_run, tmp_path)
    summary = json.loads((tmp_path / "plots.json").read_text())
    assert set(summary["plots"]) == set(plots)
    rows = al_run.outputs.iterations.get_dict()["rows"]
    curve = plots["learning_curve"].data
    assert curve["iteration"].tolist() == [row["iteration"] for row in rows]
    expected = [np.nan if row.get("n_training") is None else row["n_training"] for row in rows]
    np.testing.assert_array_equal(curve["n_training"], expected)
    history = al_run.outputs.history
    deviations = {int(key.rsplit("_", 1)[1]): history[key] for key in history if key.startswith("deviation_")}
    histograms = plots["sigma_histograms"].data
    assert set(histograms["iterations"]) == set(deviations)
    for iteration, node in deviations.items():
        sigma = node.get_array("sigma_max")
        assert histograms["iterations"][iteration]["counts"].sum() == np.isfinite(sigma).sum()
    trust = al_run.outputs.iterations.get_dict()["trust"]
    assert histograms["trust"] == {"lo": trust["lo"], "hi": trust["hi"]}
    maps = [key for key in history if key.startswith("map_")]
    assert {f"soap_map_{key.rsplit('_', 1)[1]}" for key in maps} <= set(plots)
    if "validation_frames" in al_run.outputs:
        assert plots["parity"].data["metrics"]["mae_f"] == pytest.approx(al_run.outputs.validation["mae_f"])
    for plot in plots.values():
        assert plot.path.is_file() and _image_shape(plot.path)[0] > 100
    assert plot_learning_curve(al_run.outputs.iterations).data["converged"] == curve["converged"]
    result = CliRunner().invoke(cli, ["runs", "plots", str(al_run.pk), str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli" / "learning_curve.png").is_file()


def test_parity_gets_a_stress_panel_when_stress_is_present(tmp_path):
    """Synthetic frames: stress errors on the frames with REF_stress and MACE_stress, in eV/A^3 and GPa."""
    from ase.build import bulk

    frames = []
    for index in range(3):
        atoms = bulk("Si", "diamond", a=5.43, cubic=True)
        atoms.info.update({fr.ENERGY_KEY: -40.0, fr.PREDICTED_ENERGY_KEY: -40.0 + 0.08 * index})
        atoms.arrays[fr.FORCES_KEY] = np.zeros((8, 3))
        atoms.arrays[fr.PREDICTED_FORCES_KEY] = np.full((8, 3), 0.1)
        if index < 2:  # the third frame has no stress label
            atoms.info[fr.STRESS_KEY] = np.full(6, 0.01 * index)
        atoms.info[fr.PREDICTED_STRESS_KEY] = np.full(6, 0.01 * index) + np.array([0.006, 0, 0, 0, 0, 0])
        frames.append(atoms)
    plot = plot_parity(frames, tmp_path / "parity_stress.png")
    data = plot.data
    assert len(data["stress_ref"]) == len(data["stress_pred"]) == 12
    assert data["metrics"]["n_frames_stress"] == 2
    assert data["metrics"]["mae_stress"] == pytest.approx(2 * 0.006 / 12)
    assert data["metrics"]["mae_stress_gpa"] == pytest.approx(2 * 0.006 / 12 * 160.2176634)
    assert data["units"]["stress"] == "eV/Angstrom^3"
    height, width = _image_shape(plot.path)[:2]
    assert width > 3 * height  # three panels side by side (two panels: 9 x 4 inches)
    json.loads(json.dumps(plot.to_json()))
    for atoms in frames:
        del atoms.info[fr.PREDICTED_STRESS_KEY]
    plain = plot_parity(frames).data  # no prediction of stress: no stress panel, no stress error
    assert "stress_ref" not in plain and "mae_stress" not in plain["metrics"]
