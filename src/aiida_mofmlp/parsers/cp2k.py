"""Cp2kParser: aiida-cp2k's outputs plus labels in eV units, an MD trajectory, and exit codes for failures.

:class:`Cp2kParser` extends aiida-cp2k's ``cp2k_base_parser`` (``output_parameters`` and, when CP2K wrote a
restart file, ``output_structure`` / ``output_trajectory``). It adds

* ``labels`` (ArrayData, ENERGY / ENERGY_FORCE runs): array ``forces`` (eV/Angstrom), array ``stress``
  (eV/Angstrom^3, ASE's sign) when CP2K printed it, attributes ``energy`` (eV) and ``units``;
  ``energy`` (Float, eV) as well;
* ``resp_charges`` (ArrayData, single points with CP2K's &RESP charge file retrieved): array ``charges`` (e,
  atom order), attributes ``kinds``, ``unit`` and the fit's ``fit_rms`` / ``fit_rrms``;
* ``md_trajectory`` (TrajectoryData, MD runs): per step the positions and ``cells`` (Angstrom), arrays
  ``forces`` (eV/Angstrom) and ``energies`` (potential energy, eV), ``times`` (fs), ``stepids``;

and maps CP2K's failures onto the exit codes of ``Cp2kCalculation`` (whose spec a parser cannot extend, so
the detail goes into the message):

* 210 ``ERROR_OUTPUT_MISSING``: no ``aiida.out``; 301 ``ERROR_OUTPUT_READ``: it cannot be read;
* 304 ``ERROR_OUTPUT_CONTAINS_ABORT``: CP2K aborted; the message carries CP2K's own reason;
* 400 ``ERROR_OUT_OF_WALLTIME``: CP2K stopped at GLOBAL/WALLTIME;
* 303 ``ERROR_OUTPUT_INCOMPLETE``: the output ends before CP2K's normal end (job killed);
* 450 ``ERROR_SCF_NOT_CONVERGED``: an SCF did not converge; CP2K 2023.1 only warns ("SCF run NOT
  converged") and goes on, so a run that looks finished is failed here and produces no labels;
* 302 ``ERROR_OUTPUT_PARSE``: the run finished but its output lacks the energy or the forces (or their count
  differs from the structure's); 321 / 323: an MD run's position / force trajectory is missing or unreadable.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import ExitCode
from aiida_cp2k import utils as cp2k_utils
from aiida_cp2k.parsers import Cp2kBaseParser

from aiida_mofmlp.common.units import UNITS
from aiida_mofmlp.parsers.parse_raw import cp2k as raw

#: run types whose output must hold the energy (and, for ENERGY_FORCE, the forces)
SINGLE_POINT_RUN_TYPES = ("ENERGY", "ENERGY_FORCE")


def with_detail(exit_code: ExitCode, detail: str) -> ExitCode:
    """``exit_code`` with ``detail`` appended to its message (Cp2kCalculation's messages have no fields)."""
    return exit_code._replace(message=f"{exit_code.message.rstrip('.')}: {detail}")


class Cp2kParser(Cp2kBaseParser):
    """aiida-cp2k's base parser plus labels (eV, eV/Angstrom, eV/Angstrom^3), MD trajectory and exit codes."""

    def parse(self, **kwargs) -> ExitCode:
        """aiida-cp2k's outputs and the status checks, then the labels or the MD trajectory of a good run."""
        self._parsed: dict | None = None
        exit_code = super().parse(**kwargs)
        if exit_code is not None and exit_code.status != 0:
            return exit_code
        run_type = self._run_type()
        if run_type == "MD":
            return self._parse_md_trajectory() or ExitCode(0)
        if run_type in SINGLE_POINT_RUN_TYPES:
            labels = self._parse_labels(require_forces=run_type == "ENERGY_FORCE")
            return labels or self._parse_resp_charges() or ExitCode(0)
        return ExitCode(0)

    # --- standard output ------------------------------------------------------------------------------

    def _read_stdout(self) -> tuple[ExitCode | None, str | None]:
        filename = self.node.base.attributes.get("output_filename", raw.OUTPUT_FILENAME)
        if filename not in self.retrieved.base.repository.list_object_names():
            return with_detail(self.exit_codes.ERROR_OUTPUT_MISSING, f"{filename} was not retrieved"), None
        try:
            return None, self.retrieved.base.repository.get_object_content(filename)
        except (OSError, UnicodeDecodeError) as exc:
            return with_detail(self.exit_codes.ERROR_OUTPUT_READ, f"{filename}: {exc}"), None

    def _parse_stdout(self) -> ExitCode | None:
        """Status of the run from ``aiida.out``; ``output_parameters`` unless CP2K aborted."""
        exit_code, text = self._read_stdout()
        if exit_code:
            return exit_code
        parsed = raw.parse_single_point(text)
        self._parsed = parsed
        if parsed["aborted"]:
            reason = parsed["abort_message"] or "no message found in the output"
            if raw.SCF_NOT_CONVERGED in reason:
                return with_detail(self.exit_codes.ERROR_SCF_NOT_CONVERGED, f"CP2K aborted: {reason}")
            return self.exit_codes.ERROR_OUTPUT_CONTAINS_ABORT._replace(message=f"CP2K aborted: {reason}")

        self.out("output_parameters", orm.Dict(cp2k_utils.parse_cp2k_output(text)))

        if parsed["walltime_exceeded"]:
            return self.exit_codes.ERROR_OUT_OF_WALLTIME
        if not parsed["completed"]:
            return with_detail(
                self.exit_codes.ERROR_OUTPUT_INCOMPLETE,
                f"no '{raw.PROGRAM_STOPPED}': the job ended before CP2K",
            )
        if not parsed["scf_converged"]:
            count = text.count(raw.SCF_NOT_CONVERGED)
            return with_detail(
                self.exit_codes.ERROR_SCF_NOT_CONVERGED,
                f"CP2K warned '{raw.SCF_NOT_CONVERGED}' {count} time(s)",
            )
        if "MAXIMUM NUMBER OF OPTIMIZATION STEPS REACHED" in text:
            return self.exit_codes.ERROR_MAXIMUM_NUMBER_OPTIMIZATION_STEPS_REACHED
        return None

    def _run_type(self) -> str | None:
        """CP2K's run type from the output header, else from the input parameters."""
        if self._parsed and self._parsed["run_type"]:
            return self._parsed["run_type"]
        parameters = self.node.inputs.parameters.get_dict() if "parameters" in self.node.inputs else {}
        value = parameters.get("GLOBAL", {}).get("RUN_TYPE")
        return str(value).upper() if value else None

    def _n_atoms(self) -> int | None:
        return len(self.node.inputs.structure.sites) if "structure" in self.node.inputs else None

    # --- labels of a single point ---------------------------------------------------------------------

    def _parse_resp_charges(self) -> ExitCode | None:
        """Output ``resp_charges`` when CP2K wrote its &RESP charge file; 302 when that file is unreadable."""
        names = self.retrieved.base.repository.list_object_names()
        if raw.RESP_CHARGES_FILE not in names:
            return None
        try:
            kinds, charges = raw.parse_resp_charges(
                self.retrieved.base.repository.get_object_content(raw.RESP_CHARGES_FILE)
            )
        except ValueError as exc:
            return with_detail(self.exit_codes.ERROR_OUTPUT_PARSE, f"{raw.RESP_CHARGES_FILE}: {exc}")
        node = orm.ArrayData()
        node.set_array("charges", charges)
        fit = raw.parse_resp_fit(self.retrieved.base.repository.get_object_content(raw.OUTPUT_FILENAME))
        node.base.attributes.set_many({"kinds": kinds, "unit": "e", **fit})
        self.out("resp_charges", node)
        return None

    def _parse_labels(self, require_forces: bool) -> ExitCode | None:
        """Outputs ``labels`` and ``energy``; 302 when the energy (or required forces) are missing."""
        parsed = self._parsed or {}
        energy, forces, stress = parsed.get("energy"), parsed.get("forces"), parsed.get("stress")
        missing = [name for name, value in (("energy", energy), ("forces", forces)) if value is None]
        if not require_forces and forces is None:
            missing = [name for name in missing if name != "forces"]
        if missing:
            return with_detail(
                self.exit_codes.ERROR_OUTPUT_PARSE,
                f"CP2K finished but {raw.OUTPUT_FILENAME} has no {' and no '.join(missing)}",
            )
        n_atoms = self._n_atoms()
        if forces is not None and n_atoms is not None and len(forces) != n_atoms:
            return with_detail(
                self.exit_codes.ERROR_OUTPUT_PARSE,
                f"{raw.OUTPUT_FILENAME} has {len(forces)} forces for a structure of {n_atoms} atoms",
            )
        labels = orm.ArrayData()
        units = {"energy": UNITS["energy"]}
        if forces is not None:
            labels.set_array("forces", np.asarray(forces, dtype=float))
            units["forces"] = UNITS["forces"]
        if stress is not None:
            labels.set_array("stress", np.asarray(stress, dtype=float))
            units["stress"] = UNITS["stress"]
        labels.base.attributes.set("energy", float(energy))
        labels.base.attributes.set("units", units)
        self.out("labels", labels)
        self.out("energy", orm.Float(energy))
        return None

    # --- MD trajectory --------------------------------------------------------------------------------

    def _read_retrieved(self, filename: str, missing: ExitCode) -> tuple[str | None, ExitCode | None]:
        if filename not in self.retrieved.base.repository.list_object_names():
            return None, with_detail(missing, f"{filename} was not retrieved")
        try:
            return self.retrieved.base.repository.get_object_content(filename), None
        except (OSError, UnicodeDecodeError) as exc:
            return None, with_detail(missing, f"{filename}: {exc}")

    def _parse_md_trajectory(self) -> ExitCode | None:
        """Output ``md_trajectory`` from the xyz position/force files (cells from the input or .cell file)."""
        positions, error = self._read_retrieved(
            raw.POSITIONS_FILE, self.exit_codes.ERROR_COORDINATES_TRAJECTORY_READ
        )
        if error:
            return error
        forces, error = self._read_retrieved(raw.FORCES_FILE, self.exit_codes.ERROR_FORCES_TRAJECTORY_READ)
        if error:
            return error
        try:
            data = raw.parse_md_trajectory(positions, forces)
        except ValueError as exc:
            return with_detail(
                self.exit_codes.ERROR_COORDINATES_TRAJECTORY_READ,
                f"{raw.POSITIONS_FILE}/{raw.FORCES_FILE}: {exc}",
            )
        n_frames = len(data["steps"])
        cells = None
        pbc = tuple(self.node.inputs.structure.pbc) if "structure" in self.node.inputs else (True, True, True)
        if raw.CELL_FILE in self.retrieved.base.repository.list_object_names():
            try:
                by_step = raw.read_cell_trajectory(
                    self.retrieved.base.repository.get_object_content(raw.CELL_FILE)
                )
                cells = np.array([by_step[int(step)] for step in data["steps"]])
            except (OSError, ValueError, KeyError) as exc:
                return with_detail(self.exit_codes.ERROR_CELLS_TRAJECTORY_READ, f"{raw.CELL_FILE}: {exc}")
        elif "structure" in self.node.inputs:
            cells = np.repeat(np.array(self.node.inputs.structure.cell, dtype=float)[None], n_frames, axis=0)
        trajectory = orm.TrajectoryData()
        trajectory.set_trajectory(
            symbols=data["symbols"],
            positions=data["positions"],
            stepids=data["steps"],
            cells=cells,
            times=data["times"],
            pbc=pbc if cells is not None else None,
        )
        trajectory.set_array("forces", data["forces"])
        trajectory.set_array("energies", data["energies"])
        trajectory.base.attributes.set(
            "units",
            {
                "positions": UNITS["positions"],
                "cells": UNITS["cell"],
                "forces": UNITS["forces"],
                "energies": UNITS["energy"],
                "times": "fs",
            },
        )
        self.out("md_trajectory", trajectory)
        return None


__all__ = ["Cp2kParser", "with_detail"]
