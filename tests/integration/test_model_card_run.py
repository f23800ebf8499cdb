"""ModelCardWorkChain running the real engines: a "fine-tuned" model and its foundation on MgO side by side.

The fine-tuned model here is a tiny random MACE that names the shipped foundation as its parent (the card
finds the foundation by that hash); its physics is poor on purpose, so the card must report whatever the
runs give (imaginary modes, a drifting volume) without failing.
"""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.build import bulk

from aiida_mofmlp.common.frames import set_labels
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.mace.toy import build_tiny_model
from aiida_mofmlp.workflows.properties.model_card import ModelCardWorkChain

pytestmark = pytest.mark.integration


def _validation_frames(model_path) -> StructureSetData:
    """Two rattled MgO cells labelled by the foundation itself: its errors on them are ~0."""
    from aiida_mofmlp.engines.mace.common import mace_calculator

    calc = mace_calculator(model_path, device="cpu", default_dtype="float64")
    frames = []
    for seed in (0, 1):
        atoms = bulk("MgO", "rocksalt", a=4.09, cubic=True)
        atoms.rattle(0.05, seed=seed)
        atoms.calc = calc
        set_labels(atoms, energy=atoms.get_potential_energy(), forces=atoms.get_forces())
        atoms.calc = None
        frames.append(atoms)
    return StructureSetData.from_frames(frames)


def test_model_card_of_fine_tuned_and_foundation(aiida_profile, require_code, tmp_path):
    foundation = MaceModelData.small_mof_foundation()
    path = build_tiny_model(["O", "Mg"], tmp_path / "fine_tuned.model", r_max=3.0)
    fine_tuned = MaceModelData.from_file(path, parent_sha256=foundation.sha256).store()
    structure = orm.StructureData(ase=bulk("MgO", "rocksalt", a=4.09, cubic=True))
    from aiida_mofmlp.common.resources import foundation_files

    frames = _validation_frames(foundation_files().model)
    builder = ModelCardWorkChain.get_builder_from_protocol(
        structure,
        fine_tuned,
        {
            "phonons": require_code("phonons"),
            "md": require_code("md"),
            "reference": require_code("reference"),
        },
        validation_frames=frames,
        protocol="fast",
        overrides={
            "npt": {"md": {"parameters": {"steps": 100, "thermo_interval": 10, "dump_interval": 50}}},
            "reference": {"check": {"parameters": {"eos": {"n_points": 5, "relax_steps": 20}}}},
        },
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    card = results["card"].get_dict()
    assert set(card["models"]) == {"fine_tuned", "foundation"}
    assert card["sha256"]["foundation"] == foundation.sha256
    foundation_column = card["models"]["foundation"]
    assert foundation_column["phonon_status"] == "stable"
    assert 100.0 < foundation_column["bulk_modulus_gpa"] < 250.0
    assert 0.0 < foundation_column["heat_capacity_300K_kb_per_atom"] < 3.0
    assert foundation_column["mae_f"] < 1e-6  # the frames were labelled by the foundation itself
    assert foundation_column["npt_volume_drift_percent"] is not None
    assert card["models"]["fine_tuned"]["mae_f"] > foundation_column["mae_f"]
    assert card["units"]["bulk_modulus_gpa"] == "GPa"
    # the labelling method beside both models (frames without guests: no binding energy)
    reference = card["reference_check"]
    assert reference["method"] == "GFN1-xTB"
    assert set(reference["properties"]) == {"volume", "bulk_modulus", "gamma"}
    volume = reference["properties"]["volume"]
    assert volume["reference"] > 0 and volume["fine_tuned"] > 0 and volume["foundation"] > 0
    assert isinstance(volume["foundation_passed"], bool) and volume["unit"] == "Angstrom^3"
    assert results["reference_table"].get_dict()["tolerances"]["volume_percent"] == 1.0
    assert [card.uuid for card in ModelCardWorkChain.cards_of(fine_tuned)] == [results["card"].uuid]
    from aiida_mofmlp.tools.export import _model_cards

    exported = _model_cards(fine_tuned)  # what a dataset export lists under the model
    assert exported[0]["uuid"] == results["card"].uuid and exported[0]["models"]["foundation"]
