"""Time and peak memory of the selection engine vs number of frames (streaming vs naive SOAP).

Frames: a MOF-like test cell of 108 atoms (Zn, O, C, N, H on an expanded fcc lattice, density about
0.03 atoms/Angstrom^3 as in MOFs), each frame randomly rattled. SOAP at the MIL-120 paper's defaults
(r_cut 6.0, n_max 9, l_max 3; 5 species -> 4140 features per frame).

Every measurement runs in a fresh subprocess so that ``ru_maxrss`` (peak resident memory) belongs to it
alone; ``tracemalloc`` gives the peak of Python/numpy allocations inside the measured call.

    python benchmarks/selection/bench_selection.py soap --mode stream --frames 100 200 400
    python benchmarks/selection/bench_selection.py soap --mode naive --frames 25 50 100
    python benchmarks/selection/bench_selection.py choose --rows 20000
    python benchmarks/selection/bench_selection.py read --frames 1000
    python benchmarks/selection/bench_selection.py e2e --frames 20000 --method kmeans
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

SPECIES = ["C", "H", "N", "O", "Zn"]
SOAP = {"r_cut": 6.0, "n_max": 9, "l_max": 3}


def mof_like_frames(n_frames: int, seed: int = 0):
    from ase.build import bulk

    base = bulk("Cu", "fcc", a=3.61 * 1.6, cubic=True).repeat(3)  # 108 sites
    rng = np.random.default_rng(seed)
    pattern = np.array(["Zn"] * 8 + ["O"] * 32 + ["C"] * 40 + ["N"] * 4 + ["H"] * 24)
    base.symbols = list(rng.permutation(pattern))
    for _ in range(n_frames):
        atoms = base.copy()
        atoms.positions += rng.normal(0.0, 0.15, atoms.positions.shape)
        yield atoms


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure_soap(mode: str, n_frames: int) -> dict:
    from aiida_mofmlp.engines.selection.soap import soap_descriptors, soap_descriptors_naive

    settings = {**SOAP, "dtype": "float32"}
    frames = mof_like_frames(n_frames) if mode == "stream" else list(mof_like_frames(n_frames))
    warm = soap_descriptors(
        mof_like_frames(1, seed=99), settings, species=SPECIES
    )  # one-off dscribe start-up
    del warm
    tracemalloc.start()
    start = time.perf_counter()
    cpu = time.process_time()
    if mode == "stream":
        x = soap_descriptors(frames, settings, species=SPECIES)
    else:
        x = soap_descriptors_naive(frames, settings, species=SPECIES)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "mode": mode,
        "n_frames": n_frames,
        "n_atoms": 108,
        "n_features": int(x.shape[1]),
        "time_s": round(elapsed, 2),
        "time_per_frame_ms": round(1000 * elapsed / n_frames, 1),
        "cpu_s": round(cpu, 2),
        "cpu_per_frame_ms": round(1000 * cpu / n_frames, 2),
        "tracemalloc_peak_mib": round(peak / 2**20, 1),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
    }


def measure_choose(n_rows: int, n_select: int = 200) -> list[dict]:
    """k-means / FPS cost on an n_rows x 4140 descriptor matrix (real SOAP of 200 frames + noise)."""
    from aiida_mofmlp.engines.selection.sampling import (
        farthest_point_sampling,
        kmeans_sampling,
        pca_fit_transform,
    )
    from aiida_mofmlp.engines.selection.soap import normalize_rows, soap_descriptors

    base = soap_descriptors(mof_like_frames(200), {**SOAP, "dtype": "float32"}, species=SPECIES)
    rng = np.random.default_rng(1)
    rows = base[rng.integers(0, len(base), n_rows)]
    x = normalize_rows(rows + rng.normal(0, 0.002, rows.shape).astype(np.float32)).astype(np.float32)
    out = []
    for label, func in [
        ("pca50", lambda: pca_fit_transform([x], 50)[0][0]),
    ]:
        start = time.perf_counter()
        reduced = func()
        out.append({"step": label, "n_rows": n_rows, "time_s": round(time.perf_counter() - start, 2)})
    for label, func in [
        ("kmeans_pca50", lambda: kmeans_sampling(reduced, n_select)),
        ("fps_pca50", lambda: farthest_point_sampling(reduced, n_select)),
        ("fps_full", lambda: farthest_point_sampling(x, n_select)),
        ("kmeans_full", lambda: kmeans_sampling(x, n_select)),
    ]:
        start = time.perf_counter()
        picked = func()
        out.append(
            {
                "step": label,
                "n_rows": n_rows,
                "n_features": int(x.shape[1]) if "full" in label else 50,
                "n_select": len(picked),
                "time_s": round(time.perf_counter() - start, 2),
            }
        )
    out.append({"step": "peak_rss", "peak_rss_mib": round(_peak_rss_mib(), 1)})
    return out


def measure_read(n_frames: int, path: str) -> dict:
    from aiida_mofmlp.common import frames as fr

    fr.write_frames(mof_like_frames(n_frames), path)
    start = time.perf_counter()
    count = sum(1 for _ in fr.iter_frames(path))
    elapsed = time.perf_counter() - start
    return {
        "step": "read_extxyz",
        "n_frames": count,
        "time_s": round(elapsed, 2),
        "time_per_frame_ms": round(1000 * elapsed / count, 2),
    }


def measure_end_to_end(n_frames: int, workdir: str, method: str = "kmeans") -> dict:
    """The console script on an extxyz pool of ``n_frames`` (4 loadings as groups, 50 frames each)."""
    from pathlib import Path

    import yaml

    from aiida_mofmlp.common import frames as fr

    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    pool = work / f"pool_{n_frames}.extxyz"
    if not pool.exists():

        def tagged():
            for i, atoms in enumerate(mof_like_frames(n_frames)):
                atoms.info["loading"] = (0, 1, 4, 8)[i % 4]
                yield atoms

        fr.write_frames(tagged(), pool)
    config = {
        "pool": str(pool),
        "method": method,
        "quota": 50,
        "group_by": "loading",
        "pca_components": 50,
        "soap": {**SOAP, "species": SPECIES},
        "map": {"enabled": True, "method": "pca"},
    }
    (work / "input.yaml").write_text(yaml.safe_dump(config))
    exe = Path(sys.executable).parent / "mofmlp-select"
    start = time.perf_counter()
    result = subprocess.run([str(exe), "input.yaml"], cwd=work, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = json.loads((work / "selected.json").read_text()) if result.returncode == 0 else {}
    return {
        "step": f"end_to_end_{method}",
        "n_frames": n_frames,
        "returncode": result.returncode,
        "stderr": result.stderr[-300:],
        "wall_s": round(elapsed, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024.0, 1),
        "n_selected": report.get("n_selected"),
        "time_descriptors_s": report.get("time_descriptors_s"),
        "time_total_s_inside": report.get("time_total_s"),
        "file_mib": round(pool.stat().st_size / 2**20, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    soap = sub.add_parser("soap")
    soap.add_argument("--mode", choices=["stream", "naive"], required=True)
    soap.add_argument("--frames", type=int, nargs="+", required=True)
    soap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    choose = sub.add_parser("choose")
    choose.add_argument("--rows", type=int, default=20000)
    read = sub.add_parser("read")
    read.add_argument("--frames", type=int, default=1000)
    read.add_argument("--path", default="/tmp/bench_selection_read.extxyz")
    e2e = sub.add_parser("e2e")
    e2e.add_argument("--frames", type=int, default=2000)
    e2e.add_argument("--method", default="kmeans")
    e2e.add_argument("--workdir", default="/tmp/bench_selection_e2e")
    args = parser.parse_args(argv)
    if args.what == "soap":
        if args.child:
            print(json.dumps(measure_soap(args.mode, args.frames[0])), flush=True)
            return 0
        for n in args.frames:  # one subprocess per size: ru_maxrss is then that size's peak
            cmd = [sys.executable, __file__, "soap", "--mode", args.mode, "--frames", str(n), "--child"]
            result = subprocess.run(cmd, capture_output=True, text=True, check=True)
            print(result.stdout.strip(), flush=True)
    elif args.what == "choose":
        for row in measure_choose(args.rows):
            print(json.dumps(row), flush=True)
    elif args.what == "e2e":
        print(json.dumps(measure_end_to_end(args.frames, args.workdir, args.method)), flush=True)
    else:
        print(json.dumps(measure_read(args.frames, args.path)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
