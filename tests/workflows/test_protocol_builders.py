"""get_builder_from_protocol of the MACE, LAMMPS and selection work chains: regression per protocol."""

from __future__ import annotations

import io

import numpy as np
import pytest
import yaml
from aiida import orm
from ase import Atoms

from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.lammps.base import LammpsMdBaseWorkChain
from aiida_mofmlp.workflows.mace.base import MaceTrainBaseWorkChain
from aiida_mofmlp.workflows.mace.deviation import DeviationBaseWorkChain
from aiida_mofmlp.workflows.mace.ensemble import EnsembleTrainingWorkChain
from aiida_mofmlp.workflows.selection.base import SelectionWorkChain

PROTOCOLS = ["fast", "balanced", "stringent"]


@pytest.fixture
def fake_inputs(aiida_localhost):
    """A code, two labelled frames, a model file standing for a MACE model, a structure."""
    frames = []
    for k in range(2):
        atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7 + 0.05 * k]], cell=[6, 6, 6], pbc=True)
        atoms.info["REF_energy"] = -1.0 - k
        atoms.arrays["REF_forces"] = np.zeros((2, 3))
        frames.append(atoms)
    return {
        "code": orm.InstalledCode(label="engine", computer=aiida_localhost, filepath_executable="/bin/true"),
        "frames": StructureSetData.from_frames(frames),
        "model": MaceModelData(io.BytesIO(b"not a model"), filename="foundation.model"),
        "structure": orm.StructureData(ase=frames[0]),
    }


def build(name: str, fake_inputs: dict, **kwargs):
    """The builder of work chain ``name`` from its protocol, with the fake inputs."""
    code, frames, model = fake_inputs["code"], fake_inputs["frames"], fake_inputs["model"]
    if name == "mace_train":
        return MaceTrainBaseWorkChain.get_builder_from_protocol(code, frames, model, **kwargs)
    if name == "ensemble":
        return EnsembleTrainingWorkChain.get_builder_from_protocol(code, frames, model, **kwargs)
    if name == "deviation":
        return DeviationBaseWorkChain.get_builder_from_protocol(code, frames, [model, model], **kwargs)
    if name == "lammps_md":
        return LammpsMdBaseWorkChain.get_builder_from_protocol(
            code, fake_inputs["structure"], model, **kwargs
        )
    if name == "selection":
        return SelectionWorkChain.get_builder_from_protocol(code, frames, **kwargs)
    raise ValueError(name)


