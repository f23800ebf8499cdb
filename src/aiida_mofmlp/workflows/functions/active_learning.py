"""Calcfunctions of the active-learning loop: every frame set, decision and error table is a node.

* :func:`build_starting_frames` — the empty framework plus one loaded frame per loading (MD starts there);
* :func:`collect_frames` — tag MD/RASPA/AIMD frames with loading, temperature, iteration and merge them;
* :func:`extend_training_set` — training set k = training set k-1 + the labels of iteration k;
* :func:`assess_exploration` — sigma_max per loading against the trust levels: the convergence decision
  and the sigma array the selection window uses;
* :func:`pick_random_frames` — random validation frames per loading;
* :func:`validation_errors` — MAE/RMSE of the ensemble-mean prediction against the labels;
* :func:`tabulate_iterations` — the loop's iteration table from its rows and convergence decisions;
* :func:`displace_frames` — randomly displaced copies of the starting frames (temperature ramp);
* :func:`assess_temperature_ramp` — the temperature ramp's stop decision from its CBAD selection;
* :func:`collect_labelled_frames` — AIMD frames merged with their labels kept (flat-histogram pool).
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mofmlp.common import frames as fr
from aiida_mofmlp.common.loading import empty_framework, fold_guests, place_guests
from aiida_mofmlp.common.trust import TrustWindow
from aiida_mofmlp.data.structure_set import StructureSetData

#: frames with two atoms closer than this (Angstrom) are unphysical (the last frames before an MD blow-up)
#: and are not offered for labelling: no bond in a MOF or guest is shorter than H2's 0.74 Angstrom
MIN_PHYSICAL_DISTANCE = 0.6
#: keys a model prediction leaves on MD frames; stripped before frames become candidates or labels
PREDICTION_KEYS = (fr.PREDICTED_ENERGY_KEY, fr.PREDICTED_FORCES_KEY, fr.PREDICTED_STRESS_KEY)


def drop_keys(atoms, keys) -> None:
    """Remove ``keys`` from the per-frame info and the per-atom arrays of ``atoms``."""
    for key in keys:
        atoms.info.pop(key, None)
        atoms.arrays.pop(key, None)


def strip_predictions(atoms):
    """``atoms`` without MACE predictions and without any REF_* label (a clean candidate)."""
    drop_keys(atoms, (*PREDICTION_KEYS, *fr.LABEL_KEYS))
    atoms.calc = None
    return atoms


@calcfunction
def build_starting_frames(
    framework: orm.StructureData,
    parameters: orm.Dict,
    guest: orm.Data | None = None,
    snapshots: StructureSetData | None = None,
    training_set: StructureSetData | None = None,
) -> StructureSetData:
    """Frame 0: the empty framework; then one frame per loading of ``parameters['loadings']``.

    A loaded frame is, in order of preference: a frame of ``training_set`` with that many guests (a restart),
    the RASPA ``snapshots`` frame of that loading with its guests folded into the unit cell, or ``guest``
    copies placed at the emptiest points of the cell. ``loading`` and ``source`` are set in each frame's info.
    """
    params = parameters.get_dict()
    cell = framework.get_ase()
    start = empty_framework(cell)
    start.info.update({"loading": 0, "source": "cif", "config_type": "framework"})
    frames = [start]
    known = {}
    if training_set is not None:
        for atoms in training_set.iter_frames():
            known.setdefault(fr.n_guests(atoms), atoms)
    raspa = (
        {int(atoms.info.get("loading", -1)): atoms for atoms in snapshots.iter_frames()} if snapshots else {}
    )
    for loading in params["loadings"]:
        loading = int(loading)
        if loading in known:
            loaded, source = strip_predictions(known[loading].copy()), "training_set"
        else:
            loaded, source = None, "raspa"
            if loading in raspa:
                loaded = fold_guests(cell, raspa[loading], loading)
            if loaded is None and guest is not None:
                loaded, source = place_guests(cell, guest.get_ase(), loading), "placed"
        if loaded is None:
            raise ValueError(
                f"no starting configuration with {loading} guest(s) per cell: give RASPA snapshots, a guest, "
                "or a training set with such a frame"
            )
        loaded.info.update({"loading": loading, "source": source, "config_type": f"loading_{loading}"})
        frames.append(loaded)
    return StructureSetData.from_frames(frames)


def too_close(atoms, distance: float = MIN_PHYSICAL_DISTANCE) -> bool:
    """True when two atoms of ``atoms`` are closer than ``distance`` (Angstrom), periodic images included."""
    from ase.neighborlist import neighbor_list

    return len(neighbor_list("i", atoms, distance, self_interaction=False)) > 0


@calcfunction
def collect_frames(tags: orm.Dict, **sets: StructureSetData) -> StructureSetData:
    """Merge ``sets`` in key order, setting each frame's info from ``tags[key]`` (loading, temperature, ...).

    MACE predictions and labels are removed: the result is a pool of candidates. Frames with atoms closer
    than :data:`MIN_PHYSICAL_DISTANCE` are dropped; their number is the attribute ``n_dropped_too_close``.
    """
    meta = tags.get_dict()
    dropped = 0

    def frames():
        nonlocal dropped
        for key in sorted(sets):
            for atoms in sets[key].iter_frames():
                if too_close(atoms):
                    dropped += 1
                    continue
                atoms = strip_predictions(atoms)
                atoms.info.update(meta.get(key, {}))
                atoms.info["loading"] = fr.n_guests(atoms)
                yield atoms

    merged = StructureSetData.from_frames(frames())
    merged.base.attributes.set("n_dropped_too_close", dropped)
    return merged


@calcfunction
def extend_training_set(
    iteration: orm.Int, labelled: StructureSetData | None = None, previous: StructureSetData | None = None
) -> StructureSetData:
    """The frames of ``previous`` followed by ``labelled``, whose frames get ``iteration`` in their info."""
    if labelled is None and previous is None:
        raise ValueError("extend_training_set needs `labelled` or `previous`")

    def frames():
        if previous is not None:
            yield from previous.iter_frames()
        if labelled is not None:
            for atoms in labelled.iter_frames():
                drop_keys(atoms, PREDICTION_KEYS)
                atoms.info["iteration"] = int(iteration.value)
                yield atoms

    return StructureSetData.from_frames(frames())


def _group_levels(trust: dict) -> dict[str, tuple[float, float]]:
    """(lo, hi) per atom group: ``all``, and ``framework`` / ``guest`` where given."""
    return TrustWindow.from_mapping(trust, "trust").levels()


def classify(deviation: dict[str, np.ndarray], trust: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: trusted (every group below its lo) and failed (some group above its hi) masks.

    With per-group levels (``trust['framework']`` / ``trust['guest']`` = [lo, hi]) the group's own sigma_max
    is compared with them; a group absent from a frame (NaN, e.g. no guest) does not count.
    """
    levels = _group_levels(trust)
    arrays = {"all": deviation["sigma_max"]}
    if "framework" in levels:
        arrays["framework"] = deviation["sigma_max_framework"]
    if "guest" in levels:
        arrays["guest"] = deviation["sigma_max_guest"]
    if len(levels) > 1:
        arrays.pop("all")
        levels.pop("all")
    n = len(deviation["sigma_max"])
    trusted = np.ones(n, dtype=bool)
    failed = np.zeros(n, dtype=bool)
    for group, values in arrays.items():
        lo, hi = levels[group]
        values = np.asarray(values, dtype=float)
        present = np.isfinite(values)
        trusted &= ~present | (values < lo)
        failed |= present & (values > hi)
    return trusted, failed


