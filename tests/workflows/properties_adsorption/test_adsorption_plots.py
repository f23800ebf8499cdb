"""The adsorption figure draws what the outputs hold (no AiiDA profile needed)."""

from __future__ import annotations

import numpy as np

from aiida_mofmlp.tools.plots_adsorption import adsorption_data, plot_adsorption

ISOTHERM = {
    "pressure": [0.1, 1.0],
    "mlp": {"mol_per_kg": [0.5, 2.0], "mol_per_kg_error": [0.1, 0.2]},
    "raspa": {"pressure": [0.1, 1.0], "mol_per_kg": [0.4, 2.5], "mol_per_kg_error": [0.05, None]},
}
HEAT = {
    "mlp_md": [{"n_guests": 2, "value": -30.0, "error": 2.0}],
    "mlp_widom": {"value": -28.0, "error": 1.0},
    "raspa": {"pressure": [0.1, 1.0], "value": [-25.0, -24.0], "error": [0.5, 0.6]},
}


def test_figure_data_and_file(tmp_path):
    data = adsorption_data(ISOTHERM, HEAT)
    assert np.allclose(data["mlp_loading"], [0.5, 2.0])
    assert np.isnan(data["raspa_loading_error"][1])  # a missing error is drawn without a bar, not as 0
    assert data["widom_heat"] == -28.0 and list(data["md_heat"]) == [-30.0]
    plot = plot_adsorption(ISOTHERM, tmp_path / "adsorption.png", heat=HEAT, title="CO2 in DMOF-1")
    assert plot.path.is_file() and plot.path.stat().st_size > 1000
    assert plot.to_json()["data"]["raspa_heat"] == [-25.0, -24.0]
