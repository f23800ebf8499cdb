"""``mofmlp-widom``: Widom test-particle insertion of a rigid guest into framework snapshots with MACE.

Run as ``mofmlp-widom input.json`` in a working directory. The input (JSON or YAML) names:

* ``frames``: extxyz of framework snapshots (e.g. an NVT trajectory); atoms with ``guest_id > 0`` are
  dropped; the first ``discard_fraction`` of the frames (default 0.2: the start and its equilibration) is
  left out and at most ``max_frames`` of the rest, evenly spaced, are used;
* ``model`` (MACE model file), ``head``, ``device``, ``dtype``;
* ``guest``: JSON file or mapping with ``symbols`` and ``positions`` (rigid, Angstrom);
* ``temperature`` (K), ``insertions_per_frame``, ``seed``, ``n_blocks``;
* ``overlap_distance`` (Angstrom): an insertion with a guest-framework distance below it counts as
  Boltzmann factor 0 without a model call (a hard core; it must be below every real contact).

For each insertion the guest is placed with its centre of mass uniform in the cell and a uniformly random
orientation, and ``dU = E(framework + guest) - E(framework) - E(guest)`` with all three energies from the
same model. The Henry coefficient is ``K_H = <exp(-dU/kT)> / (R T rho)`` (``rho`` the framework density)
and the adsorption energy ``<dU> = <dU exp(-dU/kT)> / <exp(-dU/kT)>``; the isosteric heat at infinite
dilution is ``<dU> - RT`` (Frenkel & Smit, Understanding Molecular Simulation, 2nd ed., Academic Press
2002, ch. 7.2; Vlugt et al., J. Chem. Theory Comput. 2008, DOI 10.1021/ct700342k). Errors are standard
errors over ``n_blocks`` blocks of insertions.

Outputs: ``widom.json`` (results with units, counts, timings) and ``widom.npz`` (per insertion:
``frame_index``, ``guest_positions`` (Angstrom, in the frame's cell), ``delta_energy`` (eV, +inf for a
hard-core overlap), ``boltzmann_factor``; per frame: ``framework_energy``). Exit status 0 when the
outputs were written, 1 for invalid input (message on stderr as ``mofmlp-widom: error: ...``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from scipy.spatial.transform import Rotation

from aiida_mofmlp.common.errors import InputError
from aiida_mofmlp.common.frames import GUEST_ID_KEY, guest_ids, read_frames
from aiida_mofmlp.common.serialise import dumps
from aiida_mofmlp.common.timeseries import block_average
from aiida_mofmlp.engines.io import read_input, threads_from_environment

RESULTS_FILE = "widom.json"
ARRAYS_FILE = "widom.npz"
EXIT_BAD_INPUT = 1

BOLTZMANN_EV = 8.617333262e-5  # eV/K
GAS_CONSTANT = 8.314462618  # J/(mol K)
AVOGADRO = 6.02214076e23
EV_TO_KJ_PER_MOL = 96.48533212

WIDOM_DEFAULTS: dict[str, Any] = {
    "frames": "frames.extxyz",
    "model": "model.model",
    "head": None,
    "device": "cpu",
    "dtype": "float64",
    "guest": "guest.json",
    "temperature": 298.0,
    "insertions_per_frame": 100,
    "max_frames": 10,
    "seed": 12345,
    "n_blocks": 5,
    "overlap_distance": 1.0,
    "discard_fraction": 0.2,
}


def load_settings(source: dict | str | Path) -> dict:
    """Validated settings with defaults filled in."""
    given = dict(source) if isinstance(source, dict) else read_input(source)
    unknown = sorted(set(given) - set(WIDOM_DEFAULTS))
    if unknown:
        raise InputError(f"unknown input keys {unknown}; valid keys: {sorted(WIDOM_DEFAULTS)}")
    settings = {**WIDOM_DEFAULTS, **given}
    if not float(settings["temperature"]) > 0:
        raise InputError(f"temperature must be > 0 K, got {settings['temperature']!r}")
    for key in ("insertions_per_frame", "max_frames", "n_blocks"):
        if int(settings[key]) < 1:
            raise InputError(f"{key} must be a positive integer, got {settings[key]!r}")
    if float(settings["overlap_distance"]) < 0:
        raise InputError(f"overlap_distance must be >= 0 Angstrom, got {settings['overlap_distance']!r}")
    if not 0 <= float(settings["discard_fraction"]) < 1:
        raise InputError(
            f"discard_fraction must be in [0, 1) (the share of frames left out at the start), "
            f"got {settings['discard_fraction']!r}"
        )
    return settings


def random_orientation(positions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``positions`` (centred on the centre of mass) rotated by a uniformly random rotation."""
    return Rotation.random(random_state=rng).apply(positions)


