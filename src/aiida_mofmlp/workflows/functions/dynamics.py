"""Calcfunctions and small helpers of the dynamics property work chains (diffusion, expansion, melt-quench).

The analysis runs here, in calcfunctions over the trajectory nodes, not in a separate engine job: the
trajectories of property runs are small (hundreds of frames dumped every 50-500 fs) and each analysis
takes seconds, so a CalcJob would only add a queue wait. The numerics themselves live AiiDA-free in
:mod:`aiida_mofmlp.engines.analysis`, so moving them into an engine step later changes no physics.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mofmlp.common.serialise import to_jsonable
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.analysis import diffusion as dif
from aiida_mofmlp.engines.analysis import integrity as integ
from aiida_mofmlp.engines.analysis import lattice as lat
from aiida_mofmlp.engines.analysis import structure as st
from aiida_mofmlp.engines.analysis import trajectory as tr
from aiida_mofmlp.engines.analysis.pores import pore_geometry
from aiida_mofmlp.engines.analysis.vibrations import dominant_frequencies, vibrational_dos
from aiida_mofmlp.workflows.functions.active_learning import strip_predictions


def temperature_key(temperature: float) -> str:
    """Link-label-safe key of a temperature: ``T300``, ``T77p5``."""
    text = f"{float(temperature):g}".replace(".", "p").replace("-", "m")
    return f"T{text}"


def validate_temperatures(value: orm.List, _ctx=None) -> str | None:
    """Temperatures: a non-empty list of distinct numbers > 0 K."""
    temperatures = value.get_list()
    try:
        numbers = [float(t) for t in temperatures]
    except (TypeError, ValueError):
        return f"temperatures: need numbers in K, got {temperatures}"
    if not numbers:
        return "temperatures: give at least one temperature in K"
    bad = [t for t in numbers if not t > 0]
    if bad:
        return f"temperatures: every temperature must be > 0 K, got {bad}; e.g. [77, 100, 150]"
    if len({temperature_key(t) for t in numbers}) != len(numbers):
        return f"temperatures: values must be distinct, got {numbers}"
    return None


def stress_trained(model: orm.Data) -> bool | None:
    """Was ``model`` trained with stress labels? True/False from its training job, None when unknown."""
    weight = model.base.attributes.get("stress_weight", None)
    creator = model.creator
    if weight is None and creator is not None and "parameters" in creator.inputs:
        weight = creator.inputs.parameters.get_dict().get("stress_weight", None)
        if weight is None:
            return False
    return None if weight is None else float(weight) > 0


def stress_warning(model: orm.Data) -> str | None:
    """A warning for NPT with ``model`` when it was not (or may not have been) trained on stress."""
    trained = stress_trained(model)
    if trained:
        return None
    why = "was trained without stress labels" if trained is False else "has no record of stress training"
    return (
        f"NPT with model {model.__class__.__name__}<{model.pk or 'unstored'}>: the model {why}; its cell "
        "dynamics (lattice parameters, expansion) are not fitted and may be unphysical. The published NPT "
        "work needs stress labels (Sharma & Sanvito, npj Comput. Mater. 2024, "
        "DOI 10.1038/s41524-024-01427-y)."
    )


def _production(frames: list, equilibration_ps: float) -> list:
    times = tr.frame_times_ps(frames)
    kept = [f for f, t in zip(frames, times, strict=True) if t - times[0] >= equilibration_ps]
    if len(kept) < 4:
        raise ValueError(
            f"only {len(kept)} frames after equilibration_ps = {equilibration_ps}; "
            "run longer or dump more often (at least 4 are needed)"
        )
    return kept


def _array_node(arrays: dict, units: dict) -> orm.ArrayData:
    node = orm.ArrayData()
    for key, value in arrays.items():
        node.set_array(key, np.asarray(value, dtype=float))
    node.base.attributes.set("units", units)
    return node


@calcfunction
def analyse_diffusion(trajectory: StructureSetData, parameters: orm.Dict) -> dict:
    """Guest self-diffusion and guest RDFs of one NVT trajectory.

    ``parameters``: ``temperature`` (K), ``equilibration_ps`` (frames before are dropped), ``tolerance`` and
    ``max_fraction`` of the linear-regime search, ``rdf_r_max`` (Angstrom), ``rdf_bins``, ``metals``
    (element list; default: the metals of the framework).
    Returns ``result`` (Dict: D with error, fit window, RDF first peaks) and ``curves`` (ArrayData: lag_ps,
    msd, r, g_metal_guest, g_framework_guest).
    """
    p = parameters.get_dict()
    frames = _production(trajectory.get_frames(), float(p.get("equilibration_ps", 0.0)))
    centres = tr.guest_centres_of_mass(frames)
    result = dif.diffusion_coefficient(
        tr.frame_times_ps(frames),
        centres,
        tolerance=float(p.get("tolerance", 0.25)),
        max_fraction=float(p.get("max_fraction", 0.5)),
    )
    ids = frames[0].arrays["guest_id"]
    framework = ids == 0
    symbols = np.array(frames[0].get_chemical_symbols())
    metals = p.get("metals") or integ.metal_symbols(frames[0][framework])
    metal_mask = framework & np.isin(symbols, metals)
    r_max, n_bins = float(p.get("rdf_r_max", 8.0)), int(p.get("rdf_bins", 160))
    cells = [f.cell.array for f in frames]
    rdfs = {}
    for name, mask in (("metal_guest", metal_mask), ("framework_guest", framework)):
        if mask.any():
            rdfs[name] = st.radial_distribution(
                cells, [f.positions[mask] for f in frames], list(centres), r_max, n_bins
            )
    summary = {k: v for k, v in result.items() if k not in ("lag_ps", "msd")}
    summary["temperature"] = float(p["temperature"])
    summary["metals"] = list(metals)
    summary["n_frames"] = len(frames)
    for name, rdf in rdfs.items():
        peaks = st.first_peaks(rdf["r"], rdf["g"], 1)
        summary[f"{name}_first_peak"] = peaks[0] if peaks else None
    summary["units"] = {**result["units"], "temperature": "K", "first_peak": "Angstrom"}
    arrays = {"lag_ps": result["lag_ps"], "msd": result["msd"]}
    if rdfs:
        arrays["r"] = next(iter(rdfs.values()))["r"]
        arrays.update({f"g_{name}": rdf["g"] for name, rdf in rdfs.items()})
    curves = _array_node(arrays, {"lag_ps": "ps", "msd": "Angstrom^2", "r": "Angstrom"})
    return {"result": orm.Dict(to_jsonable(summary)), "curves": curves}


@calcfunction
def fit_arrhenius(**results: orm.Dict) -> orm.Dict:
    """Arrhenius fit of D(T) from the ``result`` Dicts of :func:`analyse_diffusion` (at least two)."""
    rows = sorted((r["temperature"], r["D"], r["D_error"]) for r in results.values())
    temperatures, values, errors = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    fit = dif.arrhenius_fit(temperatures, values, errors if np.all(errors > 0) else None)
    fit.update(
        {
            "temperatures": temperatures.tolist(),
            "D": values.tolist(),
            "D_error": errors.tolist(),
            "units": {"Ea": "eV and kJ/mol", "prefactor": "Angstrom^2/ps", "temperatures": "K"},
        }
    )
    return orm.Dict(to_jsonable(fit))


@calcfunction
def analyse_lattice(parameters: orm.Dict, **trajectories: StructureSetData) -> dict:
    """Equilibrated lattice parameters per NPT trajectory and expansion coefficients.

    ``parameters``: ``temperatures`` ({key: K}), ``pressures`` ({key: bar}, optional), ``at_temperature``
    (K, default: middle of the range), ``degree`` (1 or 2). Coefficients are fitted over the runs at the
    first pressure. Returns ``result`` (Dict) and ``lattice`` (ArrayData: temperature and each parameter
    with ``<name>_error``).
    """
    p = parameters.get_dict()
    temperatures, pressures = p["temperatures"], p.get("pressures", {})
    per_run = {}
    for key, node in trajectories.items():
        stats = lat.equilibrated_lattice(node.get_frames())
        per_run[key] = {
            "temperature": float(temperatures[key]),
            "pressure_bar": float(pressures.get(key, p.get("pressure_bar", 1.0))),
            **{
                name: {"mean": s["mean"], "error": s["error"], "t0": s["t0"], "g": s["g"]}
                for name, s in stats.items()
            },
        }
    first_pressure = min(r["pressure_bar"] for r in per_run.values())
    rows = sorted(
        (r for r in per_run.values() if r["pressure_bar"] == first_pressure), key=lambda r: r["temperature"]
    )
    t = [r["temperature"] for r in rows]
    coefficients = {}
    degree = int(p.get("degree", 1))
    if len(t) >= degree + 1:
        for name in ("a", "b", "c", "volume"):
            values = [r[name]["mean"] for r in rows]
            errors = [r[name]["error"] for r in rows]
            use_errors = errors if all(np.isfinite(e) and e > 0 for e in errors) else None
            coefficients[name] = lat.expansion_coefficient(
                t, values, use_errors, p.get("at_temperature"), degree
            )
        linear = [coefficients[n]["alpha"] for n in ("a", "b", "c")]
        coefficients["linear_mean"] = {"alpha": float(np.mean(linear)), "units": {"alpha": "1/K"}}
    result = {
        "per_run": per_run,
        "expansion": coefficients,
        "pressure_bar": first_pressure,
        "units": {**lat.LATTICE_UNITS, "temperature": "K", "pressure": "bar", "alpha": "1/K"},
    }
    arrays = {"temperature": t}
    for name in lat.LATTICE_KEYS:
        arrays[name] = [r[name]["mean"] for r in rows]
        arrays[f"{name}_error"] = [r[name]["error"] for r in rows]
    return {
        "result": orm.Dict(to_jsonable(result)),
        "lattice": _array_node(arrays, {**lat.LATTICE_UNITS, "temperature": "K"}),
    }


@calcfunction
def analyse_vdos(trajectory: StructureSetData) -> orm.ArrayData:
    """Vibrational DOS (states/THz, integral 3N) of an NVE trajectory with velocities."""
    frames = trajectory.get_frames()
    times = tr.frame_times_ps(frames)
    dos = vibrational_dos(tr.velocities(frames), frames[0].get_masses(), float(times[1] - times[0]))
    node = _array_node(
        {k: dos[k] for k in ("frequency_thz", "wavenumber_cm1", "dos", "vacf")},
        {"frequency_thz": "THz", "wavenumber_cm1": "cm^-1", "dos": "states/THz"},
    )
    node.base.attributes.set_many(
        {
            "n_atoms": dos["n_atoms"],
            "integral": 3 * dos["n_atoms"],
            "resolution_thz": dos["resolution_thz"],
            "nyquist_thz": dos["nyquist_thz"],
            "main_peaks_thz": dominant_frequencies(dos["frequency_thz"], dos["dos"], 3),
        }
    )
    return node


def _structure_frame(structure):
    return structure.get_frame(0) if isinstance(structure, StructureSetData) else structure.get_ase()


@calcfunction
def analyse_melt_quench(trajectory: StructureSetData, crystal: orm.Data, parameters: orm.Dict) -> dict:
    """Per-frame integrity, melting at the plateau, crystal vs glass structure and pores.

    ``parameters``: ``plateau_steps`` ([first, last] MD step of the plateau), ``glass_steps`` ([first, last]
    of the final equilibration), the integrity settings (``bond_factor``, ``break_factor``, ``cutoff``,
    ``ligands``, ``lindemann``), ``rdf_r_max``, ``rdf_bins``, ``probe_radius`` and ``samples_per_atom``.
    Returns ``integrity`` (Dict), ``timeline`` (ArrayData per frame), ``structure`` (ArrayData of RDFs),
    ``glass`` (StructureSetData: last frame), ``pores`` (Dict) and, when bonds broke, ``broken_frames``.
    """
    p = parameters.get_dict()
    frames = trajectory.get_frames()
    reference = _structure_frame(crystal)
    settings = {k: p[k] for k in integ.INTEGRITY_DEFAULTS if k in p}
    timeline = integ.integrity_timeline(frames, reference, settings)
    steps = np.array([int(f.info.get("step", k)) for k, f in enumerate(frames)])
    first, last = p["plateau_steps"]
    plateau = np.flatnonzero((steps >= first) & (steps <= last))
    positions = tr.unwrapped_positions(frames)
    melting = integ.melting_check(positions[plateau], reference, float(timeline["settings"]["lindemann"]))
    glass_first, glass_last = p["glass_steps"]
    glass_frames = [frames[i] for i in np.flatnonzero((steps >= glass_first) & (steps <= glass_last))]
    glass_frames = glass_frames or frames[-1:]
    metals = timeline["metals"]
    ligands = list(timeline["settings"]["ligands"])
    r_max, n_bins = float(p.get("rdf_r_max", 6.0)), int(p.get("rdf_bins", 120))
    rdf_arrays = {}
    summary_structure = {}
    for name, sample in (("crystal", [reference]), ("glass", glass_frames)):
        rdf = st.element_rdf(sample, metals, ligands, r_max, n_bins) if metals else None
        if rdf is not None:
            rdf_arrays["r"] = rdf["r"]
            rdf_arrays[f"g_{name}"] = rdf["g"]
            peaks = st.first_peaks(rdf["r"], rdf["g"], 1)
            cn = [
                st.coordination_numbers(f, metals, ligands, float(timeline["settings"]["cutoff"]))
                for f in sample
            ]
            summary_structure[name] = {
                "metal_ligand_first_peak": peaks[0] if peaks else None,
                "coordination_mean": float(np.mean([c.mean() for c in cn])) if cn and cn[0].size else 0.0,
            }
    pores = {}
    for name, atoms in (("crystal", reference), ("glass", frames[-1])):
        try:
            pores[name] = pore_geometry(
                atoms, float(p.get("probe_radius", 1.86)), int(p.get("samples_per_atom", 2000))
            )
        except Exception as error:  # Zeo++ fails on some distorted cells: report, keep the other numbers
            pores[name] = {"error": str(error)}
    integrity = {
        "n_frames": len(frames),
        "n_linker_bonds": timeline["n_bonds"],
        "max_broken_bonds": int(timeline["n_broken"].max()) if len(frames) else 0,
        "broken_frames": timeline["broken_frames"],
        "first_broken_bonds": timeline["first_broken"],
        "metals": metals,
        "ligands": ligands,
        "reference_coordination_mean": timeline["reference_coordination_mean"],
        "final_coordination_mean": float(timeline["coordination_mean"][-1]),
        "intact": not timeline["broken_frames"],
        "melting": melting,
        "structure": summary_structure,
        "settings": timeline["settings"],
        "units": {"cutoff": "Angstrom", "first_peak": "Angstrom"},
    }
    outputs = {
        "integrity": orm.Dict(to_jsonable(integrity)),
        "timeline": _array_node(
            {
                "step": steps,
                "time_ps": tr.frame_times_ps(frames),
                "temperature": [float(f.info.get("temperature", np.nan)) for f in frames],
                "n_broken": timeline["n_broken"],
                "coordination_mean": timeline["coordination_mean"],
                "coordination_min": timeline["coordination_min"],
                "changed_coordination": timeline["changed_coordination"],
            },
            {"time_ps": "ps", "temperature": "K"},
        ),
        "structure": _array_node(rdf_arrays, {"r": "Angstrom"}),
        "glass": StructureSetData.from_frames([frames[-1]]),
        "pores": orm.Dict(to_jsonable(pores)),
    }
    if timeline["broken_frames"]:
        broken = []
        for index in timeline["broken_frames"]:
            atoms = strip_predictions(frames[index])
            atoms.info["source"] = "property:melt_quench_integrity"
            broken.append(atoms)
        outputs["broken_frames"] = StructureSetData.from_frames(broken)
    return outputs


@calcfunction
def add_warnings(result: orm.Dict, warnings: orm.List) -> orm.Dict:
    """``result`` with a ``warnings`` list (e.g. NPT with a model trained without stress labels)."""
    return orm.Dict({**result.get_dict(), "warnings": warnings.get_list()})
