"""MD steps/s through LAMMPS (fix external + MACE) vs a plain ASE MD loop, and the callback overhead.

Usage: python benchmarks/md/bench_md.py [--steps 100] [--model PATH] [--structure FILE] [--device cpu]
Without --model a tiny random MACE (8 channels, r_max 4 A) is built; without --structure MIL-47 from
RASPA2's share folder is used. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--model")
    parser.add_argument("--structure")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import numpy as np
    from ase import units
    from ase.io import read
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    from aiida_mofmlp.common.frames import write_frames
    from aiida_mofmlp.engines.lammps.md import run_md
    from aiida_mofmlp.engines.mace.common import mace_calculator

    tmp = Path(tempfile.mkdtemp(prefix="bench_md_"))
    if args.structure:
        atoms = read(args.structure)
    else:
        import RASPA2

        atoms = read(Path(RASPA2.__file__).parent / "share" / "raspa" / "structures" / "cif" / "MIL-47.cif")
    model = args.model
    if model is None:
        from aiida_mofmlp.engines.mace.toy import build_tiny_model

        species = sorted(set(atoms.get_chemical_symbols()))
        model = str(build_tiny_model(species, tmp / "tiny.model"))
    write_frames([atoms], tmp / "structure.extxyz")

    # LAMMPS NVE through the fix external callback
    run = run_md(
        {
            "structure": "structure.extxyz",
            "model": model,
            "device": args.device,
            "ensemble": "nve",
            "steps": args.steps,
            "dump_interval": args.steps,
            "thermo_interval": args.steps,
            "safety": {"check_interval": args.steps, "min_distance": 0.0},
        },
        tmp,
    )
    lammps_sps = run.results["steps_per_second"]  # MD loop only (model loading and LAMMPS setup excluded)
    model_share = run.results["model_seconds"] / run.results["loop_seconds"]

    # plain ASE NVE loop with the same model
    calc = mace_calculator(model, device=args.device, default_dtype="float64")
    md_atoms = atoms.copy()
    md_atoms.calc = calc
    MaxwellBoltzmannDistribution(md_atoms, temperature_K=300, rng=np.random.default_rng(0))
    dyn = VelocityVerlet(md_atoms, 0.5 * units.fs)
    md_atoms.get_forces()
    start = time.perf_counter()
    dyn.run(args.steps)
    ase_sps = args.steps / (time.perf_counter() - start)

    # raw model evaluations (energy, forces, stress) of the same configuration
    probe = atoms.copy()
    n_eval = max(10, args.steps // 5)
    start = time.perf_counter()
    for i in range(n_eval):
        probe.positions[0, 0] += 1e-4 * (-1) ** i
        calc.calculate(probe, ["energy", "forces", "stress"], [])
    raw = (time.perf_counter() - start) / n_eval

    lammps_per_step = 1.0 / lammps_sps
    print(
        json.dumps(
            {
                "atoms": len(atoms),
                "steps": args.steps,
                "device": args.device,
                "lammps_steps_per_s": round(lammps_sps, 2),
                "ase_steps_per_s": round(ase_sps, 2),
                "raw_model_eval_ms": round(1000 * raw, 2),
                "lammps_ms_per_step": round(1000 * lammps_per_step, 2),
                "callback_overhead_ms_per_step": round(1000 * (lammps_per_step - raw), 2),
                "model_share_of_lammps_wall": round(model_share, 3),
                "model_calls": run.results["model_calls"],
            }
        )
    )


if __name__ == "__main__":
    main()
