"""Calcfunctions of the RASPA isotherm work chain: the framework's CIF (charges), the force field files,
the isotherm table, loading snapshots and Widom results, each with its provenance."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mofmlp.data.guest import GuestMoleculeData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.raspa import forcefield as ff
from aiida_mofmlp.workflows.raspa import results as rr

#: the framework's name in RASPA's input and output
FRAMEWORK_NAME = "framework"


def framework_atoms(structure: orm.StructureData | orm.CifData):
    """ASE Atoms of the framework input (a CifData is expanded to P1 by ASE)."""
    return structure.get_ase()


def cif_charges(cif: orm.CifData) -> np.ndarray:
    """Per-atom charges (e) of a CIF's ``_atom_site_charge``, expanded by symmetry like ASE's atoms.

    Raises ``ValueError`` when the CIF has no charges or they cannot be matched to the atoms.
    """
    atoms = cif.get_ase(store_tags=True)
    charges = atoms.info.get("_atom_site_charge")
    if charges is None:
        raise ValueError(
            f"CifData<{cif.pk or 'unstored'}> ({cif.filename}) has no _atom_site_charge column; "
            "use framework_charges='none' or give a CIF with charges"
        )
    charges = np.asarray(charges, dtype=float)
    kinds = atoms.arrays.get("spacegroup_kinds")
    if kinds is not None:
        return charges[kinds]
    if len(charges) != len(atoms):
        raise ValueError(f"{cif.filename}: {len(charges)} charges for {len(atoms)} atoms")
    return charges


@calcfunction
def prepare_framework(structure: orm.Data, parameters: orm.Dict) -> orm.CifData:
    """The P1 CIF for RASPA, atoms as ASE expands them; charges from the input CIF or all zero.

    RASPA and the snapshot frames then see exactly the same atoms, whatever the CIF's symmetry setting.
    """
    import io

    atoms = framework_atoms(structure)
    charges = cif_charges(structure) if parameters["framework_charges"] == "cif" else None
    text = ff.p1_cif(atoms, charges=charges, name=FRAMEWORK_NAME)
    return orm.CifData(file=io.BytesIO(text.encode()), filename=f"{FRAMEWORK_NAME}.cif")


@calcfunction
def write_force_field(framework: orm.CifData, guest: GuestMoleculeData, parameters: orm.Dict) -> dict:
    """RASPA force-field files: pseudo atoms, Lennard-Jones mixing rules, rule overrides, guest molecule."""
    import io

    elements = framework.get_ase().get_chemical_symbols()
    lj = ff.framework_lj_parameters(elements, parameters.get_dict().get("force_field_parameters"))
    texts = {
        "pseudo_atoms": ("pseudo_atoms.def", ff.pseudo_atoms_def(lj, guest.sites)),
        "mixing_rules": ("force_field_mixing_rules.def", ff.mixing_rules_def(lj, guest.sites)),
        "force_field": ("force_field.def", ff.force_field_def()),
        "molecule": (
            f"{guest.name}.def",
            ff.molecule_def(
                guest.name,
                guest.sites,
                guest.critical_temperature,
                guest.critical_pressure,
                guest.acentric_factor,
            ),
        ),
    }
    outputs = {
        key: orm.SinglefileData(io.BytesIO(text.encode()), filename=filename)
        for key, (filename, text) in texts.items()
    }
    p = parameters.get_dict()
    cell = np.asarray(framework.get_ase().cell)
    charged = p["framework_charges"] != "none" or any(abs(site["charge"]) > 0 for site in guest.sites)
    outputs["summary"] = orm.Dict(
        {
            "framework": "UFF",
            "framework_parameters": {element: {"epsilon": e, "sigma": s} for element, (e, s) in lj.items()},
            "guest": guest.force_field,
            "mixing": "Lorentz-Berthelot",
            "potential": "Lennard-Jones, shifted, no tail corrections",
            "energy_unit": "K",
            "electrostatics": "Ewald" if charged else "none",
            "framework_charges": p["framework_charges"],
            "cutoff": p["cutoff"],
            "cutoff_unit": "Angstrom",
            "unit_cells": ff.unit_cells_for_cutoff(cell, p["cutoff"]),
            "perpendicular_widths": ff.perpendicular_widths(cell).tolist(),
        }
    )
    return outputs


#: per-pressure lists in the ``isotherm`` output (sorted by pressure; only pressures whose RASPA run finished)
ISOTHERM_FIELDS = (
    "pressure",
    "molecules_per_cell",
    "molecules_per_cell_dev",
    "mol_kg",
    "mol_kg_dev",
    "enthalpy_of_adsorption",
    "enthalpy_of_adsorption_dev",
    "drift",
    "equilibrated",
    "conversion_factor_molec_uc_to_mol_kg",
)


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


@calcfunction
def merge_isotherm(parameters: orm.Dict, summary: orm.Dict, **results) -> orm.Dict:
    """The isotherm from the pressures that finished, with errors, drift checks and the failed pressures.

    ``results`` maps each finished pressure's key to the ``output_parameters`` of its RASPA calculation
    (parsed by ``mofmlp.raspa``: loading blocks with their drift, enthalpy of adsorption).
    """
    p = parameters.get_dict()
    info = summary.get_dict()
    guest = info["guest"]
    points = []
    for key, pressure in info["pressures"].items():
        if key not in results:
            continue
        out = results[key].get_dict()[FRAMEWORK_NAME]
        component = out["components"][guest]
        factor = component["conversion_factor_molec_uc_to_mol_kg"]
        drift = out["loading_blocks"]["components"][guest]["relative_drift"]
        enthalpy = out["enthalpy_of_adsorption"]["total"]
        enthalpy, enthalpy_dev = enthalpy["average"], enthalpy["dev"]
        tolerance = p["equilibration_tolerance"]
        points.append(
            {
                "pressure": pressure,
                "molecules_per_cell": component["loading_absolute_average"],
                "molecules_per_cell_dev": component["loading_absolute_dev"],
                "mol_kg": _scaled(component["loading_absolute_average"], factor),
                "mol_kg_dev": _scaled(component["loading_absolute_dev"], factor),
                "enthalpy_of_adsorption": enthalpy,
                "enthalpy_of_adsorption_dev": enthalpy_dev,
                "drift": drift,
                "equilibrated": tolerance is None or drift is None or abs(drift) <= tolerance,
                "conversion_factor_molec_uc_to_mol_kg": factor,
            }
        )
    points.sort(key=lambda point: point["pressure"])
    isotherm = {
        "guest": guest,
        "temperature": p["temperature"],
        "temperature_unit": "K",
        "pressure_unit": "bar",
        "loading_unit": "mol/kg",
        "loading_cell_unit": "molecules/unit cell",
        "enthalpy_of_adsorption_unit": "kJ/mol",
        "equilibration_tolerance": p["equilibration_tolerance"],
        "failed_pressures": info["failed"],
        **{field: [point[field] for point in points] for field in ISOTHERM_FIELDS},
    }
    return orm.Dict(isotherm)


def final_guest_sites(output_parameters: dict, guest_name: str, n_sites: int) -> np.ndarray:
    """Guest site positions (Angstrom, n_molecules x n_sites x 3) of a canonical run's parsed outputs."""
    configuration = output_parameters[FRAMEWORK_NAME].get("final_configuration", {})
    component = configuration.get("components", {}).get(guest_name)
    if component is None:
        return np.zeros((0, n_sites, 3))
    sites = np.asarray(component["site_positions"], dtype=float)
    if sites.ndim != 3 or sites.shape[1:] != (n_sites, 3):
        raise ValueError(
            f"final configuration of {guest_name} has site positions of shape {sites.shape}, "
            f"but the guest has {n_sites} sites"
        )
    return sites


