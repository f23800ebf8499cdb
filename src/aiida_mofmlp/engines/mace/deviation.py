"""Ensemble force deviation of N MACE models on many frames, batched (``mofmlp-deviation``).

For every frame, with forces F_i^(n) of atom i from model n = 1..N (Jin et al., Chem. Sci. 2026, Eq. 1)::

    sigma_i   = sqrt( (1/N) * sum_n |F_i^(n) - <F_i>|^2 )          <F_i> = (1/N) sum_n F_i^(n)
    sigma_max = max_i sigma_i                                        (eV/Angstrom)

also split by atom group (framework ``guest_id == 0``, guests ``guest_id > 0``; NaN when the frame
has no atom of that group), the energy deviation per atom std_n(E^(n)/n_atoms) (eV/atom, population
std), the ensemble-mean energy and forces and, with ``compute_stress``, the ensemble-mean stress.

The models are loaded once; the graphs of a batch of frames are built once and shared by all models
with the same species table, cutoff and heads; each model then evaluates the whole batch in one
forward pass plus one backward pass for the forces (no per-frame ASE calls; the stress, which needs
the cell-strain derivative too, only when asked).

Input file of ``mofmlp-deviation`` (JSON or YAML)::

    models: [model_0.model, model_1.model, ...]    # at least 2
    frames: frames.extxyz
    batch_size: 8
    dtype: float64                                  # or float32 (faster on CPU, ~1e-5 eV/A)
    device: auto                                    # cpu, cuda, auto
    head: null                                      # model head; default "Default" or the last head
    write_extxyz: true                              # deviation.extxyz with per-frame/per-atom results
    compute_stress: false                           # also stress_mean (n_frames, 6), eV/A^3

Outputs in the working directory: ``deviation.npz`` (arrays named as in :func:`compute_deviation`),
``deviation.json`` (per-frame values and a summary) and, when asked, ``deviation.extxyz`` (the input
frames with info ``sigma_max``, ``sigma_max_framework``, ``sigma_max_guest``, ``energy_std_per_atom``,
``energy_mean`` [, ``stress_mean``] and arrays ``forces_mean``, ``sigma_atom``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from aiida_mofmlp.common.frames import guest_ids, iter_frames, write_frames
from aiida_mofmlp.common.serialise import dumps
from aiida_mofmlp.engines.io import read_input, threads_from_environment
from aiida_mofmlp.engines.mace.common import (
    EXIT_BAD_INPUT,
    InputError,
    load_model,
    resolve_device,
)

DEVIATION_DEFAULTS: dict[str, Any] = {
    "batch_size": 8,
    "dtype": "float64",
    "device": "auto",
    "head": None,
    "write_extxyz": True,
    "compute_stress": False,
}

#: per-frame arrays returned by :func:`compute_deviation` (shape (n_frames,))
FRAME_ARRAYS = ("sigma_max", "sigma_max_framework", "sigma_max_guest", "energy_std_per_atom", "energy_mean")


def _choose_head(heads: Sequence[str], head: str | None, path: str) -> str:
    if head is not None:
        if head not in heads:
            raise InputError(f"head {head!r} is not in model {path}; valid heads: {list(heads)}")
        return head
    if "Default" in heads:
        return "Default"
    return heads[-1]


class _Ensemble:
    """N loaded models grouped by what their input graphs depend on (species table, cutoff, heads)."""

    def __init__(self, model_paths: Sequence[str | Path], dtype: str, device: str, head: str | None):
        import torch
        from mace.tools import utils

        if dtype not in ("float64", "float32"):
            raise InputError(f"dtype {dtype!r} is not valid; valid: float64, float32")
        self.torch_dtype = torch.float64 if dtype == "float64" else torch.float32
        self.dtype = dtype
        self.device = device
        self.groups: list[dict[str, Any]] = []
        self.n_models = len(model_paths)
        for index, path in enumerate(model_paths):
            model = load_model(path, device=device).to(dtype=self.torch_dtype)
            model.eval()
            for parameter in model.parameters():
                parameter.requires_grad_(False)
            numbers = tuple(int(z) for z in model.atomic_numbers.tolist())
            heads = tuple(getattr(model, "heads", None) or ["Default"])
            chosen = _choose_head(heads, head, str(path))
            key = (numbers, round(float(model.r_max), 8), heads, chosen)
            for group in self.groups:
                if group["key"] == key:
                    group["models"].append((index, model))
                    break
            else:
                self.groups.append(
                    {
                        "key": key,
                        "z_table": utils.AtomicNumberTable(list(numbers)),
                        "r_max": float(model.r_max),
                        "heads": list(heads),
                        "head": chosen,
                        "models": [(index, model)],
                    }
                )

    def check_species(self, atoms: Atoms, frame_index: int) -> None:
        present = set(int(z) for z in atoms.numbers)
        for group in self.groups:
            missing = present - set(group["key"][0])
            if missing:
                from ase.data import chemical_symbols

                raise InputError(
                    f"frame {frame_index} contains {sorted(chemical_symbols[z] for z in missing)}, which "
                    f"model(s) {[i for i, _ in group['models']]} do not know; their species: "
                    f"{[chemical_symbols[z] for z in group['key'][0]]}"
                )

    def forces_energies(self, frames: Sequence[Atoms]) -> tuple[np.ndarray, np.ndarray]:
        """Forces (N, total_atoms, 3) and energies (N, n_frames) of all models on a batch of frames."""
        forces, energies, _ = self.predict(frames)
        return forces, energies

    def predict(
        self, frames: Sequence[Atoms], compute_stress: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Forces and energies as :meth:`forces_energies`, and with ``compute_stress`` the stresses.

        The stresses have shape (N, n_frames, 6): Voigt order xx yy zz yz xz xy, eV/Angstrom^3, ASE sign
        (as ``MACECalculator`` gives them); NaN for a frame that is not periodic in all three directions.
        """
        import torch
        from ase.stress import full_3x3_to_voigt_6_stress
        from mace import data as mace_data
        from mace.tools import torch_geometric, torch_tools

        total = sum(len(atoms) for atoms in frames)
        forces = np.empty((self.n_models, total, 3))
        energies = np.empty((self.n_models, len(frames)))
        stresses = np.full((self.n_models, len(frames), 6), np.nan) if compute_stress else None
        periodic = np.array([bool(np.all(atoms.pbc)) for atoms in frames])
        keyspec = mace_data.KeySpecification()
        for group in self.groups:
            with torch_tools.default_dtype(self.torch_dtype):
                graphs = [
                    mace_data.AtomicData.from_config(
                        mace_data.config_from_atoms(
                            atoms, key_specification=keyspec, head_name=group["head"]
                        ),
                        z_table=group["z_table"],
                        cutoff=group["r_max"],
                        heads=group["heads"],
                    )
                    for atoms in frames
                ]
            batch = torch_geometric.Batch.from_data_list(graphs).to(self.device)
            base = batch.to_dict()
            for key, value in base.items():
                if torch.is_tensor(value) and torch.is_floating_point(value):
                    base[key] = value.to(dtype=self.torch_dtype)
            for index, model in group["models"]:
                inputs = dict(base)
                inputs["positions"] = base["positions"].detach().clone()
                output = model(inputs, training=False, compute_force=True, compute_stress=compute_stress)
                forces[index] = output["forces"].detach().cpu().double().numpy()
                energies[index] = output["energy"].detach().cpu().double().numpy()
                if stresses is not None:
                    stress = full_3x3_to_voigt_6_stress(output["stress"].detach().cpu().double().numpy())
                    stresses[index, periodic] = stress[periodic]
        return forces, energies, stresses


