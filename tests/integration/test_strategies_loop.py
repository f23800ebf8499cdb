"""The loop's other strategies end to end on DMOF-1 with real LAMMPS, MACE, xTB (tblite) and CP2K.

* ``temperature_ramp`` (Sharma & Sanvito, npj Comput. Mater. 2024): 2 iterations at 100 K and 200 K (the top),
  2 NPT runs from displaced copies each, CBAD picks, xTB labels with the stress; extra candidates joined.
* ``aimd_flat_histogram`` (Castel et al., Digital Discovery 2024): CP2K GFN1-xTB AIMD at 300 K and 600 K,
  one frame per energy bin as training set 0 (the AIMD labels), then 2 uncertainty iterations at 600 K,
  with the property stop rule (``stop: property``; the volume against tblite's GFN1-xTB).
"""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import run_get_node

from aiida_mofmlp.common import frames as fr
from aiida_mofmlp.data import StructureSetData
from aiida_mofmlp.workflows.active_learning.settings import resolve_parameters
from aiida_mofmlp.workflows.active_learning.strategies import ramp_decision
from aiida_mofmlp.workflows.active_learning.workchain import ActiveLearningWorkChain
from aiida_mofmlp.workflows.functions.selection import select_frames

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

NOT_CONVERGED = ActiveLearningWorkChain.exit_codes.WARNING_NOT_CONVERGED.status


#: the loop's last step in the ramp run: a thermal expansion at tiny settings on the final ensemble
TINY_EXPANSION = {
    "temperatures": [150.0],
    "vdos": {"temperature": 150.0, "steps": 40, "dump_interval": 2},
    "md": {"md": {"parameters": {"steps": 60, "dump_interval": 10, "thermo_interval": 10}}},
}


def _run(codes_needed, overrides: str, tmp_path_factory, extra_candidates=None, parameters=None, **inputs):
    from aiida_mofmlp.cli.demo import demo_builder
    from aiida_mofmlp.cli.setup import ensure_codes, ensure_localhost

    codes = ensure_codes(ensure_localhost())
    missing = [kind for kind in codes_needed if codes.get(kind) is None]
    if missing:
        pytest.fail(f"programs {missing} are not installed; run the README's test command to install them")
    builder = demo_builder(codes, tmp_path_factory.mktemp(overrides), overrides)
    if extra_candidates is not None:
        builder.extra_candidates = extra_candidates
    if parameters:
        builder.parameters = orm.Dict({**builder.parameters.get_dict(), **parameters})
    if inputs.get("reference_code") == "reference":
        inputs["reference_code"] = codes["reference"]
    for key, value in inputs.items():
        builder[key] = value
    _, node = run_get_node(builder)
    if "iterations" in node.outputs:  # the iteration table, for the record (pytest -s shows it)
        print(f"\n{overrides}: exit {node.exit_status}")
        for row in node.outputs.iterations["rows"]:
            print({key: value for key, value in row.items() if key != "per_loading"})
    return node


def _called(node, prefix: str) -> list[orm.ProcessNode]:
    links = node.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all()
    return [link.node for link in links if link.link_label.startswith(prefix)]


def _extra_candidates() -> dict:
    """A framework frame displaced by 0.1 A, standing in for a property run's `untrusted_frames`."""
    from aiida_mofmlp.cli.demo import framework_cif
    from aiida_mofmlp.tools.intake import load_cif

    structure, _ = load_cif(framework_cif())
    atoms = structure.get_ase()
    atoms.positions += np.random.default_rng(5).normal(0, 0.1, atoms.positions.shape)
    return {"phonons": StructureSetData.from_frames([atoms])}


@pytest.fixture(scope="module")
def ramp_run(aiida_profile, tmp_path_factory):
    needed = ("xtb", "train", "md", "deviation")
    properties = {
        "properties": orm.List(["thermal expansion"]),
        "property_overrides": orm.Dict({"thermal_expansion": TINY_EXPANSION}),
    }
    return _run(needed, "tiny_temperature_ramp", tmp_path_factory, _extra_candidates(), **properties)


#: the property stop rule in the aimd run: the volume against tblite's GFN1-xTB with a tolerance no model
#: meets, so each iteration's check fails and its frame (the reference's relaxed cell) joins the labels
IMPOSSIBLE_VOLUME = {
    "check": {"parameters": {"tasks": ["volume"], "relax": {"fmax": 0.1, "steps": 15}}},
    "tolerances": {"volume_percent": 1.0e-9},
}


