"""``mofmlp-reference-check``: binding energies against an analytic pair sum, the Gamma sum rule of the
reference, its EOS minimum at the relaxed volume, and refusals before any calculation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.calculators.lj import LennardJones

from aiida_mofmlp.common.errors import InputError
from aiida_mofmlp.common.frames import ENERGY_KEY, guest_ids, read_frames, write_frames
from aiida_mofmlp.common.metrics import EV_IN_KJ_PER_MOL
from aiida_mofmlp.common.resources import foundation_files
from aiida_mofmlp.engines.mace.toy import toy_frame
from aiida_mofmlp.engines.reference.check import (
    CHECK_FRAMES_FILE,
    RESULTS_FILE,
    _molecule,
    binding_energies,
    loaded_frames,
    main,
    run,
)
from aiida_mofmlp.engines.xtb.label import label_frame, load_settings

SIGMA, EPSILON, CUTOFF = 2.0, 0.01, 3.0


def _framework():
    atoms = toy_frame(0, rattle=0.0)
    del atoms.arrays["guest_id"]
    return atoms


def _pair(r: np.ndarray) -> np.ndarray:
    """ASE's LennardJones pair energy, shifted to zero at the cutoff (its default smooth=False)."""
    lj = lambda x: 4 * EPSILON * ((SIGMA / x) ** 12 - (SIGMA / x) ** 6)  # noqa: E731
    return np.where(r < CUTOFF, lj(r) - lj(CUTOFF), 0.0)


def test_binding_energy_equals_the_host_guest_pair_sum():
    """A pair potential's binding energy is the sum over framework-guest pairs (and guest-guest pairs
    between different guests, shared by the two), by minimum image with a cutoff below half the cell."""
    calculator = LennardJones(sigma=SIGMA, epsilon=EPSILON, rc=CUTOFF)
    frames = [toy_frame(1, seed=1), toy_frame(2, seed=2)]
    values = binding_energies(frames, calculator)
    for atoms, value in zip(frames, values, strict=True):
        ids = guest_ids(atoms)
        expected = 0.0
        for i in np.flatnonzero(ids > 0):
            others = [j for j in range(len(atoms)) if ids[j] != ids[i]]
            r = atoms.get_distances(i, others, mic=True)
            weights = np.where(ids[others] > 0, 0.5, 1.0)  # a guest-guest pair is seen from both sides
            expected += float(np.sum(weights * _pair(r)))
        n = len(set(ids.tolist()) - {0})
        assert value == pytest.approx(expected / n * EV_IN_KJ_PER_MOL, rel=1e-9, abs=1e-9)
    assert any(abs(v) > 1e-3 for v in values)  # the check is not trivially zero


def test_a_guest_across_the_cell_boundary_comes_out_whole():
    atoms = toy_frame(1, rattle=0.0)
    guest = atoms[guest_ids(atoms) == 1]
    guest.positions[0] += [6.5, 0.0, 0.0]  # one atom wrapped into the next cell
    molecule = _molecule(guest)
    assert not molecule.pbc.any()
    assert molecule.get_distance(0, 1) == pytest.approx(1.16, abs=1e-6)
    assert molecule.get_distance(0, 2) == pytest.approx(1.16, abs=1e-6)


def test_cells_above_max_atoms_are_refused_before_any_calculation(tmp_path):
    write_frames([_framework()], tmp_path / "structure.extxyz")
    config = {"structure": str(tmp_path / "structure.extxyz"), "tasks": ["volume"], "max_atoms": 5}
    with pytest.raises(InputError, match="10 atoms, more than max_atoms 5"):
        run(config, tmp_path)
    assert not (tmp_path / RESULTS_FILE).exists()
    assert main([str(tmp_path / "missing.json")]) == 2


def test_frames_of_another_framework_are_refused(tmp_path):
    write_frames([_framework()], tmp_path / "structure.extxyz")
    other = toy_frame(1)
    other = other[[i for i in range(len(other)) if i != 4]]  # one framework H less
    write_frames([other], tmp_path / "loaded.extxyz")
    config = {
        "structure": str(tmp_path / "structure.extxyz"),
        "tasks": ["binding_energy"],
        "binding": {"frames": str(tmp_path / "loaded.extxyz")},
    }
    with pytest.raises(InputError, match="framework atoms"):
        run(config, tmp_path)
    with pytest.raises(InputError, match="unknown keys"):
        run({**config, "eos": {"points": 3}}, tmp_path)
    with pytest.raises(InputError, match="nothing to compute"):
        run({**config, "run_reference": False}, tmp_path)