def _batches(frames: Iterable[Atoms], size: int) -> Iterator[list[Atoms]]:
    batch: list[Atoms] = []
    for atoms in frames:
        batch.append(atoms)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def sigma_per_atom(forces: np.ndarray) -> np.ndarray:
    """Eq. 1 per atom: sqrt(mean_n |F_i^n - <F_i>|^2) from forces of shape (N, n_atoms, 3)."""
    deviation = forces - forces.mean(axis=0, keepdims=True)
    return np.sqrt((deviation**2).sum(axis=-1).mean(axis=0))


def _masked_max(values: np.ndarray, mask: np.ndarray) -> float:
    return float(values[mask].max()) if mask.any() else float("nan")


def compute_deviation(
    model_paths: Sequence[str | Path],
    frames: Iterable[Atoms] | str | Path,
    batch_size: int = 8,
    dtype: str = "float64",
    device: str | None = "cpu",
    head: str | None = None,
    compute_stress: bool = False,
) -> dict[str, np.ndarray]:
    """Ensemble deviation of ``model_paths`` on ``frames`` (atoms or an extxyz path, streamed in batches).

    Returns numpy arrays: per frame ``sigma_max``, ``sigma_max_framework``, ``sigma_max_guest`` (eV/A,
    NaN when the group is empty), ``energy_std_per_atom`` (eV/atom), ``energy_mean`` (eV), ``n_atoms``;
    ``energies`` (N, n_frames) eV; per atom, frames concatenated, ``forces_mean`` (total_atoms, 3) eV/A,
    ``sigma_atom`` (total_atoms,) eV/A and ``guest_id``; ``atom_offsets`` (n_frames + 1) to split them.
    With ``compute_stress`` also ``stress_mean`` (n_frames, 6): the ensemble-mean stress, Voigt order,
    eV/Angstrom^3, ASE sign, NaN for frames that are not fully periodic (off by default: it costs time).
    """
    if len(model_paths) < 2:
        raise InputError(f"models: an ensemble needs at least 2 model files, got {len(model_paths)}")
    if int(batch_size) < 1:
        raise InputError(f"batch_size={batch_size!r} must be a positive integer")
    if isinstance(frames, (str, Path)):
        if not Path(frames).is_file():
            raise InputError(f"frames file {frames} does not exist")
        frames = iter_frames(frames)
    ensemble = _Ensemble(model_paths, dtype, resolve_device(device), head)
    per_frame: dict[str, list[float]] = {name: [] for name in FRAME_ARRAYS}
    n_atoms: list[int] = []
    energies: list[np.ndarray] = []
    forces_mean: list[np.ndarray] = []
    sigma_atoms: list[np.ndarray] = []
    groups: list[np.ndarray] = []
    stress_mean: list[np.ndarray] = []
    frame_index = 0
    for batch in _batches(frames, int(batch_size)):
        for atoms in batch:
            ensemble.check_species(atoms, frame_index)
            frame_index += 1
        forces, batch_energies, stresses = ensemble.predict(batch, compute_stress=bool(compute_stress))
        energies.append(batch_energies)
        if stresses is not None:
            stress_mean.append(stresses.mean(axis=0))
        start = 0
        for column, atoms in enumerate(batch):
            count = len(atoms)
            frame_forces = forces[:, start : start + count]
            start += count
            sigma = sigma_per_atom(frame_forces)
            ids = guest_ids(atoms)
            per_frame["sigma_max"].append(float(sigma.max()))
            per_frame["sigma_max_framework"].append(_masked_max(sigma, ids == 0))
            per_frame["sigma_max_guest"].append(_masked_max(sigma, ids > 0))
            per_frame["energy_std_per_atom"].append(float(np.std(batch_energies[:, column] / count)))
            per_frame["energy_mean"].append(float(batch_energies[:, column].mean()))
            n_atoms.append(count)
            forces_mean.append(frame_forces.mean(axis=0))
            sigma_atoms.append(sigma)
            groups.append(ids)
    if not n_atoms:
        raise InputError("frames: no frames to evaluate")
    result = {name: np.asarray(values) for name, values in per_frame.items()}
    result["n_atoms"] = np.asarray(n_atoms, dtype=int)
    result["atom_offsets"] = np.concatenate([[0], np.cumsum(n_atoms)]).astype(int)
    result["energies"] = np.concatenate(energies, axis=1)
    result["forces_mean"] = np.concatenate(forces_mean, axis=0)
    result["sigma_atom"] = np.concatenate(sigma_atoms)
    result["guest_id"] = np.concatenate(groups)
    if compute_stress:
        result["stress_mean"] = np.concatenate(stress_mean, axis=0)
    return result