@pytest.fixture(scope="module")
def aimd_run(aiida_profile, tmp_path_factory):
    needed = ("cp2k", "train", "md", "deviation", "reference")
    return _run(
        needed,
        "tiny_aimd_flat_histogram",
        tmp_path_factory,
        _extra_candidates(),
        parameters={"stop": "property"},
        reference_code="reference",
        reference_overrides=orm.Dict(IMPOSSIBLE_VOLUME),
    )


def test_temperature_ramp_schedule_stop_rule_and_table(ramp_run):
    node = ramp_run
    assert node.is_finished, node.exit_message
    table = node.outputs.iterations.get_dict()
    rows = table["rows"]
    assert table["strategy"] == "temperature_ramp" and "top temperature" in table["stop_rule"]
    assert [row["iteration"] for row in rows][:2] == [0, 1]
    assert [row["temperature_K"] for row in rows[1:]] == [100.0, 200.0][: len(rows) - 1]
    for row in rows[1:]:  # every iteration's stop decision is the ramp's rule on its own numbers
        assert row["stop"] == ramp_decision(row["temperature_K"], 200.0, row["n_new_frames"])["converged"]
        assert 0 <= row["n_new_frames"] <= row["n_md_runs"] == 2  # at most one CBAD pick per run
    if rows[-1]["stop"]:
        assert node.exit_status == 0 and table["converged"] is True
    else:
        assert node.exit_status == NOT_CONVERGED and len(rows) == 3, node.exit_message
    # the runs were NPT at the iteration's temperature, from displaced copies
    first = _called(node, "ramp_01_run_")
    assert len(first) == 2
    for md in first:
        parameters = md.inputs.md.parameters.get_dict()
        assert parameters["ensemble"] == "npt" and parameters["temperature"] == 100.0
    assert len(node.outputs.history.displaced_01) == 2
    assert "validation" in node.outputs and node.outputs.validation["n_frames"] >= 1


def test_properties_run_as_the_loops_last_step_with_its_trust_window(ramp_run):
    node = ramp_run
    (properties,) = _called(node, "properties")
    assert properties.process_label == "PropertiesWorkChain"
    assert properties.is_finished_ok, properties.exit_message
    assert {label: model.pk for label, model in properties.inputs.models.items()} == {
        label: model.pk for label, model in node.outputs.models.items()
    }  # the final ensemble
    loop_trust = resolve_parameters(node.inputs.parameters.get_dict())["trust"]
    (expansion,) = _called(properties, "thermal_expansion")
    assert expansion.process_label == "ThermalExpansionWorkChain" and expansion.is_finished_ok
    levels = expansion.inputs.trust_window.get_dict()
    assert (levels["lo"], levels["hi"]) == (loop_trust["lo"], loop_trust["hi"])
    assert expansion.inputs.temperatures.get_list() == [150.0]  # the overrides reached the property
    descendants = {process.pk for process in node.called_descendants}
    assert expansion.pk in descendants  # the property runs are descendants of the loop
    assert "lattice" in properties.outputs.thermal_expansion  # outputs come back under the key
    assert properties.outputs.thermal_expansion.lattice.pk == expansion.outputs.lattice.pk


def test_cbad_picks_fill_new_bins_and_are_reproducible(ramp_run):
    history = ramp_run.outputs.history
    report = history.selection_01.get_dict()
    assert report["method"] == "cbad"
    assert all(count > 0 for count in report["cbad"]["new_bins_per_selected"])
    explored = history.explored_01
    runs = [explored.get_frame(index).info["run"] for index in report["selected"]]
    assert len(runs) == len(set(runs))
    inputs = {
        link.link_label: link.node for link in history.selection_01.creator.base.links.get_incoming().all()
    }
    again = select_frames(**{key: inputs[key] for key in ("pool", "parameters", "training_set")})
    assert again["report"]["selected"] == report["selected"]


def test_ramp_labels_carry_the_stress_into_training(ramp_run):
    node = ramp_run
    training = node.outputs.training_set
    assert training.has_stress
    assert all(fr.STRESS_KEY in atoms.info for atoms in training.iter_frames())
    model = node.outputs.models.model_0
    assert model.creator.inputs.parameters["stress_weight"] > 0


def _sources(frames) -> list:
    return [atoms.info.get("source") for atoms in frames.iter_frames()]


