"""The labels-vs-accuracy benchmark's machinery (benchmarks/labels_vs_accuracy), end to end at quick size.

Real components: the tiny pool is built with the package's xTB engine (tblite, GFN1-xTB), ASE MD and
LAMMPS MD-GCMC with the shipped small MOF foundation; the benchmark fine-tunes real 2-model MACE ensembles
from that foundation for all six strategies. The report's bootstrap is also checked on constructed curves
whose answer is known.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "labels_vs_accuracy"
STRATEGIES = ("ours", "sigma_topk", "random", "diversity", "cbad", "flat_histogram")


@pytest.fixture
def bench_module(monkeypatch):
    """Loads a script of the benchmark as a module; its folder is on the import path for this test only
    (the scripts import each other, e.g. ``from report import write_report``)."""
    monkeypatch.syspath_prepend(str(BENCH))

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"lva_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def _run(script: str, *args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(BENCH / script), *args], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The quick cache and the quick benchmark in a temporary folder: (cache folder, results folder)."""
    cache = tmp_path_factory.mktemp("lva_quick")
    _run("build_pool.py", "--quick", "--out", str(cache), "--jobs", "2", "--chunk", "8")  # 2 cores
    out = cache / "results"
    _run("run_benchmark.py", "--quick", "--cache", str(cache), "--out", str(out), "--jobs", "2")
    return cache, out


@pytest.mark.slow
@pytest.mark.integration
def test_quick_cache_has_every_kind_of_frame(quick_run, bench_module):
    cache, _ = quick_run
    info = json.loads((cache / "build_info.json").read_text())
    assert info["command"].endswith("build_pool.py --quick --out " + str(cache) + " --jobs 2 --chunk 8")
    assert info["cold_wall_s"] > 0 and info["method"] == "GFN1-xTB"
    assert set(info["pool_kinds"]) == {"md", "strained", "rattled", "md_gcmc"}
    assert set(info["pool_loadings"]) >= {"0", "1", "2", "4"}
    build = bench_module("build_pool")
    pool, test = build.load_cache(cache)
    assert len(pool) == info["n_pool"] > 0 and len(test) == info["n_test"] > 0
    assert {a.info["config_type"] for a in test} == {"md_test"}
    for atoms in pool + test:  # real xTB labels on every frame
        assert np.isfinite(atoms.info["REF_energy"]) and np.isfinite(atoms.arrays["REF_forces"]).all()
    # the test set comes from independent MD: no test frame repeats a pool frame
    for t in test:
        assert all(len(p) != len(t) or not np.allclose(p.positions, t.positions) for p in pool)


@pytest.mark.slow
@pytest.mark.integration
def test_quick_benchmark_rounds_budgets_and_errors(quick_run):
    _, out = quick_run
    payload = json.loads((out / "results_quick.json").read_text())
    settings, records = payload["settings"], payload["records"]
    assert sorted({r["strategy"] for r in records}) == sorted(STRATEGIES)
    steps = list(range(settings["n_start"], settings["budget"] + 1, settings["batch"]))
    starts = set()
    for strategy in STRATEGIES:
        rows = [r for r in records if r["strategy"] == strategy]
        assert [r["n_labels"] for r in rows] == steps  # label counts grow by one batch per round
        assert rows[-1]["n_labels"] == settings["budget"]  # every strategy spends the same budget
        for row in rows:
            assert len(set(row["labelled"])) == row["n_labels"]  # no frame labelled twice
            assert np.isfinite(row["force_mae"]) and row["force_mae"] > 0
            assert np.isfinite(row["energy_mae_per_atom"]) and row["energy_mae_per_atom"] > 0
        for before, after in itertools.pairwise(rows):
            assert after["labelled"][: before["n_labels"]] == before["labelled"]
            assert after["labelled"][before["n_labels"] :] == before["picked"]
        starts.add(tuple(rows[0]["labelled"]))
    assert len(starts) == 1  # the same start set for every strategy
    ours = [r for r in records if r["strategy"] == "ours" and "picked" in r]
    assert all(r["window_kind"] in ("mil120", "quantile") and len(r["window"]) == 2 for r in ours)
    # round 0 is the same ensemble for everybody: the same errors (scored in separate worker processes,
    # so equal to float32 summation-order noise, ~1e-9 relative, not bit for bit)
    first = [r["force_mae"] for r in records if r["n_labels"] == settings["n_start"]]
    assert len(first) == len(STRATEGIES) and max(first) - min(first) <= 1e-6 * max(first)

    report = json.loads((out / "report_quick.json").read_text())
    text = (out / "RESULTS_table_quick.md").read_text()
    assert report["targets"] and (out / "labels_vs_accuracy_quick.png").stat().st_size > 10_000
    for rows in report["labels_to_target"].values():
        assert set(rows) == set(STRATEGIES)
        for row in rows.values():
            if row["labels"] is None:
                assert "not reached" in text
            else:
                assert settings["n_start"] <= row["labels"] <= settings["budget"]
        if rows["random"]["labels"] is not None:
            assert rows["random"]["ratio"] == pytest.approx(1.0)