@calcfunction
def assess_exploration(explored: StructureSetData, deviation: orm.ArrayData, settings: orm.Dict) -> dict:
    """The convergence decision of one iteration and the sigma array for the selection window.

    ``settings``: ``trust`` {lo, hi[, framework, guest]}, ``converged_fraction``, ``n_blowups``. Converged
    when, for every loading, the fraction of trusted frames reaches ``converged_fraction``, no frame is
    above hi, and no exploration MD blew up. Outputs ``summary`` (Dict) and ``window_sigma`` (ArrayData
    ``sigma_max``: the frame's sigma_max for candidates, 0 for trusted and +inf for failed frames).
    """
    params = settings.get_dict()
    trust = params["trust"]
    arrays = {name: deviation.get_array(name) for name in deviation.get_arraynames()}
    trusted, failed = classify(arrays, trust)
    candidates = ~trusted & ~failed
    loadings = np.array(
        [int(atoms.info.get("loading", fr.n_guests(atoms))) for atoms in explored.iter_frames()]
    )
    if len(loadings) != len(trusted):
        raise ValueError(f"{len(loadings)} explored frames but {len(trusted)} deviation values")
    sigma = np.asarray(arrays["sigma_max"], dtype=float)
    per_loading = {}
    for loading in sorted(set(loadings.tolist())):
        mask = loadings == loading
        per_loading[str(loading)] = {
            "n_explored": int(mask.sum()),
            "fraction_below_lo": float(trusted[mask].mean()),
            "n_candidates": int(candidates[mask].sum()),
            "n_above_hi": int(failed[mask].sum()),
            "sigma_max_mean": float(np.mean(sigma[mask])),
            "sigma_max_max": float(np.max(sigma[mask])),
        }
    fraction = float(params.get("converged_fraction", 0.95))
    n_blowups = int(params.get("n_blowups", 0))
    converged = (
        bool(per_loading)
        and all(
            row["fraction_below_lo"] >= fraction and row["n_above_hi"] == 0 for row in per_loading.values()
        )
        and n_blowups == 0
    )
    summary = {
        "n_explored": len(sigma),
        "fraction_below_lo": float(trusted.mean()) if len(sigma) else 0.0,
        "n_candidates": int(candidates.sum()),
        "n_above_hi": int(failed.sum()),
        "n_blowups": n_blowups,
        "per_loading": per_loading,
        "converged": converged,
        "trust": trust,
        "converged_fraction": fraction,
        "units": {"sigma": "eV/Angstrom"},
    }
    lo, hi = float(trust["lo"]), float(trust["hi"])
    window = np.where(trusted, 0.0, np.where(failed, np.inf, np.clip(sigma, lo, hi)))
    window_node = orm.ArrayData()
    window_node.set_array("sigma_max", window)
    window_node.base.attributes.set("units", {"sigma_max": "eV/Angstrom"})
    return {"summary": orm.Dict(summary), "window_sigma": window_node}


