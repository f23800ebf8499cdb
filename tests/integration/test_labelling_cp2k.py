"""Label tiny periodic systems with the real CP2K through LabellingWorkChain / Cp2kSinglePointWorkChain."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import run_get_node
from ase import Atoms

from aiida_mofmlp.common import frames as fr
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.cp2k.base import Cp2kSinglePointWorkChain
from aiida_mofmlp.workflows.cp2k.labelling import LabellingWorkChain

pytestmark = pytest.mark.integration

os.environ["OMP_NUM_THREADS"] = "1"


def water(shift: float = 0.0, box: float = 5.0) -> Atoms:
    """A water molecule in a periodic cubic box (a tiny molecular crystal), distorted by ``shift``."""
    atoms = Atoms(
        "OH2",
        positions=[[2.5, 2.5, 2.5], [3.257 + shift, 3.086, 2.5], [1.743, 3.086 - shift, 2.5]],
        cell=[box, box, box],
        pbc=True,
    )
    atoms.info["source"] = "test"
    return atoms


def calcjobs(node) -> list[orm.CalcJobNode]:
    return [n for n in node.called_descendants if isinstance(n, orm.CalcJobNode)]


def label_creators(labelled) -> list[orm.CalcFunctionNode]:
    """The label_frames calcfunctions that produced a labelled set (directly or through the merge)."""
    creator = labelled.creator
    if creator.process_label == "label_frames":
        return [creator]
    return [
        node.creator for node in creator.base.links.get_incoming(link_type=LinkType.INPUT_CALC).all_nodes()
    ]


def test_fast_labelling_with_guest(require_code):
    """Two frames at GFN1-xTB plus an isolated CO2: labels, lineage to each CP2K calculation, waves of 1."""
    from aiida_mofmlp.data.guest import GuestMoleculeData

    code = require_code("cp2k")
    structures = StructureSetData.from_frames([water(0.0), water(0.05)])
    builder = LabellingWorkChain.get_builder_from_protocol(
        code,
        structures,
        protocol="fast",
        compute_stress=True,
        guests={"CO2": GuestMoleculeData.builtin("CO2")},
        max_concurrent=1,
    )
    start = time.perf_counter()
    results, node = run_get_node(builder)
    elapsed = time.perf_counter() - start
    assert node.is_finished_ok, node.exit_message
    labelled = results["labelled"]
    assert len(labelled) == 2
    assert labelled.has_energy and labelled.has_forces and labelled.has_stress
    assert results["failed"]["count"] == 0
    assert results["failed"].creator.process_label == "record_failures"
    jobs = {job.uuid: job for job in calcjobs(node)}
    assert len(jobs) >= 3  # two frames + the guest (+ restarts, if any)
    assert len({atoms.info["calc_uuid"] for atoms in labelled.iter_frames()}) == 2
    creators = label_creators(labelled)
    assert len(creators) == 2  # max_concurrent=1: one wave, one label_frames calcfunction per frame
    inputs_of_creators = {
        link.node.uuid: link.link_label for c in creators for link in c.base.links.get_incoming().all()
    }
    for i, atoms in enumerate(labelled.iter_frames()):
        assert atoms.info["parent_index"] == i
        assert atoms.info["source"] == "test"  # metadata of the input frame kept
        job = jobs[atoms.info["calc_uuid"]]
        assert inputs_of_creators[job.outputs.labels.uuid] == f"frame_{i}"  # the parser's labels node
        assert np.allclose(job.inputs.structure.get_ase().positions, atoms.positions)
        assert job.inputs.structure.creator.process_label == "extract_frames"
    energies = results["guest_energies"].get_dict()
    assert energies["units"] == "eV"
    guest_job = orm.load_node(energies["calc_uuids"]["CO2"])
    assert len(guest_job.inputs.structure.sites) == 3
    assert energies["energies"]["CO2"] == pytest.approx(
        -11.544 * 27.2114, abs=0.05
    )  # GFN1-xTB: -11.544 Hartree
    print(f"fast labelling of 2 frames + 1 guest: {elapsed:.1f} s")


def test_scf_failure_recovered(require_code):
    """MAX_SCF 1 with a tight EPS_SCF leaves the SCF unconverged for real; the handler restarts, converges."""
    code = require_code("cp2k")
    structure = orm.StructureData(ase=water())
    overrides = {"parameters": {"FORCE_EVAL": {"DFT": {"SCF": {"MAX_SCF": 1, "EPS_SCF": 1.0e-8}}}}}
    builder = Cp2kSinglePointWorkChain.get_builder_from_protocol(code, structure, "fast", overrides=overrides)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    jobs = sorted(calcjobs(node), key=lambda n: n.ctime)
    assert len(jobs) == 2
    first_output = jobs[0].outputs.retrieved.base.repository.get_object_content("aiida.out")
    assert "SCF run NOT converged" in first_output
    assert jobs[0].exit_status == jobs[0].process_class.exit_codes.ERROR_SCF_NOT_CONVERGED.status
    assert jobs[1].is_finished_ok and "labels" in jobs[1].outputs
    second = jobs[1].inputs.parameters.get_dict()["FORCE_EVAL"]["DFT"]
    assert second["SCF"]["MAX_SCF"] == 200 and second["SCF"]["SCF_GUESS"] == "RESTART"
    assert jobs[1].inputs.parent_calc_folder.uuid == jobs[0].outputs.remote_folder.uuid
    assert "SCF run NOT converged" not in jobs[1].outputs.retrieved.base.repository.get_object_content(
        "aiida.out"
    )
    assert results["final_parameters"]["FORCE_EVAL"]["DFT"]["SCF"]["MAX_SCF"] == 200


def test_scf_failure_persistent(require_code):
    """EPS_SCF 0 (never reached) fails through every SCF stage and ends with ERROR_SCF_NOT_CONVERGED."""
    code = require_code("cp2k")
    structure = orm.StructureData(ase=water())
    overrides = {"parameters": {"FORCE_EVAL": {"DFT": {"SCF": {"MAX_SCF": 5, "EPS_SCF": 0.0}}}}}
    builder = Cp2kSinglePointWorkChain.get_builder_from_protocol(code, structure, "fast", overrides=overrides)
    _, node = run_get_node(builder)
    # the third stage's Broyden mixer reaches a zero residual and CP2K aborts ("SVD failed"): the work chain
    # stops either with ERROR_SCF_NOT_CONVERGED or, as here with CP2K 2023.1, ERROR_UNRECOVERABLE_FAILURE
    codes = Cp2kSinglePointWorkChain.exit_codes
    assert node.exit_status in (
        codes.ERROR_SCF_NOT_CONVERGED.status,
        codes.ERROR_UNRECOVERABLE_FAILURE.status,
    )
    jobs = sorted(calcjobs(node), key=lambda n: n.ctime)
    assert len(jobs) == 4  # the original settings + three stages
    assert "SMEAR" in jobs[2].inputs.parameters.get_dict()["FORCE_EVAL"]["DFT"]["SCF"]


def test_failed_frame_recorded_and_skipped(require_code):
    """An OH radical (odd electron count: CP2K aborts) is recorded in `failed`; the others are labelled."""
    code = require_code("cp2k")
    radical = Atoms("OH", positions=[[2.5, 2.5, 2.5], [3.257, 3.086, 2.5]], cell=[5, 5, 5], pbc=True)
    structures = StructureSetData.from_frames([water(0.0), radical, water(0.05)])
    builder = LabellingWorkChain.get_builder_from_protocol(code, structures, "fast", max_failed_fraction=0.5)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    assert [a.info["parent_index"] for a in results["labelled"].iter_frames()] == [0, 2]
    failed = results["failed"].get_dict()
    assert failed["count"] == 1 and failed["total"] == 3
    assert failed["frames"][0]["index"] == 1
    assert "odd number of electrons" in failed["frames"][0]["reason"]

    # the same set with the default max_failed_fraction (0.1): finishes its work, then fails
    builder.max_failed_fraction = orm.Float(0.1)
    results, node = run_get_node(builder)
    assert node.exit_status == LabellingWorkChain.exit_codes.ERROR_TOO_MANY_FAILURES.status
    assert len(results["labelled"]) == 2 and results["failed"]["count"] == 1


def test_elements_without_basis_fail_before_running(require_code):
    """A DFT protocol without a basis for an element refuses the set before any calculation."""
    code = require_code("cp2k")
    structures = StructureSetData.from_frames(
        [Atoms("LaO", positions=[[0, 0, 0], [2, 0, 0]], cell=[6, 6, 6], pbc=True)]
    )
    with pytest.raises(ValueError, match=r"elements \['La'\] have no basis set/pseudopotential"):
        LabellingWorkChain.get_builder_from_protocol(code, structures, "stringent")
    # a hand-written parameter set without the element is refused by the input validator
    builder = LabellingWorkChain.get_builder_from_protocol(
        code,
        StructureSetData.from_frames([water()]),
        "balanced",
    )
    builder.structures = structures
    n_jobs = orm.QueryBuilder().append(orm.CalcJobNode).count()
    with pytest.raises(ValueError, match=r"elements \['La'\] have no &KIND section"):
        run_get_node(builder)
    assert orm.QueryBuilder().append(orm.CalcJobNode).count() == n_jobs


def _direct_cp2k(job, workdir) -> tuple[float, np.ndarray]:
    """Run cp2k.psmp by hand on the input of ``job``, forces to a separate file; parse and convert here."""
    text = job.base.repository.get_object_content("aiida.inp")
    text = re.sub(r"&FORCES ON", "&FORCES ON\n         FILENAME direct", text)
    (workdir / "aiida.inp").write_text(text)
    (workdir / "aiida.coords.xyz").write_text(job.base.repository.get_object_content("aiida.coords.xyz"))
    run = subprocess.run(
        [shutil.which("cp2k.psmp") or "cp2k.psmp", "-i", "aiida.inp"],
        cwd=workdir,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=True,
    )
    energy_hartree = float(
        re.findall(r"ENERGY\| Total FORCE_EVAL \( QS \) energy \[a\.u\.\]:\s+(\S+)", run.stdout)[-1]
    )
    forces_text = (workdir / "aiida-direct-1_0.xyz").read_text()
    rows = [line.split() for line in forces_text.splitlines()]
    forces = np.array([[float(v) for v in row[3:6]] for row in rows if len(row) == 6 and row[0].isdigit()])
    hartree_ev, bohr_angstrom = 27.211386245988, 0.529177210903
    return energy_hartree * hartree_ev, forces * hartree_ev / bohr_angstrom


@pytest.mark.parametrize(
    ("protocol", "overrides"),
    [
        ("fast", None),
        # PBE-D3 / DZVP-MOLOPT-SR-GTH with small grids to keep the test short
        (
            "balanced",
            {
                "parameters": {
                    "FORCE_EVAL": {"DFT": {"MGRID": {"CUTOFF": 200, "REL_CUTOFF": 30, "NGRIDS": 3}}}
                }
            },
        ),
    ],
)
def test_units_against_direct_cp2k(require_code, tmp_path, protocol, overrides):
    """Stored labels (eV, eV/Angstrom) equal a direct CP2K run of the same input converted by hand."""
    code = require_code("cp2k")
    structures = StructureSetData.from_frames([water(0.03)])
    builder = LabellingWorkChain.get_builder_from_protocol(code, structures, protocol, overrides=overrides)
    start = time.perf_counter()
    results, node = run_get_node(builder)
    elapsed = time.perf_counter() - start
    assert node.is_finished_ok, node.exit_message
    atoms = results["labelled"].get_frame(0)
    job = orm.load_node(atoms.info["calc_uuid"])
    energy, forces = _direct_cp2k(job, tmp_path)
    assert fr.get_energy(atoms) == pytest.approx(energy, abs=1e-6)
    assert forces.shape == (3, 3)
    assert np.allclose(fr.get_forces(atoms), forces, atol=1e-5)
    assert np.abs(forces).max() > 1e-3  # a distorted molecule: the comparison is not trivially zero
    print(f"{protocol}: one water single point through the work chain in {elapsed:.1f} s")


def test_stress_sign_and_units_by_finite_differences(require_code):
    """REF_stress (eV/Angstrom^3, ASE sign) matches dE/d(strain)/V from energies of strained copies."""
    code = require_code("cp2k")
    step = 1.0e-3
    frames = []
    for scale in (1.0 - step, 1.0, 1.0 + step):
        atoms = water(0.03)
        atoms.set_cell(atoms.cell * scale, scale_atoms=True)
        frames.append(atoms)
    overrides = {"parameters": {"FORCE_EVAL": {"DFT": {"SCF": {"EPS_SCF": 1.0e-9}}}}}
    builder = LabellingWorkChain.get_builder_from_protocol(
        code, StructureSetData.from_frames(frames), "fast", overrides=overrides, compute_stress=True
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    minus, centre, plus = results["labelled"].get_frames()
    # isotropic strain: dE/d(eps) = V * trace(stress) in ASE's convention
    trace_fd = (fr.get_energy(plus) - fr.get_energy(minus)) / (2 * step) / centre.get_volume()
    trace_label = float(np.sum(centre.info[fr.STRESS_KEY][:3]))
    assert abs(trace_label) > 1e-4  # a box this small is under real stress
    assert trace_label == pytest.approx(trace_fd, rel=0.02)
