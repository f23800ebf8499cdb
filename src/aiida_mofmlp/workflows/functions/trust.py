"""Calcfunctions of the ensemble's trust in a property run: the summary of sigma_max on its trajectories
(and the frames above lo), or why it was not assessed."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.functions.active_learning import classify, strip_predictions

#: default trust levels (eV/Angstrom): :data:`aiida_mofmlp.common.trust.DEFAULT_TRUST`; pass the loop's own
#: levels when it used others


def _frames_and_arrays(**nodes) -> dict[str, tuple[StructureSetData, dict[str, np.ndarray]]]:
    """Pair ``frames_<key>`` with ``deviation_<key>``."""
    pairs = {}
    for name, node in nodes.items():
        if name.startswith("frames_"):
            key = name[len("frames_") :]
            deviation = nodes[f"deviation_{key}"]
            arrays = {array: deviation.get_array(array) for array in deviation.get_arraynames()}
            pairs[key] = (node, arrays)
    return pairs


@calcfunction
def summarise_trust(levels: orm.Dict, **nodes: orm.Data) -> dict:
    """Trust of trajectories ``frames_<key>`` (StructureSetData) from ``deviation_<key>`` (ArrayData).

    Returns ``trust`` (Dict: per trajectory and ``all``: ``n_frames``, ``fraction_above_lo``,
    ``fraction_above_hi``, ``sigma_max_mean``, ``sigma_max_max``) and, when any frame is above ``lo``,
    ``untrusted_frames`` (those frames, predictions stripped, info ``source`` = ``property:<key>``).
    """
    trust_window = levels.get_dict()
    per_run, untrusted, totals = {}, [], {"n": 0, "lo": 0, "hi": 0, "sigma": []}
    for key, (frames, arrays) in sorted(_frames_and_arrays(**nodes).items()):
        sigma = np.asarray(arrays["sigma_max"], dtype=float)
        if len(sigma) != len(frames):
            raise ValueError(f"trajectory {key}: {len(frames)} frames but {len(sigma)} deviation values")
        trusted, failed = classify(arrays, trust_window)
        above_lo = ~trusted
        per_run[key] = {
            "n_frames": len(sigma),
            "fraction_above_lo": float(above_lo.mean()) if len(sigma) else 0.0,
            "fraction_above_hi": float(failed.mean()) if len(sigma) else 0.0,
            "sigma_max_mean": float(sigma.mean()) if len(sigma) else 0.0,
            "sigma_max_max": float(sigma.max()) if len(sigma) else 0.0,
        }
        totals["n"] += len(sigma)
        totals["lo"] += int(above_lo.sum())
        totals["hi"] += int(failed.sum())
        totals["sigma"].extend(sigma.tolist())
        for index in np.flatnonzero(above_lo):
            atoms = strip_predictions(frames.get_frame(int(index)))
            atoms.info["source"] = f"property:{key}"
            atoms.info["sigma_max"] = float(sigma[index])
            untrusted.append(atoms)
    n = totals["n"]
    summary = {
        "assessed": True,
        "levels": trust_window,
        "per_trajectory": per_run,
        "all": {
            "n_frames": n,
            "fraction_above_lo": totals["lo"] / n if n else 0.0,
            "fraction_above_hi": totals["hi"] / n if n else 0.0,
            "sigma_max_mean": float(np.mean(totals["sigma"])) if n else 0.0,
            "sigma_max_max": float(np.max(totals["sigma"])) if n else 0.0,
        },
        "units": {"sigma_max": "eV/Angstrom", "levels": "eV/Angstrom"},
    }
    outputs = {"trust": orm.Dict(summary)}
    if untrusted:
        outputs["untrusted_frames"] = StructureSetData.from_frames(untrusted)
    return outputs


@calcfunction
def trust_not_assessed(reason: orm.Str) -> orm.Dict:
    """The ``trust`` output of a property run whose ensemble could not be evaluated, with the reason."""
    return orm.Dict({"assessed": False, "reason": reason.value})
