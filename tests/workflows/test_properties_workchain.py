"""The property registry and PropertiesWorkChain's checks: one way to build every property, refusals named
before anything runs (the run itself, called by the loop, is in tests/integration/test_strategies_loop.py)."""

from __future__ import annotations

import io

import pytest
from aiida import orm
from ase import Atoms

from aiida_mofmlp.data.guest import GuestMoleculeData
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.properties.registry import (
    PROPERTIES,
    loaded_frame_index,
    property_builder,
    property_key,
    property_problems,
)
from aiida_mofmlp.workflows.properties.selected import (
    PropertiesWorkChain,
    validate_inputs,
    validate_property_names,
)


@pytest.fixture
def inputs(aiida_localhost):
    """A framework, two fake models, frames with and without guests, a code of every kind."""
    framework = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[8, 8, 8], pbc=True)
    frames = []
    for loading in (0, 2, 1):
        atoms = framework.copy()
        atoms.info["loading"] = loading
        frames.append(atoms)
    code = orm.InstalledCode(label="engine", computer=aiida_localhost, filepath_executable="/bin/true")
    models = {f"model_{k}": MaceModelData(io.BytesIO(b"weights"), filename=f"m{k}.model") for k in range(2)}
    kinds = ("md", "widom", "raspa", "xtb", "phonons", "deviation", "reference")
    return {
        "structure": orm.StructureData(ase=framework),
        "models": models,
        "codes": {kind: code for kind in kinds},
        "frames": StructureSetData.from_frames(frames),
        "guest": GuestMoleculeData.builtin("CO2"),
    }


def test_registry_names_every_property_work_chain_once():
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="aiida.workflows")}
    registered = {name for name in names if name.startswith("mofmlp.properties")}
    assert {entry.entry_point for entry in PROPERTIES.values()} == registered - {"mofmlp.properties"}
    assert property_key("thermal expansion") == property_key("thermal_expansion") == "thermal_expansion"
    with pytest.raises(ValueError, match="'band gap' is not known; valid: adsorption, diffusion"):
        property_key("band gap")


def test_problems_name_what_each_property_lacks():
    codes = {"md": object()}
    problems = property_problems(
        ["adsorption", "diffusion", "phonons", "melt-quench"], codes, has_guest=False, has_loaded_frame=False
    )
    assert problems == [
        "adsorption: needs codes ['widom'] (run `aiida-mofmlp setup`)",
        "adsorption: needs a guest (an empty framework adsorbs nothing)",
        "diffusion: needs frames with guests in them (the loop's starting frames)",
        "phonons: needs codes ['phonons'] (run `aiida-mofmlp setup`)",
    ]


def test_one_builder_signature_gives_each_work_chain_with_the_trust_window(inputs):
    trust = {"lo": 0.05, "hi": 0.3}
    for key, entry in PROPERTIES.items():
        builder = property_builder(
            key,
            inputs["structure"],
            inputs["models"],
            inputs["codes"],
            protocol="fast",
            trust=trust,
            guest=inputs["guest"],
            loaded_frame=inputs["frames"],
        )
        assert builder.process_class is entry.workflow()
        if key == "reference_check":  # the check against the labelling method has tolerances, not trust
            assert builder.check.code is inputs["codes"]["reference"]
            assert builder.tolerances.get_dict()["volume_percent"] == 1.0
            assert "binding_energy" not in builder.check.parameters["tasks"]  # no loaded frames given
            continue
        if key == "model_card":  # the labelling method beside both models when its code is given
            assert builder.reference.check.code is inputs["codes"]["reference"]
        assert builder.trust_window.get_dict()["lo"] == 0.05 and builder.trust_window.get_dict()["hi"] == 0.3
        assert builder.deviation.deviation.code is inputs["codes"]["deviation"]
    one_model = {"model_0": inputs["models"]["model_0"]}
    single = property_builder("phonons", inputs["structure"], one_model, inputs["codes"])
    assert "code" not in single.deviation.get("deviation", {})  # one model: nothing to disagree
    with pytest.raises(ValueError, match="adsorption: needs a guest"):
        property_builder("adsorption", inputs["structure"], inputs["models"], inputs["codes"])


def test_most_loaded_frame_is_chosen(inputs):
    assert loaded_frame_index(inputs["frames"]) == 1
    empty = StructureSetData.from_frames([inputs["frames"].get_frames([0])[0]])
    assert loaded_frame_index(empty) is None


def test_inputs_are_checked_before_anything_runs(inputs):
    assert validate_property_names(orm.List([])).startswith("properties: name at least one of adsorption")
    assert "'vdos' is not known" in validate_property_names(orm.List(["vdos"]))
    assert "each property once" in validate_property_names(orm.List(["phonons", "phonons"]))
    codes = {"md": inputs["codes"]["md"]}
    base = {"structure": inputs["structure"], "models": inputs["models"], "codes": codes}
    problem = validate_inputs({**base, "properties": orm.List(["adsorption", "thermal expansion"])})
    assert problem == (
        "adsorption: needs codes ['widom'] (run `aiida-mofmlp setup`); "
        "adsorption: needs a guest (an empty framework adsorbs nothing)"
    )
    overrides = orm.Dict({"phonons": {}})
    problem = validate_inputs({**base, "properties": orm.List(["melt_quench"]), "overrides": overrides})
    assert problem == "overrides: keys ['phonons'] are not among the chosen properties ['melt_quench']"
    assert validate_inputs({**base, "properties": orm.List(["melt_quench"])}) is None


def test_builder_for_a_loop_refuses_one_without_an_ensemble(aiida_localhost):
    node = orm.WorkflowNode()
    node.store()
    with pytest.raises(ValueError, match=r"has no final ensemble \(`models` outputs\)"):
        PropertiesWorkChain.get_builder_for_loop(node, ["phonons"])


def test_loop_refuses_properties_it_cannot_run(inputs):
    from aiida_mofmlp.workflows.active_learning.properties_step import validate_properties_inputs

    loop_inputs = {
        "structure": inputs["structure"],
        "md": {"md": {"code": inputs["codes"]["md"]}},
        "properties": orm.List(["diffusion", "phonons"]),
    }
    problem = validate_properties_inputs(loop_inputs, [0, 2])
    assert problem == (
        "properties: diffusion: needs frames with guests in them (the loop's starting frames); "
        "properties: phonons: needs codes ['phonons'] (run `aiida-mofmlp setup`)"
    )
    loop_inputs.update(guest=inputs["guest"], property_codes={"phonons": inputs["codes"]["phonons"]})
    assert validate_properties_inputs(loop_inputs, [0, 2]) is None
    assert "diffusion: needs frames" in validate_properties_inputs(loop_inputs, [0])
    loop_inputs["property_overrides"] = orm.Dict({"adsorption": {}})
    assert validate_properties_inputs(loop_inputs, [0, 2]) == (
        "properties: property_overrides: keys ['adsorption'] are not among the chosen properties "
        "['diffusion', 'phonons']"
    )