@calcfunction
def pick_random_frames(frames: StructureSetData, settings: orm.Dict) -> StructureSetData:
    """``settings['n_per_loading']`` random frames of each loading (seeded), skipping the first ``skip``."""
    params = settings.get_dict()
    rng = np.random.default_rng(int(params.get("seed", 0)))
    skip = int(params.get("skip", 0))
    by_loading: dict[int, list[int]] = {}
    for index, atoms in enumerate(frames.iter_frames()):
        by_loading.setdefault(int(atoms.info.get("loading", fr.n_guests(atoms))), []).append(index)
    chosen = []
    for loading in sorted(by_loading):
        indices = by_loading[loading][skip:] or by_loading[loading]
        n = min(int(params["n_per_loading"]), len(indices))
        chosen.extend(sorted(rng.choice(indices, size=n, replace=False).tolist()))
    picked = frames.get_frames(chosen)
    for index, atoms in zip(chosen, picked, strict=True):
        strip_predictions(atoms)
        atoms.info["parent_index"] = int(index)
        atoms.info["config_type"] = "validation"
    return StructureSetData.from_frames(picked)


def error_metrics(ref_e, pred_e, n_atoms, ref_f, pred_f, ref_s=None, pred_s=None) -> dict:
    """MAE/RMSE of energy per atom (eV/atom), force components (eV/Angstrom) and, given, stress (eV/A^3).

    See :func:`aiida_mofmlp.common.metrics.error_metrics`; ``ref_s``/``pred_s`` are its ``ref_stress`` and
    ``pred_stress`` (one Voigt stress per stress-labelled frame).
    """
    from aiida_mofmlp.common.metrics import error_metrics as shared_error_metrics

    return shared_error_metrics(ref_e, pred_e, n_atoms, ref_f, pred_f, ref_stress=ref_s, pred_stress=pred_s)


