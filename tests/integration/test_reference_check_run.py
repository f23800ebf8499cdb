"""ReferenceCheckWorkChain end to end on the xTB path: the real ``mofmlp-reference-check`` job (GFN1-xTB via
tblite beside two MACE models), its parser, the comparison table and the frames behind each failure."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import run_get_node

from aiida_mofmlp.common.frames import ENERGY_KEY, FORCES_KEY
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.mace.toy import TOY_SPECIES, build_tiny_model, toy_frame
from aiida_mofmlp.workflows.properties.reference_check import ReferenceCheckWorkChain

pytestmark = pytest.mark.integration

QUICK = {
    "check": {
        "parameters": {
            "relax": {"fmax": 0.05, "steps": 150},
            "eos": {"strain": 0.02, "n_points": 5, "relax_steps": 10},
            "binding": {"max_frames": 2},
        }
    }
}


def _framework() -> orm.StructureData:
    atoms = toy_frame(0, rattle=0.0)
    del atoms.arrays["guest_id"]
    return orm.StructureData(ase=atoms)


def test_check_reports_each_model_and_the_frames_behind_failures(aiida_profile, require_code, tmp_path):
    foundation = MaceModelData.small_mof_foundation()
    tiny = MaceModelData.from_file(build_tiny_model(list(TOY_SPECIES), tmp_path / "tiny.model")).store()
    loaded = StructureSetData.from_frames([toy_frame(0), toy_frame(1, seed=1), toy_frame(2, seed=2)]).store()
    builder = ReferenceCheckWorkChain.get_builder_from_protocol(
        _framework(),
        [foundation, tiny],
        {"reference": require_code("reference")},
        protocol="fast",
        overrides=QUICK,
        validation_frames=loaded,
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    table = results["table"].get_dict()
    pairs = {(row["property"], row["model"]) for row in table["rows"]}
    for prop in ("volume", "bulk_modulus", "binding_energy", "gamma"):
        assert {(prop, "model_0"), (prop, "model_1"), (prop, "ensemble")} <= pairs
    assert table["reference_method"] == "GFN1-xTB"
    assert set(table["properties"]) == {"volume", "bulk_modulus", "binding_energy", "gamma"}
    # a random tiny model does not reproduce GFN1-xTB: something fails and its frames come out labelled
    assert not table["passed"] and table["failed"]
    untrusted = results["untrusted_frames"]
    assert len(untrusted) >= 1
    for atoms in untrusted.iter_frames():
        assert ENERGY_KEY in atoms.info and FORCES_KEY in atoms.arrays
    binding = results["results"].get_dict()["binding_frames"]
    assert binding == [1, 2]  # the empty frame 0 is skipped
    jobs = {
        link.link_label: link.node
        for link in node.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all()
    }
    assert set(jobs) == {"check_reference", "check_model_0", "check_model_1"}  # one job each, at once
    assert "check_frames" not in jobs["check_model_0"].outputs  # only the reference labels frames
    assert results["check_frames"].uuid == jobs["check_reference"].outputs.check_frames.uuid
    report = " ".join(log.message for log in orm.Log.collection.get_logs_for(node))
    assert "volume: reference" in report


def test_a_cell_above_the_limit_is_refused_before_any_job(aiida_profile, require_code):
    builder = ReferenceCheckWorkChain.get_builder_from_protocol(
        _framework(),
        MaceModelData.small_mof_foundation(),
        {"reference": require_code("reference")},
        overrides={"check": {"parameters": {"max_atoms": 8}}},
    )
    before = orm.QueryBuilder().append(orm.CalcJobNode).count()
    with pytest.raises(ValueError, match="more than max_atoms 8"):
        run_get_node(builder)
    assert orm.QueryBuilder().append(orm.CalcJobNode).count() == before
    assert "binding_energy" not in builder.check.parameters.get_dict()["tasks"]  # no loaded frames given
