"""Calcfunctions of the phonon and model-card work chains: frames for the trust check, the NPT volume drift
and the model card itself."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mofmlp.data.structure_set import StructureSetData

#: model-card quantities: key -> (unit, description); the card Dict names them in its ``units``
CARD_QUANTITIES = {
    "relaxation_volume_change_percent": ("%", "volume change of the relaxation from the input structure"),
    "npt_volume_drift_percent": ("%", "mean volume of the last half of the NPT run against the first frame"),
    "npt_status": ("", "status of the NPT run (ok, blown-up, not run)"),
    "bulk_modulus_gpa": ("GPa", "Birch-Murnaghan fit of E(V) over +-2 % isotropic strain"),
    "heat_capacity_300K_j_per_g_k": ("J/(g K)", "harmonic Cv at 300 K"),
    "heat_capacity_300K_kb_per_atom": ("k_B/atom", "harmonic Cv at 300 K"),
    "phonon_status": ("", "stable, fixed (after rattle and relax) or imaginary"),
    "min_frequency_thz": ("THz", "lowest phonon frequency on the mesh (negative: imaginary)"),
    "interaction_energy_kj_mol": ("kJ/mol", "host-guest interaction energy of the guest at its best site"),
    "mae_e_per_atom": ("eV/atom", "energy error on the validation frames"),
    "mae_f": ("eV/Angstrom", "force error on the validation frames"),
    "rmse_f": ("eV/Angstrom", "force error on the validation frames"),
}


@calcfunction
def structures_to_frames(**structures: orm.StructureData) -> StructureSetData:
    """One StructureSetData of the given structures (in key order), e.g. for the ensemble's trust check."""
    frames = []
    for key in sorted(structures):
        atoms = structures[key].get_ase()
        atoms.info["source"] = f"phonons:{key}"
        frames.append(atoms)
    return StructureSetData.from_frames(frames)


def volume_drift_percent(volume: np.ndarray) -> float:
    """100 (mean of the last half of ``volume`` - first value) / first value: the NPT stability measure."""
    volume = np.asarray(volume, dtype=float)
    if len(volume) < 2:
        raise ValueError(f"a volume drift needs >= 2 thermo rows, got {len(volume)}")
    tail = volume[len(volume) // 2 :]
    return float(100.0 * (tail.mean() - volume[0]) / volume[0])


def _card_column(results: dict, npt: dict | None) -> dict:
    """The card's values of one model from its phonon-engine results and its NPT summary."""
    relax = results.get("relax") or {}
    phonons = results.get("phonons") or {}
    eos = results.get("eos") or {}
    host_guest = results.get("host_guest") or {}
    errors = results.get("errors") or {}
    column = {
        "relaxation_volume_change_percent": relax.get("volume_change_percent"),
        "bulk_modulus_gpa": eos.get("bulk_modulus_eos_gpa"),
        "heat_capacity_300K_j_per_g_k": phonons.get("heat_capacity_300K_per_gram"),
        "heat_capacity_300K_kb_per_atom": phonons.get("heat_capacity_300K_kb_per_atom"),
        "phonon_status": phonons.get("status"),
        "min_frequency_thz": phonons.get("min_frequency"),
        "interaction_energy_kj_mol": host_guest.get("interaction_energy_kj_mol"),
        "mae_e_per_atom": errors.get("mae_e_per_atom"),
        "mae_f": errors.get("mae_f"),
        "rmse_f": errors.get("rmse_f"),
        "wall_time_s": results.get("wall_time_s", {}),
    }
    column.update(npt or {"npt_status": "not run", "npt_volume_drift_percent": None})
    return column


def reference_columns(table: dict) -> dict:
    """Per property of a reference-check table: reference, each model's value and pass, unit, tolerance."""
    columns: dict[str, dict] = {"method": table.get("reference_method"), "properties": {}}
    for row in table["rows"]:
        if row["model"] == "ensemble":
            continue
        entry = columns["properties"].setdefault(
            row["property"],
            {"reference": row["reference"], "unit": row["unit"], "tolerance": row["tolerance"]},
        )
        entry[row["model"]] = row["value"]
        entry[f"{row['model']}_passed"] = row["passed"]
    return columns


@calcfunction
def make_model_card(card_info: orm.Dict, **nodes: orm.Data) -> orm.Dict:
    """The model card: one column per model label (e.g. ``fine_tuned``, ``foundation``).

    ``card_info`` holds the framework, the model hashes and the guest. ``nodes`` holds, per label,
    ``results_<label>`` (Dict of the phonon engine) and optionally ``thermo_<label>`` (ArrayData with the
    ``volume`` of the NPT run) and ``npt_<label>`` (Dict with its ``status``). Quantities that a run did not
    give are None; ``difference`` is fine-tuned minus foundation. With ``reference_table`` (the table of a
    reference check of the same models) the card's ``reference_check`` puts the labelling method beside them.
    """
    labels = sorted(name[len("results_") :] for name in nodes if name.startswith("results_"))
    columns = {}
    for label in labels:
        npt = None
        if f"thermo_{label}" in nodes:
            thermo = nodes[f"thermo_{label}"]
            status = nodes[f"npt_{label}"].get_dict().get("status", "ok") if f"npt_{label}" in nodes else "ok"
            npt = {
                "npt_volume_drift_percent": volume_drift_percent(thermo.get_array("volume")),
                "npt_status": status,
            }
        columns[label] = _card_column(nodes[f"results_{label}"].get_dict(), npt)
    card = {
        **card_info.get_dict(),
        "models": columns,
        "quantities": sorted(CARD_QUANTITIES),
        "units": {key: unit for key, (unit, _) in CARD_QUANTITIES.items()},
        "descriptions": {key: text for key, (_, text) in CARD_QUANTITIES.items()},
        "reference": "MOFSimBench task set (Krass, Huang, Moosavi, 2025) at this plugin's scale",
    }
    if "reference_table" in nodes:
        card["reference_check"] = reference_columns(nodes["reference_table"].get_dict())
    if "fine_tuned" in columns and "foundation" in columns:
        card["difference"] = {
            key: columns["fine_tuned"][key] - columns["foundation"][key]
            for key in CARD_QUANTITIES
            if isinstance(columns["fine_tuned"].get(key), float)
            and isinstance(columns["foundation"].get(key), float)
        }
    return orm.Dict(card)
