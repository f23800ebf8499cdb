"""MLP Widom insertion against the MLP MD-GCMC isotherm in the Henry regime (DMOF-1 + CO2, tiny MACE model).

In the Henry regime the loading is ``n = K_H f`` (``f`` the fugacity). The tiny random model barely binds CO2,
so the Henry regime reaches a few molecules per cell; the GCMC runs at such a pressure with the ideal-gas
fugacity, and the Widom insertion uses the same hard-core distance as the GCMC overlap cutoff.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from ase.io import read

from aiida_mofmlp.common.frames import write_frames
from aiida_mofmlp.common.timeseries import equilibrated_mean
from aiida_mofmlp.data.guest import BUILTIN_GUESTS
from aiida_mofmlp.engines.adsorption.widom import run_widom
from aiida_mofmlp.engines.lammps.md import run_md
from aiida_mofmlp.engines.mace.toy import build_tiny_model

pytestmark = pytest.mark.integration

PRESSURE_BAR = 200.0
OVERLAP = 0.5  # Angstrom: GCMC overlap_cutoff and Widom hard core


def test_widom_henry_coefficient_matches_gcmc_slope(tmp_path, raspa_share_dir):
    build_tiny_model(["H", "C", "N", "O", "Zn"], tmp_path / "tiny.model")
    framework = read(raspa_share_dir / "structures" / "cif" / "ZnBDCdabco.cif")
    write_frames([framework], tmp_path / "framework.extxyz")
    co2 = {"symbols": BUILTIN_GUESTS["CO2"]["symbols"], "positions": BUILTIN_GUESTS["CO2"]["positions"]}
    (tmp_path / "guest.json").write_text(json.dumps(co2))

    gcmc = {
        "guest": str(tmp_path / "guest.json"),
        "pressures_bar": [PRESSURE_BAR],
        "equilibration_steps": 5,
        "production_steps": 45,
        "attempt_interval": 1,
        "exchanges_per_attempt": 8,
        "initial_loading": 4,
        "overlap_cutoff": OVERLAP,
        "fugacity": "pressure",
    }
    settings = {
        "structure": str(tmp_path / "framework.extxyz"),
        "model": str(tmp_path / "tiny.model"),
        "temperature": 298.0,
        "thermo_interval": 1,
        "dump_interval": 10,
        "seed": 5,
        "gcmc": gcmc,
    }
    md = run_md(settings, tmp_path)
    assert md.results["status"] == "completed"
    thermo = np.load(tmp_path / "thermo.npz")
    loading = equilibrated_mean(thermo["n_guests"])  # molecules per cell, equilibration detected

    widom = run_widom(
        {
            "frames": str(tmp_path / "trajectory.extxyz"),
            "model": str(tmp_path / "tiny.model"),
            "guest": co2,
            "temperature": 298.0,
            "insertions_per_frame": 40,
            "max_frames": 3,
            "overlap_distance": OVERLAP,
            "seed": 11,
        },
        tmp_path,
    )
    framework_mass_kg_per_mol = md.results["gcmc"]["framework_mass"] * 1e-3
    predicted = widom["henry_coefficient"] * PRESSURE_BAR * 1e5 * framework_mass_kg_per_mol  # molecules/cell
    predicted_error = widom["henry_coefficient_error"] * PRESSURE_BAR * 1e5 * framework_mass_kg_per_mol
    combined = math.hypot(loading["error"], predicted_error)
    print(f"GCMC {loading['mean']:.3f}+-{loading['error']:.3f}, Widom {predicted:.3f}+-{predicted_error:.3f}")
    assert 1.0 < loading["mean"] < 20.0  # a few molecules per cell: a meaningful comparison
    assert abs(loading["mean"] - predicted) < 3.0 * combined
