"""Publishing a whole run: an AiiDA archive of a node with its provenance, and its check.

:func:`export_archive` writes an AiiDA archive of a node and its whole provenance (what ``verdi archive
create`` writes); :func:`provenance_fingerprint` counts the nodes such an archive holds and hashes every
structure set and model file, and :func:`verify_archive` imports an archive into a fresh temporary profile
(in a subprocess, so the loaded profile is never touched) and returns the same fingerprint from there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aiida import orm

from aiida_mofmlp.common import frames as fr
from aiida_mofmlp.tools.export import ExportError, resolve_node

__all__ = ["compare_fingerprints", "export_archive", "provenance_fingerprint", "verify_archive"]


def export_archive(node: int | str | orm.Node, path: str | Path, overwrite: bool = False) -> Path:
    """Write an AiiDA archive of ``node`` with its whole provenance (called processes, their inputs and
    outputs, and what created those inputs), as ``verdi archive create`` does by default."""
    from aiida.tools.archive import create_archive

    node = resolve_node(node)
    path = Path(path)
    if path.exists() and not overwrite:
        raise ExportError(f"archive {path} exists; give another path or overwrite=True")
    return Path(create_archive([node], filename=path, overwrite=overwrite))


def _content_sha256(node) -> str:
    from aiida_mofmlp.data.structure_set import StructureSetData

    if isinstance(node, StructureSetData):
        with node.base.repository.open(node.filename, "rb") as handle:
            return fr.sha256_of_file(handle)
    with node.open(mode="rb") as handle:
        return fr.sha256_of_file(handle)


def provenance_fingerprint(node: int | str | orm.Node) -> dict[str, Any]:
    """Counts and hashes of what an archive of ``node`` holds (same traversal as :func:`export_archive`).

    ``node_types``: nodes per type; ``n_links``; ``structure_sets`` and ``models``: per UUID the stored
    ``sha256`` attribute and the sha256 of the file content (and frame count); ``iterations``: an
    active-learning run's iteration rows.
    """
    from aiida.tools.graph.graph_traversers import get_nodes_export

    from aiida_mofmlp.data.mace_model import MaceModelData
    from aiida_mofmlp.data.structure_set import StructureSetData
    from aiida_mofmlp.tools.queries import AL_PROCESS_TYPE

    node = resolve_node(node)
    traversal = get_nodes_export([node.pk], get_links=True)
    pks = sorted(traversal["nodes"])
    types: Counter[str] = Counter()
    sets, models = {}, {}
    for start in range(0, len(pks), 500):
        query = orm.QueryBuilder().append(orm.Node, filters={"id": {"in": pks[start : start + 500]}})
        for (item,) in query.iterall():
            types[item.node_type] += 1
            if isinstance(item, StructureSetData):
                sets[item.uuid] = {
                    "sha256": item.sha256,
                    "content_sha256": _content_sha256(item),
                    "count": item.count,
                }
            elif isinstance(item, MaceModelData):
                models[item.uuid] = {"sha256": item.sha256, "content_sha256": _content_sha256(item)}
    fingerprint = {
        "root_uuid": node.uuid,
        "n_nodes": len(pks),
        "n_links": len(traversal["links"] or ()),
        "node_types": dict(sorted(types.items())),
        "structure_sets": dict(sorted(sets.items())),
        "models": dict(sorted(models.items())),
    }
    if node.process_type == AL_PROCESS_TYPE and "iterations" in node.outputs:
        fingerprint["iterations"] = node.outputs.iterations.get_dict().get("rows")
    return fingerprint


def compare_fingerprints(expected: Mapping[str, Any], found: Mapping[str, Any]) -> list[str]:
    """Differences between two fingerprints (empty when they agree), one line each."""
    differences = []
    for key in sorted(set(expected) | set(found)):
        if expected.get(key) != found.get(key):
            differences.append(f"{key}: expected {expected.get(key)!r}, found {found.get(key)!r}")
    for kind in ("structure_sets", "models"):
        for uuid, entry in (found.get(kind) or {}).items():
            if entry.get("sha256") != entry.get("content_sha256"):
                differences.append(f"{kind} {uuid}: file content does not match its sha256 attribute")
    return differences


def verify_archive(path: str | Path, root_uuid: str, timeout: float = 900) -> dict[str, Any]:
    """Import ``path`` into a fresh temporary SQLite profile (subprocess) and fingerprint ``root_uuid`` there.

    Also returns ``n_nodes_in_profile`` (every node the import created). Raises RuntimeError with the
    subprocess output when the import fails.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise ExportError(f"archive {path} does not exist")
    with tempfile.TemporaryDirectory(prefix="mofmlp-archive-check-") as tmp:
        env = {**os.environ, "AIIDA_PATH": tmp}
        env.pop("AIIDA_PROFILE", None)
        command = [sys.executable, "-m", "aiida_mofmlp.tools.archive", "verify", str(path), root_uuid]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp)
    if result.returncode != 0:
        raise RuntimeError(
            f"importing {path.name} into a fresh profile failed (exit {result.returncode}):\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _verify_in_fresh_profile(archive: str, root_uuid: str) -> dict[str, Any]:
    """Runs in the subprocess of :func:`verify_archive` (AIIDA_PATH is an empty temporary directory)."""
    from aiida import load_profile
    from aiida.manage.configuration import create_profile, get_config
    from aiida.tools.archive import import_archive

    config = get_config(create=True)
    storage = Path(config.dirpath) / "archive-check-storage"
    profile = create_profile(
        config,
        storage_backend="core.sqlite_dos",
        storage_config={"filepath": str(storage)},
        name="archive-check",
        email="archive-check@localhost",
    )
    config.set_default_profile(profile.name, overwrite=True).store()
    load_profile(profile.name, allow_switch=True)
    import_archive(archive)
    fingerprint = provenance_fingerprint(orm.load_node(root_uuid))
    fingerprint["n_nodes_in_profile"] = orm.QueryBuilder().append(orm.Node).count()
    return fingerprint


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m aiida_mofmlp.tools.archive verify ARCHIVE ROOT_UUID`` (used by :func:`verify_archive`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[0] != "verify":
        print("usage: python -m aiida_mofmlp.tools.archive verify ARCHIVE ROOT_UUID", file=sys.stderr)
        return 2
    fingerprint = _verify_in_fresh_profile(args[1], args[2])
    print(json.dumps(fingerprint, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
