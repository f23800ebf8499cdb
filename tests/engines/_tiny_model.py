"""A tiny random MACE model for tests (built locally: no downloads).

Kept separate from ``engines.foundation.make_small_model`` so that the LAMMPS tests stay deterministic;
the model has random weights, atomic reference energies and a ZBL pair repulsion.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def build_tiny_model(
    species: list[str],
    path: str | Path,
    r_max: float = 4.0,
    num_channels: int = 8,
    seed: int = 0,
    scale: float = 0.1,
) -> Path:
    """Write a small random ``ScaleShiftMACE`` for ``species`` to ``path`` and return the path."""
    import mace.modules  # noqa: F401  (import mace before e3nn, see FINDINGS)
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
    torch.save(model, str(path))
    return Path(path)
