"""CP2K output parsing on real CP2K 2023.1 outputs (GFN1-xTB water): text parsers and the Cp2kParser plugin.

The outputs in ``test_cp2k_parser/`` are unedited CP2K runs (their inputs are stored next to them):

* ``xtb_h2o_converged``: ENERGY_FORCE with the analytical stress, SCF converged;
* ``xtb_h2o_unconverged``: ENERGY_FORCE, MAX_SCF 1: CP2K warns "SCF run NOT converged" and goes on;
* ``xtb_oh_abort``: an OH radical without LSD: CP2K aborts;
* ``xtb_h2o_md``: 3 NVT steps with per-step positions and forces (``-pos-1.xyz``, ``-frc-1.xyz``);
* ``xtb_h2o_md_walltime``: NVT MD stopped by GLOBAL/WALLTIME 1 s (its last SCF is also unconverged).

Numbers were read by hand from the files and converted with CODATA 2018 (1 Hartree = 27.211386245988 eV,
1 Bohr = 0.529177210903 Angstrom, 1 eV/Angstrom^3 = 160.21766208 GPa).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aiida_mofmlp.parsers.parse_raw import cp2k as raw

DATA = Path(__file__).parent / "test_cp2k_parser"
HARTREE = 27.211386245988
BOHR = 0.529177210903
GPA = 160.21766208
FORCE = HARTREE / BOHR


def read(name: str) -> str:
    return (DATA / name).read_text()


# --- raw parsers -----------------------------------------------------------------------------------------


def test_parse_converged_single_point():
    parsed = raw.parse_single_point(read("xtb_h2o_converged.out"))
    assert parsed["energy"] == pytest.approx(-5.768982476615062 * HARTREE, rel=1e-14)
    expected_forces = np.array(
        [
            [0.03185290, -0.00048710, -0.00000000],
            [-0.01734612, -0.01153118, 0.00000000],
            [-0.01450677, 0.01201828, 0.00000000],
        ]
    )
    np.testing.assert_allclose(parsed["forces"], expected_forces * FORCE, rtol=1e-14)
    # CP2K's stress sign is the opposite of ASE's
    expected_stress = -np.array(
        [
            [8.42472753836e-02, -1.19366216765e00, 6.27773317069e-16],
            [-1.19366216765e00, -1.45723211950e-01, 5.85123388675e-15],
            [6.27773317069e-16, 5.85123388675e-15, 2.59222488044e-01],
        ]
    )
    np.testing.assert_allclose(parsed["stress"], expected_stress / GPA, rtol=1e-14)
    assert parsed["scf_converged"] is True
    assert parsed["completed"] is True
    assert parsed["walltime_exceeded"] is False
    assert parsed["aborted"] is False and parsed["abort_message"] == ""
    assert parsed["run_type"] == "ENERGY_FORCE"


def test_parse_single_point_units():
    """Hartree -> eV, Hartree/Bohr -> eV/Angstrom, GPa (CP2K sign) -> eV/Angstrom^3 (ASE sign)."""
    parsed = raw.parse_single_point(read("xtb_h2o_unconverged.out"))
    assert parsed["energy"] == pytest.approx(-5.748029349502604 * 27.211386245988)
    assert parsed["forces"].shape == (3, 3)
    assert parsed["forces"][0, 1] == pytest.approx(0.01233907 * 27.211386245988 / 0.529177210903)
    assert parsed["stress"][0, 0] == pytest.approx(5.91765594117e-01 / 160.21766208)
    assert parsed["stress"][2, 2] == pytest.approx(-7.36789933901e-02 / 160.21766208)
    assert parsed["scf_converged"] is False
    assert parsed["completed"] is True
    assert parsed["walltime_exceeded"] is False


def test_parse_abort():
    text = read("xtb_oh_abort.out")
    parsed = raw.parse_single_point(text)
    assert parsed["energy"] is None and parsed["forces"] is None
    assert raw.abort_message(text) == "Use the LSD option for an odd number of electrons"
    assert parsed["aborted"] is True
    assert parsed["abort_message"] == "Use the LSD option for an odd number of electrons"
    assert parsed["completed"] is False


def test_parse_walltime():
    parsed = raw.parse_single_point(read("xtb_h2o_md_walltime.out"))
    assert parsed["walltime_exceeded"] is True
    assert parsed["run_type"] == "MD"


def test_parse_md_trajectory():
    data = raw.parse_md_trajectory(read("xtb_h2o_md-pos-1.xyz"), read("xtb_h2o_md-frc-1.xyz"))
    assert data["symbols"] == ["O", "H", "H"]
    assert data["steps"].tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(data["times"], [0.0, 0.5, 1.0, 1.5])
    assert data["positions"].shape == data["forces"].shape == (4, 3, 3)
    assert data["energies"][1] == pytest.approx(-5.7684122124 * HARTREE, rel=1e-14)
    np.testing.assert_allclose(data["positions"][1, 0], [2.4995700060, 2.5007577783, 2.4999816561])
    np.testing.assert_allclose(data["forces"][0, 0], np.array([0.0318528994, -0.0004870991, 0.0]) * FORCE)
    # step 0 of the MD is the geometry of the single point: same energy and forces
    single_point = raw.parse_single_point(read("xtb_h2o_converged.out"))
    assert data["energies"][0] == pytest.approx(single_point["energy"], abs=1e-8)
    np.testing.assert_allclose(data["forces"][0], single_point["forces"], atol=1e-6)


def test_md_trajectory_with_missing_force_frame_keeps_common_steps():
    positions = read("xtb_h2o_md-pos-1.xyz")
    forces = "\n".join(read("xtb_h2o_md-frc-1.xyz").splitlines()[:-5])  # drop the last frame (5 lines)
    assert raw.parse_md_trajectory(positions, forces)["steps"].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="truncated xyz frame"):
        raw.read_xyz_frames("\n".join(positions.splitlines()[:-1]))


def test_read_cell_trajectory():
    text = "#   Step   Time [fs]  Ax Ay Az Bx By Bz Cx Cy Cz Volume\n 0 0.0 5 0 0 0 5 0 0 0 5 125.0\n"
    cells = raw.read_cell_trajectory(text)
    np.testing.assert_allclose(cells[0], 5.0 * np.eye(3))


# --- the parser plugin -----------------------------------------------------------------------------------


@pytest.fixture
def water_structure():
    from aiida import orm
    from ase import Atoms

    atoms = Atoms(
        "OH2",
        positions=[[2.5, 2.5, 2.5], [3.287, 3.086, 2.5], [1.743, 3.056, 2.5]],
        cell=[5.0, 5.0, 5.0],
        pbc=True,
    )
    return orm.StructureData(ase=atoms)


@pytest.fixture
def parse(generate_calc_job_node, water_structure):
    """Run Cp2kParser on a fake Cp2kCalculation with the given retrieved files and run type."""
    from aiida import orm

    from aiida_mofmlp.parsers.cp2k import Cp2kParser

    def _parse(retrieved: dict[str, str], run_type: str = "ENERGY_FORCE", structure=None):
        parameters = orm.Dict({"GLOBAL": {"RUN_TYPE": run_type}})
        node = generate_calc_job_node(
            "cp2k",
            exit_status=None,
            inputs={"parameters": parameters, "structure": structure or water_structure},
            retrieved=retrieved,
        )
        return Cp2kParser.parse_from_node(node, store_provenance=False)

    return _parse


def exit_codes():
    from aiida.plugins import CalculationFactory

    return CalculationFactory("cp2k").exit_codes


def test_plugin_converged_labels(parse):
    results, call = parse({"aiida.out": read("xtb_h2o_converged.out")})
    assert call.exit_status == 0, call.exit_message
    labels = results["labels"]
    energy = -5.768982476615062 * HARTREE
    assert labels.base.attributes.get("energy") == pytest.approx(energy, rel=1e-14)
    assert results["energy"].value == pytest.approx(energy, rel=1e-14)
    assert labels.base.attributes.get("units") == {
        "energy": "eV",
        "forces": "eV/Angstrom",
        "stress": "eV/Angstrom^3",
    }
    assert labels.get_array("forces")[0, 0] == pytest.approx(0.03185290 * FORCE, rel=1e-14)
    assert labels.get_array("stress")[0, 1] == pytest.approx(1.19366216765 / GPA, rel=1e-14)
    # aiida-cp2k's own output is kept (energy in Hartree)
    assert results["output_parameters"]["energy"] == pytest.approx(-5.768982476615062)
    assert results["output_parameters"]["energy_units"] == "a.u."


def test_plugin_scf_not_converged(parse):
    results, call = parse({"aiida.out": read("xtb_h2o_unconverged.out")})
    assert call.exit_status == exit_codes().ERROR_SCF_NOT_CONVERGED.status
    assert "SCF run NOT converged" in call.exit_message
    assert "labels" not in results  # an unconverged SCF never produces labels
    assert "output_parameters" in results


def test_plugin_abort_message(parse):
    from aiida import orm
    from ase import Atoms

    radical = orm.StructureData(ase=Atoms("OH", positions=[[0, 0, 0], [0.97, 0, 0]], cell=[5] * 3, pbc=True))
    results, call = parse({"aiida.out": read("xtb_oh_abort.out")}, structure=radical)
    assert call.exit_status == exit_codes().ERROR_OUTPUT_CONTAINS_ABORT.status
    assert call.exit_message == "CP2K aborted: Use the LSD option for an odd number of electrons"
    assert "labels" not in results


def test_plugin_walltime(parse):
    results, call = parse({"aiida.out": read("xtb_h2o_md_walltime.out")}, run_type="MD")
    assert call.exit_status == exit_codes().ERROR_OUT_OF_WALLTIME.status
    assert "md_trajectory" not in results


def test_plugin_incomplete_output(parse):
    text = read("xtb_h2o_converged.out")
    truncated = text[: text.index("STRESS| Analytical stress tensor")]  # the job was killed here
    _, call = parse({"aiida.out": truncated})
    assert call.exit_status == exit_codes().ERROR_OUTPUT_INCOMPLETE.status


def test_plugin_missing_forces(parse):
    text = read("xtb_h2o_converged.out")
    start = text.index(" ATOMIC FORCES in [a.u.]")
    end = text.index(" SUM OF ATOMIC FORCES")
    _, call = parse({"aiida.out": text[:start] + text[end:]})  # finished, but no forces printed
    assert call.exit_status == exit_codes().ERROR_OUTPUT_PARSE.status
    assert "no forces" in call.exit_message


def test_plugin_wrong_atom_count(parse, water_structure):
    from aiida import orm
    from ase import Atoms

    dimer = orm.StructureData(ase=Atoms("O2", positions=[[0, 0, 0], [1.2, 0, 0]], cell=[5] * 3, pbc=True))
    _, call = parse({"aiida.out": read("xtb_h2o_converged.out")}, structure=dimer)
    assert call.exit_status == exit_codes().ERROR_OUTPUT_PARSE.status
    assert "3 forces for a structure of 2 atoms" in call.exit_message


def test_plugin_missing_output_file(parse):
    _, call = parse({"other.txt": ""})
    assert call.exit_status == exit_codes().ERROR_OUTPUT_MISSING.status
    assert "aiida.out" in call.exit_message


def test_plugin_md_trajectory(parse, water_structure):
    retrieved = {
        "aiida.out": read("xtb_h2o_md.out"),
        raw.POSITIONS_FILE: read("xtb_h2o_md-pos-1.xyz"),
        raw.FORCES_FILE: read("xtb_h2o_md-frc-1.xyz"),
    }
    results, call = parse(retrieved, run_type="MD")
    assert call.exit_status == 0, call.exit_message
    trajectory = results["md_trajectory"]
    assert trajectory.get_stepids().tolist() == [0, 1, 2, 3]
    assert trajectory.symbols == ["O", "H", "H"]
    np.testing.assert_allclose(trajectory.get_cells(), np.repeat(5.0 * np.eye(3)[None], 4, axis=0))
    assert trajectory.get_array("energies")[1] == pytest.approx(-5.7684122124 * HARTREE, rel=1e-14)
    assert trajectory.get_array("forces")[0, 0, 0] == pytest.approx(0.0318528994 * FORCE, rel=1e-14)
    np.testing.assert_allclose(trajectory.get_positions()[1, 0], [2.4995700060, 2.5007577783, 2.4999816561])
    assert trajectory.base.attributes.get("units")["forces"] == "eV/Angstrom"
    assert "labels" not in results


def test_plugin_md_without_trajectory_files(parse):
    _, call = parse({"aiida.out": read("xtb_h2o_md.out")}, run_type="MD")
    assert call.exit_status == exit_codes().ERROR_COORDINATES_TRAJECTORY_READ.status
    assert raw.POSITIONS_FILE in call.exit_message