def test_extra_candidates_join_the_initial_pool(ramp_run):
    history = ramp_run.outputs.history
    assert _sources(history.pool_00).count("extra_candidates") == 1
    assert "extra_candidates" not in _sources(history.explored_01)  # joined once


def test_extra_candidates_join_the_first_explored_pool_without_initial_selection(aimd_run):
    history = aimd_run.outputs.history
    assert "extra_candidates" not in _sources(history.pool_00)  # the flat histogram needs labelled frames
    assert _sources(history.explored_01).count("extra_candidates") == 1
    assert len(history.deviation_01.get_array("sigma_max")) == len(history.explored_01)  # judged by sigma
    assert "extra_candidates" not in _sources(history.explored_02)


def test_aimd_flat_histogram_covers_the_energy_range_and_starts_the_training_set(aimd_run):
    node = aimd_run
    assert node.exit_status == NOT_CONVERGED, node.exit_message  # trust lo = 1e-4: both iterations run
    aimd = {
        process.inputs.cp2k.parameters["MOTION"]["MD"]["TEMPERATURE"] for process in _called(node, "aimd_T")
    }
    assert aimd == {300.0, 600.0}
    history = node.outputs.history
    pool, report = history.pool_00, history.selection_00.get_dict()
    assert report["method"] == "flat_histogram" and len(pool) == 2 * 7  # 6 steps + the start, twice
    assert set(_sources(pool)) == {"aimd"}
    energies = np.array([fr.get_energy(atoms) / len(atoms) for atoms in pool.iter_frames()])
    edges = np.array(report["flat_histogram"]["all"]["edges"])
    picked = energies[report["selected"]]
    assert len(picked) == 4 - report["n_empty_bins"]  # one frame per occupied bin
    assert picked.min() <= edges[1] and picked.max() >= edges[-2]  # lowest and highest bins both drawn
    start = history.training_set_00
    assert len(start) == len(picked) and not start.has_stress  # the AIMD labels, stress off
    np.testing.assert_allclose(
        sorted(fr.get_energy(atoms) / len(atoms) for atoms in start.iter_frames()), sorted(picked)
    )
    assert node.outputs.models.model_0.creator.inputs.parameters["stress_weight"] == 0.0


def test_property_stop_rule_labels_the_frames_behind_a_failed_property(aimd_run):
    node = aimd_run
    assert node.exit_status == NOT_CONVERGED, node.exit_message  # the volume never agrees within 1e-9 %
    history = node.outputs.history
    for tag in ("01", "02"):
        table = history[f"reference_check_{tag}"].get_dict()
        assert table["failed"] == ["volume"] and table["reference_method"] == "GFN1-xTB"
    rows = node.outputs.iterations.get_dict()["rows"]
    check = rows[1]["reference_check"]
    assert [row["property"] for row in check] == ["volume"] and check[0]["passed"] is False
    assert check[0]["reference"] > 0 and check[0]["value"] > 0
    assert rows[1]["n_reference_frames"] == 1 and rows[1]["properties_agree"] is False
    assert rows[1]["converged"] is False and rows[1]["sigma_converged"] is False  # the check decides
    assert rows[1]["n_selected"] >= 1 + 1  # the trust-window pick and the reference's relaxed cell
    checks = _called(node, "reference_check_")
    assert len(checks) == 2 and all(process.is_finished_ok for process in checks)
    untrusted = checks[0].outputs.untrusted_frames
    assert [atoms.info["check_task"] for atoms in untrusted.iter_frames()] == ["eos"]


def test_aimd_strategy_explores_with_the_mlp_at_high_temperature(aimd_run):
    node = aimd_run
    table = node.outputs.iterations.get_dict()
    assert table["strategy"] == "aimd_flat_histogram" and table["converged"] is False
    assert [row["iteration"] for row in table["rows"]] == [0, 1, 2]
    assert table["rows"][0]["n_bins"] == 4
    explored = node.outputs.history.explored_01
    md_frames = [atoms for atoms in explored.iter_frames() if atoms.info["source"] == "md"]
    assert md_frames and {atoms.info["target_temperature"] for atoms in md_frames} == {600.0}
    row1 = table["rows"][1]
    assert row1["n_labelled"] >= 1
    assert (
        len(node.outputs.history.training_set_01)
        == len(node.outputs.history.training_set_00) + row1["n_labelled"]
    )
    assert "validation" in node.outputs
