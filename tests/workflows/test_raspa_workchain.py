"""IsothermWorkChain without running RASPA: input validation, protocol builders, and its calcfunctions on
the parser's outputs of stored real RASPA runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_mofmlp.workflows.raspa.isotherm import IsothermWorkChain


def test_element_without_uff_parameters_is_rejected_before_any_job(require_code):
    """Input validation names the element and how to supply parameters; nothing is submitted."""
    from ase import Atoms

    atoms = Atoms("UO2", positions=[[0, 0, 0], [1.8, 0, 0], [0, 1.8, 0]], cell=[8, 8, 8], pbc=True)
    builder = IsothermWorkChain.get_builder_from_protocol(
        require_code("raspa"), orm.StructureData(ase=atoms), "CO2", protocol="fast"
    )
    with pytest.raises(ValueError, match=r"structure: no UFF .* U; give them in `force_field_parameters`"):
        run_get_node(builder)
    builder.parameters = orm.Dict({**builder.parameters.get_dict(), "framework_charges": "eqeq"})
    with pytest.raises(ValueError, match="pyeqeq"):
        run_get_node(builder)


def test_cif_charges_need_a_cif(require_code):
    from ase import Atoms

    atoms = Atoms("ZnO", positions=[[0, 0, 0], [2.0, 0, 0]], cell=[8, 8, 8], pbc=True)
    builder = IsothermWorkChain.get_builder_from_protocol(
        require_code("raspa"), orm.StructureData(ase=atoms), "CO2", protocol="balanced"
    )
    # the protocol's "cif" charges fall back to "none" for a StructureData ...
    assert builder.parameters["framework_charges"] == "none"
    builder.parameters = orm.Dict({**builder.parameters.get_dict(), "framework_charges": "cif"})
    # ... and asking for them explicitly is refused
    with pytest.raises(ValueError, match="CifData"):
        run_get_node(builder)


def test_cif_without_charges_is_refused_for_cif_charges(require_code, tmp_path):
    from ase import Atoms
    from ase.io import write

    path = tmp_path / "nocharge.cif"
    write(path, Atoms("ZnO", positions=[[0, 0, 0], [2.0, 0, 0]], cell=[8, 8, 8], pbc=True))
    builder = IsothermWorkChain.get_builder_from_protocol(
        require_code("raspa"), orm.CifData(file=str(path)), "CO2", protocol="balanced"
    )
    assert builder.parameters["framework_charges"] == "cif"
    with pytest.raises(ValueError, match="no _atom_site_charge"):
        run_get_node(builder)


# --- protocol builder ------------------------------------------------------------------------------------


AL_OVERRIDES = {  # what workflows/active_learning/builders.py passes for loading snapshots
    "run_widom": False,
    "run_isotherm": False,
    "run_snapshots": True,
    "snapshot_loadings": [1, 4],
    "temperature": 300.0,
    "seed": 3,
}


@pytest.mark.parametrize(
    ("protocol", "overrides", "options"),
    [
        ("fast", None, None),
        ("balanced", None, None),
        ("stringent", None, None),
        ("fast", AL_OVERRIDES, {"max_wallclock_seconds": 600}),
    ],
    ids=["fast", "balanced", "stringent", "fast-al-overrides"],
)
def test_builder_from_protocol_is_unchanged(
    require_code, raspa_share_dir, serialize_builder, data_regression, protocol, overrides, options
):
    cif = orm.CifData(file=str(raspa_share_dir / "structures" / "cif" / "MIL-47.cif"))
    builder = IsothermWorkChain.get_builder_from_protocol(
        require_code("raspa"), cif, "CO2", protocol=protocol, overrides=overrides, options=options
    )
    data_regression.check(serialize_builder(builder))


def test_protocol_defaults_come_from_the_yaml_only(require_code, raspa_share_dir, tmp_path):
    from aiida_mofmlp.workflows.protocols.utils import read_protocol_file
    from aiida_mofmlp.workflows.raspa.isotherm import PARAMETER_KEYS, default_parameters

    data = read_protocol_file("raspa.yaml")
    assert default_parameters() == data["default_inputs"]["parameters"]
    assert set(data["default_inputs"]["parameters"]) == PARAMETER_KEYS
    assert IsothermWorkChain.get_protocol_inputs("fast")["parameters"]["prod_cycles"] == 100
    # overrides: flat parameters, or shaped like the input ports, or a YAML file
    code = require_code("raspa")
    cif = orm.CifData(file=str(raspa_share_dir / "structures" / "cif" / "MIL-47.cif"))
    flat = IsothermWorkChain.get_builder_from_protocol(code, cif, "CO2", "fast", {"cutoff": 8.0})
    nested = IsothermWorkChain.get_builder_from_protocol(
        code, cif, "CO2", "fast", {"parameters": {"cutoff": 8.0}, "options": {"withmpi": False}}
    )
    path = tmp_path / "overrides.yaml"
    path.write_text("cutoff: 8.0\n")
    from_file = IsothermWorkChain.get_builder_from_protocol(code, cif, "CO2", "fast", path)
    assert flat.parameters.get_dict() == nested.parameters.get_dict() == from_file.parameters.get_dict()
    assert flat.parameters["cutoff"] == 8.0
    assert nested.options.get_dict() == {"withmpi": False}
    with pytest.raises(ValueError, match="unknown protocol 'quick'"):
        IsothermWorkChain.get_builder_from_protocol(code, cif, "CO2", "quick")


def test_raspa_calculations_use_the_mofmlp_parser(require_code, generate_workchain, raspa_share_dir):
    cif = orm.CifData(file=str(raspa_share_dir / "structures" / "cif" / "MIL-47.cif"))
    builder = IsothermWorkChain.get_builder_from_protocol(
        require_code("raspa"), cif, "CO2", protocol="fast", options={"max_wallclock_seconds": 600}
    )
    process = generate_workchain(IsothermWorkChain, builder._inputs(prune=True))
    process.ctx.framework = cif
    process.ctx.files = {}
    calc = process._builder({"System": {}}, "widom")
    assert calc.metadata.options.parser_name == "mofmlp.raspa"
    assert calc.metadata.options.max_wallclock_seconds == 600
    assert calc.metadata.call_link_label == "widom"


# --- calcfunctions on the parser's outputs (stored real RASPA outputs, no RASPA run) -------------------


RASPA_OUTPUTS = Path(__file__).parents[1] / "parsers" / "raspa_outputs"


@pytest.fixture
def parsed_output_parameters(generate_calc_job_node):
    """Return a function giving the ``output_parameters`` of ``mofmlp.raspa`` for a stored RASPA run."""
    import json

    from aiida_mofmlp.parsers.raspa import RaspaParser

    def _parse(case: str) -> orm.Dict:
        parameters = json.loads((RASPA_OUTPUTS / case / "parameters.json").read_text())
        retrieved = {
            str(path.relative_to(RASPA_OUTPUTS / case)): path.read_text()
            for folder in ("Output", "Restart")
            for path in (RASPA_OUTPUTS / case / folder / "System_0").iterdir()
        }
        node = generate_calc_job_node(
            "raspa", inputs={"parameters": orm.Dict(parameters)}, retrieved=retrieved
        )
        node.base.extras.set("system_order", ["framework"])
        results, calcfunction = RaspaParser.parse_from_node(node, store_provenance=False)
        assert calcfunction.is_finished_ok, calcfunction.exit_message
        return results["output_parameters"]

    return _parse


def test_merge_isotherm_reads_the_parsed_blocks_and_enthalpy(parsed_output_parameters):
    from aiida_mofmlp.workflows.functions.raspa import merge_isotherm
    from aiida_mofmlp.workflows.raspa.isotherm import default_parameters

    parameters = orm.Dict(default_parameters())  # equilibration_tolerance 0.15
    summary = orm.Dict({"guest": "CO2", "pressures": {"p0": 1.0, "p1": 10.0}, "failed": [{"pressure": 10.0}]})
    isotherm = merge_isotherm(parameters, summary, p0=parsed_output_parameters("gcmc")).get_dict()
    assert isotherm["pressure"] == [1.0]
    assert isotherm["molecules_per_cell"] == pytest.approx([1.59])
    assert isotherm["mol_kg"] == pytest.approx([1.7203584405])
    assert isotherm["enthalpy_of_adsorption"] == pytest.approx([-18.80421])
    assert isotherm["enthalpy_of_adsorption_dev"] == pytest.approx([2.135658])
    assert isotherm["drift"] == pytest.approx([(7.85 - 11.75) / 9.54])
    assert isotherm["equilibrated"] == [False]
    assert isotherm["failed_pressures"] == [{"pressure": 10.0}]


def test_collect_snapshots_places_whole_guests_from_the_parsed_configuration(
    parsed_output_parameters, raspa_share_dir
):
    from aiida_mofmlp.common.frames import guest_ids
    from aiida_mofmlp.data.guest import GuestMoleculeData
    from aiida_mofmlp.workflows.functions.raspa import collect_snapshots, prepare_framework

    cif = orm.CifData(file=str(raspa_share_dir / "structures" / "cif" / "MIL-47.cif"))
    framework = prepare_framework(cif, orm.Dict({"framework_charges": "cif"}))
    summary = orm.Dict(
        {
            "loadings": {"n1": {"loading": 1, "uuid": "x"}, "n4": {"loading": 4, "uuid": "y"}},
            "unit_cells": [3, 1, 2],
            "temperature": 298.0,
            "seed": 0,
        }
    )
    guest = GuestMoleculeData.builtin("CO2")
    snapshots = collect_snapshots(framework, guest, summary, n1=parsed_output_parameters("nvt"))
    assert len(snapshots) == 1  # n4 did not finish
    frame = snapshots.get_frame(0)
    ids = guest_ids(frame)
    assert (ids == 0).sum() == 72 * 6
    assert sorted(set(ids.tolist()) - {0}) == [1, 2, 3, 4, 5, 6]
    assert frame.info["loading"] == 1 and frame.info["n_guests"] == 6
    assert frame.info["min_guest_contact"] > 1.0
    for gid in range(1, 7):
        c, o1, o2 = frame[ids == gid].positions
        assert np.linalg.norm(o1 - c) == pytest.approx(1.16, abs=1e-6)
        assert np.linalg.norm(o2 - o1) == pytest.approx(2.32, abs=1e-6)


def test_guest_whose_name_could_escape_the_job_folder_is_refused_by_the_port(aiida_profile):
    """A guest node with a name that is not a plain identifier (e.g. stored by older code) never reaches
    RASPA's inputs, where it would be the file name ``<name>.def``."""
    from aiida_mofmlp.data import GuestMoleculeData
    from aiida_mofmlp.workflows.raspa.isotherm import _validate_guest

    assert _validate_guest(GuestMoleculeData.builtin("CO2")) is None
    guest = GuestMoleculeData.builtin("CO2")
    guest.base.attributes.set("name", "../../x")
    message = _validate_guest(guest)
    assert message and "name '../../x' is not valid" in message and "../../x.def" in message
