"""The ``mofmlp-phonons`` engine with the shipped small MOF foundation on rock-salt MgO (2 atoms/cell).

Physics checks with known answers: the acoustic sum rule at Gamma (no symmetrisation of the force
constants), Cv -> 3 N k_B at high temperature, the phonon DOS integrating to 3 N modes, the bulk modulus
of the Birch-Murnaghan fit against -V dP/dV of the stress, the QHA over five volumes, and a stretched
lattice with imaginary modes that the rattle-and-relax step fixes (or reports when not allowed to).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.io import write

from aiida_mofmlp.common.errors import InputError
from aiida_mofmlp.common.frames import read_frames
from aiida_mofmlp.common.resources import foundation_files
from aiida_mofmlp.engines.phonons.harmonic import choose_supercell
from aiida_mofmlp.engines.phonons.run import main, run, validate_config

MGO_A = 4.09  # close to the foundation's own rock-salt minimum


def _config(structure, **extra) -> dict:
    return {"model": str(foundation_files().model), "structure": str(structure), "device": "cpu", **extra}


@pytest.fixture(scope="module")
def mgo_run(tmp_path_factory):
    """One run of every phonon task on MgO (about 40 s on one core)."""
    workdir = tmp_path_factory.mktemp("mgo")
    write(workdir / "mgo.extxyz", bulk("MgO", "rocksalt", a=MGO_A))
    config = _config(
        workdir / "mgo.extxyz",
        tasks=["relax", "phonons", "eos", "qha"],
        phonons={"t_max": 3000.0, "t_step": 50.0, "symmetrize": False, "band_points": 41},
        eos={"method": "both"},
        qha={"relax_steps": 0, "t_max": 400.0, "t_step": 20.0},
    )
    results = run(config, workdir)
    arrays = dict(np.load(workdir / "phonons.npz"))
    return workdir, results, arrays


@pytest.mark.integration
def test_acoustic_sum_rule_at_gamma(mgo_run):
    _, results, _ = mgo_run
    gamma = np.asarray(results["phonons"]["gamma_frequencies"])
    assert len(gamma) == 6
    assert np.all(np.abs(gamma[:3]) < 0.02), gamma  # THz, force constants not symmetrised
    assert np.all(gamma[3:] > 1.0), gamma  # the optical modes are real and finite
    assert results["phonons"]["status"] == "stable"
    assert results["phonons"]["supercell"] == choose_supercell(bulk("MgO", "rocksalt", a=MGO_A), 5.0)


@pytest.mark.integration
def test_q_mesh_convergence_is_reported(mgo_run):
    _, results, _ = mgo_run
    check = results["phonons"]["mesh_convergence"]
    assert check["mesh"] == 30.0 and check["denser_mesh"] == 60.0
    # MgO's Cv at 300 K changes by well under 1 % from a 30 A to a 60 A mesh; F by under 1 meV per cell
    assert abs(check["heat_capacity_300K_change_percent"]) < 1.0
    assert abs(check["free_energy_300K_ev_change"]) < 1e-3
    assert results["phonons"]["residual_force_max"] < 0.05  # relaxed to fmax 0.01 eV/A


@pytest.mark.integration
def test_residual_forces_are_subtracted_from_the_force_constants():
    """One-sided differences from an unrelaxed cell carry -f/displacement unless the residual force is
    subtracted; central (plus-minus) differences cancel it, so they are the answer to compare with (and
    phonopy's default, plus-minus where symmetry does not relate the two, agrees with them)."""
    from phonopy import Phonopy

    from aiida_mofmlp.engines.phonons.calculator import mace_calculator
    from aiida_mofmlp.engines.phonons.harmonic import compute_force_constants, to_ase_atoms, to_phonopy_atoms

    calculator, _ = mace_calculator(foundation_files().model, "cpu")
    atoms = bulk("MgO", "rocksalt", a=MGO_A)
    atoms.positions[1] += [0.03, 0.02, -0.01]  # off equilibrium: residual forces
    central = Phonopy(
        to_phonopy_atoms(atoms), supercell_matrix=np.eye(3, dtype=int) * 2, primitive_matrix="P"
    )
    central.generate_displacements(distance=0.01, is_plusminus=True)
    forces = []
    for cell in central.supercells_with_displacements:
        displaced = to_ase_atoms(cell)
        displaced.calc = calculator
        forces.append(displaced.get_forces().copy())
    central.forces = np.asarray(forces)
    central.produce_force_constants()
    one_sided = {"symmetrize": False, "plus_minus": False}
    plain = compute_force_constants(atoms, calculator, [2, 2, 2], **one_sided)
    subtracted = compute_force_constants(atoms, calculator, [2, 2, 2], subtract_residual=True, **one_sided)
    error_plain = np.abs(plain.force_constants - central.force_constants).max()
    error_subtracted = np.abs(subtracted.force_constants - central.force_constants).max()
    assert subtracted.residual_force_max > 0.05 and plain.residual_force_max is None
    assert error_subtracted < 0.2 * error_plain, (error_subtracted, error_plain)
    default = compute_force_constants(atoms, calculator, [2, 2, 2], symmetrize=False, subtract_residual=True)
    assert np.abs(default.force_constants - central.force_constants).max() < 0.2 * error_plain


@pytest.mark.integration
def test_heat_capacity_reaches_dulong_petit(mgo_run):
    _, results, arrays = mgo_run
    temperature, cv = arrays["thermal_temperature"], arrays["thermal_heat_capacity_kb"]
    limit = results["phonons"]["dulong_petit_kb"]
    assert limit == 6.0  # 3 N k_B for 2 atoms
    assert abs(cv[-1] - limit) / limit < 0.02
    assert temperature[-1] == pytest.approx(3000.0)
    low = np.interp(20.0, temperature, cv)
    assert low < 0.1 * limit  # quantum freezing at low T: the check above is not trivially true
    assert np.all(np.diff(cv) >= -1e-9)


@pytest.mark.integration
def test_dos_counts_three_n_modes_and_bands_follow_the_path(mgo_run):
    _, _, arrays = mgo_run
    frequency, dos = arrays["dos_frequency"], arrays["dos"]
    from scipy.integrate import trapezoid

    assert trapezoid(dos, frequency) == pytest.approx(6.0, rel=0.03)
    labels = [str(label) for label in arrays["band_labels"]]
    assert labels[0] == "G"
    assert arrays["band_frequencies"].shape == (len(arrays["band_distance"]), 6)
    assert np.abs(arrays["band_frequencies"][0, :3]).max() < 0.05


@pytest.mark.integration
def test_bulk_modulus_eos_agrees_with_stress_derivative(mgo_run):
    _, results, arrays = mgo_run
    eos = results["eos"]
    b_energy, b_stress = eos["bulk_modulus_eos_gpa"], eos["bulk_modulus_stress_gpa"]
    assert b_energy > 10.0
    assert abs(b_energy - b_stress) / b_energy < 0.05, (b_energy, b_stress)
    assert len(arrays["eos_volumes"]) == 7
    span = arrays["eos_volumes"].max() / arrays["eos_volumes"].min()
    assert span == pytest.approx((1.02 / 0.98) ** 3, rel=1e-6)
    assert eos["v0"] == pytest.approx(results["relax"]["volume"], rel=0.01)


@pytest.mark.integration
def test_quasi_harmonic_expansion_over_five_volumes(mgo_run):
    workdir, results, arrays = mgo_run
    assert results["qha"]["n_volumes"] == len(arrays["qha_volumes"]) == 5
    assert results["qha"]["imaginary_per_volume"] == [0] * 5
    alpha = arrays["qha_thermal_expansion"]
    assert np.all(np.isfinite(alpha))
    assert results["qha"]["thermal_expansion_300K"] > 0
    volume = arrays["qha_volume_temperature"]
    assert volume[-1] > volume[0] > 0.99 * min(arrays["qha_volumes"])  # expands on heating
    saved = json.loads((workdir / "results.json").read_text())
    assert set(saved["wall_time_s"]) == {"relax", "phonons", "eos", "qha"}
    assert saved["units"]["bulk_modulus"] == "GPa"


@pytest.mark.integration
def test_imaginary_modes_are_fixed_by_rattle_and_relax_or_reported(tmp_path):
    stretched = bulk("MgO", "rocksalt", a=4.6)  # a saddle held by symmetry: modes below -1 THz
    write(tmp_path / "stretched.extxyz", stretched)
    phonons = {"max_attempts": 0, "dos": False, "bands": False, "mesh": 12.0}
    reported = run(_config(tmp_path / "stretched.extxyz", tasks=["phonons"], phonons=phonons), tmp_path)
    assert reported["phonons"]["status"] == "imaginary"
    assert reported["phonons"]["n_imaginary"] > 0
    assert reported["phonons"]["min_frequency"] < -1.0

    phonons["max_attempts"] = 2
    fixed = run(_config(tmp_path / "stretched.extxyz", tasks=["phonons"], phonons=phonons), tmp_path)
    attempts = fixed["phonons"]["attempts"]
    assert attempts[0]["n_imaginary"] > 0 and not attempts[0]["rattled"]
    assert fixed["phonons"]["status"] == "fixed"
    assert attempts[-1]["rattled"] and attempts[-1]["n_imaginary"] == 0
    assert fixed["volume_final"] < 0.9 * stretched.get_volume()


def test_non_periodic_structure_is_refused(tmp_path):
    write(tmp_path / "water.extxyz", molecule("H2O"))
    with pytest.raises(InputError, match="not periodic in three dimensions"):
        run(_config(tmp_path / "water.extxyz"), tmp_path)


def test_supercell_too_small_names_the_one_that_fits():
    atoms = bulk("MgO", "rocksalt", a=MGO_A)
    with pytest.raises(InputError, match=r"too small for the model's cutoff 5 A.*use \[5, 5, 5\]"):
        choose_supercell(atoms, 5.0, [2, 2, 2])
    assert choose_supercell(atoms, 5.0, [6, 5, 5]) == [6, 5, 5]


def test_bad_configuration_messages(tmp_path, capsys):
    with pytest.raises(InputError, match="unknown keys \\['mesh_size'\\]"):
        validate_config({"model": "m", "structure": "s", "phonons": {"mesh_size": 3}})
    with pytest.raises(InputError, match="tasks"):
        validate_config({"model": "m", "structure": "s", "tasks": ["melt"]})
    with pytest.raises(InputError, match=r"host_guest\.guest"):
        validate_config({"model": "m", "structure": "s", "tasks": ["host_guest"]})
    write(tmp_path / "chain.extxyz", Atoms("Mg", cell=[3, 0, 0], pbc=[True, False, False]))
    (tmp_path / "input.json").write_text(json.dumps(_config(tmp_path / "chain.extxyz")))
    assert main([str(tmp_path / "input.json")]) == 2
    assert "mofmlp-phonons: error:" in capsys.readouterr().err


@pytest.mark.integration
def test_figures_draw_the_run(mgo_run, tmp_path):
    from aiida_mofmlp.tools.plots_phonons import (
        plot_bands,
        plot_dos,
        plot_eos,
        plot_heat_capacity,
        plot_thermal_expansion,
    )

    _, results, arrays = mgo_run
    plots = [
        plot_dos(arrays, tmp_path / "dos.png"),
        plot_bands(arrays, tmp_path / "bands.png"),
        plot_heat_capacity(arrays, 2, tmp_path / "cv.png"),
        plot_eos(arrays, results["eos"]["bulk_modulus_eos_gpa"], tmp_path / "eos.png"),
        plot_thermal_expansion(arrays, tmp_path / "alpha.png"),
    ]
    assert all(plot.path.stat().st_size > 1000 for plot in plots)
    assert plots[2].data["dulong_petit_kb"] == 6.0
    fit = plots[3].data
    assert fit["fit_energies"].min() <= fit["energies"].min() + 1e-4  # the fit passes through the minimum
    with pytest.raises(ValueError, match="lack"):
        plot_dos({"band_distance": [0.0]})


@pytest.mark.integration
def test_host_guest_interaction_at_the_best_site(tmp_path):
    from aiida_mofmlp.engines.mace.toy import toy_frame

    framework = toy_frame(n_guests=0, rattle=0.0)
    write(tmp_path / "framework.extxyz", framework)
    write(tmp_path / "co2.extxyz", Atoms("CO2", positions=[(0, 0, 0), (1.16, 0, 0), (-1.16, 0, 0)]))
    config = _config(
        tmp_path / "framework.extxyz",
        tasks=["host_guest"],
        host_guest={"guest": str(tmp_path / "co2.extxyz"), "n_trials": 6, "relax_steps": 15},
    )
    result = run(config, tmp_path)["host_guest"]
    assert result["host_repeat"] == [2, 2, 2]  # 6.5 A cell, r_max 5 A
    assert result["n_open_sites"] > 0
    assert (
        result["interaction_energy"] <= result["interaction_energy_best_trial"] + 1e-9
    )  # relaxing lowers it
    assert -2.0 < result["interaction_energy"] < 0.5  # physisorption scale, eV
    assert result["interaction_energy_kj_mol"] == pytest.approx(
        result["interaction_energy"] * 96.485, rel=1e-3
    )
    complex_ = read_frames(tmp_path / "host_guest.extxyz")[0]
    assert len(complex_) == 8 * len(framework) + 3
