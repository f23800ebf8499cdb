"""Figures of phonon runs: DOS, band structure, Cv(T), the E(V) fit and alpha(T).

Each ``plot_*`` takes the ArrayData output of a :class:`~aiida_mofmlp.workflows.properties.phonons.
PhononsWorkChain` (``phonons``, ``eos`` or ``qha``) or a plain dict of its arrays, and returns a
:class:`~aiida_mofmlp.tools.plots.Plot` (the numbers drawn, and the image when ``path`` is given).
:func:`plot_phonons_run` draws all that a finished run has.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from aiida_mofmlp.tools.plots import Plot, _pyplot, _save

__all__ = [
    "plot_bands",
    "plot_dos",
    "plot_eos",
    "plot_heat_capacity",
    "plot_phonons_run",
    "plot_thermal_expansion",
]


def _arrays(source) -> dict[str, np.ndarray]:
    if isinstance(source, Mapping):
        return {key: np.asarray(value) for key, value in source.items()}
    return {name: source.get_array(name) for name in source.get_arraynames()}


def _need(arrays: Mapping[str, Any], *keys: str) -> None:
    missing = [key for key in keys if key not in arrays]
    if missing:
        raise ValueError(f"the arrays lack {missing}; have {sorted(arrays)}")


def plot_dos(source, path: str | Path | None = None, title: str | None = None) -> Plot:
    """Total phonon DOS (states/THz per cell) against frequency (THz)."""
    arrays = _arrays(source)
    _need(arrays, "dos_frequency", "dos")
    data = {"frequency_thz": arrays["dos_frequency"], "dos": arrays["dos"]}
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(data["frequency_thz"], data["dos"], color="k")
    ax.set(xlabel="frequency (THz)", ylabel="DOS (states/THz per cell)", title=title or "Phonon DOS")
    return Plot("dos", data, _save(fig, path))


def plot_bands(source, path: str | Path | None = None, title: str | None = None) -> Plot:
    """Phonon frequencies (THz) along the standard path with its special points."""
    arrays = _arrays(source)
    _need(arrays, "band_distance", "band_frequencies", "band_label_distance", "band_labels")
    labels = [r"$\Gamma$" if str(label) == "G" else str(label) for label in arrays["band_labels"]]
    data = {
        "distance": arrays["band_distance"],
        "frequencies_thz": arrays["band_frequencies"],
        "label_distance": arrays["band_label_distance"],
        "labels": labels,
    }
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(data["distance"], data["frequencies_thz"], color="tab:blue", lw=1)
    for x in data["label_distance"]:
        ax.axvline(x, color="0.7", lw=0.5)
    ax.axhline(0.0, color="0.5", lw=0.5)
    ax.set_xticks(data["label_distance"], labels)
    ax.set(xlim=(data["distance"][0], data["distance"][-1]), ylabel="frequency (THz)")
    ax.set_title(title or "Phonon bands")
    return Plot("bands", data, _save(fig, path))


def plot_heat_capacity(
    source, n_atoms: int | None = None, path: str | Path | None = None, title: str | None = None
) -> Plot:
    """Cv(T) in k_B per cell, with the classical limit 3 N k_B when ``n_atoms`` is given."""
    arrays = _arrays(source)
    _need(arrays, "thermal_temperature", "thermal_heat_capacity_kb")
    data = {
        "temperature": arrays["thermal_temperature"],
        "heat_capacity_kb": arrays["thermal_heat_capacity_kb"],
    }
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(data["temperature"], data["heat_capacity_kb"], color="tab:red", label="harmonic")
    if n_atoms:
        data["dulong_petit_kb"] = 3.0 * n_atoms
        ax.axhline(3.0 * n_atoms, color="0.5", ls="--", label="3N k_B")
        ax.legend()
    ax.set(xlabel="T (K)", ylabel="Cv (k_B per cell)", title=title or "Heat capacity")
    return Plot("heat_capacity", data, _save(fig, path))


def plot_eos(
    source, bulk_modulus_gpa: float | None = None, path: str | Path | None = None, title: str | None = None
) -> Plot:
    """E(V) points and the Birch-Murnaghan curve, the bulk modulus in the legend when given."""
    arrays = _arrays(source)
    _need(arrays, "eos_volumes", "eos_energies")
    data = {"volumes": arrays["eos_volumes"], "energies": arrays["eos_energies"]}
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(data["volumes"], data["energies"], "o", color="k", label="MACE")
    if "eos_fit_volumes" in arrays:
        data.update({"fit_volumes": arrays["eos_fit_volumes"], "fit_energies": arrays["eos_fit_energies"]})
        label = "Birch-Murnaghan" + (f", B = {bulk_modulus_gpa:.1f} GPa" if bulk_modulus_gpa else "")
        ax.plot(data["fit_volumes"], data["fit_energies"], color="tab:blue", label=label)
    ax.legend()
    ax.set(xlabel="V (Å$^3$)", ylabel="E (eV)", title=title or "Equation of state")
    return Plot("eos", data, _save(fig, path))


def plot_thermal_expansion(source, path: str | Path | None = None, title: str | None = None) -> Plot:
    """Quasi-harmonic volumetric expansion alpha_V(T) (1/K, drawn in 1e-6/K)."""
    arrays = _arrays(source)
    _need(arrays, "qha_temperature", "qha_thermal_expansion")
    data = {"temperature": arrays["qha_temperature"], "thermal_expansion": arrays["qha_thermal_expansion"]}
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(data["temperature"], 1e6 * data["thermal_expansion"], color="tab:green")
    ax.axhline(0.0, color="0.5", lw=0.5)
    ax.set(xlabel="T (K)", ylabel=r"$\alpha_V$ (10$^{-6}$/K)", title=title or "Thermal expansion (QHA)")
    return Plot("thermal_expansion", data, _save(fig, path))


def plot_phonons_run(run, directory: str | Path, image_format: str = "png") -> dict[str, Plot]:
    """Every figure of a finished PhononsWorkChain or PhononsCalculation node, written into ``directory``."""
    directory = Path(directory)
    outputs = run.outputs
    results = outputs.results.get_dict() if "results" in outputs else {}
    plots: dict[str, Plot] = {}
    if "phonons" in outputs:
        arrays = _arrays(outputs.phonons)
        if "dos" in arrays:
            plots["dos"] = plot_dos(arrays, directory / f"dos.{image_format}")
        if "band_frequencies" in arrays:
            plots["bands"] = plot_bands(arrays, directory / f"bands.{image_format}")
        plots["heat_capacity"] = plot_heat_capacity(
            arrays, results.get("n_atoms"), directory / f"heat_capacity.{image_format}"
        )
    if "eos" in outputs:
        modulus = (results.get("eos") or {}).get("bulk_modulus_eos_gpa")
        plots["eos"] = plot_eos(outputs.eos, modulus, directory / f"eos.{image_format}")
    if "qha" in outputs:
        plots["thermal_expansion"] = plot_thermal_expansion(
            outputs.qha, directory / f"thermal_expansion.{image_format}"
        )
    return plots
