"""MeltQuenchWorkChain end to end: real LAMMPS + a tiny MACE model on the toy Zn framework.

A random tiny model has no chemical bonding: heated, its linkers fall apart, which the per-frame integrity
check must catch (named exit code, offending frames in ``untrusted_frames``); kept cold, nothing breaks
and nothing melts, which the melting check must refuse to call a glass.
"""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_mofmlp.engines.mace.toy import TOY_SPECIES, build_tiny_model, toy_frame

pytestmark = pytest.mark.integration

MD = {
    "md": {
        "md": {
            "parameters": {
                "dump_interval": 5,
                "thermo_interval": 5,
                "thermostat_damping_fs": 10.0,
                "safety": {"check_interval": 5, "min_distance": 0.3},
            }
        }
    }
}
#: 1200 K in 10 fs: the bond-free tiny model loses its hydrogens at 1500 K
HOT = {
    "start_temperature": 300.0,
    "melt_temperature": 1500.0,
    "final_temperature": 300.0,
    "heating_rate": 120000.0,
    "plateau_ps": 0.02,
    "quench_rate": 120000.0,
    "equilibration_ps": 0.01,
}
COLD = {
    **HOT,
    "start_temperature": 5.0,
    "melt_temperature": 20.0,
    "final_temperature": 5.0,
    "heating_rate": 1500.0,
    "quench_rate": 1500.0,
}


@pytest.fixture
def inputs(aiida_profile, require_code, tmp_path):
    from aiida_mofmlp.data.mace_model import MaceModelData

    model = MaceModelData.from_file(build_tiny_model(list(TOY_SPECIES), tmp_path / "m.model"))
    crystal = orm.StructureData(ase=toy_frame(n_guests=0, rattle=0.0))
    return require_code("md"), crystal, [model]


def _builder(inputs, program, checks=None):
    from aiida_mofmlp.workflows.properties.melt_quench import MeltQuenchWorkChain

    code, crystal, models = inputs
    overrides = {**MD, "program": program, "checks": checks or {"probe_radius": 1.2, "samples_per_atom": 200}}
    return MeltQuenchWorkChain.get_builder_from_protocol(
        crystal, models, {"md": code}, protocol="fast", overrides=overrides
    )


def test_hot_run_breaks_linkers_and_names_the_frames(inputs, tmp_path):
    from aiida_mofmlp.tools.plots_dynamics import plot_melt_quench
    from aiida_mofmlp.workflows.properties.melt_quench import MeltQuenchWorkChain

    results, node = run_get_node(_builder(inputs, HOT))
    assert node.exit_status == MeltQuenchWorkChain.exit_codes.ERROR_LINKERS_BROKEN.status, node.exit_message
    integrity = results["integrity"]
    assert not integrity["intact"] and integrity["max_broken_bonds"] >= 1
    assert results["untrusted_frames"].count == len(integrity["broken_frames"])
    assert results["timeline"].get_array("n_broken")[0] == 0  # the crystal itself is intact
    # the smaller time step above 1500 K: the plateau ran at 0.25 fs
    md = next(c for c in node.called if c.process_label == "LammpsMdBaseWorkChain")
    segments = md.inputs.md.parameters["segments"]
    assert [s["timestep_fs"] for s in segments] == [0.5, 0.25, 0.5, 0.5]
    elapsed_ps = sum(s["steps"] * s["timestep_fs"] for s in segments) * 1e-3
    assert results["timeline"].get_array("time_ps")[-1] == pytest.approx(elapsed_ps)  # 10 + 20 + 10 + 10 fs
    plot = plot_melt_quench(node, tmp_path / "timeline.png")
    assert plot.path.is_file() and plot.data["n_broken"].max() >= 1


def test_cold_run_stays_intact_and_is_not_called_melted(inputs):
    from aiida_mofmlp.workflows.properties.melt_quench import MeltQuenchWorkChain

    results, node = run_get_node(_builder(inputs, COLD))
    assert node.exit_status == MeltQuenchWorkChain.exit_codes.ERROR_NOT_MELTED.status, node.exit_message
    integrity = results["integrity"]
    assert integrity["intact"] and integrity["broken_frames"] == []
    assert integrity["melting"]["melted"] is False and integrity["melting"]["ratio"] < 0.3
    assert integrity["reference_coordination_mean"] == integrity["structure"]["crystal"]["coordination_mean"]
    assert results["glass"].count == 1
    for phase in ("crystal", "glass"):
        assert results["pores"][phase]["pore_volume"] >= 0 and results["pores"][phase]["units"]
    assert np.all(results["timeline"].get_array("temperature") < 200)