@calcfunction
def validation_errors(labelled: StructureSetData, deviation: orm.ArrayData) -> dict:
    """Errors of the ensemble-mean prediction (from the deviation arrays) against the labels of ``labelled``.

    Outputs ``metrics`` (Dict: all frames and per loading) and ``frames`` (the labelled frames with the
    predictions under the MACE_* keys, for parity plots). When the deviation holds ``stress_mean`` (the
    deviation engine's ``compute_stress``) and frames carry ``REF_stress``, the stress errors of those
    frames are added (``n_frames_stress``, ``mae_stress``/``rmse_stress`` in eV/Angstrom^3 and in GPa) and
    the predicted stress is stored under ``MACE_stress``.
    """
    from aiida_mofmlp.common.metrics import STRESS_METRIC_UNITS, composition_offset_metrics

    energies = np.asarray(deviation.get_array("energies"), dtype=float).mean(axis=0)
    forces = np.asarray(deviation.get_array("forces_mean"), dtype=float)
    offsets = np.asarray(deviation.get_array("atom_offsets"), dtype=int)
    stresses = None
    if "stress_mean" in deviation.get_arraynames():
        stresses = np.asarray(deviation.get_array("stress_mean"), dtype=float)
    frames = labelled.get_frames()
    if len(frames) != len(energies):
        raise ValueError(f"{len(frames)} labelled frames but {len(energies)} predictions")
    loadings, ref_e, n_atoms, ref_f, pred_f, with_stress = [], [], [], [], [], []
    for index, atoms in enumerate(frames):
        predicted = forces[offsets[index] : offsets[index + 1]]
        atoms.info[fr.PREDICTED_ENERGY_KEY] = float(energies[index])
        atoms.arrays[fr.PREDICTED_FORCES_KEY] = predicted
        if stresses is not None and np.all(np.isfinite(stresses[index])):
            atoms.info[fr.PREDICTED_STRESS_KEY] = stresses[index]
            if fr.STRESS_KEY in atoms.info:
                with_stress.append(index)
        loadings.append(int(atoms.info.get("loading", 0)))
        ref_e.append(fr.get_energy(atoms))
        n_atoms.append(len(atoms))
        ref_f.append(fr.get_forces(atoms))
        pred_f.append(predicted)

    def metrics_of(indices: list[int]) -> dict:
        stress = [i for i in indices if i in with_stress]
        return error_metrics(
            [ref_e[i] for i in indices],
            energies[indices],
            [n_atoms[i] for i in indices],
            [ref_f[i] for i in indices],
            [pred_f[i] for i in indices],
            *(([frames[i].info[fr.STRESS_KEY] for i in stress], stresses[stress]) if stress else ()),
        )

    metrics = metrics_of(list(range(len(frames))))
    metrics["composition"] = composition_offset_metrics(
        ref_e, energies, n_atoms, [fr.n_guests(atoms) for atoms in frames]
    )
    per_loading = {
        str(loading): metrics_of([i for i, value in enumerate(loadings) if value == loading])
        for loading in sorted(set(loadings))
    }
    metrics["per_loading"] = per_loading
    metrics["prediction"] = "ensemble mean"
    metrics["units"] = {
        "mae_e_per_atom": "eV/atom",
        "rmse_e_per_atom": "eV/atom",
        "mae_f": "eV/Angstrom",
        "composition.offsets": "eV per cell",
        "composition.mae_e_per_atom_offset_removed": "eV/atom",
        "composition.rmse_e_offset_removed": "eV per cell",
        "composition.binding_energy_spread_kj_mol": "kJ/mol per guest",
    }
    if with_stress:
        metrics["units"].update(STRESS_METRIC_UNITS)
    return {"metrics": orm.Dict(metrics), "frames": StructureSetData.from_frames(frames)}


#: the keys of an iteration row that come from that iteration's convergence decision (assess_exploration)
DECISION_KEYS = ("fraction_below_lo", "n_above_hi", "n_candidates", "per_loading", "converged")


@calcfunction
def tabulate_iterations(
    rows: orm.List, settings: orm.Dict, previous: orm.Dict | None = None, **decisions: orm.Dict
) -> orm.Dict:
    """The iteration table of an active-learning run: one row of numbers per iteration.

    ``rows``: the per-iteration counts the work chain kept (``iteration``, ``n_training``, ``n_explored``,
    ``n_selected``, ...); ``decisions``: the ``summary`` of :func:`assess_exploration` of iteration k as
    ``convergence_kk``, whose numbers (:data:`DECISION_KEYS`) fill that iteration's row; ``settings``:
    ``trust`` and ``converged_fraction``. ``previous``: the table of the run this one continues (a restart):
    its rows of iterations before this run's first come first, marked ``previous_run: True``. The run is
    converged when one of its iterations was; where the property stop rule's reference check ran
    (``properties_agree`` in the row), the check decides and sigma's decision is kept as ``sigma_converged``.
    """
    own = [int(row["iteration"]) for row in rows.get_list()]
    first = min(own) if own else None
    table_rows = []
    if previous is not None:
        for row in previous.get_dict().get("rows", []):
            if first is None or int(row["iteration"]) < first:
                table_rows.append({**row, "previous_run": True})
    for row in rows.get_list():
        row = dict(row)
        decision = decisions.get(f"convergence_{int(row['iteration']):02d}")
        if decision is not None:
            numbers = decision.get_dict()
            row.update({key: numbers[key] for key in DECISION_KEYS})
            row.update(numbers.get("row", {}))  # a strategy's own numbers (e.g. the ramp's temperature)
        if "properties_agree" in row:  # the property stop rule's check ran: it decides (sigma kept beside)
            row["sigma_converged"] = bool(row.get("converged"))
            row["converged"] = bool(row["properties_agree"])
        table_rows.append(row)
    params = settings.get_dict()
    table = {
        "strategy": params.get("strategy", "uncertainty"),
        "stop_rule": params.get("stop_rule"),
        "stop": params.get("stop", "sigma"),
        "rows": table_rows,
        "continues": previous.uuid if previous is not None else None,
        "converged": any(bool(row.get("converged")) for row in table_rows if row["iteration"] > 0),
        "n_iterations": len([row for row in table_rows if row["iteration"] > 0]),
        "trust": params["trust"],
        "converged_fraction": params["converged_fraction"],
        "units": {"sigma": "eV/Angstrom", "valid_mae_f": "eV/Angstrom"},
    }
    return orm.Dict(table)


