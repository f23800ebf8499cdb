"""Structure selection engine (console script ``mofmlp-select``): which frames of a pool to label next.

Methods (``method``):

* ``kmeans`` — averaged SOAP per frame (dscribe), optional PCA, k-means, keep the frame nearest each centre
  (Jin et al., Chem. Sci. 2026).
* ``fps`` — the same descriptors, greedy farthest-point sampling (Elena et al., npj Comput. Mater. 2025).
* ``cbad`` — cell, bond, angle and dihedral bins; accept a frame that fills a new bin
  (Sharma & Sanvito, npj Comput. Mater. 2024).
* ``flat_histogram`` — one frame per energy-per-atom bin (Castel et al., Digital Discovery 2024).
* ``random`` — uniform random picks (a baseline).

Common options: a ``sigma_window`` [lo, hi] (eV/Angstrom) pre-filter from an ensemble-deviation array,
de-duplication against an existing training set (``dedup_threshold``, distance in the same descriptor space:
no frame closer than that to a labelled one, or to another selected one, is picked), and ``quota`` per group
of frames sharing an info value (``group_by``, e.g. ``loading``). Descriptors are computed frame by frame, so
memory is ``n_frames x n_features`` and never the per-atom SOAP matrix of the pool.

The console script reads one YAML/JSON file::

    pool: pool.extxyz            # required
    training: training.extxyz    # optional: already labelled frames
    sigma: sigma.npy             # optional: per-frame sigma_max (.npy/.npz/.json/.txt)
    energies: energies.npy       # optional: per-frame total energy in eV (else REF_energy)
    method: kmeans
    n_select: 200
    ...                          # every other key: see DEFAULT_PARAMETERS

and writes ``selected.json`` (indices and report), ``selected.extxyz`` (the frames, ``parent_index`` set)
and, when the map is on, ``map.npz`` and ``map.png``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from aiida_mofmlp.common import frames as fr
from aiida_mofmlp.common.schema import type_problem
from aiida_mofmlp.common.serialise import dumps
from aiida_mofmlp.engines.io import read_input
from aiida_mofmlp.engines.selection.cbad import BinRegistry, CbadSettings, cbad_accept, cbad_bins
from aiida_mofmlp.engines.selection.histogram import flat_histogram
from aiida_mofmlp.engines.selection.maps import MAP_METHODS, embed_2d, save_map
from aiida_mofmlp.engines.selection.sampling import (
    coverage_metrics,
    dedup_mask,
    farthest_point_sampling,
    kmeans_sampling,
    min_distances,
    pca_fit_transform,
)
from aiida_mofmlp.engines.selection.soap import SoapSettings, soap_descriptors

__all__ = [
    "DEFAULT_PARAMETERS",
    "METHODS",
    "OUTPUT_FILES",
    "CbadSettings",
    "SelectionResult",
    "SoapSettings",
    "cbad_accept",
    "cbad_bins",
    "coverage_metrics",
    "dedup_mask",
    "embed_2d",
    "farthest_point_sampling",
    "flat_histogram",
    "kmeans_sampling",
    "main",
    "min_distances",
    "read_array",
    "run_selection",
    "select",
    "soap_descriptors",
    "validate_parameters",
]

METHODS = ("kmeans", "fps", "cbad", "flat_histogram", "random")

#: names of the files the console script writes
OUTPUT_FILES = {
    "report": "selected.json",
    "frames": "selected.extxyz",
    "map_data": "map.npz",
    "map_figure": "map.png",
}

DEFAULT_PARAMETERS: dict = {
    "method": "kmeans",
    "n_select": 200,  # total, when no quota is given
    "seed": 0,
    "sigma_window": None,  # [lo, hi] in eV/Angstrom: only frames with lo <= sigma_max <= hi are candidates
    "group_by": None,  # info key grouping frames for quotas, e.g. "loading"
    "quota": None,  # frames per group: an int for every group or {group value: int}
    "dedup_threshold": 0.0,  # descriptor distance below which a frame counts as already labelled (0: off)
    "pca_components": None,  # reduce descriptors to this many principal components before selecting
    "soap": {},  # see SoapSettings
    "cbad": {},  # see CbadSettings
    "flat_histogram": {"n_bins": None, "bin_width": None},  # n_bins defaults to the number to select
    "map": {"enabled": True, "method": "pca", "perplexity": 30.0},
}


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def validate_parameters(parameters: dict | None) -> dict:
    """Parameters merged over :data:`DEFAULT_PARAMETERS` and checked; raises ValueError naming the bad key."""
    params = copy.deepcopy(DEFAULT_PARAMETERS)
    parameters = dict(parameters or {})
    unknown = sorted(set(parameters) - set(params))
    if unknown:
        raise ValueError(f"unknown selection parameter(s) {unknown}; valid: {sorted(params)}")
    message = type_problem(parameters, params, "selection")
    if message:
        raise ValueError(message)
    for key in ("sigma_window", "quota", "pca_components"):  # open defaults (None): checked by kind here
        value = parameters.get(key)
        allowed = {"sigma_window": (list, tuple), "quota": (int, dict), "pca_components": (int,)}[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, allowed)):
            raise ValueError(f"selection.{key}={value!r} has the wrong type; see DEFAULT_PARAMETERS")
    for key, value in parameters.items():
        if isinstance(params[key], dict) and isinstance(value, dict):
            params[key].update(value)
        else:
            params[key] = value
    if params["method"] not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {params['method']!r}")
    if not isinstance(params["n_select"], (int, np.integer)) or params["n_select"] < 0:
        raise ValueError(f"n_select must be an integer >= 0, got {params['n_select']!r}")
    window = params["sigma_window"]
    if window is not None:
        if len(window) != 2 or not all(_is_number(v) for v in window) or not window[0] <= window[1]:
            raise ValueError(f"sigma_window must be [lo, hi] with lo <= hi (eV/Angstrom), got {window!r}")
        params["sigma_window"] = [float(window[0]), float(window[1])]
    quota = params["quota"]
    if quota is not None:
        if isinstance(quota, dict):
            if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in quota.values()):
                raise ValueError(f"quota values must be whole numbers >= 0, got {quota!r}")
            params["quota"] = {str(k): int(v) for k, v in quota.items()}
        elif int(quota) < 0:
            raise ValueError(f"quota must be >= 0 or a dict group -> count, got {quota!r}")
        if not params["group_by"]:
            params["group_by"] = "loading"
    if float(params["dedup_threshold"]) < 0:
        raise ValueError(f"dedup_threshold must be >= 0, got {params['dedup_threshold']}")
    if params["pca_components"] is not None and int(params["pca_components"]) < 1:
        raise ValueError(f"pca_components must be >= 1 or null, got {params['pca_components']}")
    params["soap"] = SoapSettings.from_dict(params["soap"]).as_dict()
    params["cbad"] = CbadSettings.from_dict(params["cbad"]).as_dict()
    hist = params["flat_histogram"]
    unknown = sorted(set(hist) - {"n_bins", "bin_width"})
    if unknown:
        raise ValueError(f"flat_histogram: unknown key(s) {unknown}; valid: ['bin_width', 'n_bins']")
    if hist.get("n_bins") is not None and hist.get("bin_width") is not None:
        raise ValueError("flat_histogram: give n_bins or bin_width, not both")
    mapping = params["map"]
    unknown = sorted(set(mapping) - {"enabled", "method", "perplexity"})
    if unknown:
        raise ValueError(f"map: unknown key(s) {unknown}; valid: ['enabled', 'method', 'perplexity']")
    if mapping.get("method", "pca") not in MAP_METHODS:
        raise ValueError(f"map.method must be one of {MAP_METHODS}, got {mapping.get('method')!r}")
    return params


FrameSource = Sequence[Atoms] | str | Path


def _stream(source: FrameSource) -> Iterator[Atoms]:
    if isinstance(source, (str, Path)):
        return fr.iter_frames(source)
    return iter(source)


@dataclass
class _Scan:
    n_atoms: list[int] = field(default_factory=list)
    energy: list[float] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    species: set[str] = field(default_factory=set)

    @property
    def count(self) -> int:
        return len(self.n_atoms)


def _recording(frames: Iterable[Atoms], scan: _Scan, group_by: str | None) -> Iterator[Atoms]:
    """Yield ``frames`` unchanged while recording their size, energy, group and species in ``scan``."""
    for atoms in frames:
        scan.n_atoms.append(len(atoms))
        energy = fr.get_energy(atoms)
        scan.energy.append(np.nan if energy is None else energy)
        scan.groups.append(str(atoms.info.get(group_by)) if group_by else "all")
        scan.species.update(atoms.get_chemical_symbols())
        yield atoms


def _scan(frames: Iterable[Atoms], group_by: str | None) -> _Scan:
    scan = _Scan()
    for _ in _recording(frames, scan, group_by):
        pass
    return scan


@dataclass
class SelectionResult:
    """Selected pool indices (in selection order), a JSON-able report, and map coordinates if any."""

    selected: list[int]
    report: dict
    pool_xy: np.ndarray | None = None
    training_xy: np.ndarray | None = None
    descriptors: np.ndarray | None = None


def _as_array(values, name: str, n: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.shape[0] != n:
        raise ValueError(
            f"{name} has {array.shape[0]} values but the pool has {n} frames; give one per frame"
        )
    return array


def select(
    pool: FrameSource,
    parameters: dict | None = None,
    training: FrameSource | None = None,
    sigma: Sequence[float] | np.ndarray | None = None,
    energies: Sequence[float] | np.ndarray | None = None,
) -> SelectionResult:
    """Choose frames of ``pool`` to label.

    ``pool`` and ``training`` are lists of Atoms or extxyz paths (paths are streamed, never loaded whole).
    ``sigma`` is the per-frame sigma_max (eV/Angstrom) used by ``sigma_window``; ``energies`` the per-frame
    total energy (eV) for ``flat_histogram`` when the frames carry no REF_energy.
    """
    params = validate_parameters(parameters)
    start = time.perf_counter()
    method = params["method"]
    seed = int(params["seed"])
    # descriptors: needed by kmeans/fps, by de-duplication and by the map
    need_soap = (
        method in ("kmeans", "fps")
        or params["map"]["enabled"]
        or (float(params["dedup_threshold"]) > 0 and method == "random")
    )
    soap = SoapSettings.from_dict(params["soap"])
    x_pool = x_train = None
    time_descriptors = 0.0
    if need_soap and soap.species:  # species known: one pass over the pool reads metadata and SOAP
        scan = _Scan()
        t0 = time.perf_counter()
        x_pool = soap_descriptors(_recording(_stream(pool), scan, params["group_by"]), soap)
        time_descriptors += time.perf_counter() - t0
    else:
        scan = _scan(_stream(pool), params["group_by"])
    n_pool = scan.count
    if n_pool == 0:
        raise ValueError("the pool holds no frames")
    report: dict = {"method": method, "n_pool": n_pool, "parameters": params, "warnings": []}

    candidates = np.ones(n_pool, dtype=bool)
    if params["sigma_window"] is not None:
        if sigma is None:
            raise ValueError("sigma_window is set but no sigma array was given")
        sigma_arr = _as_array(sigma, "sigma", n_pool)
        lo, hi = params["sigma_window"]
        candidates &= (sigma_arr >= lo) & (sigma_arr <= hi)
        report["n_in_sigma_window"] = int(candidates.sum())

    if need_soap:
        training_species: set[str] = set()
        if training is not None and not soap.species:
            training_species = set(_scan(_stream(training), None).species)
        species = soap.species or sorted(scan.species | training_species)
        report["soap_species"] = list(species)
        t0 = time.perf_counter()
        if x_pool is None:
            x_pool = soap_descriptors(_stream(pool), soap, species=species)
        x_train = (
            soap_descriptors(_stream(training), soap, species=species)
            if training is not None
            else np.zeros((0, x_pool.shape[1]), dtype=x_pool.dtype)
        )
        report["n_features"] = int(x_pool.shape[1])
        report["time_descriptors_s"] = round(time_descriptors + time.perf_counter() - t0, 3)
        if params["pca_components"]:
            (x_pool, x_train), ratio = pca_fit_transform(
                [x_pool, x_train], int(params["pca_components"]), seed
            )
            report["pca_explained_variance"] = float(np.sum(ratio))
        threshold = float(params["dedup_threshold"])
        if len(x_train):
            nearest_train = min_distances(x_pool, x_train)
            if threshold > 0:
                duplicate = nearest_train < threshold
                report["n_excluded_as_duplicates"] = int((duplicate & candidates).sum())
                if method in ("kmeans", "fps", "random"):
                    candidates &= ~duplicate

    report["n_candidates"] = int(candidates.sum())
    groups = np.array(scan.groups)
    quota = params["quota"]
    group_names = sorted(set(scan.groups)) if quota is not None else ["all"]
    if quota is None:
        groups = np.full(n_pool, "all")

    def wanted(group: str) -> int:
        if quota is None:
            return int(params["n_select"])
        if isinstance(quota, dict):
            return int(quota.get(group, 0))
        return int(quota)

    selected: list[int] = []
    per_group: dict[str, dict] = {}
    threshold = float(params["dedup_threshold"])
    rng = np.random.default_rng(seed)

    if method in ("kmeans", "fps", "random"):
        for group in group_names:
            members = np.flatnonzero(candidates & (groups == group))
            n_want = wanted(group)
            existing = np.vstack([x_train, x_pool[selected]]) if x_pool is not None else None
            if method == "random":
                picks = rng.permutation(members)
                chosen: list[int] = []
                for row in picks:
                    if len(chosen) >= n_want:
                        break
                    too_close = threshold > 0 and x_pool is not None and chosen
                    if too_close and min_distances(x_pool[row : row + 1], x_pool[chosen])[0] < threshold:
                        continue
                    chosen.append(int(row))
            elif method == "kmeans":
                local = kmeans_sampling(
                    x_pool[members], n_want, existing=existing, min_distance=threshold, seed=seed
                )
                chosen = [int(members[i]) for i in local]
            else:
                local = farthest_point_sampling(
                    x_pool[members], n_want, existing=existing, min_distance=threshold
                )
                chosen = [int(members[i]) for i in local]
            selected.extend(chosen)
            per_group[group] = {
                "n_candidates": int(members.size),
                "n_wanted": n_want,
                "n_selected": len(chosen),
            }
    elif method == "cbad":
        cbad = CbadSettings.from_dict(params["cbad"])
        registry = BinRegistry()
        known = cbad_bins(_stream(training), cbad, registry)[0] if training is not None else []
        pool_bins, registry = cbad_bins(_stream(pool), cbad, registry)
        order = rng.permutation(np.flatnonzero(candidates))
        taken = {g: 0 for g in group_names}
        limits = {g: wanted(g) for g in group_names}
        seen: set[int] = set()
        for bins in known:
            seen.update(bins.tolist())
        new_counts: list[int] = []
        for index in order:
            group = str(groups[index])
            if taken[group] >= limits[group]:
                continue
            new = set(pool_bins[index].tolist()) - seen
            if new:  # the frame fills at least one bin no accepted or labelled frame fills
                selected.append(int(index))
                new_counts.append(len(new))
                seen |= new
                taken[group] += 1
        report["cbad"] = {
            "n_bins_known_before": int(len(set().union(*[set(b.tolist()) for b in known])) if known else 0),
            "n_bins_total": registry.n_bins,
            "n_bins_covered": len(seen),
            "n_descriptor_types": len(registry.type_keys),
            "new_bins_per_selected": new_counts,
            "order_seed": seed,
        }
        for group in group_names:
            per_group[group] = {
                "n_candidates": int((candidates & (groups == group)).sum()),
                "n_wanted": limits[group],
                "n_selected": taken[group],
            }
    else:  # flat_histogram
        if energies is not None:
            energy = _as_array(energies, "energies", n_pool)
        else:
            energy = np.asarray(scan.energy, dtype=np.float64)
            if np.isnan(energy).all():
                raise ValueError("flat_histogram needs energies: the pool frames have no REF_energy")
        energy_per_atom = energy / np.asarray(scan.n_atoms, dtype=np.float64)
        hist = params["flat_histogram"]
        report["flat_histogram"] = {}
        for group in group_names:
            members = candidates & (groups == group)
            n_bins = hist.get("n_bins") or (None if hist.get("bin_width") else wanted(group))
            result = flat_histogram(
                energy_per_atom, n_bins=n_bins, bin_width=hist.get("bin_width"), candidates=members, seed=seed
            )
            selected.extend(result["selected"])
            report["flat_histogram"][group] = {k: v for k, v in result.items() if k != "selected"}
            per_group[group] = {
                "n_candidates": int(members.sum()),
                "n_wanted": int(result["n_bins"]),
                "n_selected": len(result["selected"]),
                "n_empty_bins": result["n_empty_bins"],
            }
        report["n_empty_bins"] = int(sum(v["n_empty_bins"] for v in report["flat_histogram"].values()))

    for group, info in per_group.items():
        if info["n_selected"] < info["n_wanted"]:
            report["warnings"].append(
                f"group {group!r}: selected {info['n_selected']} of {info['n_wanted']} wanted "
                f"({info['n_candidates']} candidates)"
            )
    report["groups"] = per_group
    report["group_by"] = params["group_by"] if quota is not None else None
    report["selected"] = [int(i) for i in selected]
    report["n_selected"] = len(selected)

    pool_xy = training_xy = None
    if x_pool is not None:
        report["coverage"] = coverage_metrics(x_pool, selected)
        if len(x_train) and selected:
            report["min_distance_to_training"] = float(min_distances(x_pool[selected], x_train).min())
        if params["map"]["enabled"]:
            pool_xy, training_xy = embed_2d(
                x_pool,
                x_train,
                method=params["map"]["method"],
                seed=seed,
                perplexity=float(params["map"].get("perplexity", 30.0)),
            )
            report["map_method"] = params["map"]["method"]
    report["time_total_s"] = round(time.perf_counter() - start, 3)
    return SelectionResult(selected, report, pool_xy, training_xy, x_pool)


def read_array(path: str | Path, name: str = "sigma_max") -> np.ndarray:
    """A 1-D float array from ``.npy``, ``.npz`` (array ``name`` or the only one), ``.json`` (a list or
    ``{name: list}``) or a whitespace text file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"array file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        data = np.load(path)
    elif suffix == ".npz":
        with np.load(path) as archive:
            if name in archive.files:
                data = archive[name]
            elif len(archive.files) == 1:
                data = archive[archive.files[0]]
            else:
                raise ValueError(f"{path} holds arrays {archive.files}; expected one named {name!r}")
    elif suffix == ".json":
        content = json.loads(path.read_text())
        data = content[name] if isinstance(content, dict) else content
    else:
        data = np.loadtxt(path)
    return np.asarray(data, dtype=np.float64).reshape(-1)


