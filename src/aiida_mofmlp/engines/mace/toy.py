"""Tiny labelled toy data and tiny random MACE models for tests, demos and benchmarks (offline, CPU, seconds).

:func:`build_tiny_model` writes a deterministic random MACE with a ZBL pair repulsion (the LAMMPS tests
and benchmarks drive MD with it).

A "toy MOF" is a small periodic cell with a framework fragment (Zn, O, C, H) and optionally CO2 guests
(``guest_id`` >= 1). Labels come from a reference MACE model (a random "teacher" built with
:func:`aiida_mofmlp.engines.mace.foundation.make_small_model`), so a student MACE model can learn them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from aiida_mofmlp.common.frames import GUEST_ID_KEY, set_labels
from aiida_mofmlp.engines.mace.safe_model import save_safe_model

TOY_SPECIES = ("H", "C", "O", "Zn")

_FRAMEWORK = [
    ("Zn", (1.0, 1.0, 1.0)),
    ("O", (2.9, 1.0, 1.0)),
    ("C", (4.1, 1.2, 1.1)),
    ("O", (4.6, 2.3, 1.0)),
    ("H", (4.7, 0.3, 1.2)),
    ("Zn", (1.1, 3.9, 3.8)),
    ("O", (1.2, 3.8, 1.9)),
    ("C", (3.0, 4.4, 4.6)),
    ("H", (3.1, 5.4, 4.9)),
    ("H", (3.6, 4.2, 3.7)),
]
_CO2 = [("C", (0.0, 0.0, 0.0)), ("O", (1.16, 0.0, 0.0)), ("O", (-1.16, 0.0, 0.0))]


def toy_frame(n_guests: int = 1, rattle: float = 0.08, seed: int = 0, cell: float = 6.5) -> Atoms:
    """One toy frame: the framework fragment plus ``n_guests`` CO2 guests, positions rattled."""
    rng = np.random.default_rng(seed)
    symbols = [s for s, _ in _FRAMEWORK]
    positions = [p for _, p in _FRAMEWORK]
    guest = [0] * len(_FRAMEWORK)
    anchors = [(4.5, 4.5, 2.0), (1.8, 5.6, 5.5), (5.5, 2.5, 5.0)]
    for k in range(n_guests):
        centre = np.asarray(anchors[k % len(anchors)])
        for symbol, offset in _CO2:
            symbols.append(symbol)
            positions.append(tuple(centre + np.asarray(offset)))
            guest.append(k + 1)
    positions = np.asarray(positions) + rng.normal(scale=rattle, size=(len(symbols), 3))
    atoms = Atoms(symbols=symbols, positions=positions, cell=[cell] * 3, pbc=True)
    atoms.arrays[GUEST_ID_KEY] = np.asarray(guest, dtype=int)
    return atoms


def toy_frames(n_frames: int, seed: int = 0, max_guests: int = 2, rattle: float = 0.08) -> list[Atoms]:
    """``n_frames`` toy frames with 0..max_guests guests, different rattles."""
    return [
        toy_frame(n_guests=i % (max_guests + 1), rattle=rattle, seed=seed * 100003 + i)
        for i in range(n_frames)
    ]


def label_with_model(frames: Sequence[Atoms], model_path: str | Path, stress: bool = False) -> list[Atoms]:
    """Attach REF_energy/REF_forces (and REF_stress) computed with a MACE model; returns the frames."""
    from aiida_mofmlp.engines.mace.common import mace_calculator

    calc = mace_calculator(model_path, device="cpu", default_dtype="float64")
    for atoms in frames:
        atoms.calc = calc
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        stress_value = atoms.get_stress() if stress else None
        atoms.calc = None
        set_labels(atoms, energy=energy, forces=forces, stress=stress_value)
    return frames


def build_tiny_model(
    species: list[str],
    path: str | Path,
    r_max: float = 4.0,
    num_channels: int = 8,
    seed: int = 0,
    scale: float = 0.1,
) -> Path:
    """Write a small random ``ScaleShiftMACE`` for ``species`` to ``path`` (safe form) and return the path."""
    import mace.modules  # noqa: F401  (import mace before e3nn: e3nn's torch.load fails otherwise)
    import torch
    from ase.data import atomic_numbers
    from e3nn import o3
    from mace import modules

    torch.manual_seed(seed)
    torch.set_default_dtype(torch.float64)
    numbers = sorted(atomic_numbers[s] for s in species)
    interaction = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    model = modules.ScaleShiftMACE(
        r_max=r_max,
        num_bessel=6,
        num_polynomial_cutoff=5,
        max_ell=2,
        interaction_cls=interaction,
        interaction_cls_first=interaction,
        num_interactions=2,
        num_elements=len(numbers),
        hidden_irreps=o3.Irreps(f"{num_channels}x0e+{num_channels}x1o"),
        MLP_irreps=o3.Irreps("8x0e"),
        gate=torch.nn.functional.silu,
        atomic_energies=np.array([-1.0 - 0.5 * z for z in range(len(numbers))]),
        avg_num_neighbors=10.0,
        atomic_numbers=numbers,
        correlation=2,
        pair_repulsion=True,
        atomic_inter_scale=scale,
        atomic_inter_shift=0.0,
    )
    model = model.to(torch.float64)
    save_safe_model(model, path)
    return Path(path)
