"""Regenerate the stored RASPA outputs of the parser tests by running the real RASPA2 ``simulate``.

Three short runs of CO2 (TraPPE) in MIL-47 (the CIF shipped with RASPA2, with its charges, Ewald), set up
as IsothermWorkChain sets them up (UFF framework, Lorentz-Berthelot, cutoff 8 Angstrom, 3x1x2 unit cells):

* ``gcmc``: GCMC at 1 bar, 20 + 50 cycles (loading blocks, enthalpy of adsorption);
* ``widom``: Widom insertion, 50 cycles (Henry coefficient, no enthalpy);
* ``nvt``: canonical MC with 6 molecules (1 per unit cell), 10 + 2 cycles (final guest positions).

Each case folder mirrors the retrieved folder of a RaspaCalculation (``Output/System_0``,
``Restart/System_0``) plus the ``parameters.json`` given to aiida-raspa. Run with the project's venv::

    .venv/bin/python tests/parsers/raspa_outputs/generate.py

The outputs depend on RASPA's random numbers (seeded from the clock): rerunning changes the numbers that
tests/parsers/test_raspa_parser.py checks.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import RASPA2
from aiida_raspa.utils import RaspaInput
from ase.io import read

from aiida_mofmlp.data.guest import BUILTIN_GUESTS
from aiida_mofmlp.workflows.raspa import forcefield as ff

HERE = Path(__file__).parent
SHARE = Path(RASPA2.__file__).parent / "share" / "raspa"
SIMULATE = Path(shutil.which("simulate") or Path(__file__).parents[3] / ".venv" / "bin" / "simulate")
UNIT_CELLS = "3 1 2"  # cutoff 8 Angstrom in MIL-47


def _guest_sites(name: str) -> list[dict]:
    guest = BUILTIN_GUESTS[name]
    return [
        dict(site, position=site.get("position", guest["positions"][site.get("atom", 0)]))
        for site in guest["sites"]
    ]


def _parameters(cycles: int, init_cycles: int, pressure_pa: float, component: dict) -> dict:
    general = {
        "SimulationType": "MonteCarlo",
        "NumberOfCycles": cycles,
        "NumberOfInitializationCycles": init_cycles,
        "PrintEvery": max(1, (cycles + init_cycles) // 10),
        "Forcefield": "Local",
        "CutOffVDW": 8.0,
        "CutOffChargeCharge": 8.0,
        "ChargeMethod": "Ewald",
        "EwaldPrecision": 1.0e-5,
        "UseChargesFromCIFFile": True,
        "RemoveAtomNumberCodeFromLabel": True,
    }
    system = {
        "framework": {
            "type": "Framework",
            "UnitCells": UNIT_CELLS,
            "ExternalTemperature": 298.0,
            "ExternalPressure": pressure_pa,
        }
    }
    return {"GeneralSettings": general, "System": system, "Component": {"CO2": component}}


CASES = {
    "gcmc": _parameters(
        50,
        20,
        1.0e5,
        {
            "MoleculeDefinition": "Local",
            "TranslationProbability": 1.0,
            "RotationProbability": 1.0,
            "ReinsertionProbability": 1.0,
            "SwapProbability": 2.0,
            "CreateNumberOfMolecules": 0,
        },
    ),
    "widom": _parameters(
        50, 0, 0.0, {"MoleculeDefinition": "Local", "WidomProbability": 1.0, "CreateNumberOfMolecules": 0}
    ),
    "nvt": _parameters(
        2,
        10,
        0.0,
        {
            "MoleculeDefinition": "Local",
            "TranslationProbability": 1.0,
            "RotationProbability": 1.0,
            "ReinsertionProbability": 1.0,
            "CreateNumberOfMolecules": 6,
        },
    ),
}


def write_inputs(folder: Path, parameters: dict) -> None:
    """The framework CIF, force-field files, molecule definition and ``simulation.input`` in ``folder``."""
    atoms = read(SHARE / "structures" / "cif" / "MIL-47.cif", store_tags=True)
    charges = np.asarray(atoms.info["_atom_site_charge"], dtype=float)[atoms.arrays["spacegroup_kinds"]]
    (folder / "framework.cif").write_text(ff.p1_cif(atoms, charges=charges))
    guest = BUILTIN_GUESTS["CO2"]
    sites = _guest_sites("CO2")
    lj = ff.framework_lj_parameters(atoms.get_chemical_symbols())
    (folder / "pseudo_atoms.def").write_text(ff.pseudo_atoms_def(lj, sites))
    (folder / "force_field_mixing_rules.def").write_text(ff.mixing_rules_def(lj, sites))
    (folder / "force_field.def").write_text(ff.force_field_def())
    molecule = ff.molecule_def(
        "CO2", sites, guest["critical_temperature"], guest["critical_pressure"], guest["acentric_factor"]
    )
    (folder / "CO2.def").write_text(molecule)
    (folder / "simulation.input").write_text(RaspaInput(parameters).render())


def run_case(name: str, parameters: dict) -> None:
    """Run RASPA for one case and copy its Output and Restart folders here."""
    target = HERE / name
    shutil.rmtree(target, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_inputs(work, parameters)
        subprocess.run([str(SIMULATE), "simulation.input"], cwd=work, check=True, capture_output=True)
        for sub in ("Output", "Restart"):
            shutil.copytree(work / sub, target / sub)
    (target / "parameters.json").write_text(json.dumps(parameters, indent=2) + "\n")


if __name__ == "__main__":
    for case, case_parameters in CASES.items():
        run_case(case, case_parameters)
        print(f"{case}: {sorted(str(p.relative_to(HERE)) for p in (HERE / case).rglob('*') if p.is_file())}")
