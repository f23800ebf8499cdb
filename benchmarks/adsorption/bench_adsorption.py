"""Cost of an isotherm point: MLP MD-GCMC (LAMMPS + MACE) against classical GCMC (RASPA), DMOF-1 + CO2.

Usage: python benchmarks/adsorption/bench_adsorption.py [--steps 200] [--pressure 1.0] [--cycles 200]
       [--model PATH]
Without --model a tiny random MACE (8 channels, r_max 4 A) is built. The MLP run uses the published
settings (NVT 0.5 fs, one insertion/deletion attempt every 5 MD steps); the model calls per GCMC trial are
the calls of the MD-GCMC run minus those of a plain NVT run of the same length, over the trials made.
RASPA runs its GenericMOFs force field (UFF + TraPPE, no framework charges) in 3x3x3 cells for --cycles
cycles (a fifth of them initialisation). Seconds per isotherm point are projected to the `balanced`
protocols (MLP: 10000 MD steps; RASPA: 2000 + 5000 cycles). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

BALANCED_MD_STEPS = 10000
BALANCED_RASPA_CYCLES = 7000


def mlp_cost(workdir: Path, model: Path, framework: Path, guest: dict, steps: int, pressure: float) -> dict:
    from aiida_mofmlp.engines.lammps.md import run_md

    (workdir / "guest.json").write_text(json.dumps(guest))
    base = {
        "structure": str(framework),
        "model": str(model),
        "temperature": 298.0,
        "timestep_fs": 0.5,
        "thermo_interval": 10,
        "dump_interval": 50,
        "seed": 7,
    }
    nvt_dir, gcmc_dir = workdir / "nvt", workdir / "gcmc"
    nvt_dir.mkdir()
    gcmc_dir.mkdir()
    nvt = run_md({**base, "steps": steps}, nvt_dir).results
    gcmc_settings = {
        "guest": str(workdir / "guest.json"),
        "pressures_bar": [pressure],
        "equilibration_steps": steps // 5,
        "production_steps": steps - steps // 5,
        "attempt_interval": 5,
    }
    gcmc = run_md({**base, "gcmc": gcmc_settings}, gcmc_dir).results
    point = gcmc["gcmc"]["pressures"][0]
    trials = point["insertion_attempts"] + point["deletion_attempts"]
    return {
        "md_steps": steps,
        "gcmc_trials": trials,
        "model_calls_gcmc_run": gcmc["model_calls"],
        "model_calls_nvt_run": nvt["model_calls"],
        "model_calls_per_gcmc_trial": (gcmc["model_calls"] - nvt["model_calls"]) / trials if trials else None,
        "seconds_per_md_step_nvt": nvt["loop_seconds"] / steps,
        "seconds_gcmc_run": gcmc["wall_seconds"],
        "seconds_per_isotherm_point_balanced": gcmc["loop_seconds"] / steps * BALANCED_MD_STEPS,
        "loading_molecules_per_cell": point["loading_molecules_per_cell"],
    }


def raspa_cost(framework_cif: Path, cycles: int, pressure: float) -> dict:
    import RASPA2

    start = time.perf_counter()
    RASPA2.run(
        framework_cif.read_text(),
        "CO2",
        temperature=298.0,
        pressure=pressure * 1e5,
        unit_cells=(3, 3, 3),
        cycles=cycles,
        init_cycles=max(1, cycles // 5),
        forcefield="GenericMOFs",
    )
    seconds = time.perf_counter() - start
    total = cycles + max(1, cycles // 5)
    return {
        "cycles": total,
        "seconds": seconds,
        "seconds_per_isotherm_point_balanced": seconds / total * BALANCED_RASPA_CYCLES,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--pressure", type=float, default=1.0, help="bar")
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--model")
    args = parser.parse_args()

    import RASPA2
    from ase.io import read

    from aiida_mofmlp.common.frames import write_frames
    from aiida_mofmlp.data.guest import BUILTIN_GUESTS
    from aiida_mofmlp.engines.mace.toy import build_tiny_model

    cif = Path(RASPA2.__file__).parent / "share" / "raspa" / "structures" / "cif" / "ZnBDCdabco.cif"
    guest = {key: BUILTIN_GUESTS["CO2"][key] for key in ("symbols", "positions")}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model = (
            Path(args.model)
            if args.model
            else build_tiny_model(["H", "C", "N", "O", "Zn"], workdir / "t.model")
        )
        write_frames([read(cif)], workdir / "framework.extxyz")
        mlp = mlp_cost(workdir, model, workdir / "framework.extxyz", guest, args.steps, args.pressure)
    raspa = raspa_cost(cif, args.cycles, args.pressure)
    print(
        json.dumps(
            {
                "system": "DMOF-1 (ZnBDCdabco, 54 atoms) + CO2, 298 K",
                "pressure_bar": args.pressure,
                "model": args.model or "tiny random MACE (8 channels, r_max 4 A)",
                "threads": os.environ.get("OMP_NUM_THREADS"),
                "mlp": mlp,
                "raspa": raspa,
                "mlp_over_raspa_per_point": mlp["seconds_per_isotherm_point_balanced"]
                / raspa["seconds_per_isotherm_point_balanced"],
            }
        )
    )


if __name__ == "__main__":
    main()
