"""Figures of the dynamics property work chains, each returned as a :class:`~aiida_mofmlp.tools.plots.Plot`.

* :func:`plot_diffusion`: MSD per temperature with the fitted window, and ln D against 1000/T with the
  Arrhenius line (DiffusionWorkChain);
* :func:`plot_thermal_expansion`: lattice parameters and volume against temperature with errors, and the
  vibrational DOS (ThermalExpansionWorkChain);
* :func:`plot_melt_quench`: the integrity timeline (temperature, broken linker bonds, mean metal
  coordination per frame) (MeltQuenchWorkChain).

Each takes the finished work chain node (or its outputs as a mapping) and an optional image path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aiida_mofmlp.tools.plots import Plot, _pyplot, _save

__all__ = ["plot_diffusion", "plot_melt_quench", "plot_thermal_expansion"]


def _outputs(source):
    return source.outputs if hasattr(source, "outputs") else source


def _optional(outputs, name: str):
    """Output ``name`` or None (a node's outputs manager has no ``get``)."""
    try:
        return outputs[name]
    except KeyError:
        return None


def plot_diffusion(source, path: str | Path | None = None, title: str | None = None) -> Plot:
    """MSD curves (Angstrom^2 vs ps) and the Arrhenius plot of a DiffusionWorkChain."""
    outputs = _outputs(source)
    diffusion, curves = outputs["diffusion"], outputs["curves"]
    data = {"D": {}, "D_error": {}, "msd": {}}
    for key in diffusion:
        result = diffusion[key]
        temperature = float(result["temperature"])
        data["D"][temperature] = (
            float("nan") if result["D"] is None else float(result["D"])
        )  # no linear regime
        data["D_error"][temperature] = float("nan") if result["D_error"] is None else float(result["D_error"])
        data["msd"][temperature] = {
            "lag_ps": curves[key].get_array("lag_ps"),
            "msd": curves[key].get_array("msd"),
            "fit": (result["fit_start_ps"], result["fit_stop_ps"]),
        }
    arrhenius = _optional(outputs, "arrhenius")
    arrhenius = arrhenius.get_dict() if arrhenius is not None else None
    data["arrhenius"] = arrhenius
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    for temperature, curve in sorted(data["msd"].items()):
        line = left.plot(curve["lag_ps"], curve["msd"], label=f"{temperature:g} K")[0]
        left.axvspan(*curve["fit"], color=line.get_color(), alpha=0.1)
    left.set_xlabel("lag (ps)")
    left.set_ylabel("guest MSD (Å$^2$)")
    left.legend(fontsize=8)
    temperatures = np.array(sorted(data["D"]))
    values = np.array([data["D"][t] for t in temperatures])
    errors = np.array([data["D_error"][t] for t in temperatures])
    positive = np.isfinite(values) & (values > 0)
    right.errorbar(1000.0 / temperatures[positive], values[positive], yerr=errors[positive], fmt="o")
    if arrhenius is not None:
        inverse = np.linspace(1.0 / temperatures.max(), 1.0 / temperatures.min(), 50)
        from aiida_mofmlp.engines.analysis.diffusion import KB_EV

        right.plot(
            1000 * inverse,
            arrhenius["prefactor"] * np.exp(-arrhenius["Ea_eV"] * inverse / KB_EV),
            label=f"Ea = {arrhenius['Ea_kJ_per_mol']:.2f} ± {arrhenius['Ea_error_kJ_per_mol']:.2f} kJ/mol",
        )
        right.legend(fontsize=8)
    right.set_yscale("log")
    right.set_xlabel("1000 / T (1/K)")
    right.set_ylabel("D (Å$^2$/ps)")
    if title:
        fig.suptitle(title)
    return Plot("diffusion", data, _save(fig, path))


def plot_thermal_expansion(source, path: str | Path | None = None, title: str | None = None) -> Plot:
    """Lattice parameters (Angstrom) and volume against T, and the VDOS, of a ThermalExpansionWorkChain."""
    outputs = _outputs(source)
    lattice = outputs["lattice"]
    data = {name: lattice.get_array(name) for name in lattice.get_arraynames()}
    vdos = _optional(outputs, "vdos")
    if vdos is not None:
        data["frequency_thz"] = vdos.get_array("frequency_thz")
        data["dos"] = vdos.get_array("dos")
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3 if vdos is not None else 2, figsize=(12 if vdos is not None else 8, 3.6))
    t = data["temperature"]
    for name in ("a", "b", "c"):
        axes[0].errorbar(t, data[name], yerr=data[f"{name}_error"], fmt="o-", label=name)
    axes[0].set_xlabel("T (K)")
    axes[0].set_ylabel("lattice parameter (Å)")
    axes[0].legend(fontsize=8)
    axes[1].errorbar(t, data["volume"], yerr=data["volume_error"], fmt="o-")
    axes[1].set_xlabel("T (K)")
    axes[1].set_ylabel("volume (Å$^3$)")
    if vdos is not None:
        axes[2].plot(data["frequency_thz"], data["dos"])
        axes[2].set_xlabel("frequency (THz)")
        axes[2].set_ylabel("VDOS (states/THz)")
    if title:
        fig.suptitle(title)
    return Plot("thermal_expansion", data, _save(fig, path))


def plot_melt_quench(source, path: str | Path | None = None, title: str | None = None) -> Plot:
    """Integrity timeline of a MeltQuenchWorkChain: T, broken linker bonds and metal coordination."""
    outputs = _outputs(source)
    timeline = outputs["timeline"]
    data = {name: timeline.get_array(name) for name in timeline.get_arraynames()}
    plt = _pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(7, 6.5), sharex=True)
    axes[0].plot(data["time_ps"], data["temperature"])
    axes[0].set_ylabel("T (K)")
    axes[1].plot(data["time_ps"], data["n_broken"], drawstyle="steps-mid", color="tab:red")
    axes[1].set_ylabel("broken linker bonds")
    axes[2].plot(data["time_ps"], data["coordination_mean"], label="mean")
    axes[2].plot(data["time_ps"], data["coordination_min"], label="min", alpha=0.6)
    axes[2].set_ylabel("metal coordination")
    axes[2].set_xlabel("time (ps)")
    axes[2].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return Plot("melt_quench", data, _save(fig, path))