def framework_density(atoms: Atoms) -> float:
    """Framework density in kg/m^3."""
    mass_kg = atoms.get_masses().sum() * 1.0e-3 / AVOGADRO
    return float(mass_kg / (atoms.get_volume() * 1.0e-30))


def widom_statistics(delta_energy: np.ndarray, temperature: float, density: float, n_blocks: int) -> dict:
    """Henry coefficient (mol/kg/Pa), ``<dU>`` and isosteric heat (kJ/mol) with block errors."""
    beta = 1.0 / (BOLTZMANN_EV * temperature)
    du = np.asarray(delta_energy, dtype=float)
    finite = np.isfinite(du)
    # shift by the lowest energy for numerical safety; undone in K_H
    shift = float(du[finite].min()) if finite.any() else 0.0
    weights = np.where(finite, np.exp(-beta * (np.where(finite, du, 0.0) - shift)), 0.0)
    scale = math.exp(-beta * shift)
    to_henry = scale / (GAS_CONSTANT * temperature * density)
    rt = GAS_CONSTANT * temperature / 1000.0  # kJ/mol

    def energy(w: np.ndarray, u: np.ndarray) -> float:
        total = w.sum()
        return float((w * np.where(np.isfinite(u), u, 0.0)).sum() / total) if total > 0 else float("nan")

    blocks = np.array_split(np.arange(du.size), min(n_blocks, du.size))
    henry_blocks = [weights[b].mean() * to_henry for b in blocks]
    energy_blocks = [energy(weights[b], du[b]) * EV_TO_KJ_PER_MOL for b in blocks]
    henry = block_average(henry_blocks, len(blocks))
    finite_energy_blocks = [e for e in energy_blocks if math.isfinite(e)]
    energy_error = (
        block_average(finite_energy_blocks, len(finite_energy_blocks))["error"]
        if finite_energy_blocks
        else float("nan")
    )
    adsorption_energy = energy(weights, du) * EV_TO_KJ_PER_MOL
    return {
        "henry_coefficient": float(weights.mean() * to_henry),
        "henry_coefficient_error": henry["error"],
        "henry_coefficient_unit": "mol/kg/Pa",
        "adsorption_energy": adsorption_energy,
        "adsorption_energy_error": energy_error,
        "adsorption_energy_unit": "kJ/mol",
        "isosteric_heat": adsorption_energy - rt,
        "isosteric_heat_error": energy_error,
        "isosteric_heat_unit": "kJ/mol",
        "n_insertions": int(du.size),
        "n_overlaps": int((~finite).sum()),
        "n_blocks": len(blocks),
    }


