"""Frames/s of the ensemble deviation: batched engine vs per-frame ASE calculators vs raw forward+backward.

Usage (from the repository root):

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/deviation/bench_deviation.py --frames 40 --models 4

Models are random ``make_small_model`` MACE models (``--channels``, max_L 0, r_max 5 A); frames are toy
MOF fragments repeated 2x2x1 (~50-60 atoms each). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch

    from aiida_mofmlp.engines.mace.common import mace_calculator
    from aiida_mofmlp.engines.mace.deviation import _Ensemble, compute_deviation
    from aiida_mofmlp.engines.mace.foundation import make_small_model
    from aiida_mofmlp.engines.mace.toy import TOY_SPECIES, toy_frames

    frames = [atoms.repeat((2, 2, 1)) for atoms in toy_frames(args.frames, seed=5)]
    n_atoms = np.mean([len(atoms) for atoms in frames])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = [
            make_small_model(
                TOY_SPECIES, Path(tmp) / f"m{k}.model", r_max=5.0, num_channels=args.channels, seed=k
            )
            for k in range(args.models)
        ]

        # 1. per-frame ASE calculator loop (one calculator per model, energy + forces + stress as ASE does)
        calcs = [mace_calculator(p, device=args.device, default_dtype="float64") for p in paths]
        start = time.perf_counter()
        for atoms in frames:
            atoms = atoms.copy()
            for calc in calcs:
                atoms.calc = calc
                atoms.get_forces()
                calc.reset()
        rows.append(("ASE calculator loop, fp64", "1", len(frames) / (time.perf_counter() - start)))

        # 2. batched engine
        for dtype, batch in (("float64", 1), ("float64", 4), ("float64", 8), ("float64", 16), ("float32", 8)):
            start = time.perf_counter()
            compute_deviation(paths, frames, batch_size=batch, dtype=dtype, device=args.device)
            rows.append(
                (
                    f"batched compute_deviation, {dtype}",
                    str(batch),
                    len(frames) / (time.perf_counter() - start),
                )
            )

        # 3. raw forward+backward on prebuilt batches (no graph building, no NumPy reductions)
        from mace import data as mace_data
        from mace.tools import torch_geometric

        for dtype, batch in (("float64", 8), ("float32", 8)):
            ensemble = _Ensemble(paths, dtype, args.device, None)
            group = ensemble.groups[0]
            batches = []
            for lo in range(0, len(frames), batch):
                graphs = [
                    mace_data.AtomicData.from_config(
                        mace_data.config_from_atoms(a, key_specification=mace_data.KeySpecification()),
                        z_table=group["z_table"],
                        cutoff=group["r_max"],
                        heads=group["heads"],
                    )
                    for a in frames[lo : lo + batch]
                ]
                data = torch_geometric.Batch.from_data_list(graphs).to(args.device).to_dict()
                batches.append(
                    {
                        k: v.to(ensemble.torch_dtype) if torch.is_floating_point(v) else v
                        for k, v in data.items()
                    }
                )
            start = time.perf_counter()
            for data in batches:
                for _, model in group["models"]:
                    inputs = dict(data)
                    inputs["positions"] = data["positions"].clone()
                    model(inputs, training=False, compute_force=True, compute_stress=False)
            rows.append(
                (
                    f"raw model forward+backward, {dtype}",
                    str(batch),
                    len(frames) / (time.perf_counter() - start),
                )
            )

    print(
        f"\n{args.models} models ({args.channels} channels, max_L 0, r_max 5 A), {len(frames)} frames of "
        f"{n_atoms:.0f} atoms, device {args.device}, torch threads {torch.get_num_threads()}\n"
    )
    print("| method | batch | frames/s |\n|---|---|---|")
    for name, batch, speed in rows:
        print(f"| {name} | {batch} | {speed:.2f} |")


if __name__ == "__main__":
    main()
