"""Figure of an adsorption run: isotherms of both methods with error bars, and the heats of adsorption.

:func:`adsorption_data` turns the ``isotherm`` and ``heat_of_adsorption`` outputs of
:class:`~aiida_mofmlp.workflows.properties.adsorption.AdsorptionWorkChain` (nodes or dicts) into the numbers
drawn; :func:`plot_adsorption` draws them (left: loading in mol/kg against pressure in bar, MLP MD-GCMC and
RASPA; right: heat of adsorption in kJ/mol, MLP MD per loading, MLP Widom, RASPA per pressure) and returns a
:class:`~aiida_mofmlp.tools.plots.Plot`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from aiida_mofmlp.tools.plots import Plot, _pyplot, _save

__all__ = ["adsorption_data", "plot_adsorption"]


def _as_dict(value) -> dict:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    return value.get_dict()


def _array(values) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in (values or [])], dtype=float)


def adsorption_data(source, heat=None) -> dict[str, Any]:
    """Numbers of the figure from a finished run (``source`` a WorkflowNode) or ``isotherm`` + ``heat``."""
    if hasattr(source, "outputs") and "isotherm" in source.outputs:
        isotherm = source.outputs.isotherm.get_dict()
        heat = source.outputs.heat_of_adsorption.get_dict() if "heat_of_adsorption" in source.outputs else {}
    else:
        isotherm, heat = _as_dict(source), _as_dict(heat)
    mlp = isotherm.get("mlp", {})
    raspa = isotherm.get("raspa", {})
    data = {
        "mlp_pressure": _array(isotherm.get("pressure")),
        "mlp_loading": _array(mlp.get("mol_per_kg")),
        "mlp_loading_error": _array(mlp.get("mol_per_kg_error")),
        "raspa_pressure": _array(raspa.get("pressure")),
        "raspa_loading": _array(raspa.get("mol_per_kg")),
        "raspa_loading_error": _array(raspa.get("mol_per_kg_error")),
        "md_loadings": _array([row["n_guests"] for row in heat.get("mlp_md", [])]),
        "md_heat": _array([row["value"] for row in heat.get("mlp_md", [])]),
        "md_heat_error": _array([row["error"] for row in heat.get("mlp_md", [])]),
        "units": {"pressure": "bar", "loading": "mol/kg", "heat": "kJ/mol"},
    }
    widom = heat.get("mlp_widom")
    if widom:
        data["widom_heat"] = float(widom["value"])
        data["widom_heat_error"] = float(widom["error"]) if widom.get("error") is not None else np.nan
    raspa_heat = heat.get("raspa")
    if raspa_heat:
        data["raspa_heat_pressure"] = _array(raspa_heat.get("pressure"))
        data["raspa_heat"] = _array(raspa_heat.get("value"))
        data["raspa_heat_error"] = _array(raspa_heat.get("error"))
    return data


def plot_adsorption(source, path: str | Path | None = None, heat=None, title: str | None = None) -> Plot:
    """Isotherms (MLP and RASPA, with error bars) and heats of adsorption side by side."""
    data = adsorption_data(source, heat)
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    if data["mlp_pressure"].size:
        left.errorbar(
            data["mlp_pressure"],
            data["mlp_loading"],
            yerr=data["mlp_loading_error"],
            fmt="o-",
            capsize=3,
            label="MLP MD-GCMC (flexible)",
        )
    if data["raspa_pressure"].size:
        left.errorbar(
            data["raspa_pressure"],
            data["raspa_loading"],
            yerr=data["raspa_loading_error"],
            fmt="s--",
            capsize=3,
            label="RASPA GCMC (rigid)",
        )
    left.set_xscale("log")
    left.set_xlabel("pressure (bar)")
    left.set_ylabel("loading (mol/kg)")
    left.legend()
    labels, values, errors = [], [], []
    for n, value, error in zip(data["md_loadings"], data["md_heat"], data["md_heat_error"], strict=True):
        labels.append(f"MLP MD\nN={int(n)}")
        values.append(value)
        errors.append(error)
    if "widom_heat" in data:
        labels.append("MLP Widom")
        values.append(data["widom_heat"])
        errors.append(data["widom_heat_error"])
    for pressure, value, error in zip(
        data.get("raspa_heat_pressure", []),
        data.get("raspa_heat", []),
        data.get("raspa_heat_error", []),
        strict=True,
    ):
        labels.append(f"RASPA\n{pressure:g} bar")
        values.append(value)
        errors.append(error)
    if labels:
        right.bar(range(len(labels)), values, yerr=errors, capsize=3, color="tab:orange")
        right.set_xticks(range(len(labels)), labels, fontsize=8)
    right.axhline(0.0, color="k", lw=0.5)
    right.set_ylabel("heat of adsorption (kJ/mol)")
    if title:
        fig.suptitle(title)
    written = _save(fig, path)
    return Plot(name="adsorption", data=data, path=written)
