"""LammpsMdCalculation / LammpsMdParser / LammpsMdBaseWorkChain running the real ``mofmlp-md`` on MIL-47."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.io import read

from aiida_mofmlp.engines.mace.toy import build_tiny_model

pytestmark = pytest.mark.integration

#: a thermostat ramp to 3000 K passes the 450 K bound whatever the time step: every run blows up
RUNAWAY = {
    "segments": [{"steps": 40, "temperature": [300, 3000]}],
    "thermostat_damping_fs": 5.0,
    "dump_interval": 10,
    "thermo_interval": 10,
    "safety": {"check_interval": 5, "max_temperature": 450},
}


@pytest.fixture
def md_inputs(aiida_profile, require_code, raspa_share_dir, tmp_path):
    from aiida_mofmlp.data.mace_model import MaceModelData

    path = build_tiny_model(["H", "C", "O", "V"], tmp_path / "tiny.model")
    atoms = read(raspa_share_dir / "structures" / "cif" / "MIL-47.cif")
    return {
        "code": require_code("md"),
        "structure": orm.StructureData(ase=atoms),
        "model": MaceModelData.from_file(path),
    }


def test_calcjob_nvt_outputs(md_inputs):
    from aiida_mofmlp.calculations.lammps_md import LammpsMdCalculation

    parameters = {"steps": 20, "dump_interval": 10, "thermo_interval": 5}
    results, node = run_get_node(LammpsMdCalculation, parameters=orm.Dict(parameters), **md_inputs)
    assert node.is_finished_ok, node.exit_message
    assert results["results"]["status"] == "completed"
    assert len(results["trajectory"]) == 3
    frame = results["trajectory"].get_frame(2)
    assert frame.info["step"] == 20 and "MACE_energy" in frame.info and "MACE_forces" in frame.arrays
    assert list(results["thermo"].get_array("step")) == [0, 5, 10, 15, 20]
    assert results["thermo"].base.attributes.get("units")["pressure"] == "bar"


def test_calcjob_rejects_inconsistent_parameters(md_inputs):
    from aiida_mofmlp.calculations.lammps_md import LammpsMdCalculation

    with pytest.raises(ValueError, match="gcmc is set but no `guest`"):
        run_get_node(
            LammpsMdCalculation, parameters=orm.Dict({"gcmc": {"pressures_bar": [1.0]}}), **md_inputs
        )


def test_workchain_restarts_with_smaller_timestep(md_inputs):
    from aiida_mofmlp.workflows.lammps.base import LammpsMdBaseWorkChain

    builder = LammpsMdBaseWorkChain.get_builder_from_protocol(
        md_inputs["code"],
        md_inputs["structure"],
        md_inputs["model"],
        protocol="fast",
        overrides={"md": {"parameters": RUNAWAY}},
    )
    builder.min_timestep_fs = orm.Float(0.2)
    _, node = run_get_node(builder)
    assert node.exit_status == LammpsMdBaseWorkChain.exit_codes.ERROR_MD_UNSTABLE.status
    calcs = sorted(node.called, key=lambda n: n.ctime)
    assert [c.exit_status for c in calcs] == [403, 403]
    timesteps = [c.inputs.parameters["timestep_fs"] for c in calcs]
    assert timesteps == [0.5, 0.25]
    assert calcs[1].inputs.parameters["segments"][0]["steps"] == 80  # same simulated time
    assert calcs[0].outputs.trajectory.count >= 1  # frames so far are kept on a blow-up


def test_workchain_keeps_frames_on_blowup_when_asked(md_inputs):
    from aiida_mofmlp.workflows.lammps.base import LammpsMdBaseWorkChain

    # the same runaway as above: with keep_frames_on_blowup there is no restart
    builder = LammpsMdBaseWorkChain.get_builder_from_protocol(
        md_inputs["code"],
        md_inputs["structure"],
        md_inputs["model"],
        protocol="fast",
        overrides={"md": {"parameters": RUNAWAY}},
    )
    builder.keep_frames_on_blowup = orm.Bool(True)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    assert len(node.called) == 1 and node.called[0].exit_status == 403
    assert results["results"]["status"] == "temperature_runaway"  # the stop is named in the outputs
    assert results["trajectory"].count >= 1


def test_calcjob_md_gcmc_with_builtin_guest(md_inputs):
    from aiida_mofmlp.calculations.lammps_md import LammpsMdCalculation
    from aiida_mofmlp.data.guest import GuestMoleculeData
    from aiida_mofmlp.data.structure_set import StructureSetData

    structure = StructureSetData.from_frames([md_inputs["structure"].get_ase()])
    gcmc = {"pressures_bar": [1.0], "equilibration_steps": 5, "production_steps": 20, "initial_loading": 1}
    parameters = {"temperature": 300.0, "dump_interval": 5, "thermo_interval": 5, "gcmc": gcmc}
    results, node = run_get_node(
        LammpsMdCalculation,
        code=md_inputs["code"],
        model=md_inputs["model"],
        structure=structure,
        guest=GuestMoleculeData.builtin("CO2"),
        parameters=orm.Dict(parameters),
    )
    assert node.is_finished_ok, node.exit_message
    pressures = results["results"]["gcmc"]["pressures"]
    assert len(pressures) == 1 and pressures[0]["n_samples"] == 4
    assert pressures[0]["loading_molecules_per_cell"] >= 1.0  # seeded guest; the last one is never deleted
    assert results["results"]["gcmc"]["guest"] == "CO2"
    frames = results["trajectory"].get_frames()
    assert all(frame.info["pressure"] == 1.0 for frame in frames[1:])
    assert all(len(frame) == 72 + 3 * frame.info["loading"] for frame in frames)