def write_selected_frames(pool: FrameSource, selected: Sequence[int], path: str | Path) -> int:
    """Write the selected pool frames (in selection order) to extxyz with ``parent_index`` set."""
    wanted = {int(i) for i in selected}
    picked: dict[int, Atoms] = {}
    for index, atoms in enumerate(_stream(pool)):
        if index in wanted:
            frame = atoms.copy()
            frame.info["parent_index"] = index
            picked[index] = frame
            if len(picked) == len(wanted):
                break
    return fr.write_frames([picked[int(i)] for i in selected], path)


def run_selection(config: dict, workdir: str | Path = ".") -> SelectionResult:
    """Run the selection described by a console-script input dict; write the output files in ``workdir``."""
    config = dict(config)
    workdir = Path(workdir)
    base = Path(config.pop("_base_dir", workdir))
    if "pool" not in config:
        raise ValueError("input: `pool` (path of the candidate extxyz) is required")

    def resolve(value) -> Path:
        path = Path(value)
        return path if path.is_absolute() else base / path

    pool = resolve(config.pop("pool"))
    if not pool.is_file():
        raise FileNotFoundError(f"input: pool file {pool} does not exist")
    training = config.pop("training", None)
    training = resolve(training) if training else None
    if training is not None and not training.is_file():
        raise FileNotFoundError(f"input: training file {training} does not exist")
    sigma = config.pop("sigma", None)
    sigma = read_array(resolve(sigma), "sigma_max") if sigma else None
    energies = config.pop("energies", None)
    energies = read_array(resolve(energies), "energies") if energies else None
    result = select(pool, config, training=training, sigma=sigma, energies=energies)
    write_selected_frames(pool, result.selected, workdir / OUTPUT_FILES["frames"])
    if result.pool_xy is not None:
        save_map(
            workdir / "map",
            result.pool_xy,
            np.asarray(result.selected),
            result.training_xy,
            method=result.report.get("map_method", "pca"),
            title=f"{result.report['method']}: {result.report['n_selected']} of {result.report['n_pool']}",
        )
        result.report["map_files"] = [OUTPUT_FILES["map_data"], OUTPUT_FILES["map_figure"]]
    (workdir / OUTPUT_FILES["report"]).write_text(dumps(result.report, indent=1))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: ``mofmlp-select input.yaml``; outputs go to the working directory."""
    parser = argparse.ArgumentParser(prog="mofmlp-select", description=__doc__.split("\n")[0])
    parser.add_argument("input", help="YAML or JSON input file")
    parser.add_argument(
        "--workdir", default=".", help="where to write the outputs (default: current directory)"
    )
    args = parser.parse_args(argv)
    try:
        config = read_input(args.input)
        config.setdefault("_base_dir", str(Path(args.input).resolve().parent))
        result = run_selection(config, args.workdir)
    except (ValueError, FileNotFoundError, KeyError) as error:
        print(f"mofmlp-select: error: {error}", file=sys.stderr)
        return 2
    report = result.report
    print(
        f"mofmlp-select: {report['method']} selected {report['n_selected']} of {report['n_pool']} frames "
        f"in {report['time_total_s']} s"
    )
    for warning in report["warnings"]:
        print(f"mofmlp-select: warning: {warning}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
