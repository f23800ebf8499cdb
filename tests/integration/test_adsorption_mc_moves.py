"""MD-GCMC with Monte Carlo translation and rotation moves (flexible guests), DMOF-1 + CO2, tiny MACE."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.io import read

from aiida_mofmlp.common.errors import InputError
from aiida_mofmlp.common.frames import guest_ids, read_frames, write_frames
from aiida_mofmlp.data.guest import BUILTIN_GUESTS
from aiida_mofmlp.engines.lammps.gcmc import mc_move_arguments
from aiida_mofmlp.engines.lammps.md import run_md
from aiida_mofmlp.engines.lammps.md_settings import load_settings
from aiida_mofmlp.engines.mace.toy import build_tiny_model


def test_move_fractions_to_fix_gcmc_arguments():
    # 30/30/20/20 insertion/deletion/translation/rotation: 2 MC moves for every 3 exchanges
    assert mc_move_arguments({"translation": 0.2, "rotation": 0.2}, 3) == (2, " mcmoves 0 0.500000 0.500000")
    assert mc_move_arguments(None, 1) == (0, "")
    with pytest.raises(ValueError, match="sum below 1"):
        mc_move_arguments({"translation": 0.6, "rotation": 0.4}, 1)
    with pytest.raises(InputError, match="unknown keys \\['swap'\\]"):
        load_settings({"gcmc": {"mc_moves": {"swap": 0.1}}})


@pytest.mark.integration
def test_translation_and_rotation_moves_run_with_flexible_guests(tmp_path, raspa_share_dir):
    build_tiny_model(["H", "C", "N", "O", "Zn"], tmp_path / "tiny.model")
    framework = read(raspa_share_dir / "structures" / "cif" / "ZnBDCdabco.cif")
    write_frames([framework], tmp_path / "framework.extxyz")
    co2 = {"symbols": BUILTIN_GUESTS["CO2"]["symbols"], "positions": BUILTIN_GUESTS["CO2"]["positions"]}
    (tmp_path / "guest.json").write_text(json.dumps(co2))
    gcmc = {
        "guest": str(tmp_path / "guest.json"),
        "pressures_bar": [50.0],
        "equilibration_steps": 5,
        "production_steps": 15,
        "attempt_interval": 1,
        "exchanges_per_attempt": 3,
        "initial_loading": 2,
        "mc_moves": {"translation": 0.2, "rotation": 0.2},
    }
    settings = {
        "structure": str(tmp_path / "framework.extxyz"),
        "model": str(tmp_path / "tiny.model"),
        "temperature": 298.0,
        "thermo_interval": 5,
        "dump_interval": 5,
        "gcmc": gcmc,
    }
    run = run_md(settings, tmp_path)
    assert run.results["status"] == "completed", run.results["message"]
    point = run.results["gcmc"]["pressures"][0]
    exchanges = point["insertion_attempts"] + point["deletion_attempts"]
    moves = point["translation_attempts"] + point["rotation_attempts"]
    assert exchanges + moves == 20 * (3 + 2)  # every MD step: 3 exchanges + 2 MC moves
    assert point["translation_attempts"] > 0 and point["rotation_attempts"] > 0
    assert "mcmoves" in (tmp_path / "log.lammps").read_text()
    for frame in read_frames(tmp_path / "trajectory.extxyz"):  # guests stay whole molecules
        ids = guest_ids(frame)
        counts = np.bincount(ids[ids > 0])[1:]
        assert set(counts.tolist()) <= {3}
