"""Calcfunctions of the adsorption work chain: starting frames, charges, isotherm and heat of adsorption."""

from __future__ import annotations

import io
import math

import numpy as np
from aiida import orm
from aiida.engine import calcfunction
from ase import Atoms
from ase.data import atomic_numbers, vdw_radii
from scipy.spatial.transform import Rotation

from aiida_mofmlp.common.frames import GUEST_ID_KEY
from aiida_mofmlp.common.timeseries import block_average, equilibrated_mean
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.adsorption.enthalpy import differential_heats, heat_of_adsorption
from aiida_mofmlp.engines.adsorption.occupancy import empty_box_correction, henry_molecules_per_cell
from aiida_mofmlp.workflows.functions.labels import boxed_guest

#: vdW radius used when ASE has none for an element (Angstrom)
_FALLBACK_RADIUS = 2.0


def _sphere_volume(symbols) -> float:
    radii = [vdw_radii[atomic_numbers[s]] for s in symbols]
    return float(sum(4.0 / 3.0 * math.pi * (r if np.isfinite(r) else _FALLBACK_RADIUS) ** 3 for r in radii))


def max_guests_that_fit(framework: Atoms, guest_symbols: list[str]) -> int:
    """Upper bound on the guests a cell can hold: free volume (cell minus framework vdW spheres) over the
    guest's vdW volume. A loading above it cannot be packed, whatever the force field."""
    free = framework.get_volume() - _sphere_volume(framework.get_chemical_symbols())
    return max(0, int(free // _sphere_volume(guest_symbols)))


def place_guests(
    framework: Atoms, guest: Atoms, n_guests: int, seed: int, min_distance: float = 2.0
) -> Atoms:
    """``framework`` with ``n_guests`` randomly placed, randomly oriented copies of ``guest`` (guest_id set).

    Each copy keeps at least ``min_distance`` Angstrom from every atom already placed (minimum image).
    Raises ValueError when 2000 tries per guest find no room.
    """
    rng = np.random.default_rng(seed)
    atoms = framework.copy()
    atoms.arrays[GUEST_ID_KEY] = np.zeros(len(atoms), dtype=int)
    centred = guest.positions - guest.get_center_of_mass()
    for k in range(1, n_guests + 1):
        for _ in range(2000):
            placed = Rotation.random(random_state=rng).apply(centred) + rng.random(3) @ atoms.cell.array
            trial = atoms + Atoms(guest.get_chemical_symbols(), positions=placed)
            new = np.arange(len(atoms), len(trial))
            if all(
                trial.get_distances(int(i), np.arange(len(atoms)), mic=True).min() >= min_distance
                for i in new
            ):
                ids = np.concatenate([atoms.arrays[GUEST_ID_KEY], np.full(len(guest), k, dtype=int)])
                trial.arrays[GUEST_ID_KEY] = ids
                atoms = trial
                break
        else:
            raise ValueError(f"no room for guest {k} of {n_guests} at {min_distance} A from other atoms")
    atoms.info["loading"] = int(n_guests)
    return atoms


@calcfunction
def loaded_framework(structure: orm.StructureData, guest: orm.Data, n_guests: orm.Int, seed: orm.Int):
    """One frame: the framework with ``n_guests`` guests at random positions and orientations."""
    atoms = place_guests(structure.get_ase(), guest.get_ase(), int(n_guests.value), int(seed.value))
    return StructureSetData.from_frames([atoms])


@calcfunction
def framework_frame(structure: orm.StructureData):
    """The framework as a one-frame set (the input of the xTB charge calculation)."""
    return StructureSetData.from_frames([structure.get_ase()])


@calcfunction
def gas_phase_guest(guest: orm.Data, box: orm.Float):
    """One frame: the guest alone in a periodic cubic box of edge ``box`` Angstrom (guest_id 1)."""
    atoms = boxed_guest(guest.get_ase(), float(box.value), guest.name)
    return StructureSetData.from_frames([atoms])


#: the charge-fit methods of CP2K's &RESP section, as recorded on the charges node
CP2K_CHARGE_METHODS = {"repeat": "CP2K REPEAT", "resp": "CP2K RESP"}


def _neutral_charges(atoms: Atoms, raw: np.ndarray, method: str, filename: str, **extra) -> dict:
    """Charges node (made exactly neutral by a uniform shift) and the charged P1 CIF for RASPA."""
    from aiida_mofmlp.workflows.raspa.forcefield import p1_cif

    if len(raw) != len(atoms):
        raise ValueError(f"{len(raw)} charges ({method}) for a framework of {len(atoms)} atoms")
    total = float(raw.sum())
    charges = raw - total / len(raw)
    node = orm.ArrayData()
    node.set_array("charges", charges)
    node.base.attributes.set_many({"method": method, "total_before": total, "unit": "e", **extra})
    text = p1_cif(atoms, charges=charges, name="framework")
    cif = orm.CifData(file=io.BytesIO(text.encode()), filename=filename)
    return {"charges": node, "cif": cif}


@calcfunction
def framework_charges_from_xtb(structure: orm.StructureData, labelled: StructureSetData) -> dict:
    """Framework charges (e) from an xTB single point (``xtb_charges`` array), made exactly neutral.

    Returns ``charges`` (ArrayData ``charges``, attributes ``method``, ``total_before`` and ``unit``) and
    ``cif`` (a P1 CifData with ``_atom_site_charge``, for RASPA's ``framework_charges: cif``).
    """
    frame = labelled.get_frame(0)
    raw = np.asarray(frame.arrays["xtb_charges"], dtype=float)
    method = str(frame.info.get("label_method", "xTB Mulliken"))
    return _neutral_charges(structure.get_ase(), raw, method, "framework_xtb_charges.cif")


@calcfunction
def framework_charges_from_cp2k(
    structure: orm.StructureData, resp_charges: orm.ArrayData, method: orm.Str
) -> dict:
    """Framework charges (e) fitted by CP2K's &RESP section (``method`` repeat or resp), made exactly neutral.

    ``resp_charges``: the ``mofmlp.cp2k`` parser's output (array ``charges``, attributes ``kinds``, and
    ``fit_rms`` / ``fit_rrms`` when CP2K printed them). Returns ``charges`` (ArrayData ``charges``,
    attributes ``method``, ``total_before``, ``unit``, ``fit_rms`` (potential, a.u.) and ``fit_rrms``
    (relative)) and ``cif`` (a P1 CifData with ``_atom_site_charge``, for RASPA's ``framework_charges:
    cif``), like :func:`framework_charges_from_xtb`.
    """
    name = method.value
    if name not in CP2K_CHARGE_METHODS:
        raise ValueError(
            f"method {name!r} is not a CP2K charge method; valid: {', '.join(CP2K_CHARGE_METHODS)}"
        )
    kinds = list(resp_charges.base.attributes.get("kinds"))
    expected = [site.kind_name for site in structure.sites]
    if kinds != expected:
        raise ValueError(f"RESP charges: atoms {kinds} differ from the framework's {expected}")
    attributes = resp_charges.base.attributes.all
    extra = {key: attributes[key] for key in ("fit_rms", "fit_rrms") if key in attributes}
    filename = f"framework_{name}_charges.cif"
    raw = resp_charges.get_array("charges")
    return _neutral_charges(structure.get_ase(), raw, CP2K_CHARGE_METHODS[name], filename, **extra)


def loading_statistics(n_guests, times_ps, n_blocks: int, henry_molecules: float | None = None) -> dict:
    """Loading (molecules/cell) of one GCMC run: equilibration detected, then mean with block and g errors,
    corrected for the empty box that fix gcmc never visits when ``henry_molecules`` (P(1)/P(0), from the
    Widom K_H of the same model) is known (:mod:`aiida_mofmlp.engines.adsorption.occupancy`)."""
    series = np.asarray(n_guests, dtype=float)
    equilibrated = equilibrated_mean(series)
    production = series[equilibrated["t0"] :]
    blocks = block_average(production, n_blocks)
    error = blocks["error"]
    if not math.isfinite(error):
        error = equilibrated["error"]
    correction = empty_box_correction(production, henry_molecules)
    factor = correction["factor"]
    times = np.asarray(times_ps, dtype=float)
    return {
        "mean": equilibrated["mean"] * factor,
        "error": float(error) * factor,
        "sampled_mean": equilibrated["mean"],
        "empty_box_probability": correction["p_empty"],
        "empty_box_corrected": correction["applied"],
        "error_statistical_inefficiency": equilibrated["error"] * factor,
        "equilibrated_from_ps": float(times[equilibrated["t0"]]) if len(times) else 0.0,
        "statistical_inefficiency": equilibrated["g"],
        "n_effective": equilibrated["n_effective"],
        "n_samples": equilibrated["n_samples"],
    }


@calcfunction
def assemble_isotherm(parameters: orm.Dict, **nodes) -> orm.Dict:
    """Isotherm from MLP MD-GCMC runs (``thermo_<k>`` ArrayData + ``results_<k>`` Dict per pressure) and,
    when given, RASPA's ``raspa_isotherm`` Dict, side by side. With the MLP Widom result (``widom``) each
    loading is corrected for the empty box fix gcmc never visits (``molecules_per_cell_sampled`` keeps the
    uncorrected mean, ``empty_box_probability`` the weight added back).

    ``parameters``: ``pressures`` (bar, keyed like the runs: ``{"p0": 0.1, ...}``), ``n_blocks``.
    """
    p = parameters.get_dict()
    keys = sorted(p["pressures"], key=lambda key: p["pressures"][key])
    henry = nodes["widom"].get_dict().get("henry_coefficient") if "widom" in nodes else None
    rows = []
    for key in keys:
        thermo = nodes[f"thermo_{key}"]
        results = nodes[f"results_{key}"].get_dict()
        gcmc = results["gcmc"]
        mass = float(gcmc["framework_mass"])
        entry = gcmc["pressures"][0] if gcmc["pressures"] else {}
        fugacity_pa = 1.0e5 * float(p["pressures"][key]) * float(entry.get("fugacity_coefficient") or 1.0)
        stats = loading_statistics(
            thermo.get_array("n_guests"),
            thermo.get_array("time_ps"),
            int(p.get("n_blocks", 5)),
            henry_molecules_per_cell(henry, fugacity_pa, mass) if henry is not None else None,
        )
        rows.append(
            {
                "pressure": float(p["pressures"][key]),
                "fugacity_coefficient": entry.get("fugacity_coefficient"),
                "molecules_per_cell": stats["mean"],
                "molecules_per_cell_error": stats["error"],
                "molecules_per_cell_sampled": stats["sampled_mean"],
                "empty_box_probability": stats["empty_box_probability"],
                "mol_per_kg": 1000.0 * stats["mean"] / mass,
                "mol_per_kg_error": 1000.0 * stats["error"] / mass,
                "equilibrated_from_ps": stats["equilibrated_from_ps"],
                "statistical_inefficiency": stats["statistical_inefficiency"],
                "n_effective": stats["n_effective"],
                "insertion_acceptance": _ratio(
                    entry.get("insertion_successes"), entry.get("insertion_attempts")
                ),
                "model_calls": results.get("model_calls"),
                "wall_seconds": results.get("wall_seconds"),
            }
        )
    isotherm = {
        "pressure": [row["pressure"] for row in rows],
        "mlp": {name: [row[name] for row in rows] for name in rows[0] if name != "pressure"} if rows else {},
        "units": {
            "pressure": "bar",
            "mol_per_kg": "mol/kg",
            "molecules_per_cell": "molecules/cell",
            "equilibrated_from_ps": "ps",
            "wall_seconds": "s",
        },
    }
    if "raspa_isotherm" in nodes:
        raspa = nodes["raspa_isotherm"].get_dict()
        isotherm["raspa"] = {
            "pressure": raspa.get("pressure", []),
            "mol_per_kg": raspa.get("mol_kg", []),
            "mol_per_kg_error": raspa.get("mol_kg_dev", []),
            "molecules_per_cell": raspa.get("molecules_per_cell", []),
            "molecules_per_cell_error": raspa.get("molecules_per_cell_dev", []),
            "equilibrated": raspa.get("equilibrated", []),
            "failed_pressures": raspa.get("failed_pressures", []),
        }
    return orm.Dict(isotherm)


def _ratio(successes, attempts) -> float | None:
    if not attempts:
        return None
    return float(successes) / float(attempts)


@calcfunction
def compute_heat_of_adsorption(temperature: orm.Float, **nodes) -> orm.Dict:
    """Heat of adsorption (kJ/mol): MLP MD (Eq. 2 from ``thermo_framework``, ``thermo_gas`` and
    ``thermo_n<N>`` potential energies), MLP Widom (``widom`` Dict) and RASPA (``raspa_isotherm``)."""
    t = float(temperature.value)
    framework = nodes["thermo_framework"].get_array("potential_energy")
    gas = nodes["thermo_gas"].get_array("potential_energy")
    md = []
    for key in sorted(k for k in nodes if k.startswith("thermo_n")):
        n = int(key.removeprefix("thermo_n"))
        loaded = nodes[key].get_array("potential_energy")
        result = heat_of_adsorption(loaded, framework, gas, n, t)
        md.append(
            {
                "n_guests": n,
                "value": result["heat_of_adsorption"],
                "error": result["heat_of_adsorption_error"],
                "averages": result["averages"],
            }
        )
    md.sort(key=lambda row: row["n_guests"])
    output = {
        "temperature": t,
        "unit": "kJ/mol",
        "mlp_md": md,
        "mlp_md_kind": "integral heat per molecule of the first N (Eq. 2)",
        "mlp_md_differential": differential_heats({row["n_guests"]: row["averages"] for row in md}, t),
    }
    if "widom" in nodes:
        widom = nodes["widom"].get_dict()
        output["mlp_widom"] = {
            "value": widom["isosteric_heat"],
            "error": widom.get("isosteric_heat_error"),
            "adsorption_energy": widom["adsorption_energy"],
            "henry_coefficient": widom["henry_coefficient"],
            "henry_coefficient_error": widom.get("henry_coefficient_error"),
            "henry_coefficient_unit": "mol/kg/Pa",
        }
    if "raspa_isotherm" in nodes:
        raspa = nodes["raspa_isotherm"].get_dict()
        output["raspa"] = {
            "method": "fluctuation formula of RASPA's GCMC, per pressure",
            "pressure": raspa.get("pressure", []),
            "pressure_unit": "bar",
            "value": raspa.get("enthalpy_of_adsorption", []),
            "error": raspa.get("enthalpy_of_adsorption_dev", []),
        }
    if "raspa_widom" in nodes:
        raspa_widom = nodes["raspa_widom"].get_dict()
        output["raspa_widom"] = raspa_widom
    return orm.Dict(output)
