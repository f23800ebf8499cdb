"""ThermalExpansionWorkChain end to end: real LAMMPS + a tiny MACE model, NPT at two temperatures + NVE.

Tiny random models give unphysical lattices; the test checks the machinery: lattice parameters with errors
per temperature, expansion coefficients with units, the VDOS normalised to 3N, the stress warning.
"""

from __future__ import annotations

import numpy as np
import pytest
from aiida.engine import run_get_node
from scipy.integrate import trapezoid

from aiida_mofmlp.engines.mace.toy import TOY_SPECIES, build_tiny_model, toy_frame

pytestmark = pytest.mark.integration

TINY = {
    "temperatures": [200.0, 400.0],
    "vdos": {"temperature": 300.0, "steps": 64, "dump_interval": 2},
    "md": {
        "md": {
            "parameters": {
                "steps": 100,
                "dump_interval": 10,
                "thermo_interval": 10,
                "barostat_damping_fs": 50.0,
                "thermostat_damping_fs": 20.0,
            }
        }
    },
}


def test_thermal_expansion_lattice_alpha_and_vdos(aiida_profile, require_code, tmp_path):
    from aiida import orm

    from aiida_mofmlp.data.mace_model import MaceModelData
    from aiida_mofmlp.tools.plots_dynamics import plot_thermal_expansion
    from aiida_mofmlp.workflows.properties.thermal_expansion import ThermalExpansionWorkChain

    model = MaceModelData.from_file(build_tiny_model(list(TOY_SPECIES), tmp_path / "m.model"))
    framework = orm.StructureData(ase=toy_frame(n_guests=0, rattle=0.0))
    with pytest.warns(UserWarning, match="stress"):
        builder = ThermalExpansionWorkChain.get_builder_from_protocol(
            framework, [model], {"md": require_code("md")}, protocol="fast", overrides=TINY
        )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    lattice = results["lattice"]
    assert lattice.get_array("temperature").tolist() == [200.0, 400.0]
    assert np.all(lattice.get_array("a") > 0) and np.all(np.isfinite(lattice.get_array("volume_error")))
    assert lattice.base.attributes.get("units")["volume"] == "Angstrom^3"
    expansion = results["expansion"]
    assert np.isfinite(expansion["expansion"]["volume"]["alpha"])
    assert expansion["expansion"]["volume"]["units"]["alpha"] == "1/K"
    assert "stress" in expansion["warnings"][0]  # the NPT-without-stress warning travels with the result
    # barostat aniso keeps the cubic cell's angles at 90 degrees
    assert np.allclose(lattice.get_array("alpha"), 90.0, atol=1e-6)
    vdos = results["vdos"]
    n_atoms = len(framework.sites)
    assert trapezoid(vdos.get_array("dos"), vdos.get_array("frequency_thz")) == pytest.approx(3 * n_atoms)
    resolution = vdos.base.attributes.get("resolution_thz")
    assert vdos.base.attributes.get("nyquist_thz") == pytest.approx(500.0, abs=resolution)  # 1 fs sampling
    assert results["trust"]["assessed"] is False  # one model: no ensemble to ask
    plot = plot_thermal_expansion(node, tmp_path / "expansion.png")
    assert plot.path.is_file()
