"""Nodes of the small MOF foundation shipped in the package: its replay sample as a ``StructureSetData``.

The model node itself is :meth:`aiida_mofmlp.data.mace_model.MaceModelData.small_mof_foundation`; the
files are listed by :func:`aiida_mofmlp.common.resources.foundation_files`.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from pathlib import Path

from aiida import orm

from aiida_mofmlp.common.frames import sha256_of_file
from aiida_mofmlp.common.resources import foundation_files
from aiida_mofmlp.data.structure_set import StructureSetData

__all__ = ["small_mof_foundation_heldout", "small_mof_foundation_replay"]


def _stored_set(gzipped: Path) -> StructureSetData:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / StructureSetData.filename
        with gzip.open(gzipped, "rb") as source, open(path, "wb") as target:
            shutil.copyfileobj(source, target)
        digest = sha256_of_file(path)
        query = orm.QueryBuilder().append(StructureSetData, filters={"attributes.sha256": digest})
        found = query.first()
        if found:
            return found[0]
        return StructureSetData.from_file(path).store()


def small_mof_foundation_replay() -> StructureSetData:
    """The stored replay sample of the small MOF foundation (training frames with GFN1-xTB labels).

    Give it (as an extxyz file) as the ``replay_file`` of multihead fine-tuning from
    :meth:`~aiida_mofmlp.data.mace_model.MaceModelData.small_mof_foundation`. An identical stored set is
    reused.
    """
    return _stored_set(foundation_files().replay)


def small_mof_foundation_heldout() -> StructureSetData:
    """The stored held-out sample of the small MOF foundation (frames it was not trained on)."""
    return _stored_set(foundation_files().heldout)
