"""How many labels does each selection strategy need to reach a target accuracy? (pool-based benchmark)

Every strategy starts from the same random ``--n-start`` frames of the labelled pool (``build_pool.py``'s
cache) and adds ``--batch`` frames per round up to ``--budget`` labels. After each round an ensemble of
``--ensemble`` MACE models is fine-tuned from the small MOF foundation shipped in the package
(``engines.mace.train``, mode ``--mode``; the same recipe, :data:`RECIPE`, for every strategy; members
differ by their training seed) and scored on the fixed test set: force-component MAE (eV/A) and energy MAE
per atom (eV/atom) of the ensemble mean. Strategies (``engines.selection`` building blocks):

* ``ours``            sigma_max window, then SOAP k-means with de-duplication (Jin et al., Chem. Sci. 2026,
                      DOI 10.1039/D5SC09058J);
* ``sigma_topk``      the ``batch`` frames of largest sigma_max;
* ``random``          uniform random frames;
* ``diversity``       SOAP k-means with de-duplication, no sigma;
* ``cbad``            cell/bond/angle/dihedral bins, accept a frame that fills a new bin (Sharma & Sanvito,
                      npj Comput. Mater. 2024, DOI 10.1038/s41524-024-01427-y); random top-up;
* ``flat_histogram``  one frame per bin of the ensemble-predicted energy per atom (Castel et al., Digital
                      Discovery 2024, DOI 10.1039/d3dd00236e; predicted, since the labels of unlabelled
                      frames are unknown); random top-up for empty bins.

sigma_max is the ensemble's force deviation (``engines.mace.deviation.compute_deviation``). The MIL-120
window [0.06, 0.24] eV/A is used when it holds at least 2 x batch candidates, else the [50 %, 95 %]
quantiles of sigma_max over the candidates. Every strategy picks among the same number of candidates per
round: ``--n-candidates`` unlabelled frames drawn at random per (seed, strategy, round) (0: all), which
bounds the cost of the ensemble evaluation on a large pool. SOAP vectors and CBAD bins of the pool are
computed once per run. De-duplication threshold: half the median nearest-neighbour SOAP distance in the pool.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/labels_vs_accuracy/run_benchmark.py --jobs 2
    .venv/bin/python benchmarks/labels_vs_accuracy/run_benchmark.py --quick --cache /tmp/lva_quick \\
        --out /tmp/lva_quick/results                 # the machinery check (a few minutes)

Results in ``--out``: ``results.json`` (every round of every seed and strategy with the labelled indices;
``results_quick.json`` for ``--quick``), ``RESULTS_table.md``, ``report.json`` and ``labels_vs_accuracy.png``
(``report.py``); models under ``--workdir`` (a rerun reuses every finished model).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import shlex
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from aiida_mofmlp.common.frames import read_frames, write_frames

HERE = Path(__file__).resolve().parent
STRATEGIES = ("ours", "sigma_topk", "random", "diversity", "cbad", "flat_histogram")
#: strategies that need the ensemble's predictions on the candidates
NEEDS_ENSEMBLE = ("ours", "sigma_topk", "flat_histogram")
MIL120_WINDOW = (0.06, 0.24)  # eV/Angstrom
FALLBACK_QUANTILES = (0.50, 0.95)
SOAP = {"r_cut": 6.0, "n_max": 9, "l_max": 3, "species": ["C", "H", "N", "O", "Zn"]}
#: the fine-tuning recipe shared by every strategy (mace_train keys; epochs, mode and seed set per run):
#: the package's schedule (stage 1 E:F 1:100, stage 2 10:1 at lr 1e-4 from 3/4 of the epochs) at the demo's
#: lr and batch size, float32
RECIPE: dict[str, Any] = {
    "batch_size": 4,
    "lr": 0.005,
    "patience": 50,
    "default_dtype": "float32",
    "eval_interval": 1,
    "num_samples_replay": 20,
}
#: labelled frames (at most) that mace validates on each epoch: no label is spent on validation
N_VALID = 8

#: settings of the full run (issue 21) and of ``--quick``
FULL: dict[str, Any] = {
    "seeds": [0, 1, 2, 3, 4],
    "n_start": 10,
    "batch": 10,
    "budget": 60,
    "epochs": 6,
    "ensemble": 4,
    "n_candidates": 400,
    "max_pool": 0,
    "max_test": 0,
}
QUICK: dict[str, Any] = {
    "seeds": [0],
    "n_start": 4,
    "batch": 2,
    "budget": 6,
    "epochs": 1,
    "ensemble": 2,
    "n_candidates": 0,
    "max_pool": 20,
    "max_test": 4,
}


def _silence() -> None:
    warnings.simplefilter("ignore")
    import logging

    logging.getLogger().setLevel(logging.ERROR)
    import torch

    torch.set_num_threads(1)


def train_member(
    frames: list, indices: list[int], seed: int, settings: dict, cache: Path, owner: str
) -> tuple[Path, float]:
    """Fine-tune the foundation on ``frames[indices]``; cached by (indices, seed, recipe, owner); (model, s).

    ``owner`` is ``start`` for the shared round 0 and the strategy's name after it, so that two strategies
    running in parallel never train into the same folder.
    """
    from aiida_mofmlp.common.resources import foundation_files
    from aiida_mofmlp.engines.mace import train as mace_train

    recipe = {**RECIPE, "mode": settings["mode"], "max_num_epochs": int(settings["epochs"])}
    text = f"{sorted(indices)}|{seed}|{json.dumps(recipe, sort_keys=True)}|{settings['pool_sha']}|{owner}"
    folder = cache / hashlib.sha1(text.encode()).hexdigest()[:16]
    model = folder / "model.model"
    if model.is_file():
        return model, 0.0
    folder.mkdir(parents=True, exist_ok=True)
    ordered = sorted(indices)
    write_frames([frames[i] for i in ordered], folder / "train.extxyz")
    write_frames([frames[i] for i in ordered[:N_VALID]], folder / "valid.extxyz")
    files = foundation_files()
    (folder / "foundation.model").write_bytes(files.model.read_bytes())
    config = {
        **recipe,
        "train_file": "train.extxyz",
        "valid_file": "valid.extxyz",
        "foundation_model": "foundation.model",
        "seed": int(seed),
        "name": "model",
    }
    if settings["mode"] == "multihead":
        write_frames(read_frames(files.replay), folder / "replay.extxyz")
        config["replay_file"] = "replay.extxyz"
    else:
        config.pop("num_samples_replay")
    t0 = time.monotonic()
    results = mace_train.train(config, folder)
    if results["status"] != "ok":
        raise RuntimeError(f"training in {folder} {results['status']}: {results.get('message')}")
    return model, time.monotonic() - t0


def train_ensemble(frames: list, indices: list[int], seed: int, settings: dict, cache: Path, owner: str):
    """The ``settings['ensemble']`` members for ``indices`` (member m trained with seed 100 seed + m)."""
    models, seconds = [], 0.0
    for member in range(int(settings["ensemble"])):
        model, spent = train_member(frames, indices, 100 * seed + member, settings, cache, owner)
        models.append(model)
        seconds += spent
    return models, seconds


def ensemble_predict(models: list[Path], frames: list) -> dict[str, np.ndarray]:
    from aiida_mofmlp.engines.mace.deviation import compute_deviation

    return compute_deviation(models, frames, batch_size=8, dtype="float32")


def score(models: list[Path], test: list) -> dict[str, float]:
    """Force-component MAE/RMSE (eV/A) and energy MAE per atom (eV/atom) of the ensemble mean on ``test``."""
    from aiida_mofmlp.common.frames import get_energy, get_forces

    result = ensemble_predict(models, test)
    ref_f = np.concatenate([get_forces(atoms) for atoms in test])
    ref_e = np.array([get_energy(atoms) / len(atoms) for atoms in test])
    diff_f = result["forces_mean"] - ref_f
    diff_e = result["energy_mean"] / result["n_atoms"] - ref_e
    return {
        "force_mae": float(np.abs(diff_f).mean()),
        "force_rmse": float(np.sqrt((diff_f**2).mean())),
        "energy_mae_per_atom": float(np.abs(diff_e).mean()),
    }


def sigma_window(sigma: np.ndarray, batch: int) -> tuple[list[float], str]:
    """The MIL-120 window if it holds >= 2 x batch frames, else the quantile fallback."""
    lo, hi = MIL120_WINDOW
    if int(((sigma >= lo) & (sigma <= hi)).sum()) >= 2 * batch:
        return [lo, hi], "mil120"
    q_lo, q_hi = np.quantile(sigma, FALLBACK_QUANTILES)
    return [float(q_lo), float(q_hi)], "quantile"


def _top_up(chosen: list[int], preferred: list[int], rest: list[int], batch: int, info: dict) -> list[int]:
    """``chosen`` filled up to ``batch`` from ``preferred`` then ``rest`` (in their order)."""
    missing = batch - len(chosen)
    if missing > 0:
        taken = set(chosen)
        extra = [i for i in list(preferred) + list(rest) if i not in taken]
        extra = list(dict.fromkeys(extra))[:missing]
        info["topped_up"] = len(extra)
        chosen = chosen + extra
    return chosen


def pick(
    strategy: str,
    candidates: list[int],
    labelled: list[int],
    batch: int,
    features: dict,
    rng: np.random.Generator,
    seed: int,
    predictions: dict | None = None,
) -> tuple[list[int], dict]:
    """Pool indices of the next ``batch`` frames chosen by ``strategy`` among ``candidates``.

    ``features``: ``soap`` (n_pool x n_features), ``cbad`` (bin ids per frame), ``dedup`` (threshold);
    ``predictions``: the ensemble's ``sigma_max`` and ``energy_per_atom`` on ``candidates``.
    """
    from aiida_mofmlp.engines.selection.cbad import cbad_accept
    from aiida_mofmlp.engines.selection.histogram import flat_histogram
    from aiida_mofmlp.engines.selection.sampling import kmeans_sampling

    cand = np.asarray(candidates, dtype=int)
    info: dict[str, Any] = {}
    shuffled = [int(i) for i in rng.permutation(cand)]
    if strategy == "random":
        return shuffled[:batch], info
    x = features["soap"]
    existing = x[labelled] if labelled else None
    if strategy == "diversity":
        local = kmeans_sampling(x[cand], batch, existing=existing, min_distance=features["dedup"], seed=seed)
        return _top_up([int(cand[i]) for i in local], [], shuffled, batch, info), info
    if strategy == "cbad":
        bins = features["cbad"]
        accepted, new = cbad_accept(bins, shuffled, known=[bins[i] for i in labelled], max_frames=batch)
        info["cbad_new_bins"] = new
        return _top_up(accepted, [], shuffled, batch, info), info
    if predictions is None:
        raise ValueError(f"strategy {strategy!r} needs the ensemble's predictions on the candidates")
    sigma = np.asarray(predictions["sigma_max"])
    info.update(sigma_median=float(np.median(sigma)), sigma_p95=float(np.quantile(sigma, 0.95)))
    by_sigma = [int(cand[i]) for i in np.argsort(-sigma, kind="stable")]
    if strategy == "sigma_topk":
        return by_sigma[:batch], info
    if strategy == "flat_histogram":
        result = flat_histogram(predictions["energy_per_atom"], n_bins=batch, seed=seed + len(labelled))
        info["n_empty_bins"] = result["n_empty_bins"]
        return _top_up([int(cand[i]) for i in result["selected"]], [], shuffled, batch, info), info
    if strategy != "ours":
        raise ValueError(f"unknown strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    window, kind = sigma_window(sigma, batch)
    inside = np.flatnonzero((sigma >= window[0]) & (sigma <= window[1]))
    info.update(window=window, window_kind=kind, n_in_window=int(inside.size))
    local = kmeans_sampling(
        x[cand[inside]], batch, existing=existing, min_distance=features["dedup"], seed=seed
    )
    chosen = [int(cand[inside[i]]) for i in local]
    in_window = [int(cand[i]) for i in inside[np.argsort(-sigma[inside], kind="stable")]]
    return _top_up(chosen, in_window, by_sigma, batch, info), info


def run_strategy(task: dict) -> list[dict]:
    """One (seed, strategy) learning curve; one record per round."""
    _silence()
    settings, seed, strategy = task["settings"], task["seed"], task["strategy"]
    work = Path(settings["workdir"])
    pool, test = read_frames(work / "pool.extxyz.gz"), read_frames(work / "test.extxyz.gz")
    with (work / "features.pkl").open("rb") as handle:
        features = pickle.load(handle)
    rng = np.random.default_rng([seed, STRATEGIES.index(strategy)])
    labelled = [int(i) for i in task["start"]]
    records: list[dict] = []
    log = work / f"seed{seed}_{strategy}.log"
    while True:
        t0 = time.monotonic()
        owner = "start" if len(labelled) == settings["n_start"] else strategy
        models, t_train = train_ensemble(pool, labelled, seed, settings, work / "models", owner)
        record: dict[str, Any] = {
            "seed": seed,
            "strategy": strategy,
            "n_labels": len(labelled),
            **score(models, test),
            "train_s": round(t_train, 1),
            "labelled": list(labelled),
        }
        if len(labelled) + settings["batch"] > settings["budget"]:
            record["round_s"] = round(time.monotonic() - t0, 1)
            records.append(record)
            _log(log, record)
            return records
        rest = np.setdiff1d(np.arange(len(pool)), labelled)
        n_cand = int(settings["n_candidates"]) or len(rest)
        candidates = [int(i) for i in np.sort(rng.choice(rest, size=min(n_cand, len(rest)), replace=False))]
        predictions = None
        if strategy in NEEDS_ENSEMBLE:
            result = ensemble_predict(models, [pool[i] for i in candidates])
            predictions = {
                "sigma_max": result["sigma_max"],
                "energy_per_atom": result["energy_mean"] / result["n_atoms"],
            }
        chosen, info = pick(
            strategy, candidates, labelled, settings["batch"], features, rng, seed, predictions
        )
        if len(set(chosen)) != settings["batch"] or set(chosen) & set(labelled):
            raise RuntimeError(f"{strategy} picked {chosen}: not {settings['batch']} new frames")
        record.update(
            info, picked=chosen, n_candidates=len(candidates), round_s=round(time.monotonic() - t0, 1)
        )
        records.append(record)
        _log(log, record)
        labelled += chosen


def _log(path: Path, record: dict) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps({k: v for k, v in record.items() if k != "labelled"}) + "\n")


def prepare_seed(task: dict) -> dict:
    """Start set of one seed and its round-0 ensemble (shared by every strategy)."""
    _silence()
    settings, seed = task["settings"], task["seed"]
    work = Path(settings["workdir"])
    pool = read_frames(work / "pool.extxyz.gz")
    start = np.random.default_rng(seed).choice(len(pool), settings["n_start"], replace=False)
    start = [int(i) for i in start]
    train_ensemble(pool, start, seed, settings, work / "models", "start")
    return {"seed": seed, "start": start}


def compute_features(pool: list) -> dict:
    """SOAP vectors, CBAD bins and the de-duplication threshold of the pool (computed once per run)."""
    from aiida_mofmlp.engines.selection.cbad import cbad_bins
    from aiida_mofmlp.engines.selection.sampling import min_distances
    from aiida_mofmlp.engines.selection.soap import SoapSettings, soap_descriptors

    x = soap_descriptors(pool, SoapSettings.from_dict(SOAP))
    nearest = [float(min_distances(x[i : i + 1], np.delete(x, i, axis=0))[0]) for i in range(len(x))]
    bins, _ = cbad_bins(pool)
    return {"soap": x, "cbad": bins, "dedup": 0.5 * float(np.median(nearest))}


def subset(frames: list, n: int, seed: int) -> list:
    """``n`` frames drawn at random (all when ``n`` is 0 or not smaller), in their original order."""
    if not n or n >= len(frames):
        return frames
    keep = np.sort(np.random.default_rng(seed).choice(len(frames), n, replace=False))
    return [frames[i] for i in keep]


def load_frames(path: Path, max_force: float) -> list:
    """Frames of ``path`` without those whose largest |force component| exceeds ``max_force`` (eV/A)."""
    from aiida_mofmlp.common.frames import get_forces

    return [atoms for atoms in read_frames(path) if np.abs(get_forces(atoms)).max() <= max_force]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=str(HERE / "cache"), help="folder of build_pool.py's cache")
    parser.add_argument("--out", default=None, help="results folder (default: CACHE/results)")
    parser.add_argument("--workdir", default=None, help="models and logs (default: OUT/work)")
    parser.add_argument("--quick", action="store_true", help="the machinery check: tiny, 1 seed, 2 models")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--mode", default="naive", choices=("naive", "multihead"), help="fine-tuning mode")
    parser.add_argument("--max-force", type=float, default=40.0, help="drop frames with |F| above (eV/A)")
    parser.add_argument("--jobs", type=int, default=2, help="strategy runs in parallel (1 core each)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help=f"default {FULL['seeds']}")
    for key, value in FULL.items():
        if key != "seeds":
            flag = "--" + key.replace("_", "-")
            parser.add_argument(flag, type=int, default=None, help=f"default {value} (quick {QUICK[key]})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    base = QUICK if args.quick else FULL
    settings = {
        key: getattr(args, key) if getattr(args, key) is not None else value for key, value in base.items()
    }
    out = Path(args.out) if args.out else Path(args.cache) / "results"
    work = Path(args.workdir) if args.workdir else out / "work"
    if settings["ensemble"] < 2:
        raise SystemExit("--ensemble must be >= 2 (sigma_max needs an ensemble)")
    if (
        settings["n_start"] < 1
        or settings["batch"] < 1
        or settings["budget"] < settings["n_start"] + settings["batch"]
    ):
        raise SystemExit(
            "need --n-start >= 1, --batch >= 1 and --budget >= n_start + batch (one round at least)"
        )
    t_start = time.monotonic()
    _silence()
    pool = subset(load_frames(Path(args.cache) / "pool.extxyz.gz", args.max_force), settings["max_pool"], 1)
    test = subset(load_frames(Path(args.cache) / "test.extxyz.gz", args.max_force), settings["max_test"], 2)
    if len(pool) < settings["budget"]:
        raise SystemExit(f"the pool has {len(pool)} frames, fewer than the budget {settings['budget']}")
    work.mkdir(parents=True, exist_ok=True)
    write_frames(pool, work / "pool.extxyz.gz")
    write_frames(test, work / "test.extxyz.gz")
    pool_sha = hashlib.sha1((work / "pool.extxyz.gz").read_bytes()).hexdigest()[:12]
    features = compute_features(pool)
    with (work / "features.pkl").open("wb") as handle:
        pickle.dump(features, handle)
    settings.update(
        quick=args.quick,
        mode=args.mode,
        max_force=args.max_force,
        strategies=list(args.strategies),
        jobs=args.jobs,
        workdir=str(work),
        pool_sha=pool_sha,
        n_pool=len(pool),
        n_test=len(test),
        dedup=features["dedup"],
        recipe=RECIPE,
        command="OMP_NUM_THREADS=1 .venv/bin/python benchmarks/labels_vs_accuracy/run_benchmark.py "
        + shlex.join(argv),
    )
    print(
        f"[benchmark] pool {len(pool)}, test {len(test)} frames; dedup {features['dedup']:.4f}; "
        f"features {time.monotonic() - t_start:.0f} s",
        flush=True,
    )
    context = get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=context) as executor:
        prepared = list(
            executor.map(prepare_seed, [{"seed": s, "settings": settings} for s in settings["seeds"]])
        )
        print(f"[benchmark] round 0 ready after {time.monotonic() - t_start:.0f} s", flush=True)
        order = sorted(args.strategies, key=lambda s: s not in NEEDS_ENSEMBLE)  # long runs first
        tasks = [{**p, "strategy": s, "settings": settings} for p in prepared for s in order]
        futures = [executor.submit(run_strategy, task) for task in tasks]
        records: list[dict] = []
        for future in as_completed(futures):  # results grow as runs finish: partial numbers survive
            records += future.result()
            save(records, settings, out, time.monotonic() - t_start)
    wall = time.monotonic() - t_start
    name = save(records, settings, out, wall)
    print(f"[benchmark] {len(records)} rounds in {wall:.0f} s -> {name}", flush=True)
    from report import write_report

    write_report(name, out)
    return 0


def save(records: list[dict], settings: dict, out: Path, wall: float) -> Path:
    """Write all records so far to ``results.json`` (``results_quick.json``) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    name = out / ("results_quick.json" if settings["quick"] else "results.json")
    payload = {"settings": settings, "wall_s": round(wall, 1)}
    payload["records"] = sorted(records, key=lambda r: (r["seed"], r["strategy"], r["n_labels"]))
    name.write_text(json.dumps(payload, indent=1))
    return name


if __name__ == "__main__":
    sys.exit(main())