@pytest.mark.slow
@pytest.mark.integration
def test_random_strategy_depends_on_the_seed(quick_run, bench_module):
    import pickle

    _, out = quick_run
    bench = bench_module("run_benchmark")
    work = out / "work"
    with (work / "features.pkl").open("rb") as handle:
        features = pickle.load(handle)
    n_pool = len(features["soap"])
    candidates, labelled = list(range(4, n_pool)), [0, 1, 2, 3]
    picks = [
        bench.pick("random", candidates, labelled, 4, features, np.random.default_rng([seed, 2]), seed)[0]
        for seed in (0, 1)
    ]
    assert picks[0] != picks[1]
    again = bench.pick("random", candidates, labelled, 4, features, np.random.default_rng([0, 2]), 0)[0]
    assert again == picks[0]  # and reproducible for one seed
    for strategy in ("diversity", "cbad"):
        chosen, _ = bench.pick(strategy, candidates, labelled, 4, features, np.random.default_rng(0), 0)
        assert len(set(chosen)) == 4 and set(chosen) <= set(candidates)


def test_bootstrap_ratio_on_known_curves(bench_module):
    """Curves exactly linear in log(MAE): the labels to target and their ratio are known in closed form."""
    report = bench_module("report")
    offsets = {"random": [1.0, 1.1, 1.2, 1.3, 1.4], "ours": [1.2, 1.1, 1.0, 0.9, 0.8], "cbad": [9.0] * 5}
    rates = {"random": 0.05, "ours": 0.1, "cbad": 0.01}
    records = [
        {
            "seed": seed,
            "strategy": strategy,
            "n_labels": n,
            "force_mae": offsets[strategy][seed] * np.exp(-rates[strategy] * n),
            "energy_mae_per_atom": 0.01,
        }
        for seed in range(5)
        for n in (10, 20, 30, 40)
        for strategy in offsets
    ]
    target = float(np.exp(-1.5))
    summary = report.analyse(records, targets=[target])
    rows = next(iter(summary["labels_to_target"].values()))
    expected = {s: np.log(np.mean(offsets[s]) / target) / rates[s] for s in ("random", "ours")}
    assert rows["random"]["labels"] == pytest.approx(expected["random"])
    assert rows["ours"]["labels"] == pytest.approx(expected["ours"])
    ratio = expected["ours"] / expected["random"]
    assert rows["ours"]["ratio"] == pytest.approx(ratio)
    low, high = rows["ours"]["ci95"]
    assert low < ratio < high and high - low < 0.2  # seeds disagree a little: a narrow, non-zero interval
    assert rows["cbad"]["labels"] is None and rows["cbad"]["ratio"] is None  # not reached in the budget
    assert "not reached (> 40)" in report.table(summary, 40)
