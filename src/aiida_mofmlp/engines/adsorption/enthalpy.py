"""Heat of adsorption from MD ensemble averages (no AiiDA).

``dH = (<E(framework + N guests)> - <E(framework)> - N <E(guest)>) / N - RT`` per molecule, from three NVT
runs at the same temperature (Jin et al., Chem. Sci. 2026, DOI 10.1039/D5SC09058J, Eq. 2). Each average
comes from the equilibrated part of its time series with an error from its statistical inefficiency
(:func:`aiida_mofmlp.common.timeseries.equilibrated_mean`); the errors add in quadrature.

For N > 1 that is the *integral* heat (the average over the first N molecules). :func:`differential_heats`
gives the *differential* heat between consecutive loadings, ``(<E_Nb> - <E_Na>) / (Nb - Na) - <E_guest> -
RT``, what a calorimeter or the isosteric heat at that loading measures.
"""

from __future__ import annotations

import math

import numpy as np

from aiida_mofmlp.common.timeseries import equilibrated_mean

GAS_CONSTANT_KJ = 8.314462618e-3  # kJ/(mol K)
EV_TO_KJ_PER_MOL = 96.48533212


def heat_of_adsorption(
    loaded_energies, framework_energies, guest_energies, n_guests: int, temperature: float
) -> dict:
    """Heat of adsorption (kJ/mol per molecule) with its error from three potential-energy series (eV).

    ``guest_energies`` is the series of one gas-phase guest (a single value for a rigid guest). Returns
    ``heat_of_adsorption``, ``heat_of_adsorption_error`` and the three averages with their ``t0``, ``g``
    and errors (eV).
    """
    if int(n_guests) < 1:
        raise ValueError(f"n_guests must be >= 1, got {n_guests}")
    if not float(temperature) > 0:
        raise ValueError(f"temperature must be > 0 K, got {temperature}")
    parts = {
        "loaded": equilibrated_mean(loaded_energies),
        "framework": equilibrated_mean(framework_energies),
        "guest": equilibrated_mean(np.atleast_1d(guest_energies)),
    }
    n = int(n_guests)
    errors = [parts["loaded"]["error"], parts["framework"]["error"], n * parts["guest"]["error"]]
    errors = [0.0 if not math.isfinite(e) else e for e in errors]
    binding = (parts["loaded"]["mean"] - parts["framework"]["mean"] - n * parts["guest"]["mean"]) / n
    error = math.sqrt(sum(e * e for e in errors)) / n
    return {
        "heat_of_adsorption": binding * EV_TO_KJ_PER_MOL - GAS_CONSTANT_KJ * float(temperature),
        "heat_of_adsorption_error": error * EV_TO_KJ_PER_MOL,
        "unit": "kJ/mol",
        "n_guests": n,
        "temperature": float(temperature),
        "averages": parts,
        "averages_unit": "eV",
    }


def differential_heats(averages_by_n: dict, temperature: float) -> list[dict]:
    """Differential heats (kJ/mol) between consecutive loadings from :func:`heat_of_adsorption`'s averages.

    ``averages_by_n``: ``{N: averages}`` (each with ``loaded``, ``framework`` and ``guest`` mean and error in
    eV). The empty framework is loading 0. Returns one row per loading: ``from_n``, ``to_n``, ``value``,
    ``error`` (errors in quadrature); the first row equals the integral heat of that loading.
    """
    rows = []
    previous_n, previous = 0, None
    for n in sorted(int(k) for k in averages_by_n):
        parts = averages_by_n[n]
        start = parts["framework"] if previous is None else previous
        step = n - previous_n
        guest = parts["guest"]
        energy = (parts["loaded"]["mean"] - start["mean"]) / step - guest["mean"]
        errors = [parts["loaded"]["error"] / step, start["error"] / step, guest["error"]]
        error = math.sqrt(sum(e * e for e in errors if math.isfinite(e)))
        rows.append(
            {
                "from_n": previous_n,
                "to_n": n,
                "value": energy * EV_TO_KJ_PER_MOL - GAS_CONSTANT_KJ * float(temperature),
                "error": error * EV_TO_KJ_PER_MOL,
            }
        )
        previous_n, previous = n, parts["loaded"]
    return rows
