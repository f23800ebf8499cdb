"""Table, figure and labels-to-target ratios with bootstrap confidence intervals from ``run_benchmark.py``.

    .venv/bin/python benchmarks/labels_vs_accuracy/report.py RESULTS.json [--target 0.20 0.15]

Labels to target: the number of labels at which a force-MAE curve first reaches the target, interpolated
linearly in log(MAE) between rounds ("not reached" within the budget otherwise). The point estimate uses
the seed-mean curve of each strategy; the confidence interval of the ratio (strategy / random) comes from
a paired bootstrap over seeds: seeds are drawn with replacement, the same draw for both strategies, the
ratio is computed on the resampled seed-mean curves (draws in which either curve misses the target are
counted, not used). Default targets: the random strategy's seed-mean force MAE at the rounds nearest 40 %,
70 % and 100 % of its curve (distinct values only).

Writes ``RESULTS_table.md`` (``RESULTS_table_quick.md``), ``report.json`` (``report_quick.json``) and
``labels_vs_accuracy.png`` (``_quick.png``) next to the results file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

LABELS = {
    "ours": "ours: sigma window + SOAP k-means + dedup",
    "sigma_topk": "sigma_max top-k",
    "random": "random",
    "diversity": "SOAP k-means + dedup (no sigma)",
    "cbad": "CBAD (new bins)",
    "flat_histogram": "flat histogram (predicted E/atom)",
}
N_BOOTSTRAP = 2000
NOT_REACHED = "not reached"


def curves(records: list[dict]) -> dict[str, dict[int, dict[int, dict[str, float]]]]:
    """strategy -> seed -> n_labels -> {"force": MAE, "energy": MAE per atom}."""
    out: dict = {}
    for row in records:
        by_seed = out.setdefault(row["strategy"], {}).setdefault(int(row["seed"]), {})
        by_seed[int(row["n_labels"])] = {
            "force": float(row["force_mae"]),
            "energy": float(row["energy_mae_per_atom"]),
        }
    return out


def complete_seeds(records: list[dict]) -> list[dict]:
    """Records of the seeds whose every strategy reached the last round (partial runs are left out)."""
    strategies = {r["strategy"] for r in records}
    last: dict[tuple[int, str], int] = {}
    for r in records:
        key = (int(r["seed"]), r["strategy"])
        last[key] = max(last.get(key, 0), int(r["n_labels"]))
    top = max(last.values(), default=0)
    seeds = {s for s, _ in last if all(last.get((s, name), 0) == top for name in strategies)}
    return [r for r in records if int(r["seed"]) in seeds]


def mean_curve(by_seed: dict[int, dict[int, dict[str, float]]], seeds, key: str = "force"):
    """(n_labels, mean over ``seeds``) of one strategy (seeds may repeat: bootstrap draws)."""
    ns = sorted(set.intersection(*[set(by_seed[s]) for s in set(seeds)]))
    return ns, [float(np.mean([by_seed[s][n][key] for s in seeds])) for n in ns]


def labels_to_target(ns: list[int], values: list[float], target: float) -> float | None:
    """Labels at which the curve first reaches ``target`` (log-MAE interpolation); None: not reached."""
    for k, (n, value) in enumerate(zip(ns, values, strict=True)):
        if value <= target:
            if k == 0:
                return float(n)
            lo, hi = np.log(values[k - 1]), np.log(value)
            fraction = (lo - np.log(target)) / (lo - hi) if lo != hi else 1.0
            return float(ns[k - 1] + fraction * (n - ns[k - 1]))
    return None


def choose_targets(data: dict) -> list[float]:
    """The random curve's seed-mean force MAE near 40 %, 70 % and 100 % of its rounds (distinct values)."""
    reference = data.get("random") or next(iter(data.values()))
    ns, means = mean_curve(reference, list(reference))
    picks = sorted({min(len(ns) - 1, max(0, round(f * (len(ns) - 1)))) for f in (0.4, 0.7, 1.0)})
    return sorted({float(means[k]) for k in picks}, reverse=True)


def ratio_with_ci(data: dict, strategy: str, target: float, rng: np.random.Generator) -> dict:
    """Labels to ``target`` of ``strategy`` and random, their ratio and its paired bootstrap 95 % CI."""
    seeds = sorted(set(data[strategy]) & set(data["random"]))
    n_s = labels_to_target(*mean_curve(data[strategy], seeds), target)
    n_r = labels_to_target(*mean_curve(data["random"], seeds), target)
    out: dict = {"labels": n_s, "labels_random": n_r, "ratio": None, "ci95": None, "n_draws_used": 0}
    if n_s is not None and n_r is not None:
        out["ratio"] = n_s / n_r
    ratios = []
    for _ in range(N_BOOTSTRAP if len(seeds) > 1 else 0):
        draw = [int(s) for s in rng.choice(seeds, size=len(seeds), replace=True)]
        a = labels_to_target(*mean_curve(data[strategy], draw), target)
        b = labels_to_target(*mean_curve(data["random"], draw), target)
        if a is not None and b is not None:
            ratios.append(a / b)
    out["n_draws_used"] = len(ratios)
    out["n_draws"] = N_BOOTSTRAP if len(seeds) > 1 else 0
    if len(ratios) >= 20:
        out["ci95"] = [float(np.quantile(ratios, 0.025)), float(np.quantile(ratios, 0.975))]
    return out


