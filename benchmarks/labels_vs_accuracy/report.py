"""Table, figure and labels-to-target numbers from a ``run_benchmark.py`` results file.

    .venv/bin/python benchmarks/labels_vs_accuracy/report.py [results.json] [--target 0.25]

Writes ``RESULTS_table.md`` (``RESULTS_table_quick.md`` for quick runs) and ``labels_vs_accuracy.png``
(``_quick.png``) next to the results file. Without ``--target`` two targets are used: the second-worst final
force MAE among the strategies (mean over seeds; all but one reach it) and the random curve's mean force MAE
at the middle round (a looser target).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

LABELS = {
    "ours": "ours: sigma window + SOAP k-means + dedup",
    "sigma_random": "sigma window + random (DP-GEN style)",
    "random": "random",
    "diversity": "SOAP k-means + dedup (no sigma)",
}


def curves(records: list[dict]) -> dict[str, dict[int, dict[str, list[float]]]]:
    """strategy -> n_labels -> {"force": [...per seed], "energy": [...]}."""
    out: dict[str, dict[int, dict[str, list[float]]]] = {}
    for row in records:
        by_n = out.setdefault(row["strategy"], {})
        slot = by_n.setdefault(int(row["n_labels"]), {"force": [], "energy": []})
        slot["force"].append(float(row["force_mae"]))
        slot["energy"].append(float(row["energy_mae_per_atom"]))
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


def labels_to_target(points: dict[int, dict[str, list[float]]], target: float) -> float | None:
    """Labels at which the seed-mean force MAE first reaches ``target``, interpolated linearly in
    log(MAE) between rounds (None: not reached within the budget)."""
    ns = sorted(points)
    means = [float(np.mean(points[n]["force"])) for n in ns]
    for k, (n, value) in enumerate(zip(ns, means, strict=True)):
        if value <= target:
            if k == 0:
                return float(n)
            lo, hi = np.log(means[k - 1]), np.log(value)
            fraction = (lo - np.log(target)) / (lo - hi) if lo != hi else 1.0
            return float(ns[k - 1] + fraction * (n - ns[k - 1]))
    return None


def choose_targets(data: dict) -> list[float]:
    """Second-worst final force MAE (all strategies but one reach it) and, when there is a random curve,
    the random curve's mean at the middle round (a looser target reached earlier)."""
    finals = sorted(np.mean(points[max(points)]["force"]) for points in data.values())
    targets = [float(finals[-2] if len(finals) > 1 else finals[0])]
    if "random" in data:
        ns = sorted(data["random"])
        targets.append(float(np.mean(data["random"][ns[len(ns) // 2]]["force"])))
    return targets


def table(data: dict, targets: list[float], budget: int) -> str:
    strategies = [s for s in LABELS if s in data]
    ns = sorted({n for points in data.values() for n in points})
    lines = [
        "Force MAE (meV/Å) / energy MAE (meV/atom) on the test set, mean ± std over seeds:",
        "",
        "| labels | " + " | ".join(strategies) + " |",
        "|---|" + "---|" * len(strategies),
    ]
    for n in ns:
        cells = []
        for s in strategies:
            p = data[s].get(n)
            if p is None:
                cells.append("-")
                continue
            f, e = 1000 * np.array(p["force"]), 1000 * np.array(p["energy"])
            cells.append(f"{f.mean():.0f} ± {f.std():.0f} / {e.mean():.1f} ± {e.std():.1f}")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    for target in targets:
        lines += [
            "",
            f"Labels needed to reach a force MAE of {1000 * target:.0f} meV/Å (seed mean; interpolated in "
            "log(MAE) between rounds), ratio to random:",
            "",
            "| strategy | labels to target | ratio to random |",
            "|---|---|---|",
        ]
        reference = labels_to_target(data["random"], target) if "random" in data else None
        for s in strategies:
            n = labels_to_target(data[s], target)
            shown = f"{n:.1f}" if n is not None else f"> {budget}"
            if n is None:
                ratio = "-"
            elif reference is None:
                ratio = f"< {n / budget:.2f} (random does not reach it)"
            else:
                ratio = f"{n / reference:.2f}"
            lines.append(f"| {s} | {shown} | {ratio} |")
    return "\n".join(lines) + "\n"


def figure(data: dict, targets: list[float], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for s in [s for s in LABELS if s in data]:
        ns = sorted(data[s])
        for ax, key in zip(axes, ("force", "energy"), strict=True):
            values = np.array([1000 * np.array(data[s][n][key]) for n in ns], dtype=object)
            mean = np.array([v.mean() for v in values])
            std = np.array([v.std() for v in values])
            ax.errorbar(ns, mean, yerr=std, marker="o", capsize=3, label=LABELS[s])
    for target in targets:
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


def write_report(results_file: str | Path, out: str | Path, targets: list[float] | None = None) -> str:
    """Write the table and figure for ``results_file`` into ``out``; return the table text."""
    results_file, out = Path(results_file), Path(out)
    payload = json.loads(results_file.read_text())
    records = complete_seeds(payload["records"])
    data = curves(records)
    targets = choose_targets(data) if not targets else [float(t) for t in targets]
    settings = payload["settings"]
    suffix = "_quick" if settings.get("quick") else ""
    seeds = sorted({int(r["seed"]) for r in records})
    text = table(data, targets, int(settings["budget"]))
    text += f"\nSeeds {seeds}; benchmark wall time {payload['wall_s']:.0f} s.\n"
    (out / f"RESULTS_table{suffix}.md").write_text(text)
    title = f"ZnBDCdabco + CO2, GFN1-xTB labels; seeds {seeds}; dashed: targets"
    figure(data, targets, out / f"labels_vs_accuracy{suffix}.png", title)
    print(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parent
    parser.add_argument("results", nargs="?", default=str(here / "results.json"))
    parser.add_argument("--target", type=float, nargs="+", default=None, help="target force MAE(s), eV/Å")
    args = parser.parse_args(argv)
    write_report(args.results, Path(args.results).parent, args.target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