def write_outputs(result: dict[str, np.ndarray], frames_path: str | Path | None, work_dir: Path) -> None:
    """Write ``deviation.npz``, ``deviation.json`` and, with ``frames_path``, ``deviation.extxyz``."""
    np.savez_compressed(work_dir / "deviation.npz", **result)
    summary = {
        "units": {"sigma": "eV/Angstrom", "energy_std_per_atom": "eV/atom", "energy": "eV"},
        "n_frames": len(result["sigma_max"]),
        "n_models": int(result["energies"].shape[0]),
        "frames": {name: np.asarray(result[name], dtype=float) for name in FRAME_ARRAYS},
        "sigma_max_mean": float(np.mean(result["sigma_max"])),
        "sigma_max_max": float(np.max(result["sigma_max"])),
    }
    if "stress_mean" in result:
        summary["units"]["stress_mean"] = "eV/Angstrom^3, Voigt xx yy zz yz xz xy, ASE sign"
    (work_dir / "deviation.json").write_text(dumps(summary))
    if frames_path is not None:
        offsets = result["atom_offsets"]

        def annotated() -> Iterator[Atoms]:
            for index, atoms in enumerate(iter_frames(frames_path)):
                lo, hi = offsets[index], offsets[index + 1]
                for name in FRAME_ARRAYS:
                    atoms.info[name] = float(result[name][index])
                if "stress_mean" in result:
                    atoms.info["stress_mean"] = result["stress_mean"][index]
                atoms.arrays["forces_mean"] = result["forces_mean"][lo:hi]
                atoms.arrays["sigma_atom"] = result["sigma_atom"][lo:hi]
                yield atoms

        write_frames(annotated(), work_dir / "deviation.extxyz")


