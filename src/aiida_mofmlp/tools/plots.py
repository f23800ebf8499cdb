"""Plots of active-learning results, each returned as data and, given a path, written as an image.

Every ``plot_*`` function returns a :class:`Plot`: ``data`` holds the numbers drawn (numpy arrays and
floats; :meth:`Plot.to_json` makes them JSON), ``path`` the image written (PNG, PDF or SVG by suffix) or
None. The ``*_data`` functions compute the numbers without matplotlib.

* parity of energy per atom, force components and (when frames carry both ``REF_stress`` and
  ``MACE_stress``) stress components, reference (``REF_*``) against prediction (``MACE_*``, e.g. a run's
  ``validation_frames``): :func:`plot_parity`;
* active-learning learning curve (validation force MAE and trusted fraction against training-set size, per
  iteration, from a run's ``iterations``): :func:`plot_learning_curve`;
* per-epoch training curves of models (their training calculation's ``curves``): :func:`plot_training_curves`;
* sigma_max histograms per iteration with the trust window: :func:`plot_sigma_histograms`;
* the SOAP map of a selection (``map`` ArrayData: pool_xy, training_xy, selected): :func:`plot_soap_map`;
* :func:`plot_run` draws everything a run has into a directory, with ``plots.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aiida_mofmlp.common import frames as fr
from aiida_mofmlp.common.metrics import EV_PER_A3_IN_GPA, mae_rmse, stress_metrics
from aiida_mofmlp.common.serialise import to_jsonable
from aiida_mofmlp.common.trust import DEFAULT_TRUST as _DEFAULT_WINDOW

__all__ = [
    "DEFAULT_TRUST",
    "Plot",
    "learning_curve_data",
    "parity_data",
    "plot_learning_curve",
    "plot_map",
    "plot_parity",
    "plot_run",
    "plot_sigma_histograms",
    "plot_soap_map",
    "plot_training_curves",
    "sigma_histogram_data",
    "soap_map_data",
    "training_curves_data",
]

#: trust window on sigma_max (eV/Angstrom) of the MIL-120 loop (Jin et al., Chem. Sci. 2026,
#: DOI 10.1039/D5SC09058J), used when a run does not state its own
DEFAULT_TRUST = (_DEFAULT_WINDOW.lo, _DEFAULT_WINDOW.hi)


@dataclass
class Plot:
    """A plot's name, the numbers drawn, and the image file (None when not written)."""

    name: str
    data: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"name", "path", "data"}`` with arrays as lists and NaN as None."""
        return {
            "name": self.name,
            "path": str(self.path) if self.path else None,
            "data": to_jsonable(self.data),
        }


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path | None) -> Path | None:
    plt = _pyplot()
    if path is None:
        plt.close(fig)
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _frames(source) -> list:
    """Frames of a StructureSetData, a run (its ``validation_frames``) or a list of Atoms."""
    from aiida import orm

    if isinstance(source, orm.ProcessNode):
        if "validation_frames" not in source.outputs:
            raise ValueError(
                f"{source.process_label}<{source.pk}> has no `validation_frames` output; give frames with "
                f"{fr.ENERGY_KEY}/{fr.FORCES_KEY} and {fr.PREDICTED_ENERGY_KEY}/{fr.PREDICTED_FORCES_KEY}"
            )
        source = source.outputs.validation_frames
    if hasattr(source, "iter_frames"):
        return list(source.iter_frames())
    return list(source)


# ----------------------------------------------------------------------------------------------------
# parity
# ----------------------------------------------------------------------------------------------------


def parity_data(source) -> dict[str, Any]:
    """Reference and predicted energy per atom (eV/atom) and force components (eV/Å), with MAE/RMSE.

    ``source``: frames (StructureSetData, list of Atoms, or a run's ``validation_frames``) that carry both
    the reference labels (REF_energy, REF_forces) and the predictions (MACE_energy, MACE_forces). Frames
    that also carry REF_stress and MACE_stress add ``stress_ref``/``stress_pred`` (their Voigt components,
    eV/Å^3, ASE sign) and the stress errors of :func:`aiida_mofmlp.common.metrics.stress_metrics`.
    """
    energy_ref, energy_pred, loading, force_ref, force_pred = [], [], [], [], []
    stress_ref, stress_pred = [], []
    for index, atoms in enumerate(_frames(source)):
        missing = [
            key
            for key, present in (
                (fr.ENERGY_KEY, fr.ENERGY_KEY in atoms.info),
                (fr.PREDICTED_ENERGY_KEY, fr.PREDICTED_ENERGY_KEY in atoms.info),
                (fr.FORCES_KEY, fr.FORCES_KEY in atoms.arrays),
                (fr.PREDICTED_FORCES_KEY, fr.PREDICTED_FORCES_KEY in atoms.arrays),
            )
            if not present
        ]
        if missing:
            raise ValueError(f"frame {index} lacks {missing}; a parity plot needs labels and predictions")
        n = len(atoms)
        energy_ref.append(float(atoms.info[fr.ENERGY_KEY]) / n)
        energy_pred.append(float(atoms.info[fr.PREDICTED_ENERGY_KEY]) / n)
        loading.append(float(atoms.info.get("loading", np.nan)))
        force_ref.append(np.asarray(atoms.arrays[fr.FORCES_KEY], float).ravel())
        force_pred.append(np.asarray(atoms.arrays[fr.PREDICTED_FORCES_KEY], float).ravel())
        if fr.STRESS_KEY in atoms.info and fr.PREDICTED_STRESS_KEY in atoms.info:
            stress_ref.append(fr.voigt_stress(atoms.info[fr.STRESS_KEY]))
            stress_pred.append(fr.voigt_stress(atoms.info[fr.PREDICTED_STRESS_KEY]))
    if not energy_ref:
        raise ValueError("no frames to plot")
    data = {
        "energy_ref": np.asarray(energy_ref),
        "energy_pred": np.asarray(energy_pred),
        "loading": np.asarray(loading),
        "force_ref": np.concatenate(force_ref),
        "force_pred": np.concatenate(force_pred),
        "units": {"energy": "eV/atom", "forces": "eV/Angstrom"},
    }
    mae_e, rmse_e = mae_rmse(data["energy_pred"] - data["energy_ref"])
    mae_f, rmse_f = mae_rmse(data["force_pred"] - data["force_ref"])
    data["metrics"] = {
        "n_frames": len(energy_ref),
        "mae_e_per_atom": mae_e,
        "rmse_e_per_atom": rmse_e,
        "mae_f": mae_f,
        "rmse_f": rmse_f,
    }
    if stress_ref:
        data["stress_ref"] = np.concatenate(stress_ref)
        data["stress_pred"] = np.concatenate(stress_pred)
        data["units"]["stress"] = "eV/Angstrom^3"
        data["metrics"].update(stress_metrics(stress_ref, stress_pred))
    return data


def plot_parity(source, path: str | Path | None = None, title: str | None = None) -> Plot:
    """Energy and force parity plots (meV in the legends), and a stress panel (GPa) when the frames carry
    reference and predicted stresses; see :func:`parity_data`."""
    data = parity_data(source)
    plt = _pyplot()
    stress = "stress_ref" in data
    fig, axes = plt.subplots(1, 3 if stress else 2, figsize=(13.5 if stress else 9, 4))
    left, right = axes[0], axes[1]
    metrics = data["metrics"]
    loading = data["loading"]
    colour = loading if np.isfinite(loading).all() and len(set(loading.tolist())) > 1 else "tab:blue"
    colour_map = None if isinstance(colour, str) else "viridis"
    points = left.scatter(data["energy_ref"], data["energy_pred"], c=colour, s=12, cmap=colour_map)
    if not isinstance(colour, str):
        fig.colorbar(points, ax=left, label="loading (guests per cell)")
    right.scatter(data["force_ref"], data["force_pred"], s=3, alpha=0.4, color="tab:orange")
    panels = (
        (left, "energy", "eV/atom", metrics["mae_e_per_atom"], metrics["rmse_e_per_atom"]),
        (right, "force", "eV/Å", metrics["mae_f"], metrics["rmse_f"]),
    )
    for axis, kind, unit, mae, rmse in panels:
        ref, pred = data[f"{kind}_ref"], data[f"{kind}_pred"]
        low, high = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        axis.plot([low, high], [low, high], color="grey", lw=1)
        axis.set_xlabel(f"reference ({unit})")
        axis.set_ylabel(f"predicted ({unit})")
        axis.set_title(f"MAE {1000 * mae:.1f} m{unit}, RMSE {1000 * rmse:.1f} m{unit}", fontsize=9)
    if stress:
        axis = axes[2]
        ref, pred = EV_PER_A3_IN_GPA * data["stress_ref"], EV_PER_A3_IN_GPA * data["stress_pred"]
        axis.scatter(ref, pred, s=8, color="tab:green")
        low, high = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        axis.plot([low, high], [low, high], color="grey", lw=1)
        axis.set_xlabel("reference stress (GPa)")
        axis.set_ylabel("predicted stress (GPa)")
        axis.set_title(
            f"MAE {metrics['mae_stress_gpa']:.2f} GPa, RMSE {metrics['rmse_stress_gpa']:.2f} GPa "
            f"({metrics['n_frames_stress']} frames)",
            fontsize=9,
        )
    fig.suptitle(title or f"Parity: {metrics['n_frames']} frames")
    return Plot("parity", data, _save(fig, path))


# ----------------------------------------------------------------------------------------------------
# learning curves
# ----------------------------------------------------------------------------------------------------


def _iteration_rows(source) -> tuple[list[dict], dict]:
    """Rows and the whole table of a run's ``iterations`` output (or a given table / row list)."""
    from aiida import orm

    from aiida_mofmlp.workflows.active_learning.builders import latest_iteration_table

    if isinstance(source, orm.ProcessNode):
        node = latest_iteration_table(source)
        if node is None:
            raise ValueError(f"{source.process_label}<{source.pk}> has no iteration table (yet)")
        table = node.get_dict()
    elif isinstance(source, orm.Dict):
        table = source.get_dict()
    elif isinstance(source, Mapping):
        table = dict(source)
    else:
        table = {"rows": list(source)}
    return list(table.get("rows", [])), table


def _column(rows: Sequence[Mapping], key: str) -> np.ndarray:
    return np.asarray([np.nan if row.get(key) is None else float(row[key]) for row in rows])


def learning_curve_data(source) -> dict[str, Any]:
    """Per iteration: n_training, valid_mae_f (eV/Å), fraction_below_lo, n_candidates, n_selected,
    n_labelled, from a run, its ``iterations`` Dict, or a list of rows."""
    rows, table = _iteration_rows(source)
    if not rows:
        raise ValueError("the iteration table has no rows")
    keys = ("iteration", "n_training", "valid_mae_f", "fraction_below_lo", "n_candidates", "n_selected")
    data: dict[str, Any] = {key: _column(rows, key) for key in (*keys, "n_labelled")}
    data["iteration"] = data["iteration"].astype(int)
    data["trust"] = table.get("trust")
    data["converged"] = table.get("converged")
    data["units"] = {"valid_mae_f": "eV/Angstrom"}
    return data


def plot_learning_curve(source, path: str | Path | None = None, title: str | None = None) -> Plot:
    """Validation force MAE against training-set size, and the trusted fraction per iteration."""
    data = learning_curve_data(source)
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    has_mae = np.isfinite(data["valid_mae_f"])
    left.plot(data["n_training"][has_mae], 1000 * data["valid_mae_f"][has_mae], "o-")
    for n, mae, iteration in zip(
        data["n_training"][has_mae], data["valid_mae_f"][has_mae], data["iteration"][has_mae], strict=True
    ):
        left.annotate(str(iteration), (n, 1000 * mae), textcoords="offset points", xytext=(4, 4), fontsize=8)
    left.set_xlabel("training frames")
    left.set_ylabel("validation force MAE (meV/Å)")
    right.plot(data["iteration"], data["fraction_below_lo"], "s-", label="sigma_max < lo (trusted)")
    right.set_ylim(-0.02, 1.02)
    right.set_xlabel("iteration")
    right.set_ylabel("fraction of explored frames")
    right.legend(fontsize=8)
    fig.suptitle(title or f"Learning curve (converged: {data['converged']})")
    return Plot("learning_curve", data, _save(fig, path))


def _models(source) -> dict[str, Any]:
    from aiida import orm

    if isinstance(source, orm.ProcessNode):
        if "models" not in source.outputs:
            raise ValueError(f"{source.process_label}<{source.pk}> has no `models` outputs")
        return {label: source.outputs.models[label] for label in sorted(source.outputs.models)}
    if isinstance(source, Mapping):
        return dict(source)
    return {f"model_{index}": model for index, model in enumerate(source)}


def training_curves_data(source) -> dict[str, dict[str, np.ndarray]]:
    """Per model label: the per-epoch arrays (epoch, train_loss, valid_mae_f, ...) of its training.

    ``source``: a process with ``models`` outputs, a mapping label -> MaceModelData, or a list of them.
    Models not made by a training calculation with ``curves`` are left out.
    """
    curves = {}
    for label, model in _models(source).items():
        creator = model.creator
        if creator is None or "curves" not in creator.outputs:
            continue
        node = creator.outputs.curves
        curves[label] = {name: np.asarray(node.get_array(name)) for name in node.get_arraynames()}
    if not curves:
        raise ValueError("none of the models has training curves (a `curves` output of its training)")
    return curves


def plot_training_curves(source, path: str | Path | None = None, title: str | None = None) -> Plot:
    """Training loss and validation force MAE per epoch, one line per model."""
    data = training_curves_data(source)
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    for label, arrays in data.items():
        epoch = arrays.get("epoch", np.arange(len(arrays.get("train_loss", []))))
        if "train_loss" in arrays:
            left.plot(epoch, arrays["train_loss"], "o-", ms=3, label=label)
        if "valid_mae_f" in arrays:
            right.plot(epoch, 1000 * arrays["valid_mae_f"], "o-", ms=3, label=label)
    left.set_yscale("log")
    left.set_xlabel("epoch")
    left.set_ylabel("training loss")
    right.set_xlabel("epoch")
    right.set_ylabel("validation force MAE (meV/Å)")
    right.legend(fontsize=8)
    fig.suptitle(title or "Training curves")
    return Plot("training_curves", dict(data), _save(fig, path))


# ----------------------------------------------------------------------------------------------------
# sigma_max histograms
# ----------------------------------------------------------------------------------------------------


def _sigma_by_iteration(source) -> tuple[dict[int, np.ndarray], tuple[float, float]]:
    from aiida import orm

    trust = DEFAULT_TRUST
    if isinstance(source, orm.ProcessNode):
        if "iterations" in source.outputs:
            stated = source.outputs.iterations.get_dict().get("trust") or {}
            trust = (float(stated.get("lo", trust[0])), float(stated.get("hi", trust[1])))
        history = source.outputs.history if "history" in source.outputs else {}
        values = {int(key.rsplit("_", 1)[1]): history[key] for key in history if key.startswith("deviation_")}
        if not values:
            raise ValueError(f"{source.process_label}<{source.pk}> has no history.deviation_XX outputs")
    elif isinstance(source, Mapping):
        values = dict(source)
    else:
        values = dict(enumerate(source, start=1))
    sigma = {}
    for iteration, value in sorted(values.items()):
        array = value.get_array("sigma_max") if hasattr(value, "get_array") else value
        sigma[int(iteration)] = np.asarray(array, dtype=float)
    return sigma, trust


def sigma_histogram_data(source, bins: int = 30, trust: tuple[float, float] | None = None) -> dict[str, Any]:
    """Histograms of sigma_max (eV/Å) per iteration on common bins, with the fractions below ``lo``,
    inside [lo, hi] and above ``hi``.

    ``source``: a run (its ``history.deviation_XX`` arrays and its trust window), a mapping iteration ->
    ArrayData/array, or a list of those (iterations 1, 2, ...). The bins reach past the 99th percentile
    and the window (``hi`` is left out when it lies beyond twice the data's range); values above the last
    edge count in the last bin (``n_clipped``); NaN values are left out (``n_nan``).
    """
    sigma, stated = _sigma_by_iteration(source)
    lo, hi = trust or stated
    finite = [values[np.isfinite(values)] for values in sigma.values()]
    every = np.concatenate(finite) if finite else np.zeros(0)
    upper = max(1.05 * float(np.quantile(every, 0.99)) if every.size else 0.0, 1.25 * lo)
    if hi <= 2.0 * upper:  # show the upper bound of the window unless it is far beyond the data
        upper = max(upper, 1.25 * hi)
    edges = np.linspace(0.0, upper, int(bins) + 1)
    per_iteration = {}
    for iteration, values in sigma.items():
        good = values[np.isfinite(values)]
        counts, _ = np.histogram(np.clip(good, 0.0, upper), bins=edges)
        n = max(len(good), 1)
        per_iteration[iteration] = {
            "counts": counts,
            "n_frames": len(values),
            "n_nan": int(len(values) - len(good)),
            "n_clipped": int(np.sum(good > upper)),
            "fraction_below_lo": float(np.sum(good < lo) / n),
            "fraction_in_window": float(np.sum((good >= lo) & (good <= hi)) / n),
            "fraction_above_hi": float(np.sum(good > hi) / n),
            "median": float(np.median(good)) if len(good) else float("nan"),
        }
    return {
        "edges": edges,
        "trust": {"lo": lo, "hi": hi},
        "iterations": per_iteration,
        "units": "eV/Angstrom",
    }


def plot_sigma_histograms(
    source, path: str | Path | None = None, bins: int = 30, title: str | None = None
) -> Plot:
    """Overlaid sigma_max histograms, one per iteration, with the trust window marked."""
    data = sigma_histogram_data(source, bins=bins)
    plt = _pyplot()
    fig, axis = plt.subplots(figsize=(6, 4))
    edges = data["edges"]
    colours = plt.get_cmap("viridis")(np.linspace(0.1, 0.9, max(len(data["iterations"]), 1)))
    for colour, (iteration, entry) in zip(colours, data["iterations"].items(), strict=False):
        axis.stairs(
            entry["counts"],
            edges,
            color=colour,
            lw=1.5,
            label=f"iteration {iteration}: {entry['fraction_below_lo']:.0%} < lo",
        )
    for value, name in ((data["trust"]["lo"], "lo"), (data["trust"]["hi"], "hi")):
        if value > edges[-1]:
            continue
        axis.axvline(value, color="red", ls="--", lw=1)
        axis.annotate(name, (value, 1), xycoords=("data", "axes fraction"), fontsize=8, va="top")
    axis.set_xlabel("sigma_max (eV/Å)")
    axis.set_ylabel("frames")
    axis.legend(fontsize=8)
    axis.set_title(title or "Ensemble force deviation per iteration")
    return Plot("sigma_histograms", data, _save(fig, path))


# ----------------------------------------------------------------------------------------------------
# SOAP map
# ----------------------------------------------------------------------------------------------------


def soap_map_data(map_node, sigma: np.ndarray | Any | None = None) -> dict[str, Any]:
    """Pool and training-set points of a selection map (``pool_xy``, ``training_xy``, ``selected``), and
    sigma_max per pool frame when given (array or ArrayData) and of the pool's length."""
    if hasattr(sigma, "get_array"):
        sigma = sigma.get_array("sigma_max")
    pool = np.asarray(map_node.get_array("pool_xy"), dtype=float)
    names = map_node.get_arraynames()
    training = np.asarray(map_node.get_array("training_xy"), float) if "training_xy" in names else None
    selected = np.asarray(map_node.get_array("selected"), dtype=int) if "selected" in names else None
    sigma = np.asarray(sigma, dtype=float) if sigma is not None else None
    return {
        "pool_xy": pool,
        "training_xy": training if training is not None else np.zeros((0, 2)),
        "selected": selected if selected is not None else np.zeros(0, dtype=int),
        "sigma": sigma if sigma is not None and len(sigma) == len(pool) else None,
        "method": map_node.base.attributes.get("method", "pca"),
    }


def plot_soap_map(map_node, sigma=None, path: str | Path | None = None, title: str | None = None) -> Plot:
    """Scatter of the selection map: training set (grey squares), pool (coloured by sigma_max when
    given), selected frames (red circles)."""
    data = soap_map_data(map_node, sigma)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    pool, training, selected = data["pool_xy"], data["training_xy"], data["selected"]
    if len(training):
        ax.scatter(training[:, 0], training[:, 1], marker="s", c="grey", label="training set")
    colour = data["sigma"] if data["sigma"] is not None else "tab:blue"
    colour_map = None if isinstance(colour, str) else "viridis"
    points = ax.scatter(pool[:, 0], pool[:, 1], c=colour, cmap=colour_map, label="pool frames")
    if data["sigma"] is not None:
        fig.colorbar(points, ax=ax, label="sigma_max (eV/Å)")
    if len(selected):
        ax.scatter(
            pool[selected, 0], pool[selected, 1], s=120, facecolors="none", edgecolors="red", label="selected"
        )
    ax.set_xlabel(f"{data['method']} 1")
    ax.set_ylabel(f"{data['method']} 2")
    ax.legend(fontsize=8)
    ax.set_title(title or "SOAP map of the candidate frames")
    return Plot("soap_map", data, _save(fig, path))


def plot_map(map_node, sigma: np.ndarray | None, path: Path, title: str | None = None) -> Path:
    """:func:`plot_soap_map` written to ``path``; returns the path (the demo's interface)."""
    return plot_soap_map(map_node, sigma, path, title=title).path


# ----------------------------------------------------------------------------------------------------
# everything of a run
# ----------------------------------------------------------------------------------------------------


def plot_run(run, directory: str | Path, image_format: str = "png") -> dict[str, Plot]:
    """Every plot a run's outputs allow, written to ``directory`` as ``<name>.<image_format>``, with the
    data of all of them in ``plots.json``. Plots whose inputs the run lacks are skipped (``skipped`` in
    plots.json says why)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    plots: dict[str, Plot] = {}
    skipped: dict[str, str] = {}
    makers = {
        "learning_curve": lambda path: plot_learning_curve(run, path),
        "sigma_histograms": lambda path: plot_sigma_histograms(run, path),
        "parity": lambda path: plot_parity(run, path),
        "training_curves": lambda path: plot_training_curves(run, path),
    }
    for name, make in makers.items():
        try:
            plots[name] = make(directory / f"{name}.{image_format}")
        except ValueError as exc:
            skipped[name] = str(exc)
    history = run.outputs.history if "history" in run.outputs else {}
    for key in sorted(key for key in history if key.startswith("map_")):
        tag = key.rsplit("_", 1)[1]
        sigma = history.get(f"deviation_{tag}") if hasattr(history, "get") else None
        name = f"soap_map_{tag}"
        plots[name] = plot_soap_map(
            history[key], sigma, directory / f"{name}.{image_format}", title=f"SOAP map, iteration {int(tag)}"
        )
        plots[name].name = name
    summary = {name: plot.to_json() for name, plot in plots.items()}
    (directory / "plots.json").write_text(json.dumps({"plots": summary, "skipped": skipped}, indent=1))
    return plots
