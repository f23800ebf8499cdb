"""Safety monitors of an ``mofmlp-md`` run: atoms too close, temperature runaway, the ensemble's uncertainty.

A mixin of :class:`~aiida_mofmlp.engines.lammps.md.MdRun`; a monitor that trips raises
:class:`~aiida_mofmlp.engines.lammps.md_settings.SafetyStop` with the run's status.
"""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms

from aiida_mofmlp.common.errors import InputError
from aiida_mofmlp.engines.lammps.md_settings import SafetyStop


class SafetyMonitors:
    """Checks run every ``safety.check_interval`` / ``uncertainty.interval`` steps."""

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