WORK_CHAINS = ["mace_train", "ensemble", "deviation", "lammps_md", "selection"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", WORK_CHAINS)
def test_builder_from_protocol(fake_inputs, serialize_builder, data_regression, name, protocol):
    data_regression.check(serialize_builder(build(name, fake_inputs, protocol=protocol)))


@pytest.mark.parametrize("name", WORK_CHAINS)
def test_default_protocol_is_balanced(fake_inputs, serialize_builder, name):
    assert serialize_builder(build(name, fake_inputs)) == serialize_builder(
        build(name, fake_inputs, protocol="balanced")
    )


OVERRIDES = {
    "mace_train": {"max_iterations": 5, "lr_factor": 0.25, "train": {"parameters": {"lr": 0.002}}},
    "ensemble": {
        "ensemble_size": 3,
        "train": {"max_iterations": 2, "train": {"parameters": {"patience": 3}}},
    },
    "deviation": {"max_iterations": 4, "deviation": {"parameters": {"batch_size": 2}}},
    "lammps_md": {"min_timestep_fs": 0.2, "md": {"parameters": {"temperature": 500.0, "steps": 40}}},
    "selection": {"max_iterations": 2, "select": {"parameters": {"n_select": 4, "pca_components": None}}},
}


@pytest.mark.parametrize("name", WORK_CHAINS)
def test_overrides_as_dict_or_yaml_path(fake_inputs, serialize_builder, tmp_path, name):
    path = tmp_path / "overrides.yaml"
    path.write_text(yaml.safe_dump(OVERRIDES[name]))
    from_dict = serialize_builder(build(name, fake_inputs, protocol="fast", overrides=OVERRIDES[name]))
    assert from_dict == serialize_builder(build(name, fake_inputs, protocol="fast", overrides=path))
    assert from_dict != serialize_builder(build(name, fake_inputs, protocol="fast"))


def test_overrides_reach_the_inputs(fake_inputs):
    builder = build("mace_train", fake_inputs, protocol="fast", overrides=OVERRIDES["mace_train"])
    assert (builder.max_iterations.value, builder.lr_factor.value) == (5, 0.25)
    assert builder.train.parameters["lr"] == 0.002
    assert builder.train.parameters["max_num_epochs"] == 6  # the rest of the protocol stays
    builder = build("ensemble", fake_inputs, protocol="fast", overrides=OVERRIDES["ensemble"])
    assert builder.ensemble_size.value == 3
    assert builder.train.max_iterations.value == 2
    assert builder.train.train.parameters["patience"] == 3
    builder = build("lammps_md", fake_inputs, protocol="fast", overrides=OVERRIDES["lammps_md"])
    assert builder.min_timestep_fs.value == 0.2 and builder.timestep_factor.value == 0.5
    assert (builder.md.parameters["temperature"], builder.md.parameters["steps"]) == (500.0, 40)
    builder = build("selection", fake_inputs, protocol="fast", overrides=OVERRIDES["selection"])
    assert builder.select.parameters["pca_components"] is None


@pytest.mark.parametrize("name", WORK_CHAINS)
def test_options_are_merged_into_the_calcjob_options(fake_inputs, name):
    builder = build(
        name, fake_inputs, protocol="fast", options={"account": "mofs", "max_wallclock_seconds": 60}
    )
    namespace = {"mace_train": "train", "deviation": "deviation", "lammps_md": "md", "selection": "select"}
    calcjob = builder.train.train if name == "ensemble" else builder[namespace[name]]
    options = calcjob.metadata.options
    assert (options.account, options.max_wallclock_seconds) == ("mofs", 60)
    assert options.resources == {"num_machines": 1, "num_mpiprocs_per_machine": 1}


@pytest.mark.parametrize("name", ["mace_train", "ensemble"])
def test_training_mode_falls_back_to_naive_without_replay(fake_inputs, name):
    def parameters(builder):
        return (builder.train.train if name == "ensemble" else builder.train).parameters

    def asking(mode: str) -> dict:
        overrides = {"train": {"parameters": {"mode": mode}}}
        return {"train": overrides} if name == "ensemble" else overrides

    assert parameters(build(name, fake_inputs, protocol="fast"))["mode"] == "naive"
    replayed = build(name, fake_inputs, protocol="fast", replay_set=fake_inputs["frames"])
    assert parameters(replayed)["mode"] == "multihead"
    assert parameters(build(name, fake_inputs, protocol="fast", overrides=asking("naive")))["mode"] == "naive"


def test_training_mode_asked_for_is_kept(fake_inputs):
    """Overrides asking for multihead keep it without a replay set; input validation names the missing set."""
    asked = {"train": {"parameters": {"mode": "multihead"}}}
    builder = build("mace_train", fake_inputs, protocol="fast", overrides=asked)
    assert builder.train.parameters["mode"] == "multihead"
    with pytest.raises(ValueError, match="mode 'multihead' needs a `replay_set`"):
        build("ensemble", fake_inputs, protocol="fast", overrides={"train": asked})


def test_ensemble_members_have_no_seed_but_first_seed(fake_inputs):
    builder = build("ensemble", fake_inputs, protocol="fast", first_seed=7)
    assert builder.first_seed.value == 7
    assert "seed" not in builder.train.train


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("mace_train", {"lr": 0.1}, r"unknown inputs \['lr'\] of MaceTrainBaseWorkChain"),
        (
            "mace_train",
            {"train": {"parameter": {}}},
            r"unknown inputs \['parameter'\] of MaceTrainBaseWorkChain.train",
        ),
        (
            "ensemble",
            {"max_num_epochs": 2},
            r"unknown inputs \['max_num_epochs'\] of EnsembleTrainingWorkChain",
        ),
        ("deviation", {"dtype": "float64"}, r"unknown inputs \['dtype'\] of DeviationBaseWorkChain"),
        ("lammps_md", {"temperature": 500}, r"unknown inputs \['temperature'\] of LammpsMdBaseWorkChain"),
        ("selection", {"n_select": 4}, r"unknown inputs \['n_select'\] of SelectionWorkChain"),
    ],
)
def test_flat_or_misspelt_overrides_are_named(fake_inputs, name, overrides, message):
    with pytest.raises(ValueError, match=message):
        build(name, fake_inputs, protocol="fast", overrides=overrides)


@pytest.mark.parametrize("name", WORK_CHAINS)
def test_unknown_protocol_is_named(fake_inputs, name):
    with pytest.raises(ValueError, match=r"unknown protocol 'huge' for \w+; valid protocols: fast, balanced"):
        build(name, fake_inputs, protocol="huge")