@calcfunction
def collect_snapshots(
    framework: orm.CifData, guest: GuestMoleculeData, summary: orm.Dict, **results
) -> StructureSetData:
    """Framework + guest frames from the final configuration of each canonical run, one per loading.

    ``results`` maps each finished loading's key to the ``output_parameters`` of its RASPA calculation
    (parsed by ``mofmlp.raspa``, with the ``final_configuration`` of the guests).
    """
    info = summary.get_dict()
    base = framework.get_ase()
    site_reference = np.array([site["position"] for site in guest.sites])
    atom_reference = np.array(guest.positions)
    frames = []
    for key, meta in info["loadings"].items():
        if key not in results:
            continue
        sites = final_guest_sites(results[key].get_dict(), guest.name, len(guest.sites))
        atoms = rr.build_snapshot(
            base, info["unit_cells"], guest.symbols, atom_reference, site_reference, sites, seed=info["seed"]
        )
        atoms.info.update(
            {
                "source": "raspa",
                "loading": meta["loading"],
                "n_guests": len(sites),
                "temperature": info["temperature"],
                "config_type": f"raspa_{guest.name}_loading_{meta['loading']}",
                "calc_uuid": meta["uuid"],
                "unit_cells": " ".join(str(n) for n in info["unit_cells"]),
            }
        )
        contact = rr.min_guest_contact(atoms)
        if contact is not None:
            atoms.info["min_guest_contact"] = contact
        frames.append(atoms)
    return StructureSetData.from_frames(frames)


@calcfunction
def extract_widom(output_parameters: orm.Dict, guest: orm.Str) -> orm.Dict:
    """Henry coefficient (mol/kg/Pa) and average adsorption energy (kJ/mol) from a Widom run."""
    component = output_parameters.get_dict()[FRAMEWORK_NAME]["components"][guest.value]
    return orm.Dict(
        {
            "henry_coefficient": component.get("henry_coefficient_average"),
            "henry_coefficient_dev": component.get("henry_coefficient_dev"),
            "henry_coefficient_unit": component.get("henry_coefficient_unit", "mol/kg/Pa"),
            "adsorption_energy": component.get("adsorption_energy_widom_average"),
            "adsorption_energy_dev": component.get("adsorption_energy_widom_dev"),
            "adsorption_energy_unit": component.get("adsorption_energy_widom_unit", "kJ/mol"),
        }
    )