@calcfunction
def displace_frames(frames: StructureSetData, settings: orm.Dict) -> StructureSetData:
    """``n_copies`` copies of every frame with Gaussian displacements of ``displacement_A`` (Angstrom) per
    Cartesian component (seeded by ``seed``): the starting points of the temperature ramp's NPT runs.

    Each copy keeps its frame's info (``loading``) and gets ``run`` (0, 1, ... over all copies),
    ``parent_index`` (the frame it came from) and ``config_type`` ``displaced``.
    """
    params = settings.get_dict()
    rng = np.random.default_rng(int(params.get("seed", 0)))
    amplitude = float(params["displacement_A"])
    copies, run = [], 0
    for index, atoms in enumerate(frames.iter_frames()):
        strip_predictions(atoms)
        for _ in range(int(params["n_copies"])):
            copy = atoms.copy()
            copy.positions = atoms.positions + rng.normal(0.0, amplitude, atoms.positions.shape)
            copy.info.update({"run": run, "parent_index": index, "config_type": "displaced"})
            copy.info["loading"] = int(atoms.info.get("loading", fr.n_guests(atoms)))
            copies.append(copy)
            run += 1
    node = StructureSetData.from_frames(copies)
    node.base.attributes.set("displacement_A", amplitude)
    return node


@calcfunction
def assess_temperature_ramp(trust: orm.Dict, selection: orm.Dict, settings: orm.Dict) -> orm.Dict:
    """The temperature ramp's decision of one iteration (Sharma & Sanvito, npj Comput. Mater. 2024).

    ``trust``: the iteration's :func:`assess_exploration` summary (sigma_max numbers, reported only);
    ``selection``: the CBAD selection's report; ``settings``: ``temperature`` and ``top_K`` (K), ``n_runs``.
    Converged when the iteration ran at the top temperature and CBAD accepted no frame (no new bin). The
    result has the :data:`DECISION_KEYS` (``converged`` from the ramp's rule, ``converged_by_sigma`` the
    trust decision) and ``row``: the numbers the iteration table shows for this strategy.
    """
    from aiida_mofmlp.workflows.active_learning.strategies import ramp_decision

    params = settings.get_dict()
    report = selection.get_dict()
    summary = trust.get_dict()
    n_new = int(report.get("n_selected", 0))
    decision = ramp_decision(float(params["temperature"]), float(params["top_K"]), n_new)
    cbad = report.get("cbad", {})
    row = {
        "temperature_K": float(params["temperature"]),
        "n_md_runs": int(params["n_runs"]),
        "n_new_frames": n_new,
        "n_bins_covered": cbad.get("n_bins_covered"),
        "n_bins_known_before": cbad.get("n_bins_known_before"),
        "at_top_temperature": decision["at_top_temperature"],
        "stop": decision["converged"],
    }
    result = {
        **summary,
        "converged_by_sigma": summary["converged"],
        "converged": decision["converged"],
        "stop_rule": "an iteration at the top temperature adds no frame",
        "row": row,
        "units": {**summary.get("units", {}), "temperature_K": "K"},
    }
    return orm.Dict(result)


@calcfunction
def collect_labelled_frames(tags: orm.Dict, **sets: StructureSetData) -> StructureSetData:
    """Merge labelled ``sets`` (e.g. AIMD trajectories) in key order, keeping their REF_* labels.

    Each frame's info is updated from ``tags[key]``; ``loading`` is set from the guests; MACE predictions
    are removed. ``tags['drop_stress']`` (true) removes REF_stress (noisy AIMD stress is not trained).
    """
    meta = tags.get_dict()
    drop_stress = bool(meta.get("drop_stress", False))

    def frames():
        for key in sorted(sets):
            for atoms in sets[key].iter_frames():
                drop_keys(atoms, PREDICTION_KEYS)
                if drop_stress:
                    drop_keys(atoms, (fr.STRESS_KEY,))
                atoms.info.update(meta.get(key, {}))
                atoms.info["loading"] = fr.n_guests(atoms)
                yield atoms

    return StructureSetData.from_frames(frames())