def run(config: dict[str, Any], work_dir: str | Path = ".") -> dict[str, np.ndarray]:
    """Run the engine on an input mapping (see module docstring); paths relative to ``work_dir``."""
    known = set(DEVIATION_DEFAULTS) | {"models", "frames"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise InputError(f"unknown deviation input keys {unknown}; valid: {sorted(known)}")
    for key in ("models", "frames"):
        if key not in config:
            raise InputError(f"the deviation input needs `{key}`")
    work_dir = Path(work_dir)
    full = {**DEVIATION_DEFAULTS, **config}
    models = [work_dir / path for path in full["models"]]
    frames_path = work_dir / full["frames"]
    start = time.perf_counter()
    result = compute_deviation(
        models,
        frames_path,
        batch_size=full["batch_size"],
        dtype=full["dtype"],
        device=full["device"],
        head=full["head"],
        compute_stress=bool(full["compute_stress"]),
    )
    elapsed = time.perf_counter() - start
    write_outputs(result, frames_path if full["write_extxyz"] else None, work_dir)
    print(f"mofmlp-deviation: {len(result['sigma_max'])} frames, {len(models)} models, {elapsed:.2f} s")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry ``mofmlp-deviation INPUT``."""
    parser = argparse.ArgumentParser(prog="mofmlp-deviation", description=__doc__.splitlines()[0])
    parser.add_argument("input", help="JSON/YAML input file (see module docs)")
    args = parser.parse_args(argv)
    threads_from_environment()
    try:
        run(read_input(args.input), ".")
    except InputError as error:
        print(f"mofmlp-deviation: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
