"""The selection as a calcfunction: the selection engine in-process on a small pool (hundreds of frames),
every input and output recorded (large pools: ``SelectionWorkChain``, a job)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mofmlp.calculations.select import array_values
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.selection import select as engine


@calcfunction
def select_frames(
    pool: StructureSetData,
    parameters: orm.Dict,
    training_set: StructureSetData | None = None,
    sigma: orm.ArrayData | None = None,
    energies: orm.ArrayData | None = None,
) -> dict:
    """Choose frames of ``pool`` to label with the selection engine (small pools; see SelectionWorkChain).

    Returns ``report`` (Dict: selected pool indices, counts per group, metrics), ``selected``
    (StructureSetData, absent when nothing was selected) and ``map`` (ArrayData pool_xy, training_xy,
    selected) when the map is on.
    """
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pool_path = pool.write_extxyz(tmp / "pool.extxyz")
        training_path = (
            training_set.write_extxyz(tmp / "training.extxyz") if training_set is not None else None
        )
        sigma_values = array_values(sigma, "sigma_max", "sigma") if sigma is not None else None
        energy_values = array_values(energies, "energies", "energies") if energies is not None else None
        params = parameters.get_dict()
        soap = dict(params.get("soap") or {})
        if not soap.get("species"):  # known from the nodes: saves a pass over the pool
            species = set(pool.species) | set(training_set.species if training_set is not None else [])
            params["soap"] = {**soap, "species": sorted(species)}
        result = engine.select(
            pool_path,
            params,
            training=training_path,
            sigma=sigma_values,
            energies=energy_values,
        )
        outputs = {"report": orm.Dict(result.report)}
        if result.selected:
            frames_path = tmp / "selected.extxyz"
            engine.write_selected_frames(pool_path, result.selected, frames_path)
            outputs["selected"] = StructureSetData.from_file(frames_path)
    if result.pool_xy is not None:
        node = orm.ArrayData()
        node.set_array("pool_xy", result.pool_xy)
        node.set_array("training_xy", result.training_xy)
        node.set_array("selected", np.asarray(result.selected, dtype=np.int64))
        node.base.attributes.set("method", result.report.get("map_method", "pca"))
        outputs["map"] = node
    return outputs
