"""The properties a model is trained for, computed with the labelling method and with each model
(``mofmlp-reference-check``; no AiiDA imports).

For one framework the reference method (GFN1-/GFN2-xTB through tblite, the method of the loop's xTB
labels) and every MACE model compute, each from its own relaxed structure:

* ``volume``: cell and positions relaxed (ASE's FrechetCellFilter): V0 (A^3), a, b, c (A), angles (deg);
* ``bulk_modulus``: relaxed-ion Birch-Murnaghan modulus (GPa) over +-``eos.strain`` linear strain, positions
  relaxed at each volume (``engines.phonons.elastic.equation_of_state``);
* ``binding_energy``: E(framework + guests) - E(framework) - sum E(guest alone), per guest (kJ/mol), on
  the loaded frames of ``binding.frames`` (guests marked by the per-atom ``guest_id``; every part keeps
  its geometry from the frame; a guest alone is a molecule without periodic images);
* ``gamma``: Gamma-point phonon frequencies (THz) of cells up to ``gamma.max_atoms`` atoms (phonopy finite
  displacements in the unit cell, which gives Gamma exactly).

Input file (JSON or YAML)::

    structure: structure.extxyz
    models: {model_0: model_0.model, model_1: model_1.model}
    reference: {method: GFN1-xTB}           # engines.xtb.label.DEFAULTS without frames
    run_reference: true                     # false: the models only (one job per calculator runs them apart)
    tasks: [volume, bulk_modulus, binding_energy, gamma]
    max_atoms: 150                          # refuse larger cells (the reference costs ~n^3)
    relax: {fmax: 0.01, steps: 300}
    eos: {strain: 0.03, n_points: 7, relax_steps: 100}
    binding: {frames: loaded.extxyz, max_frames: 10}
    gamma: {max_atoms: 60, displacement: 0.01}
    device: auto
    dtype: float64

Outputs: ``results.json`` (per calculator - ``reference`` and each model label - the values of every task,
plus seconds per calculator) and, when the reference runs, ``check_frames.extxyz``: the frames behind each
property, labelled by the reference (REF_energy, REF_forces, REF_stress) with ``check_task`` in their info
(``eos``: the reference's EOS cells, behind ``volume`` and ``bulk_modulus``; ``binding_energy``: each loaded
frame, its framework alone and each guest alone in a box, with ``binding_index``; ``gamma``: the relaxed
cell and two rattled copies), so that a failed property can send its frames to the training set.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from aiida_mofmlp.common.errors import InputError
from aiida_mofmlp.common.frames import GUEST_ID_KEY, guest_ids, read_frames, set_labels, write_frames
from aiida_mofmlp.common.metrics import EV_IN_KJ_PER_MOL
from aiida_mofmlp.common.protocols import deep_merge
from aiida_mofmlp.common.serialise import dumps
from aiida_mofmlp.engines.io import read_input, threads_from_environment
from aiida_mofmlp.engines.mace.common import EXIT_BAD_INPUT
from aiida_mofmlp.engines.phonons import elastic, harmonic
from aiida_mofmlp.engines.phonons.calculator import check_periodic, check_species, mace_calculator
from aiida_mofmlp.engines.phonons.run import read_structure
from aiida_mofmlp.engines.xtb import label as xtb

TASKS = ("volume", "bulk_modulus", "binding_energy", "gamma")
REFERENCE = "reference"
RESULTS_FILE = "results.json"
CHECK_FRAMES_FILE = "check_frames.extxyz"

DEFAULTS: dict[str, Any] = {
    "models": {},
    "reference": {"method": "GFN1-xTB"},
    "run_reference": True,
    "tasks": ["volume", "bulk_modulus", "binding_energy"],
    "max_atoms": 150,
    "relax": {"fmax": 0.01, "steps": 300},
    "eos": {"strain": 0.03, "n_points": 7, "relax_steps": 100},
    "binding": {"frames": None, "max_frames": 10},
    "gamma": {"max_atoms": 60, "displacement": 0.01, "rattle": 0.02},
    "device": "auto",
    "dtype": "float64",
}

UNITS = {
    "volume": "Angstrom^3",
    "lengths": "Angstrom",
    "angles": "degree",
    "bulk_modulus": "GPa",
    "binding_energy": "kJ/mol per guest",
    "gamma": "THz",
    "energy": "eV",
}


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """The full configuration (defaults merged in) or an :class:`InputError` naming the bad key."""
    allowed = {*DEFAULTS, "structure"}
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise InputError(f"unknown input keys {unknown}; valid: {sorted(allowed)}")
    if not config.get("structure"):
        raise InputError("input key 'structure' is required")
    for section in ("relax", "eos", "binding", "gamma"):
        extra = sorted(set(config.get(section) or {}) - set(DEFAULTS[section]))
        if extra:
            raise InputError(f"{section}: unknown keys {extra}; valid: {sorted(DEFAULTS[section])}")
    full = deep_merge(copy.deepcopy(DEFAULTS), {k: v for k, v in config.items() if v is not None})
    full["models"] = dict(config.get("models") or {})
    if REFERENCE in full["models"]:
        raise InputError(f"models: the label {REFERENCE!r} is the reference method's; rename the model")
    tasks = list(full["tasks"])
    bad = [task for task in tasks if task not in TASKS]
    if bad or not tasks:
        raise InputError(f"tasks {tasks!r} are not valid; choose from {list(TASKS)}")
    full["tasks"] = [task for task in TASKS if task in tasks]
    if "binding_energy" in tasks and not full["binding"]["frames"]:
        raise InputError("task binding_energy needs binding.frames (an extxyz file of loaded frames)")
    for key in ("max_atoms",):
        if int(full[key]) < 1:
            raise InputError(f"{key} {full[key]!r} must be a positive number of atoms")
    full["reference"] = xtb.load_settings({k: v for k, v in full["reference"].items() if k != "frames"})
    if not full["run_reference"] and not full["models"]:
        raise InputError("nothing to compute: run_reference is false and no models are given")
    return full


def check_size(atoms: Atoms, max_atoms: int, label: str = "structure") -> None:
    """Refuse a cell larger than ``max_atoms``, naming the limit."""
    if len(atoms) > int(max_atoms):
        raise InputError(
            f"{label} has {len(atoms)} atoms, more than max_atoms {int(max_atoms)} of the reference check "
            "(the reference method's cost grows as n^3); give a smaller cell or raise max_atoms"
        )


def _energy(atoms: Atoms, calculator) -> float:
    work = atoms.copy()
    work.calc = calculator
    with contextlib.redirect_stdout(io.StringIO()):
        return float(work.get_potential_energy())


def _molecule(atoms: Atoms) -> Atoms:
    """A guest taken out of its cell: whole (minimum-image positions from its first atom), no cell."""
    vectors = atoms.get_distances(0, range(len(atoms)), mic=True, vector=True)
    molecule = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions[0] + vectors, pbc=False)
    molecule.center(vacuum=10.0)
    molecule.pbc = False
    return molecule


def binding_energies(frames: Sequence[Atoms], calculator) -> list[float]:
    """Binding energy per guest (kJ/mol) of each loaded frame: E(all) - E(framework) - sum E(guest)."""
    values = []
    for atoms in frames:
        ids = guest_ids(atoms)
        framework = atoms[ids == 0]
        total = _energy(atoms, calculator) - _energy(framework, calculator)
        guests = sorted(set(ids.tolist()) - {0})
        for guest in guests:
            total -= _energy(_molecule(atoms[ids == guest]), calculator)
        values.append(total / len(guests) * EV_IN_KJ_PER_MOL)
    return values


def loaded_frames(path: str | Path, structure: Atoms, max_frames: int) -> list[Atoms]:
    """At most ``max_frames`` frames of ``path`` with guests on the framework of ``structure``, evenly spread
    over the file (a loop's explored frames run loading by loading and temperature by temperature)."""
    if not Path(path).is_file():
        raise InputError(f"binding.frames file {path} does not exist")
    loaded = []
    for index, atoms in enumerate(read_frames(path)):
        ids = guest_ids(atoms)
        if not np.any(ids > 0):
            continue
        framework = sorted(np.asarray(atoms.get_chemical_symbols())[ids == 0].tolist())
        if framework != sorted(structure.get_chemical_symbols()):
            raise InputError(
                f"binding.frames[{index}]: its framework atoms ({len(framework)}) are not those of the "
                f"structure ({len(structure)}); give frames of this framework with guests marked by "
                f"the per-atom array {GUEST_ID_KEY!r}"
            )
        atoms.info["check_index"] = index
        loaded.append(atoms)
    if not loaded:
        raise InputError(
            f"binding.frames {path}: no frame holds a guest (per-atom {GUEST_ID_KEY!r} > 0); the binding "
            "energy needs loaded frames, e.g. from the loop's MD/GCMC"
        )
    picks = np.unique(np.linspace(0, len(loaded) - 1, min(int(max_frames), len(loaded))).round().astype(int))
    return [loaded[i] for i in picks]


def _relaxed(atoms: Atoms, calculator, relax: dict) -> tuple[Atoms, dict]:
    work = atoms.copy()
    with contextlib.redirect_stdout(io.StringIO()):
        result = elastic.relax(work, calculator, fmax=float(relax["fmax"]), steps=int(relax["steps"]))
    lengths_angles = work.cell.cellpar()
    result.update(
        {
            "lengths": [float(x) for x in lengths_angles[:3]],
            "angles": [float(x) for x in lengths_angles[3:]],
            "energy_per_atom": result["energy"] / len(work),
        }
    )
    return work, result


def _gamma(atoms: Atoms, calculator, params: dict) -> list[float]:
    with contextlib.redirect_stdout(io.StringIO()):
        phonon = harmonic.compute_force_constants(
            atoms, calculator, [1, 1, 1], displacement=float(params["displacement"])
        )
    return [float(x) for x in harmonic.gamma_frequencies(phonon)]


def _labelled(atoms: Atoms, calculator, task: str) -> Atoms:
    work = atoms.copy()
    work.calc = calculator
    with contextlib.redirect_stdout(io.StringIO()):
        energy = float(work.get_potential_energy())
        forces = np.array(work.get_forces())
        stress = np.array(work.get_stress(voigt=True)) if all(work.pbc) else None
    frame = atoms.copy()
    frame.calc = None
    frame.info.update(
        {
            "check_task": task,
            "source": "reference_check",
            "loading": len(set(guest_ids(frame).tolist()) - {0}),
        }
    )
    return set_labels(frame, energy, forces, stress)


def _progress(label: str, task: str, start: float, detail: str = "") -> None:
    """One line per finished task on stdout (the job's ``stdout.txt``): where a long check stands."""
    print(f"{label}: {task} done in {time.perf_counter() - start:.1f} s {detail}".rstrip(), flush=True)


def compute(
    atoms: Atoms, calculator, full: dict, frames: list[Atoms], label: str = "calculator"
) -> tuple[dict, dict[str, list]]:
    """Every task of ``full`` with one calculator; returns the values and the structures behind them."""
    tasks = full["tasks"]
    values: dict[str, Any] = {}
    structures: dict[str, list[Atoms]] = {}
    start = time.perf_counter()
    relaxed, relax = _relaxed(atoms, calculator, full["relax"])
    values["relax"] = relax
    _progress(label, "relax", start, f"({relax['steps']} steps, V = {relax['volume']:.1f} A^3)")
    if "volume" in tasks:
        values["volume"] = relax["volume"]
    if "bulk_modulus" in tasks:
        params = full["eos"]
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            eos = elastic.equation_of_state(
                relaxed,
                calculator,
                strain=float(params["strain"]),
                n_points=int(params["n_points"]),
                fmax=float(full["relax"]["fmax"]),
                steps=int(params["relax_steps"]),
                keep_structures=True,
            )
        values["bulk_modulus"] = eos["bulk_modulus_eos_gpa"]
        values["eos"] = {
            "v0": eos["v0"],
            "volumes": eos["volumes"].tolist(),
            "energies": eos["energies"].tolist(),
        }
        structures["eos"] = eos["structures"]
        _progress(label, "bulk_modulus", start, f"(B = {values['bulk_modulus']:.2f} GPa)")
    if "binding_energy" in tasks:
        start = time.perf_counter()
        values["binding_energy"] = binding_energies(frames, calculator)
        _progress(label, "binding_energy", start, f"({len(frames)} frames)")
    if "gamma" in tasks and len(relaxed) <= int(full["gamma"]["max_atoms"]):
        start = time.perf_counter()
        values["gamma"] = _gamma(relaxed, calculator, full["gamma"])
        _progress(label, "gamma", start)
    structures["relaxed"] = [relaxed]
    return values, structures


#: vacuum (Angstrom) around a guest alone in a periodic box: beyond the receptive field of common models
GUEST_BOX_VACUUM = 12.0


def binding_parts(atoms: Atoms) -> list[tuple[str, Atoms]]:
    """The three kinds of frames whose energies make a binding energy: the loaded frame, its framework
    alone in the same cell and each guest alone, whole, in a periodic cubic box with
    :data:`GUEST_BOX_VACUUM` of vacuum (what a model must know to get E(guest) right)."""
    ids = guest_ids(atoms)
    parts = [("loaded", atoms), ("framework", atoms[ids == 0])]
    for guest in sorted(set(ids.tolist()) - {0}):
        molecule = _molecule(atoms[ids == guest])
        size = float(np.ptp(molecule.positions, axis=0).max()) + GUEST_BOX_VACUUM
        molecule.set_cell([size, size, size])
        molecule.center()
        molecule.pbc = True
        parts.append(("guest", molecule))
    return parts


def _binding_part(atoms: Atoms, reference, index: int, name: str) -> Atoms:
    frame = _labelled(atoms, reference, "binding_energy")
    frame.info.update({"binding_index": index, "binding_part": name})
    return frame


def _check_frames(reference, structures: dict, frames: list[Atoms], full: dict, seed: int = 0) -> list[Atoms]:
    """The reference-labelled frames behind each property (see the module docs)."""
    tasks = full["tasks"]
    out = []
    if "volume" in tasks or "bulk_modulus" in tasks:
        cells = structures.get("eos") or structures["relaxed"]
        out += [_labelled(cell, reference, "eos") for cell in cells]
    if "binding_energy" in tasks:
        for index, frame in enumerate(frames):
            out += [_binding_part(part, reference, index, name) for name, part in binding_parts(frame)]
    if "gamma" in tasks:
        rng = np.random.default_rng(seed)
        relaxed = structures["relaxed"][0]
        copies = [relaxed]
        for _ in range(2):
            rattled = relaxed.copy()
            rattled.positions += rng.normal(
                scale=float(full["gamma"]["rattle"]), size=rattled.positions.shape
            )
            copies.append(rattled)
        out += [_labelled(cell, reference, "gamma") for cell in copies]
    return out


def run(config: dict[str, Any], workdir: str | Path = ".") -> dict[str, Any]:
    """Compute every task with the reference and each model; write ``results.json`` and the check frames."""
    full = validate_config(config)
    workdir = Path(workdir)
    full["structure"] = workdir / full["structure"]  # relative paths are the working directory's
    full["models"] = {label: workdir / path for label, path in full["models"].items()}
    if full["binding"]["frames"]:
        full["binding"]["frames"] = workdir / full["binding"]["frames"]
    atoms = read_structure(full["structure"])
    check_periodic(atoms)
    check_size(atoms, full["max_atoms"])
    missing = xtb.unsupported_elements(atoms.get_chemical_symbols())
    if missing:
        raise InputError(f"structure has elements {missing} that GFN-xTB does not cover (H to Rn only)")
    frames = []
    if "binding_energy" in full["tasks"]:
        frames = loaded_frames(full["binding"]["frames"], atoms, int(full["binding"]["max_frames"]))
        for frame in frames:
            check_size(frame, full["max_atoms"], f"binding.frames[{frame.info['check_index']}]")
        if xtb.unsupported_elements(frames[0].get_chemical_symbols()):  # one framework, one guest
            raise InputError("binding.frames hold elements that GFN-xTB does not cover (H to Rn only)")
    calculators = {REFERENCE: xtb.xtb_calculator(full["reference"])} if full["run_reference"] else {}
    for label, path in sorted(full["models"].items()):
        calculator, info = mace_calculator(path, full["device"], full["dtype"])
        check_species(atoms, info, f"structure (model {label})")
        for frame in frames[:1]:
            check_species(frame, info, f"binding.frames (model {label})")
        calculators[label] = calculator
    results: dict[str, Any] = {
        "tasks": full["tasks"],
        "reference_method": full["reference"]["method"],
        "formula": atoms.get_chemical_formula(),
        "n_atoms": len(atoms),
        "binding_frames": [int(frame.info["check_index"]) for frame in frames],
        "units": UNITS,
        "calculators": {},
        "seconds": {},
    }
    reference_structures: dict = {}
    for label, calculator in calculators.items():
        start = time.perf_counter()
        values, structures = compute(atoms, calculator, full, frames, label)
        results["calculators"][label] = values
        results["seconds"][label] = round(time.perf_counter() - start, 3)
        if label == REFERENCE:
            reference_structures = structures
    if "gamma" in full["tasks"] and len(atoms) > int(full["gamma"]["max_atoms"]):
        results["gamma_skipped"] = f"{len(atoms)} atoms > gamma.max_atoms {full['gamma']['max_atoms']}"
    if REFERENCE in calculators:
        check = _check_frames(calculators[REFERENCE], reference_structures, frames, full)
        write_frames(check, workdir / CHECK_FRAMES_FILE)
    (workdir / RESULTS_FILE).write_text(dumps(results))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry ``mofmlp-reference-check INPUT``."""
    parser = argparse.ArgumentParser(prog="mofmlp-reference-check", description=__doc__.splitlines()[0])
    parser.add_argument("input", help="JSON/YAML input file (see module docs)")
    args = parser.parse_args(argv)
    threads_from_environment()
    try:
        run(read_input(args.input), ".")
    except InputError as error:
        print(f"mofmlp-reference-check: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
