"""The MACE calculator of the phonon engine and the checks of what the model can give (no AiiDA imports)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from aiida_mofmlp.common.errors import InputError
from aiida_mofmlp.engines.mace.common import load_model, resolve_device


class ModelInfo:
    """A loaded MACE model's facts: cutoff (Angstrom), species, heads."""

    def __init__(self, model) -> None:
        self.r_max = float(model.r_max)
        self.species = [chemical_symbols[int(z)] for z in model.atomic_numbers.tolist()]
        self.heads = list(getattr(model, "heads", None) or ["Default"])


def mace_calculator(
    path: str | Path, device: str | None = "auto", dtype: str = "float64", head: str | None = None
):
    """An ASE ``MACECalculator`` of the model file at ``path`` and its :class:`ModelInfo`."""
    from mace.calculators import MACECalculator

    if dtype not in ("float64", "float32"):
        raise InputError(f"dtype {dtype!r} is not valid; valid: float64, float32")
    model = load_model(path)
    info = ModelInfo(model)
    if head is not None and head not in info.heads:
        raise InputError(f"head {head!r} is not in model {path}; valid heads: {info.heads}")
    kwargs = {"head": head} if head is not None else {}
    calculator = MACECalculator(models=model, device=resolve_device(device), default_dtype=dtype, **kwargs)
    return calculator, info


def check_species(atoms: Atoms, info: ModelInfo, label: str = "structure") -> None:
    """Raise when ``atoms`` holds elements the model does not know."""
    missing = sorted(set(atoms.get_chemical_symbols()) - set(info.species))
    if missing:
        raise InputError(
            f"{label} contains {missing}, which the model does not know; its species: {info.species}"
        )


def check_periodic(atoms: Atoms, label: str = "structure") -> None:
    """Raise unless ``atoms`` is periodic in three directions with a cell of non-zero volume."""
    if not np.all(atoms.pbc) or atoms.cell.rank < 3 or atoms.get_volume() <= 1e-6:
        raise InputError(
            f"{label} is not periodic in three dimensions (pbc={atoms.pbc.tolist()}, cell volume "
            f"{atoms.cell.volume:.3g} A^3); phonons, bulk modulus and expansion need a 3D crystal"
        )


def check_stress(atoms: Atoms, calculator) -> None:
    """Raise when the model gives no finite stress for ``atoms`` (a stress-based EOS needs one)."""
    try:
        atoms = atoms.copy()
        atoms.calc = calculator
        stress = atoms.get_stress()
    except Exception as error:  # the calculator may not implement stress at all
        raise InputError(f"eos.method needs stresses, but the model gives none: {error}") from error
    if stress is None or not np.all(np.isfinite(stress)):
        raise InputError(
            "eos.method needs stresses, but the model's stress is not finite; use method: energy"
        )
