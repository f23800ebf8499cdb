"""The empty box in MD-GCMC: LAMMPS' ``fix gcmc`` never removes the last molecule, so a run samples the
loading conditional on N >= 1 and overestimates it at low pressure (an ideal gas of true mean 0.1 / 1 per
box reads 1.05 / 1.58: the mean of a Poisson distribution without its zero).

Detailed balance between the empty box and one molecule gives the missing weight exactly:
``P(1) / P(0) = beta f V <exp(-beta dU)>``, the Henry-regime loading of the box, which the Widom insertion of
the same model measures (``K_H f m``). With ``h1`` the fraction of sampled states holding one molecule,
``P(0) = h1 / (h1 + K_H f m)`` and the loading is ``(1 - P(0)) <N>_sampled``. For an ideal gas this returns
the Poisson mean exactly (``tests/engines/test_occupancy.py``). A run that visits N = 0 needs no correction.
"""

from __future__ import annotations

import math

import numpy as np

#: molecules per cell = K_H [mol/kg/Pa] * f [Pa] * cell mass [g/mol] * this (kg/g): N_A cancels
GRAMS_TO_KG = 1.0e-3


def henry_molecules_per_cell(
    henry_mol_per_kg_pa: float, fugacity_pa: float, cell_mass_g_per_mol: float
) -> float:
    """Loading of one cell in the Henry regime (molecules): ``K_H * f * m``, i.e. ``P(1)/P(0)``."""
    return float(henry_mol_per_kg_pa) * float(fugacity_pa) * float(cell_mass_g_per_mol) * GRAMS_TO_KG


def empty_box_correction(counts, henry_molecules: float | None) -> dict:
    """The weight of the never-visited empty box, and the factor turning the sampled mean into the loading.

    ``counts``: molecules per cell along the production run; ``henry_molecules``:
    :func:`henry_molecules_per_cell`. Returns ``applied``, ``p_empty``, ``factor`` (multiply the sampled mean
    and its error) and ``fraction_at_one``; no correction when the run visited N = 0, never held one
    molecule, or K_H is missing.
    """
    counts = np.rint(np.asarray(counts, dtype=float)).astype(int)
    fraction_at_one = float(np.mean(counts == 1)) if counts.size else 0.0
    none = {"applied": False, "p_empty": 0.0, "factor": 1.0, "fraction_at_one": fraction_at_one}
    usable = henry_molecules is not None and math.isfinite(henry_molecules) and henry_molecules > 0
    if not counts.size or (counts <= 0).any() or fraction_at_one == 0.0 or not usable:
        return none
    p_empty = fraction_at_one / (fraction_at_one + float(henry_molecules))
    return {"applied": True, "p_empty": p_empty, "factor": 1.0 - p_empty, "fraction_at_one": fraction_at_one}
