"""Frame conventions: labels, stress forms, guest ids."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from aiida_mofmlp.common import frames as fr


def test_voigt_from_matrix_and_vector():
    matrix = np.array([[1, 6, 5], [6, 2, 4], [5, 4, 3]], dtype=float)
    np.testing.assert_allclose(fr.voigt_stress(matrix), [1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(fr.voigt_stress([1, 2, 3, 4, 5, 6]), [1, 2, 3, 4, 5, 6])
    with pytest.raises(ValueError, match="3x3 or 6 Voigt"):
        fr.voigt_stress([1, 2, 3])


def test_forces_shape_is_checked():
    atoms = molecule("H2O")
    with pytest.raises(ValueError, match=r"shape \(3, 3\)"):
        fr.set_labels(atoms, forces=np.zeros((2, 3)))


def test_text_roundtrip_and_guest_count(tmp_path):
    atoms = molecule("CO2", vacuum=3.0)
    atoms.arrays[fr.GUEST_ID_KEY] = np.array([1, 1, 1])
    fr.set_labels(atoms, energy=-10.0, forces=np.ones((3, 3)))
    path = tmp_path / "f.extxyz"
    path.write_text(fr.frames_to_text([atoms, atoms]))
    frames = fr.read_frames(path)
    assert len(frames) == 2
    assert fr.n_guests(frames[0]) == 1
    assert fr.get_energy(frames[1]) == -10.0
    assert frames[0].calc is None


def test_composition_e0s_recovers_per_element_energies():
    frames = []
    for symbols in ("H2", "CO2", "H2CO", "CH4"):
        atoms = Atoms(symbols)
        energy = {"H": -13.6, "C": -1030.0, "O": -2040.0}
        atoms.info["REF_energy"] = sum(energy[s] for s in atoms.get_chemical_symbols())
        frames.append(atoms)
    e0s = fr.composition_e0s(frames)
    assert e0s == pytest.approx({"C": -1030.0, "H": -13.6, "O": -2040.0})


def test_gzip_paths_are_compressed_and_read_back(tmp_path):
    atoms = molecule("CO2", cell=[8, 8, 8], pbc=True)
    atoms.info["REF_energy"] = -1.5
    path = tmp_path / "frames.extxyz.gz"
    assert fr.write_frames([atoms, atoms], path) == 2
    assert path.read_bytes()[:2] == b"\x1f\x8b"  # the gzip magic number, not plain text
    back = fr.read_frames(path)
    assert len(back) == 2
    assert back[1].info["REF_energy"] == -1.5
    np.testing.assert_allclose(back[0].positions, atoms.positions)
