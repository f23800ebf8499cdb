"""Real LAMMPS + MACE runs of ``mofmlp-md`` on MIL-47 (72 atoms) with a tiny random MACE model.

Physics checks: callback forces/energy/pressure equal MACE's own ASE calculator; NVE energy drift is
bounded; NVT and NPT runs behave; safety stops keep the frames so far; MD-GCMC trial energies equal the
directly computed energies of the same configurations.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from ase.io import read

from aiida_mofmlp.common.frames import guest_ids, read_frames, write_frames
from aiida_mofmlp.engines.lammps.md import main, run_md
from aiida_mofmlp.engines.lammps.md_settings import ENERGY_KEY, FORCES_KEY, STRESS_KEY
from aiida_mofmlp.engines.mace.toy import build_tiny_model

pytestmark = pytest.mark.integration

EV_PER_A3_TO_BAR = 1.602176634e6


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_model(["H", "C", "O", "V"], tmp_path_factory.mktemp("model") / "tiny.model")


@pytest.fixture(scope="module")
def mil47(raspa_share_dir, tmp_path_factory):
    atoms = read(raspa_share_dir / "structures" / "cif" / "MIL-47.cif")
    path = tmp_path_factory.mktemp("structure") / "mil47.extxyz"
    write_frames([atoms], path)
    return path


@pytest.fixture
def calculator(tiny_model):
    from aiida_mofmlp.engines.mace.common import mace_calculator

    return mace_calculator(tiny_model, device="cpu", default_dtype="float64")


def _run(tmp_path, tiny_model, structure, **settings):
    return run_md({"structure": str(structure), "model": str(tiny_model), **settings}, tmp_path)


def test_callback_matches_ase_calculator_and_nve_drift(tmp_path, tiny_model, mil47, calculator):
    run = _run(tmp_path, tiny_model, mil47, ensemble="nve", steps=60, dump_interval=20, thermo_interval=5)
    assert run.results["status"] == "completed"
    frames = read_frames(tmp_path / "trajectory.extxyz")
    assert [f.info["step"] for f in frames] == [0, 20, 40, 60]
    assert np.abs(frames[-1].arrays[FORCES_KEY] - run.frames[-1].arrays[FORCES_KEY]).max() < 1e-6
    for frame in run.frames:  # in memory: the exact configurations LAMMPS handed to the callback
        atoms = frame.copy()
        atoms.calc = calculator
        assert np.abs(atoms.get_forces() - frame.arrays[FORCES_KEY]).max() < 1e-8
        assert atoms.get_potential_energy() == pytest.approx(frame.info[ENERGY_KEY], abs=1e-8)
        assert np.allclose(atoms.get_stress(), frame.info[STRESS_KEY], atol=1e-10)
        assert "REF_energy" not in frame.info  # model predictions never pose as reference labels
    thermo = np.load(tmp_path / "thermo.npz")
    # LAMMPS pressure = kinetic part + the virial handed over by the callback
    first = frames[0]
    volume = first.get_volume()
    kinetic = 2.0 * thermo["kinetic_energy"][0] / (3.0 * volume) * EV_PER_A3_TO_BAR
    virial = -np.trace(np.diag(first.info[STRESS_KEY][:3])) / 3.0 * EV_PER_A3_TO_BAR
    assert thermo["pressure"][0] == pytest.approx(kinetic + virial, abs=1e-3)
    # NVE: total energy conserved to well below 1 meV/atom over 60 steps of 0.5 fs
    drift = np.abs(thermo["total_energy"] - thermo["total_energy"][0]).max() / len(first)
    assert drift < 5e-4
    assert np.ptp(thermo["potential_energy"]) > 10 * drift * len(first)  # the atoms did move


def test_nvt_temperature_program(tmp_path, tiny_model, mil47):
    segments = [{"steps": 20, "temperature": [300, 900]}, {"steps": 20, "temperature": 900}]
    run = _run(
        tmp_path,
        tiny_model,
        mil47,
        segments=segments,
        thermostat_damping_fs=5.0,
        dump_interval=10,
        thermo_interval=10,
    )
    assert run.results["status"] == "completed"
    assert run.results["steps_completed"] == 40
    thermo = np.load(tmp_path / "thermo.npz")
    assert list(thermo["step"]) == [0, 10, 20, 30, 40]
    assert thermo["temperature"][-1] > thermo["temperature"][0] + 100  # heated by the ramp
    assert len(read_frames(tmp_path / "trajectory.extxyz")) == 5


def test_npt_flexible_cell(tmp_path, tiny_model, mil47):
    run = _run(
        tmp_path,
        tiny_model,
        mil47,
        ensemble="npt",
        steps=40,
        barostat_damping_fs=50.0,
        dump_interval=20,
        thermo_interval=10,
    )
    assert run.results["status"] == "completed"
    thermo = np.load(tmp_path / "thermo.npz")
    assert np.isfinite(thermo["pressure"]).all()
    assert abs(thermo["volume"][-1] - thermo["volume"][0]) > 1e-3  # the cell moves
    frames = read_frames(tmp_path / "trajectory.extxyz")
    assert frames[-1].get_volume() == pytest.approx(thermo["volume"][-1], rel=1e-8)
    assert np.allclose(np.triu(frames[-1].cell.array, 1), 0.0)


def test_temperature_runaway_stops_and_keeps_frames(tmp_path, tiny_model, mil47):
    # a fast thermostat ramp to 3000 K drives the temperature through the 450 K safety bound
    run = _run(
        tmp_path,
        tiny_model,
        mil47,
        segments=[{"steps": 100, "temperature": [300, 3000]}],
        thermostat_damping_fs=5.0,
        dump_interval=5,
        safety={"check_interval": 5, "max_temperature": 450},
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "temperature_runaway", results["message"]
    assert 0 < results["steps_completed"] < 100
    assert (
        len(read_frames(tmp_path / "trajectory.extxyz"))
        == results["n_frames"]
        == run.results["n_frames"]
        >= 2
    )


def test_overlapping_atoms_give_nan_or_too_close(tmp_path, tiny_model, mil47):
    atoms = read_frames(mil47)[0]
    atoms.positions[1] = atoms.positions[0] + [0.0, 0.0, 0.3]
    path = tmp_path / "bad.extxyz"
    write_frames([atoms], path)
    run = _run(tmp_path, tiny_model, path, steps=10, safety={"min_distance": 0.5})
    assert run.results["status"] == "too_close"
    assert run.results["n_frames"] == 1  # the first frame is kept for inspection


def test_ensemble_sigma_stop(tmp_path, tiny_model, mil47):
    other = build_tiny_model(["H", "C", "O", "V"], tmp_path / "other.model", seed=1)
    uncertainty = {"models": [str(other)], "interval": 10, "upper": 1e-6, "consecutive": 2}
    run = _run(tmp_path, tiny_model, mil47, steps=50, dump_interval=10, uncertainty=uncertainty)
    assert run.results["status"] == "uncertain"
    assert run.results["steps_completed"] == 20  # checks at steps 10 and 20: two in a row above upper
    thermo = np.load(tmp_path / "thermo.npz")
    assert (thermo["sigma_max"] > 1e-6).all()


def test_console_script(tmp_path, tiny_model, mil47, monkeypatch):
    (tmp_path / "input.yaml").write_text(
        f"structure: {mil47}\nmodel: {tiny_model}\nsteps: 5\ndump_interval: 5\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["input.yaml"]) == 0
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "completed"


def test_native_pair_style_absent_is_a_clear_error(tmp_path, tiny_model, mil47):
    from aiida_mofmlp.common.lammps import import_lammps
    from aiida_mofmlp.engines.lammps.md_settings import InputError

    lmp = import_lammps().lammps(cmdargs=["-screen", "none", "-log", "none"])
    has_mace = lmp.has_style("pair", "mace")
    lmp.close()
    if has_mace:
        pytest.skip("this LAMMPS has pair_style mace")
    with pytest.raises(InputError, match="needs 'pair_style mace'"):
        _run(tmp_path, tiny_model, mil47, steps=5, coupling="mace", native_model=str(tiny_model))


def _is_subset(small: np.ndarray, big: np.ndarray) -> bool:
    distances = np.linalg.norm(small[:, None, :] - big[None, :, :], axis=2)
    return bool((distances.min(axis=1) < 1e-12).all())


def _energy(calculator, record) -> float:
    from ase import Atoms

    atoms = Atoms(numbers=record.numbers, positions=record.positions, cell=record.cell, pbc=True)
    atoms.calc = calculator
    return atoms.get_potential_energy()


def test_md_gcmc_co2_trial_energies(tmp_path, tiny_model, mil47, calculator):
    guest = {"name": "CO2", "symbols": ["C", "O", "O"], "positions": [[0, 0, 0], [0, 0, 1.16], [0, 0, -1.16]]}
    (tmp_path / "guest.json").write_text(json.dumps(guest))
    gcmc = {
        "guest": "guest.json",
        "pressures_bar": [1.0, 10.0],
        "equilibration_steps": 10,
        "production_steps": 20,
        "initial_loading": 2,
        "n_blocks": 2,
    }
    settings = {
        "structure": str(mil47),
        "model": str(tiny_model),
        "dump_interval": 10,
        "thermo_interval": 5,
        "gcmc": gcmc,
    }
    run = run_md(settings, tmp_path, record_evaluations=True)
    results = run.results
    assert results["status"] == "completed", results["message"]
    # intra_energy is MACE's energy of the isolated guest
    from ase import Atoms

    isolated = Atoms(guest["symbols"], positions=guest["positions"])
    isolated.calc = calculator
    assert results["gcmc"]["intra_energy"] == pytest.approx(isolated.get_potential_energy(), abs=1e-8)
    pressures = results["gcmc"]["pressures"]
    assert [p["pressure_bar"] for p in pressures] == [1.0, 10.0]
    for entry in pressures:  # one insertion or deletion attempt every 5 MD steps
        assert entry["insertion_attempts"] + entry["deletion_attempts"] == pytest.approx(30 / 5, abs=1)
    for entry in pressures:
        assert entry["loading_mol_per_kg"] == pytest.approx(
            1000 * entry["loading_molecules_per_cell"] / results["gcmc"]["framework_mass"]
        )
    # GCMC trial energies: fix gcmc first re-evaluates the current configuration, then the trial one
    # (a guest added, or a guest masked out for a deletion); the energy change the callback handed to
    # LAMMPS must equal MACE's directly computed energy difference of the two configurations
    records = run.callback.record
    insertions, deletions = [], []
    for before, trial in itertools.pairwise(records):
        n_before, n_trial = len(before.numbers), len(trial.numbers)
        if n_trial == n_before + 3 and np.allclose(trial.positions[:n_before], before.positions, atol=1e-12):
            insertions.append((before, trial))
        elif n_trial == n_before - 3 and _is_subset(trial.positions, before.positions):
            deletions.append((before, trial))
    assert insertions and deletions
    for before, trial in insertions[:2] + deletions[:2]:
        direct = [_energy(calculator, record) for record in (before, trial)]
        assert trial.energy - before.energy == pytest.approx(direct[1] - direct[0], abs=1e-8)
        assert abs(direct[1] - direct[0]) > 1.0  # a whole CO2 molecule (with its atomic energies)
    # trajectory frames carry whole guests with guest_id, and loading = number of guests
    for frame in run.frames[-2:]:  # frame labels are the MD force call, not a GCMC trial
        atoms = frame.copy()
        atoms.calc = calculator
        assert np.abs(atoms.get_forces() - frame.arrays[FORCES_KEY]).max() < 1e-8
    frames = read_frames(tmp_path / "trajectory.extxyz")
    for frame in frames:
        ids = guest_ids(frame)
        assert (ids == 0).sum() == 72
        assert frame.info["loading"] == len(set(ids.tolist()) - {0})
        assert all((ids == k).sum() == 3 for k in set(ids.tolist()) - {0})
