"""StructureSetData: storage, streaming, conversion, summary attributes."""

import numpy as np
import pytest
from aiida import orm
from ase.build import bulk, molecule

from aiida_mofmlp.common import frames as fr
from aiida_mofmlp.data import GuestMoleculeData, StructureSetData


def _framework(n_repeat=1, rattle_seed=0):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(n_repeat)
    atoms.rattle(0.05, seed=rattle_seed)
    atoms.arrays[fr.GUEST_ID_KEY] = np.zeros(len(atoms), dtype=int)
    return atoms


def _loaded_frame():
    atoms = _framework(2)
    guest = GuestMoleculeData.builtin("CO2").get_ase(guest_id=1)
    guest.positions += atoms.cell.sum(axis=0) / 2
    atoms += guest
    atoms.info.update({"loading": 1, "source": "test", "temperature": 300.0})
    return atoms


def _labelled(atoms, seed):
    rng = np.random.default_rng(seed)
    return fr.set_labels(
        atoms, energy=-1.5 * len(atoms), forces=rng.normal(size=(len(atoms), 3)), stress=np.eye(3)
    )


def test_roundtrip_keeps_labels_metadata_and_varying_sizes(aiida_profile):
    frames = [_labelled(_framework(1), 0), _labelled(_loaded_frame(), 1)]
    node = StructureSetData.from_frames(frames).store()
    loaded = orm.load_node(node.pk)
    assert len(loaded) == 2
    assert loaded.species == ["C", "Cu", "O"]
    assert loaded.has_energy and loaded.has_forces and loaded.has_stress
    assert loaded.base.attributes.get("n_atoms_min") == 4
    assert loaded.base.attributes.get("n_atoms_max") == 35
    assert loaded.base.attributes.get("n_frames_with_guests") == 1
    assert loaded.units["forces"] == "eV/Angstrom"
    back = loaded.get_frames()
    for original, restored in zip(frames, back, strict=True):
        assert restored.get_chemical_symbols() == original.get_chemical_symbols()
        np.testing.assert_allclose(restored.positions, original.positions, atol=1e-8)
        np.testing.assert_allclose(fr.get_forces(restored), fr.get_forces(original), atol=1e-8)
        assert fr.get_energy(restored) == pytest.approx(fr.get_energy(original))
    assert back[1].info["loading"] == 1
    assert fr.n_guests(back[1]) == 1
    np.testing.assert_allclose(back[0].info[fr.STRESS_KEY], [1, 1, 1, 0, 0, 0])


def test_unlabelled_frames_and_partial_labels(aiida_profile):
    node = StructureSetData.from_frames([_framework(1), _labelled(_framework(1), 3)])
    assert not node.has_energy and not node.has_forces
    assert node.count == 2


def test_sha256_identifies_content(aiida_profile, tmp_path):
    frames = [_framework(1, seed) for seed in range(3)]
    first = StructureSetData.from_frames(frames)
    path = first.write_extxyz(tmp_path / "copy.extxyz")
    second = StructureSetData.from_file(path)
    assert first.sha256 == second.sha256 == fr.sha256_of_file(path)
    assert StructureSetData.from_frames(frames[:2]).sha256 != first.sha256


def test_iteration_streams_and_indexing(aiida_profile):
    frames = [_framework(1, seed) for seed in range(5)]
    node = StructureSetData.from_frames(frames).store()
    iterator = node.iter_frames()
    assert next(iterator).positions == pytest.approx(frames[0].positions, abs=1e-7)
    picked = node.get_frames([4, 1])
    assert picked[0].positions == pytest.approx(frames[4].positions, abs=1e-7)
    assert picked[1].positions == pytest.approx(frames[1].positions, abs=1e-7)
    assert node.get_frame(-1).positions == pytest.approx(frames[-1].positions, abs=1e-7)
    with pytest.raises(IndexError, match="out of range for a set of 5"):
        node.get_frames([5])


def test_structure_data_conversion(aiida_profile):
    structure = orm.StructureData(ase=_framework(2)).store()
    node = StructureSetData.from_structures([structure, orm.StructureData(ase=molecule("H2O", vacuum=4.0))])
    assert node.count == 2
    assert node.get_frame(0).info["parent_uuid"] == structure.uuid
    back = node.get_structure(0)
    assert isinstance(back, orm.StructureData)
    assert back.get_formula() == structure.get_formula()


def test_empty_set_is_rejected(aiida_profile):
    with pytest.raises(ValueError, match="holds no frames"):
        StructureSetData.from_frames([])
    with pytest.raises(ValueError, match="either `frames` or `filepath`"):
        StructureSetData(frames=[_framework()], filepath="x.extxyz")
