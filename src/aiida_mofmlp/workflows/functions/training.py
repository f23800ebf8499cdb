"""Calcfunction of ensemble training: one table of the members' training outcomes."""

from __future__ import annotations

from aiida import orm
from aiida.engine import calcfunction


@calcfunction
def summarise_ensemble(rows: orm.List) -> orm.Dict:
    """Seeds and validation errors of the ensemble members, with the mean validation force MAE."""
    members = rows.get_list()
    values = [row["valid"]["mae_f"] for row in members if (row.get("valid") or {}).get("mae_f") is not None]
    return orm.Dict(
        {
            "members": members,
            "n_models": len(members),
            "mean_valid_mae_f": sum(values) / len(values) if values else None,
            "units": {"mae_f": "eV/Angstrom", "mae_e_per_atom": "eV/atom"},
        }
    )
