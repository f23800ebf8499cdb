"""Recording of an ``mofmlp-md`` run: model results per frame, thermo rows, frames, GCMC block averages and
the output files.

A mixin of :class:`~aiida_mofmlp.engines.lammps.md.MdRun`.
"""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms

from aiida_mofmlp.common.frames import (
    GUEST_ID_KEY,
    write_frames,
)
from aiida_mofmlp.common.serialise import dumps
from aiida_mofmlp.engines.lammps.md_settings import (
    ENERGY_KEY,
    FORCES_KEY,
    RESULTS_FILE,
    STRESS_KEY,
    THERMO_FILE,
    TRAJECTORY_FILE,
)


class Recording:
    """What a run keeps: frames, thermo and sigma rows, and the files written at the end."""

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
