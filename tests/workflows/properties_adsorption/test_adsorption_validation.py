"""AdsorptionWorkChain refuses bad input before any job runs, with messages that say what is valid."""

from __future__ import annotations

import pytest
from aiida import orm

from aiida_mofmlp.data.guest import GuestMoleculeData
from aiida_mofmlp.workflows.functions.adsorption import max_guests_that_fit, place_guests
from aiida_mofmlp.workflows.properties.adsorption import AdsorptionWorkChain, validate_inputs


@pytest.fixture
def inputs(dmof, tiny_models):
    return {
        "structure": dmof,
        "guest": GuestMoleculeData.builtin("CO2"),
        "models": {"model_0": tiny_models["model_0"], "model_1": tiny_models["model_1"]},
        "pressures": orm.List([0.1, 1.0]),
        "loadings": orm.List([1, 2]),
        "temperature": orm.Float(298.0),
        "framework_charges": orm.Str("none"),
        "settings": orm.Dict({}),
        "codes": {},
    }


def test_valid_inputs_pass(inputs):
    assert validate_inputs(inputs) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pressures": [1.0, 0.0]}, "pressures: give one or more pressures > 0 bar, got [1.0, 0.0]"),
        ({"pressures": []}, "pressures: give one or more pressures > 0 bar"),
        ({"loadings": [500]}, "loadings: [500] CO2 per cell do not fit in this cell (at most"),
        ({"loadings": [0]}, "loadings: guests per cell must be positive integers"),
        ({"framework_charges": "repeat", "codes": {"raspa": "RASPA"}}, "'repeat' needs codes.cp2k"),
        (
            {"framework_charges": "eqeq"},
            "framework_charges: 'eqeq' is not valid; valid: xtb, repeat, resp, cif, none",
        ),
        ({"framework_charges": "cif"}, "needs the `framework_cif` input"),
        ({"models": {}}, "models: give at least one MACE model"),
        ({"temperature": -3.0}, "temperature: must be > 0 K"),
    ],
)
def test_bad_inputs_are_refused(inputs, change, message):
    nodes = {
        key: value if isinstance(value, dict) else orm.to_aiida_type(value) for key, value in change.items()
    }
    assert message in validate_inputs({**inputs, **nodes})


def test_guest_elements_and_mixed_ensembles(inputs, tiny_models):
    h2o_like = GuestMoleculeData(name="SF2", symbols=["S", "F"], positions=[[0, 0, 0], [1.6, 0, 0]])
    assert "guest: elements ['F', 'S'] of SF2 are missing from the models' species" in validate_inputs(
        {**inputs, "guest": h2o_like}
    )
    mixed = {"model_0": tiny_models["model_0"], "model_1": tiny_models["no_zn"]}
    message = validate_inputs({**inputs, "models": mixed})
    assert message.startswith("models: the ensemble mixes species")
    assert "model_1: C, H, N, O" in message


def test_xtb_charges_need_the_xtb_code_when_raspa_runs(inputs):
    changed = {**inputs, "framework_charges": orm.Str("xtb"), "codes": {"raspa": "a RASPA code"}}
    assert "framework_charges: 'xtb' needs codes.xtb" in validate_inputs(changed)


def test_peng_robinson_needs_critical_constants(inputs):
    bare = GuestMoleculeData(
        name="CO2bare", symbols=["C", "O", "O"], positions=[[0, 0, 0], [1.16, 0, 0], [-1.16, 0, 0]]
    )
    message = validate_inputs({**inputs, "guest": bare, "pressures": orm.List([0.5, 5.0])})
    assert "lacks critical constants for the Peng-Robinson fugacity used above 1.0 bar" in message


def test_loading_limit_and_guest_placement(dmof):
    framework = dmof.get_ase()
    co2 = GuestMoleculeData.builtin("CO2").get_ase()
    limit = max_guests_that_fit(framework, ["C", "O", "O"])
    assert 5 < limit < 60  # DMOF-1 holds a handful of CO2 per cell, never hundreds
    loaded = place_guests(framework, co2, 3, seed=1)
    assert len(loaded) == len(framework) + 9
    assert sorted(set(loaded.arrays["guest_id"])) == [0, 1, 2, 3]
    new = range(len(framework), len(loaded))
    assert min(loaded.get_distances(i, range(len(framework)), mic=True).min() for i in new) >= 2.0


def test_builder_from_protocol(dmof, tiny_models, require_code):
    models = [tiny_models["model_0"], tiny_models["model_1"]]
    codes = {"md": require_code("md"), "widom": require_code("widom")}
    for protocol in AdsorptionWorkChain.get_available_protocols():
        builder = AdsorptionWorkChain.get_builder_from_protocol(
            dmof, models, codes, protocol=protocol, guest="CO2"
        )
        assert builder.framework_charges.value == "none"  # fast asks for xtb, but no xTB code was given
        assert sorted(builder.models) == ["model_0", "model_1"]
        assert all(p > 0 for p in builder.pressures.get_list())
    builder = AdsorptionWorkChain.get_builder_from_protocol(
        dmof,
        models,
        {},
        protocol="fast",
        overrides={"pressures": [2.0], "settings": {"gcmc": {"n_blocks": 3}}},
        guest="CO2",
    )
    assert builder.pressures.get_list() == [2.0]
    assert builder.settings["gcmc"]["n_blocks"] == 3
    assert builder.settings["gcmc"]["attempt_interval"] == 5  # the paper's one attempt every 5 MD steps
    with pytest.raises(ValueError, match="unknown inputs \\['pressure'\\]"):
        AdsorptionWorkChain.get_builder_from_protocol(
            dmof, models, codes, overrides={"pressure": [1.0]}, guest="CO2"
        )