def test_loaded_frames_are_spread_over_the_file_and_empty_ones_skipped(tmp_path):
    frames = [toy_frame(i % 3, seed=i) for i in range(15)]  # every third frame is empty
    write_frames(frames, tmp_path / "loaded.extxyz")
    picked = loaded_frames(tmp_path / "loaded.extxyz", _framework(), 3)
    indices = [atoms.info["check_index"] for atoms in picked]
    assert len(indices) == 3 and indices[0] == 1 and indices[-1] == 14  # first and last loaded frames
    assert all(index % 3 for index in indices)
    assert len(loaded_frames(tmp_path / "loaded.extxyz", _framework(), 100)) == 10


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """Every task with GFN1-xTB and the shipped foundation on the 10-atom toy framework (~40 s)."""
    workdir = tmp_path_factory.mktemp("reference")
    write_frames([_framework()], workdir / "structure.extxyz")
    write_frames(
        [toy_frame(1, seed=3, rattle=0.03), toy_frame(2, seed=4, rattle=0.03)], workdir / "loaded.extxyz"
    )
    config = {
        "structure": str(workdir / "structure.extxyz"),
        "models": {"model_0": str(foundation_files().model)},
        "tasks": ["volume", "bulk_modulus", "binding_energy", "gamma"],
        "relax": {"fmax": 0.02, "steps": 400},
        "eos": {"strain": 0.02, "n_points": 5, "relax_steps": 30},
        "binding": {"frames": "loaded.extxyz"},
        "device": "cpu",
    }
    results = run(config, workdir)
    return workdir, results


@pytest.mark.integration
def test_reference_results_obey_physics(checked):
    workdir, results = checked
    assert results == json.loads((workdir / RESULTS_FILE).read_text())
    reference = results["calculators"]["reference"]
    assert reference["relax"]["converged"]
    gamma = np.sort(reference["gamma"])
    assert len(gamma) == 30 and np.all(np.abs(gamma[:3]) < 0.05)  # acoustic sum rule (THz)
    # the relaxed cell sits at the minimum of its own relaxed-ion E(V)
    assert reference["eos"]["v0"] == pytest.approx(reference["volume"], rel=0.01)
    assert reference["bulk_modulus"] > 0
    assert len(reference["binding_energy"]) == 2
    model = results["calculators"]["model_0"]
    assert set(model) >= {"volume", "bulk_modulus", "binding_energy", "gamma"}
    assert results["binding_frames"] == [0, 1]


@pytest.mark.integration
def test_check_frames_carry_the_reference_labels(checked):
    workdir, results = checked
    frames = read_frames(workdir / CHECK_FRAMES_FILE)
    tasks = [atoms.info["check_task"] for atoms in frames]
    # binding: each loaded frame (1 and 2 guests), its framework alone and each guest alone: 3 + 4 frames
    assert tasks.count("eos") == 5 and tasks.count("binding_energy") == 7 and tasks.count("gamma") == 3
    binding = [atoms for atoms in frames if atoms.info["check_task"] == "binding_energy"]
    parts = [(atoms.info["binding_index"], atoms.info["binding_part"]) for atoms in binding]
    assert (
        parts
        == [(0, "loaded"), (0, "framework"), (0, "guest"), (1, "loaded"), (1, "framework")]
        + [(1, "guest")] * 2
    )
    loaded = [atoms for atoms in binding if atoms.info["binding_part"] == "loaded"]
    assert [int(guest_ids(atoms).max()) for atoms in loaded] == [1, 2]
    guest = binding[2]
    assert len(guest) == 3 and all(guest.pbc) and guest.cell.lengths().min() > 12.0
    # the energies behind the reference's binding energy are in the frames: E(all) - E(fw) - E(guest)
    energy = [atoms.info[ENERGY_KEY] for atoms in binding[:3]]
    expected = results["calculators"]["reference"]["binding_energy"][0]
    assert (energy[0] - energy[1] - energy[2]) * EV_IN_KJ_PER_MOL == pytest.approx(expected, abs=0.5)
    settings = load_settings({})
    direct = label_frame(loaded[1], settings)["energy"]
    assert loaded[1].info[ENERGY_KEY] == pytest.approx(direct, abs=1e-6)
    eos = [atoms for atoms in frames if atoms.info["check_task"] == "eos"]
    volumes = sorted(atoms.get_volume() for atoms in eos)
    assert volumes == pytest.approx(sorted(results["calculators"]["reference"]["eos"]["volumes"]), rel=1e-9)