def analyse(records: list[dict], targets: list[float] | None = None, seed: int = 0) -> dict:
    """Curves (mean, std over seeds) and, per target, labels to target and ratio to random with CIs."""
    data = curves(records)
    targets = [float(t) for t in targets] if targets else choose_targets(data)
    rng = np.random.default_rng(seed)
    summary: dict = {"targets": targets, "curves": {}, "labels_to_target": {}}
    for strategy, by_seed in data.items():
        ns = sorted(set.intersection(*[set(v) for v in by_seed.values()]))
        summary["curves"][strategy] = {
            "n_labels": ns,
            "n_seeds": len(by_seed),
            **{
                f"{key}_{stat}": [float(fn([by_seed[s][n][key] for s in by_seed])) for n in ns]
                for key in ("force", "energy")
                for stat, fn in (("mean", np.mean), ("std", np.std))
            },
        }
    for target in targets:
        rows = {}
        for strategy in data:
            if "random" in data:
                rows[strategy] = ratio_with_ci(data, strategy, target, rng)
            else:
                ns, means = mean_curve(data[strategy], list(data[strategy]))
                rows[strategy] = {"labels": labels_to_target(ns, means, target), "ratio": None, "ci95": None}
        summary["labels_to_target"][f"{target:.6g}"] = rows
    return summary


def table(summary: dict, budget: int) -> str:
    strategies = [s for s in LABELS if s in summary["curves"]]
    ns = sorted({n for c in summary["curves"].values() for n in c["n_labels"]})
    lines = [
        "Force MAE (meV/Å) / energy MAE (meV/atom) of the ensemble mean on the test set, "
        "mean ± std over seeds:",
        "",
        "| labels | " + " | ".join(strategies) + " |",
        "|---|" + "---|" * len(strategies),
    ]
    for n in ns:
        cells = []
        for s in strategies:
            c = summary["curves"][s]
            if n not in c["n_labels"]:
                cells.append("-")
                continue
            k = c["n_labels"].index(n)
            cells.append(
                f"{1000 * c['force_mean'][k]:.0f} ± {1000 * c['force_std'][k]:.0f} / "
                f"{1000 * c['energy_mean'][k]:.1f} ± {1000 * c['energy_std'][k]:.1f}"
            )
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    for key, rows in summary["labels_to_target"].items():
        lines += [
            "",
            f"Labels to a force MAE of {1000 * float(key):.0f} meV/Å (seed-mean curve, log-MAE "
            "interpolation), ratio to random with the 95 % paired bootstrap interval over seeds, "
            "energy MAE at the budget:",
            "",
            "| strategy | labels to target | ratio to random | 95 % CI | energy MAE at budget (meV/atom) |",
            "|---|---|---|---|---|",
        ]
        for s in strategies:
            row = rows[s]
            labels = f"{row['labels']:.1f}" if row["labels"] is not None else f"{NOT_REACHED} (> {budget})"
            ratio = f"{row['ratio']:.2f}" if row["ratio"] is not None else "-"
            ci = "-"
            if row.get("ci95"):
                low, high = row["ci95"]
                ci = f"{low:.2f} to {high:.2f} ({row['n_draws_used']}/{row['n_draws']} draws)"
            c = summary["curves"][s]
            energy = f"{1000 * c['energy_mean'][-1]:.1f} ± {1000 * c['energy_std'][-1]:.1f}"
            lines.append(f"| {s} | {labels} | {ratio} | {ci} | {energy} |")
    return "\n".join(lines) + "\n"


def figure(summary: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for s in [s for s in LABELS if s in summary["curves"]]:
        c = summary["curves"][s]
        for ax, key in zip(axes, ("force", "energy"), strict=True):
            mean, std = 1000 * np.array(c[f"{key}_mean"]), 1000 * np.array(c[f"{key}_std"])
            ax.errorbar(c["n_labels"], mean, yerr=std, marker="o", capsize=3, label=LABELS[s])
    for target in summary["targets"]:
        axes[0].axhline(1000 * target, color="grey", ls="--", lw=1)
    axes[0].set_ylabel("force MAE (meV/Å)")
    axes[1].set_ylabel("energy MAE (meV/atom)")
    for ax in axes:
        ax.set_xlabel("number of labelled frames")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(results_file: str | Path, out: str | Path, targets: list[float] | None = None) -> dict:
    """Write the table, ``report.json`` and the figure for ``results_file`` into ``out``; return them."""
    results_file, out = Path(results_file), Path(out)
    payload = json.loads(results_file.read_text())
    records = complete_seeds(payload["records"])
    settings = payload["settings"]
    summary = analyse(records, targets)
    seeds = sorted({int(r["seed"]) for r in records})
    summary.update(seeds=seeds, wall_s=payload["wall_s"], budget=int(settings["budget"]))
    suffix = "_quick" if settings.get("quick") else ""
    text = table(summary, int(settings["budget"]))
    wall = payload["wall_s"]
    text += f"\nSeeds {seeds}; ensembles of {settings['ensemble']}; benchmark wall time {wall:.0f} s.\n"
    (out / f"RESULTS_table{suffix}.md").write_text(text)
    (out / f"report{suffix}.json").write_text(json.dumps(summary, indent=1))
    title = (
        f"DMOF-1 + CO2, GFN1-xTB labels; pool {settings['n_pool']}, test {settings['n_test']}; "
        f"seeds {seeds}; dashed: targets"
    )
    figure(summary, out / f"labels_vs_accuracy{suffix}.png", title)
    print(text)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="results.json of run_benchmark.py")
    parser.add_argument("--target", type=float, nargs="+", default=None, help="target force MAE(s), eV/Å")
    args = parser.parse_args(argv)
    write_report(args.results, Path(args.results).parent, args.target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
