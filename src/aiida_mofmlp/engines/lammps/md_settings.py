"""Settings of ``mofmlp-md`` (defaults, types, the temperature program), its output names and statuses.

No LAMMPS here: the CalcJob, the work chains and the daemon read these without loading the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from aiida_mofmlp.common.errors import InputError
from aiida_mofmlp.common.frames import (
    PREDICTED_ENERGY_KEY,
    PREDICTED_FORCES_KEY,
    PREDICTED_STRESS_KEY,
)
from aiida_mofmlp.common.schema import type_problem
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
