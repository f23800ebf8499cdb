"""Phonons, elastic and thermal properties of one structure with one MACE model (``mofmlp-phonons``).

Tasks, run in this order when listed in ``tasks``:

* ``relax``: positions and cell with ASE's FrechetCellFilter (``relax.fmax`` eV/A, ``relax.steps``);
* ``phonons``: phonopy finite displacements in a supercell whose perpendicular widths are >= 2 r_max (or
  ``phonons.supercell``), the residual forces of the undisplaced supercell subtracted
  (``subtract_residual``), Gamma frequencies, total DOS, the band structure along the lattice's standard
  path, F, S, Cv against T and, with ``mesh_check``, the change of Cv and F at 300 K on a q-mesh twice as
  dense (``mesh_convergence``); modes below ``-imaginary_threshold`` THz on the mesh count as imaginary and
  are fixed by rattling the atoms (``rattle_sigma`` A, Gaussian) and relaxing again, at most
  ``max_attempts`` times, every attempt reported (Elena et al., npj Comput. Mater. 2025,
  DOI 10.1038/s41524-025-01611-8);
* ``eos``: bulk modulus from a Birch-Murnaghan fit of E(V) over +-``eos.strain`` (``method: energy``), from
  -V dP/dV of the stress (``stress``) or both;
* ``qha``: quasi-harmonic V(T) and volumetric expansion alpha_V(T) from phonons at >= 5 volumes;
* ``host_guest``: interaction energy of the guest molecule (``host_guest.guest``, an extxyz file) at its
  best site; ``errors``: MAE/RMSE against the labels of ``errors.frames`` (model-card tasks, MOFSimBench:
  Krass, Huang, Moosavi, 2025).

Input file (JSON or YAML)::

    model: model.model
    structure: structure.extxyz         # any file ASE reads; periodic in 3D
    tasks: [relax, phonons]
    device: auto
    dtype: float64
    head: null
    relax: {fmax: 0.01, steps: 500, cell: true, optimizer: BFGS}
    phonons: {supercell: null, displacement: 0.01, mesh: 30.0, ...}   # see PHONONS_DEFAULTS
    eos: {strain: 0.02, n_points: 7, method: energy, relax_steps: 200}   # 0: clamped-ion
    qha: {n_volumes: 5, strain: 0.01, t_max: 500.0, t_step: 10.0, relax_steps: 100}

Outputs: ``results.json`` (scalars per task, the imaginary-mode attempts, units, wall time per task),
``phonons.npz`` (arrays, named ``<task>_<quantity>``) and ``relaxed.extxyz`` (the final structure).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from aiida_mofmlp.common.errors import InputError
from aiida_mofmlp.common.frames import read_frames, write_frames
from aiida_mofmlp.common.protocols import deep_merge
from aiida_mofmlp.common.serialise import dumps
from aiida_mofmlp.engines.io import read_input, threads_from_environment
from aiida_mofmlp.engines.mace.common import EXIT_BAD_INPUT
from aiida_mofmlp.engines.phonons import card_tasks, elastic, harmonic, qha
from aiida_mofmlp.engines.phonons.calculator import (
    check_periodic,
    check_species,
    check_stress,
    mace_calculator,
)

TASKS = ("relax", "phonons", "eos", "qha", "host_guest", "errors")

PHONONS_DEFAULTS: dict[str, Any] = {
    "tasks": ["relax", "phonons"],
    "device": "auto",
    "dtype": "float64",
    "head": None,
    "relax": {"fmax": 0.01, "steps": 500, "cell": True, "optimizer": "BFGS"},
    "phonons": {
        "supercell": None,
        "displacement": 0.01,
        "mesh": 30.0,
        "symmetrize": True,
        "t_min": 0.0,
        "t_max": 1000.0,
        "t_step": 10.0,
        "band_points": 101,
        "dos": True,
        "bands": True,
        "imaginary_threshold": 0.1,
        "subtract_residual": True,
        "mesh_check": True,
        "rattle_sigma": 0.01,
        "max_attempts": 3,
        "seed": 0,
    },
    # positions relaxed at each volume: the relaxed-ion modulus of a flexible framework; the clamped-ion one
    # (relax_steps 0) was 8x larger for a Zn MOF (GFN1-xTB: 50.8 vs 6.05 GPa)
    "eos": {"strain": 0.02, "n_points": 7, "method": "energy", "relax_steps": 200},
    "qha": {
        "n_volumes": 5,
        "strain": 0.01,
        "t_max": 500.0,
        "t_step": 10.0,
        "relax_steps": 100,
        "eos": "vinet",
    },
    "host_guest": {
        "guest": None,
        "n_trials": 20,
        "relax_steps": 50,
        "fmax": 0.05,
        "min_distance": 2.5,
        "seed": 0,
    },
    "errors": {"frames": None},
}

#: units of the scalars and arrays the engine writes
UNITS = {
    "energy": "eV",
    "volume": "Angstrom^3",
    "frequency": "THz",
    "dos": "states/THz per unit cell",
    "band_distance": "1/Angstrom",
    "temperature": "K",
    "free_energy": "kJ/mol of unit cells",
    "free_energy_ev": "eV per unit cell",
    "entropy": "J/(K mol of unit cells)",
    "heat_capacity": "J/(K mol of unit cells)",
    "entropy_kb": "k_B per unit cell",
    "heat_capacity_kb": "k_B per unit cell",
    "heat_capacity_per_gram": "J/(g K)",
    "bulk_modulus": "GPa",
    "pressure": "eV/Angstrom^3",
    "thermal_expansion": "1/K (volumetric)",
    "interaction_energy": "eV (and kJ/mol in *_kj_mol)",
    "mae_e_per_atom": "eV/atom",
    "mae_f": "eV/Angstrom",
}

#: the temperature (K) at which single thermal numbers are reported
REPORT_TEMPERATURE = 300.0


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """The full configuration (defaults merged in) or an :class:`InputError` naming the bad key."""
    unknown = sorted(set(config) - set(PHONONS_DEFAULTS) - {"model", "structure"})
    if unknown:
        raise InputError(
            f"unknown input keys {unknown}; valid: {sorted([*PHONONS_DEFAULTS, 'model', 'structure'])}"
        )
    for key in ("model", "structure"):
        if not config.get(key):
            raise InputError(f"input key {key!r} is required")
    for section, defaults in PHONONS_DEFAULTS.items():
        if isinstance(defaults, dict):
            given = config.get(section) or {}
            extra = sorted(set(given) - set(defaults))
            if extra:
                raise InputError(f"{section}: unknown keys {extra}; valid: {sorted(defaults)}")
    full = deep_merge(copy.deepcopy(PHONONS_DEFAULTS), {k: v for k, v in config.items() if v is not None})
    tasks = list(full["tasks"])
    bad = [task for task in tasks if task not in TASKS]
    if bad or not tasks:
        raise InputError(f"tasks {tasks!r} are not valid; choose from {list(TASKS)}")
    full["tasks"] = [task for task in TASKS if task in tasks]
    if "host_guest" in tasks and not full["host_guest"]["guest"]:
        raise InputError("task host_guest needs host_guest.guest (an extxyz file of the guest molecule)")
    if "errors" in tasks and not full["errors"]["frames"]:
        raise InputError("task errors needs errors.frames (an extxyz file of labelled frames)")
    if int(full["phonons"]["max_attempts"]) < 0:
        raise InputError(f"phonons.max_attempts {full['phonons']['max_attempts']!r} must be >= 0")
    return full


def read_structure(path: str | Path) -> Atoms:
    """The first structure of a file ASE reads (extxyz, CIF, ...)."""
    from ase.io import read

    path = Path(path)
    if not path.is_file():
        raise InputError(f"structure file {path} does not exist")
    try:
        return read(str(path), index=0)
    except Exception as error:
        raise InputError(f"structure file {path} cannot be read: {error}") from error


def _rattle(atoms: Atoms, sigma: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    atoms.positions = atoms.positions + rng.normal(scale=sigma, size=atoms.positions.shape)


def _value_at(temperatures: np.ndarray, values: np.ndarray, target: float) -> float | None:
    if len(temperatures) == 0 or not temperatures[0] <= target <= temperatures[-1]:
        return None
    return float(np.interp(target, temperatures, values))


def _mesh_convergence(phonon, params: dict, thermal: dict) -> dict:
    """Cv and F at 300 K on the q-mesh and on one twice as dense: how far the mesh is from converged."""
    denser = harmonic.denser_mesh(params["mesh"])
    dense = harmonic.thermal_properties(
        phonon, denser, float(params["t_min"]), float(params["t_max"]), float(params["t_step"])
    )
    result: dict[str, Any] = {"mesh": params["mesh"], "denser_mesh": denser}
    for key, unit_key in (("heat_capacity", "heat_capacity_300K"), ("free_energy_ev", "free_energy_300K_ev")):
        coarse = _value_at(thermal["temperature"], thermal[key], REPORT_TEMPERATURE)
        fine = _value_at(dense["temperature"], dense[key], REPORT_TEMPERATURE)
        change = None if coarse is None or fine is None else fine - coarse
        result[f"{unit_key}_change"] = change
        if key == "heat_capacity" and change is not None and fine:
            result["heat_capacity_300K_change_percent"] = 100.0 * change / fine
    return result


def run_phonons(
    atoms: Atoms, calculator, r_max: float, params: dict, relax_params: dict
) -> tuple[dict, dict]:
    """The ``phonons`` task: force constants, the imaginary-mode fix loop and the derived quantities.

    ``atoms`` is relaxed again in place when the fix rattles it. Returns the scalars and the arrays.
    """
    threshold = float(params["imaginary_threshold"])
    attempts: list[dict] = []
    for attempt in range(int(params["max_attempts"]) + 1):
        if attempt > 0:
            _rattle(atoms, float(params["rattle_sigma"]), int(params["seed"]) + attempt)
            elastic.relax(atoms, calculator, **relax_params)
        supercell = harmonic.choose_supercell(atoms, r_max, params["supercell"])
        phonon = harmonic.compute_force_constants(
            atoms,
            calculator,
            supercell,
            float(params["displacement"]),
            bool(params["symmetrize"]),
            bool(params["subtract_residual"]),
        )
        gamma = harmonic.gamma_frequencies(phonon)
        mesh = harmonic.mesh_frequencies(phonon, params["mesh"])
        n_imaginary = harmonic.imaginary_modes(mesh, threshold) + harmonic.imaginary_modes(
            gamma[3:], threshold
        )
        attempts.append(
            {
                "attempt": attempt,
                "rattled": attempt > 0,
                "n_imaginary": n_imaginary,
                "min_frequency": float(min(mesh.min(), gamma.min())),
                "energy": float(atoms.get_potential_energy()) if atoms.calc is not None else None,
            }
        )
        if n_imaginary == 0:
            break
    status = (
        "stable"
        if attempts[-1]["n_imaginary"] == 0 and len(attempts) == 1
        else ("fixed" if attempts[-1]["n_imaginary"] == 0 else "imaginary")
    )
    thermal = harmonic.thermal_properties(
        phonon, params["mesh"], float(params["t_min"]), float(params["t_max"]), float(params["t_step"])
    )
    molar_mass = float(atoms.get_masses().sum())
    cv_300 = _value_at(thermal["temperature"], thermal["heat_capacity"], REPORT_TEMPERATURE)
    scalars = {
        "supercell": list(supercell),
        "n_atoms_cell": len(atoms),
        "n_atoms_supercell": len(atoms) * int(np.prod(supercell)),
        "n_displacements": len(phonon.supercells_with_displacements),
        "gamma_frequencies": gamma.tolist(),
        "acoustic_max_abs": float(np.abs(gamma[:3]).max()),
        "min_frequency": attempts[-1]["min_frequency"],
        "max_frequency": float(mesh.max()),
        "n_imaginary": attempts[-1]["n_imaginary"],
        "imaginary_threshold": threshold,
        "status": status,
        "attempts": attempts,
        "dulong_petit_kb": harmonic.dulong_petit_kb(len(atoms)),
        "heat_capacity_300K": cv_300,
        "heat_capacity_300K_kb_per_atom": None
        if cv_300 is None
        else cv_300 / harmonic.GAS_CONSTANT / len(atoms),
        "heat_capacity_300K_per_gram": None if cv_300 is None else cv_300 / molar_mass,
        "entropy_300K": _value_at(thermal["temperature"], thermal["entropy"], REPORT_TEMPERATURE),
        "free_energy_300K_ev": _value_at(
            thermal["temperature"], thermal["free_energy_ev"], REPORT_TEMPERATURE
        ),
    }
    scalars["residual_force_max"] = phonon.residual_force_max
    if params["mesh_check"]:
        scalars["mesh_convergence"] = _mesh_convergence(phonon, params, thermal)
    arrays = {f"thermal_{key}": value for key, value in thermal.items()}
    arrays["gamma_frequencies"] = gamma
    if params["dos"]:
        frequency, dos = harmonic.total_dos(phonon, params["mesh"])
        arrays.update({"dos_frequency": frequency, "dos": dos})
    if params["bands"]:
        bands = harmonic.band_structure(phonon, atoms, int(params["band_points"]))
        arrays.update(
            {
                "band_distance": bands["distance"],
                "band_frequencies": bands["frequencies"],
                "band_label_distance": bands["label_distance"],
                "band_labels": np.asarray(bands["labels"]),
            }
        )
        scalars["band_path"] = bands["path"]
    return scalars, arrays


def run(config: dict[str, Any], workdir: str | Path = ".") -> dict[str, Any]:
    """Run the tasks of ``config`` and write ``results.json``, ``phonons.npz`` and ``relaxed.extxyz``."""
    full = validate_config(config)
    workdir = Path(workdir)
    atoms = read_structure(full["structure"])
    check_periodic(atoms)
    calculator, info = mace_calculator(full["model"], full["device"], full["dtype"], full["head"])
    check_species(atoms, info)
    tasks = full["tasks"]
    if "eos" in tasks and full["eos"]["method"] in ("stress", "both"):
        check_stress(atoms, calculator)
    if "phonons" in tasks and full["phonons"]["supercell"] is not None:
        harmonic.choose_supercell(atoms, info.r_max, full["phonons"]["supercell"])
    relax_params = dict(full["relax"])
    results: dict[str, Any] = {
        "tasks": tasks,
        "model": {"r_max": info.r_max, "species": info.species, "head": full["head"]},
        "formula": atoms.get_chemical_formula(),
        "n_atoms": len(atoms),
        "volume_input": float(atoms.get_volume()),
        "units": UNITS,
        "wall_time_s": {},
    }
    arrays: dict[str, np.ndarray] = {}
    atoms.calc = calculator
    for task in tasks:
        start = time.perf_counter()
        if task == "relax":
            results["relax"] = elastic.relax(atoms, calculator, **relax_params)
        elif task == "phonons":
            scalars, task_arrays = run_phonons(atoms, calculator, info.r_max, full["phonons"], relax_params)
            results["phonons"] = scalars
            arrays.update(task_arrays)
        elif task == "eos":
            params = full["eos"]
            eos = elastic.equation_of_state(
                atoms,
                calculator,
                strain=float(params["strain"]),
                n_points=int(params["n_points"]),
                method=params["method"],
                fmax=float(relax_params["fmax"]),
                steps=int(params["relax_steps"]),
            )
            arrays.update({f"eos_{k}": v for k, v in eos.items() if isinstance(v, np.ndarray)})
            results["eos"] = {k: v for k, v in eos.items() if not isinstance(v, np.ndarray)}
            results["eos"]["method"] = params["method"]
            results["eos"]["relaxed_ion"] = int(params["relax_steps"]) > 0
        elif task == "qha":
            params = full["qha"]
            supercell = harmonic.choose_supercell(atoms, info.r_max, full["phonons"]["supercell"])
            result = qha.quasi_harmonic(
                atoms,
                calculator,
                supercell,
                n_volumes=int(params["n_volumes"]),
                strain=float(params["strain"]),
                mesh=full["phonons"]["mesh"],
                t_max=float(params["t_max"]),
                t_step=float(params["t_step"]),
                displacement=float(full["phonons"]["displacement"]),
                relax_steps=int(params["relax_steps"]),
                fmax=float(relax_params["fmax"]),
                imaginary_threshold=float(full["phonons"]["imaginary_threshold"]),
                eos=params["eos"],
            )
            arrays.update({f"qha_{k}": v for k, v in result.items()})
            results["qha"] = {
                "n_volumes": len(result["volumes"]),
                "supercell": list(supercell),
                "imaginary_per_volume": result["imaginary_per_volume"].tolist(),
                "thermal_expansion_300K": _value_at(
                    result["temperature"], result["thermal_expansion"], REPORT_TEMPERATURE
                ),
                "volume_300K": _value_at(
                    result["temperature"], result["volume_temperature"], REPORT_TEMPERATURE
                ),
            }
        elif task == "host_guest":
            params = full["host_guest"]
            guest = read_structure(params["guest"])
            check_species(guest, info, "host_guest.guest")
            scalars, complex_ = card_tasks.host_guest_interaction(
                atoms.copy(),
                guest,
                calculator,
                info.r_max,
                n_trials=int(params["n_trials"]),
                relax_steps=int(params["relax_steps"]),
                fmax=float(params["fmax"]),
                min_distance=float(params["min_distance"]),
                seed=int(params["seed"]),
            )
            results["host_guest"] = scalars
            write_frames([complex_], workdir / "host_guest.extxyz")
        elif task == "errors":
            frames = read_frames(full["errors"]["frames"])
            for index, frame in enumerate(frames):
                check_species(frame, info, f"errors.frames[{index}]")
            results["errors"] = card_tasks.frame_errors(frames, calculator)
        results["wall_time_s"][task] = round(time.perf_counter() - start, 3)
        atoms.calc = calculator
    results["volume_final"] = float(atoms.get_volume())
    final = atoms.copy()
    final.calc = None
    write_frames([final], workdir / "relaxed.extxyz")
    np.savez(workdir / "phonons.npz", **arrays)
    (workdir / "results.json").write_text(dumps(results))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry ``mofmlp-phonons INPUT``."""
    parser = argparse.ArgumentParser(prog="mofmlp-phonons", description=__doc__.splitlines()[0])
    parser.add_argument("input", help="JSON/YAML input file (see module docs)")
    args = parser.parse_args(argv)
    threads_from_environment()
    try:
        run(read_input(args.input), ".")
    except InputError as error:
        print(f"mofmlp-phonons: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