class WidomRun:
    """Insertions into every selected frame; :meth:`run` writes the outputs and returns the results."""

    def __init__(self, settings: dict, workdir: str | Path = ".") -> None:
        self.settings = settings
        self.workdir = Path(workdir)

    def _path(self, name: str | Path) -> Path:
        path = Path(name)
        return path if path.is_absolute() else self.workdir / path

    def _frames(self) -> list[Atoms]:
        path = self._path(self.settings["frames"])
        if not path.is_file():
            raise InputError(f"frames file {str(path)!r} does not exist")
        frames = read_frames(path)
        if not frames:
            raise InputError(f"frames file {path} holds no frames")
        first = min(math.ceil(float(self.settings["discard_fraction"]) * len(frames)), len(frames) - 1)
        n = min(len(frames) - first, int(self.settings["max_frames"]))
        chosen = np.unique(np.linspace(first, len(frames) - 1, n).round().astype(int))
        result = []
        for index in chosen:
            atoms = frames[int(index)]
            if not atoms.pbc.all() or atoms.cell.rank != 3:
                raise InputError(f"frame {index} of {path} must be periodic in 3 dimensions")
            framework = atoms[guest_ids(atoms) == 0]
            framework.info = {"source_index": int(index)}
            if GUEST_ID_KEY in framework.arrays:
                del framework.arrays[GUEST_ID_KEY]
            result.append(framework)
        return result

    def setup(self) -> None:
        from aiida_mofmlp.engines.lammps.gcmc import read_guest
        from aiida_mofmlp.engines.lammps.mace_driver import MaceModel

        settings = self.settings
        guest = settings["guest"]
        try:
            self.guest = read_guest(guest if isinstance(guest, dict) else self._path(guest))
        except (ValueError, OSError) as error:
            raise InputError(f"guest: {error}") from error
        self.frames = self._frames()
        model_path = self._path(settings["model"])
        if not model_path.is_file():
            raise InputError(f"model file {str(model_path)!r} does not exist")
        self.model = MaceModel(model_path, settings["head"], settings["device"], settings["dtype"])
        species = set(self.guest.symbols) | {s for f in self.frames for s in f.get_chemical_symbols()}
        if self.model.atomic_numbers is not None:
            from ase.data import chemical_symbols

            known = {chemical_symbols[z] for z in self.model.atomic_numbers}
            missing = sorted(species - known)
            if missing:
                raise InputError(
                    f"the model {model_path} has no elements {missing}; it knows {sorted(known)}"
                )

    def energy(self, atoms: Atoms) -> float:
        return self.model.evaluate(atoms.numbers, atoms.positions, atoms.cell.array)[0]

    def run(self) -> dict:
        start = time.perf_counter()
        self.setup()
        settings = self.settings
        rng = np.random.default_rng(int(settings["seed"]))
        guest_atoms = self.guest.atoms()
        guest_energy = self.model.isolated_energy(self.guest.symbols, self.guest.positions)
        overlap = float(settings["overlap_distance"])
        n_each = int(settings["insertions_per_frame"])
        frame_index, positions, delta, framework_energy = [], [], [], []
        for index, framework in enumerate(self.frames):
            e_framework = self.energy(framework)
            framework_energy.append(e_framework)
            for _ in range(n_each):
                centre = rng.random(3) @ framework.cell.array
                placed = random_orientation(guest_atoms.positions, rng) + centre
                combined = framework + Atoms(symbols=self.guest.symbols, positions=placed)
                frame_index.append(index)
                positions.append(placed)
                if overlap > 0 and _closest_contact(combined, len(framework)) < overlap:
                    delta.append(math.inf)
                    continue
                delta.append(self.energy(combined) - e_framework - guest_energy)
        delta = np.asarray(delta, dtype=float)
        density = float(np.mean([framework_density(f) for f in self.frames]))
        results = widom_statistics(delta, float(settings["temperature"]), density, int(settings["n_blocks"]))
        wall = time.perf_counter() - start
        results.update(
            {
                "status": "completed",
                "temperature": float(settings["temperature"]),
                "guest": self.guest.name,
                "guest_energy": guest_energy,
                "n_frames": len(self.frames),
                "frame_source_indices": [f.info["source_index"] for f in self.frames],
                "framework_density": density,
                "model_calls": int(self.model.n_calls),
                "model_seconds": float(self.model.seconds),
                "wall_seconds": wall,
                "units": {
                    "guest_energy": "eV",
                    "framework_density": "kg/m^3",
                    "delta_energy": "eV",
                    "temperature": "K",
                },
            }
        )
        np.savez(
            self.workdir / ARRAYS_FILE,
            frame_index=np.asarray(frame_index, dtype=int),
            guest_positions=np.asarray(positions, dtype=float),
            delta_energy=delta,
            boltzmann_factor=np.where(
                np.isfinite(delta),
                np.exp(-np.where(np.isfinite(delta), delta, 0.0) / (BOLTZMANN_EV * settings["temperature"])),
                0.0,
            ),
            framework_energy=np.asarray(framework_energy, dtype=float),
        )
        (self.workdir / RESULTS_FILE).write_text(dumps(results, indent=2))
        return results


def _closest_contact(atoms: Atoms, n_framework: int) -> float:
    """Smallest minimum-image distance between the guest (atoms after ``n_framework``) and the framework."""
    guest = np.arange(n_framework, len(atoms))
    distances = [atoms.get_distances(int(i), np.arange(n_framework), mic=True).min() for i in guest]
    return float(min(distances))


def run_widom(settings: dict | str | Path, workdir: str | Path = ".") -> dict:
    """Validate ``settings``, run the insertions, write ``widom.json`` and ``widom.npz`` into ``workdir``."""
    return WidomRun(load_settings(settings), workdir).run()


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``mofmlp-widom INPUT``."""
    parser = argparse.ArgumentParser(prog="mofmlp-widom", description=__doc__.splitlines()[0])
    parser.add_argument("input", help="JSON or YAML input file (see the module documentation)")
    args = parser.parse_args(argv)
    threads_from_environment()
    try:
        results = run_widom(read_input(args.input), Path.cwd())
    except InputError as error:
        print(f"mofmlp-widom: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(dumps({"status": results["status"], "henry_coefficient": results["henry_coefficient"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
