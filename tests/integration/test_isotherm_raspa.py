"""A short real CO2 isotherm and loading snapshots in MIL-47 (shipped with RASPA2), run with RASPA."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_mofmlp.common.frames import guest_ids
from aiida_mofmlp.workflows.functions.raspa import cif_charges
from aiida_mofmlp.workflows.raspa.isotherm import IsothermWorkChain, validate_parameters


@pytest.mark.integration
def test_co2_isotherm_and_snapshots(require_code, raspa_share_dir):
    cif = orm.CifData(file=str(raspa_share_dir / "structures" / "cif" / "MIL-47.cif"))
    overrides = {
        "cutoff": 8.0,  # 3x1x2 unit cells instead of 4x2x2: keeps the test short
        "pressures": [0.1, 1.0],
        "widom_cycles": 50,
        "init_cycles": 20,
        "prod_cycles": 50,
        "snapshot_loadings": [1, 2],
        "snapshot_init_cycles": 10,
        "snapshot_cycles": 2,
        "equilibration_tolerance": None,
    }
    builder = IsothermWorkChain.get_builder_from_protocol(
        require_code("raspa"), cif, "CO2", protocol="fast", overrides=overrides
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    # every RASPA calculation went through the mofmlp.raspa parser (the work chain reads no files)
    calcs = [child for child in node.called if child.process_type == "aiida.calculations:raspa"]
    assert len(calcs) == 5  # Widom, 2 pressures, 2 loadings
    assert {calc.get_option("parser_name") for calc in calcs} == {"mofmlp.raspa"}
    assert all("loading_blocks" in calc.outputs.output_parameters["framework"] for calc in calcs)
    seeds = [calc.inputs.parameters["GeneralSettings"]["RandomSeed"] for calc in calcs]
    assert len(set(seeds)) == len(calcs), f"RASPA runs share a random seed: {seeds}"

    assert results["force_field"]["unit_cells"] == [3, 1, 2]
    widom = results["widom"].get_dict()
    assert widom["henry_coefficient"] > 0
    assert widom["adsorption_energy"] < 0  # kJ/mol: CO2 is attracted by MIL-47

    isotherm = results["isotherm"].get_dict()
    assert isotherm["pressure"] == [0.1, 1.0]
    assert isotherm["failed_pressures"] == []
    assert all(value >= 0 for value in isotherm["mol_kg"])
    assert isotherm["mol_kg"][1] > isotherm["mol_kg"][0]
    assert len(isotherm["mol_kg_dev"]) == 2
    assert all(h is None or h < 0 for h in isotherm["enthalpy_of_adsorption"])  # kJ/mol, exothermic
    print("widom:", widom)
    print(
        "isotherm:", {k: isotherm[k] for k in ("pressure", "mol_kg", "mol_kg_dev", "enthalpy_of_adsorption")}
    )

    snapshots = results["snapshots"]
    assert len(snapshots) == 2
    n_cells = 6
    n_framework = 72 * n_cells
    for frame, loading in zip(snapshots.iter_frames(), [1, 2], strict=True):
        ids = guest_ids(frame)
        assert frame.info["loading"] == loading
        assert frame.info["source"] == "raspa"
        assert (ids == 0).sum() == n_framework
        assert len(set(ids.tolist()) - {0}) == loading * n_cells
        # guests sit in the pores of the same framework RASPA saw: no contact closer than 2 Angstrom
        distances = frame.get_all_distances(mic=True)[np.ix_(ids > 0, ids == 0)]
        assert distances.min() > 2.0
        # guest-guest contacts count too, so the recorded contact is at most the guest-framework one
        assert 1.0 < frame.info["min_guest_contact"] <= distances.min() + 1e-6  # extxyz round-off
        for gid in set(ids.tolist()) - {0}:
            molecule = frame[ids == gid]
            assert molecule.get_chemical_symbols() == ["C", "O", "O"]
            c, o1, o2 = molecule.positions
            assert np.linalg.norm(o1 - c) == pytest.approx(1.16, abs=1e-3)
            assert np.linalg.norm(o2 - c) == pytest.approx(1.16, abs=1e-3)
            assert np.linalg.norm(o1 - o2) == pytest.approx(2.32, abs=1e-3)  # linear


@pytest.mark.integration
def test_same_seed_repeats_the_monte_carlo_and_another_seed_does_not(require_code, raspa_share_dir):
    """RASPA's RandomSeed comes from ``seed``: the same seed gives the same Henry coefficient and snapshot to
    the last digit, another seed a different one (RASPA seeds from the clock otherwise)."""
    cif = orm.CifData(file=str(raspa_share_dir / "structures" / "cif" / "MIL-47.cif"))
    overrides = {
        "cutoff": 8.0,
        "run_isotherm": False,
        "widom_cycles": 20,
        "snapshot_loadings": [1],
        "snapshot_init_cycles": 5,
        "snapshot_cycles": 1,
    }

    def run(seed: int):
        builder = IsothermWorkChain.get_builder_from_protocol(
            require_code("raspa"), cif, "CO2", protocol="fast", overrides={**overrides, "seed": seed}
        )
        results, node = run_get_node(builder)
        assert node.is_finished_ok, (node.exit_status, node.exit_message)
        frame = next(results["snapshots"].iter_frames())
        return results["widom"]["henry_coefficient"], frame.positions

    henry, positions = run(3)
    henry_again, positions_again = run(3)
    henry_other, positions_other = run(4)
    assert henry_again == henry
    np.testing.assert_array_equal(positions_again, positions)
    assert henry_other != henry
    assert not np.array_equal(positions_other, positions)


def test_seed_must_be_a_non_negative_integer():
    assert validate_parameters({"seed": 7}) is None
    for bad in (-1, 1.5, "3", True, 2**31):
        message = validate_parameters({"seed": bad})
        assert message is not None and message.startswith(f"seed={bad!r}"), (bad, message)


@pytest.mark.integration
def test_drift_check_fails_with_named_exit_code_and_keeps_results(require_code, raspa_share_dir):
    """A zero-tolerance drift check cannot pass: the point is flagged, kept, and the exit code is named.

    Also covers CIF charges (MIL-47.cif carries _atom_site_charge) with Ewald.
    """
    cif = orm.CifData(file=str(raspa_share_dir / "structures" / "cif" / "MIL-47.cif"))
    overrides = {
        "framework_charges": "cif",
        "cutoff": 8.0,
        "pressures": [1.0],
        "run_widom": False,
        "run_snapshots": False,
        "init_cycles": 10,
        "prod_cycles": 50,
        "equilibration_tolerance": 1e-9,
    }
    builder = IsothermWorkChain.get_builder_from_protocol(
        require_code("raspa"), cif, "CO2", protocol="fast", overrides=overrides
    )
    results, node = run_get_node(builder)
    assert node.exit_status == IsothermWorkChain.exit_codes.ERROR_GCMC_NOT_EQUILIBRATED.status
    assert "1.0" in node.exit_message
    assert results["force_field"]["framework_charges"] == "cif"
    assert results["force_field"]["electrostatics"] == "Ewald"
    charges = cif_charges(results["framework"])  # the P1 CIF RASPA read keeps MIL-47's charges
    assert len(charges) == 72 and abs(charges.sum()) < 1e-6 and charges.max() == pytest.approx(1.68)
    isotherm = results["isotherm"].get_dict()
    assert isotherm["pressure"] == [1.0]
    assert isotherm["equilibrated"] == [False]
    assert abs(isotherm["drift"][0]) > 1e-9
    assert isotherm["mol_kg"][0] > 0
    assert "widom" not in results and "snapshots" not in results


@pytest.mark.integration
def test_raspa_failure_at_one_pressure_keeps_the_others(require_code, raspa_share_dir, tmp_path):
    """RASPA cannot be made to crash at one chosen pressure, so a wrapper around the real `simulate` exits
    without output for 10 bar (as a crashed RASPA does); 0.1 bar runs the real code."""
    import os

    simulate = require_code("raspa").get_executable()
    wrapper = tmp_path / "simulate_crash_at_10bar"
    wrapper.write_text(
        "#!/bin/bash\n"
        'if grep -q "ExternalPressure 1000000.0" "$1"; then echo "injected crash" >&2; exit 1; fi\n'
        f'exec {simulate} "$@"\n'
    )
    os.chmod(wrapper, 0o755)
    code = orm.InstalledCode(
        computer=require_code("raspa").computer,
        filepath_executable=str(wrapper),
        default_calc_job_plugin="raspa",
        label="raspa-crash",
    ).store()
    cif = orm.CifData(file=str(raspa_share_dir / "structures" / "cif" / "MIL-47.cif"))
    overrides = {
        "cutoff": 8.0,
        "pressures": [10.0, 0.1],
        "run_widom": False,
        "run_snapshots": False,
        "init_cycles": 10,
        "prod_cycles": 20,
        "equilibration_tolerance": None,
    }
    builder = IsothermWorkChain.get_builder_from_protocol(
        code, cif, "CO2", protocol="fast", overrides=overrides
    )
    results, node = run_get_node(builder)
    assert node.exit_status == IsothermWorkChain.exit_codes.ERROR_GCMC_FAILED.status
    assert "10.0" in node.exit_message
    isotherm = results["isotherm"].get_dict()
    assert isotherm["pressure"] == [0.1]
    assert len(isotherm["mol_kg"]) == 1
    assert [item["pressure"] for item in isotherm["failed_pressures"]] == [10.0]


@pytest.mark.integration
@pytest.mark.parametrize("name", ["N2", "CH4", "H2O", "H2"])
def test_other_guests_widom_and_snapshot_geometry(require_code, raspa_share_dir, name):
    """Dummy sites (N2, H2O, H2) and united atoms (CH4) map back to whole atomistic molecules."""
    from aiida_mofmlp.data.guest import GuestMoleculeData

    guest = GuestMoleculeData.builtin(name)
    cif = orm.CifData(file=str(raspa_share_dir / "structures" / "cif" / "MIL-47.cif"))
    overrides = {
        "cutoff": 8.0,
        "widom_cycles": 20,
        "run_isotherm": False,
        "snapshot_loadings": [1],
        "snapshot_init_cycles": 5,
        "snapshot_cycles": 2,
    }
    builder = IsothermWorkChain.get_builder_from_protocol(
        require_code("raspa"), cif, guest, protocol="fast", overrides=overrides
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    assert results["widom"]["henry_coefficient"] > 0
    frame = results["snapshots"].get_frame(0)
    ids = guest_ids(frame)
    reference = guest.get_ase()
    reference_distances = reference.get_all_distances()
    assert len(set(ids.tolist()) - {0}) == 6  # 1 per cell x 3x1x2 cells
    for gid in set(ids.tolist()) - {0}:
        molecule = frame[ids == gid]
        assert molecule.get_chemical_symbols() == guest.symbols
        assert molecule.get_all_distances() == pytest.approx(reference_distances, abs=1e-4)
