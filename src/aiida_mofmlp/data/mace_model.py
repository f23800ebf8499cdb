"""A MACE model file with the facts needed to use it: hash, architecture, heads, species, cutoff."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from aiida import orm

from aiida_mofmlp.common.frames import sha256_of_file
from aiida_mofmlp.engines.mace.safe_model import (
    UNTRUSTED_MESSAGE,
    UntrustedModelError,
    convert_in_subprocess,
    describe_safe_model,
    is_safe_model,
)


@functools.lru_cache(maxsize=16)
def _converted_facts(path: str, sha256: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="mofmlp-model-") as folder:
        return convert_in_subprocess(path, Path(folder) / "converted.model")


def describe_model_file(path: str | Path, trusted: bool = False) -> dict:
    """Facts of a model file without storing it: the safe form's JSON, or (``trusted`` only) a pickle's facts
    from its conversion in a subprocess (done once per file content in this process)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MACE model file {path} does not exist")
    if is_safe_model(path):
        return describe_safe_model(path)
    if not trusted:
        raise UntrustedModelError(UNTRUSTED_MESSAGE.format(path=path))
    return dict(_converted_facts(str(path.resolve()), sha256_of_file(path)))


class MaceModelData(orm.SinglefileData):
    """A MACE model file; identical files are recognised by their SHA-256 (see :meth:`find_by_hash`)."""

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        parent_sha256: str | None = None,
        head: str | None = None,
        inspect: bool = True,
        trusted: bool = False,
        **attributes,
    ) -> MaceModelData:
        """A new node for the model at ``path``, kept in the safe form (weights + JSON architecture).

        A file in the safe form is stored as it is. A pickled mace ``.model`` (e.g. MACE-MP from its
        release page) can run code when opened, so it is refused unless ``trusted=True``; then it is opened
        once, in a subprocess without access to the profile and with time and memory limits, and its safe
        form is stored (attribute ``source_sha256``: the hash of the pickle). ``parent_sha256`` is the hash of
        the foundation model it was fine-tuned from; ``head`` is the head to use for inference (default: the
        last head, which is the fine-tuned one in multihead mode).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"MACE model file {path} does not exist")
        if is_safe_model(path):
            return cls._from_safe_file(path, path.name, inspect, head, parent_sha256, attributes)
        if not trusted:
            raise UntrustedModelError(UNTRUSTED_MESSAGE.format(path=path))
        with tempfile.TemporaryDirectory(prefix="mofmlp-model-") as folder:
            safe = Path(folder) / f"{path.stem}.safe.model"
            convert_in_subprocess(path, safe)
            attributes = {"source_sha256": sha256_of_file(path), "source_name": path.name, **attributes}
            return cls._from_safe_file(safe, safe.name, True, head, parent_sha256, attributes)

    @classmethod
    def _from_safe_file(
        cls, path: Path, filename: str, inspect, head, parent_sha256, attributes
    ) -> MaceModelData:
        node = cls(file=str(path.resolve()), filename=filename)
        facts = describe_safe_model(path) if inspect else {}
        facts.update(attributes)
        heads = facts.get("heads") or ["Default"]
        if head is not None and head not in heads:
            raise ValueError(f"head {head!r} is not in the model {filename}; valid heads: {heads}")
        node.base.attributes.set_many(
            {
                **facts,
                "heads": heads,
                "head": head or heads[-1],
                "sha256": sha256_of_file(path),
                "parent_sha256": parent_sha256,
                "safe_form": True,
            }
        )
        return node

    @classmethod
    def small_mof_foundation(cls) -> MaceModelData:
        """The stored node of the small MOF foundation model shipped in the package (created if needed).

        A small MACE trained on GFN1-xTB labels of a few MOFs with guests: a stand-in for MACE-MP in
        offline demos and tests, not a model for production science (its card and docs/source/data.md
        give its data and held-out errors). Its replay sample for multihead fine-tuning:
        :func:`aiida_mofmlp.data.foundation.small_mof_foundation_replay`.
        """
        from aiida_mofmlp.common.resources import foundation_files

        return cls.get_or_create(foundation_files().model, source="aiida-mofmlp small MOF foundation")

    @classmethod
    def find_by_hash(cls, sha256: str) -> list[MaceModelData]:
        """Stored model nodes whose file, or the pickle it was converted from, has this SHA-256."""
        query = orm.QueryBuilder().append(
            cls, filters={"or": [{"attributes.sha256": sha256}, {"attributes.source_sha256": sha256}]}
        )
        return [row[0] for row in query.all()]

    @classmethod
    def get_or_create(cls, path: str | Path, **kwargs) -> MaceModelData:
        """The stored node of this file (or of its safe form) if one exists, else a new stored node."""
        found = cls.find_by_hash(sha256_of_file(path))
        return found[0] if found else cls.from_file(path, **kwargs).store()

    @property
    def sha256(self) -> str:
        return self.base.attributes.get("sha256")

    @property
    def species(self) -> list[str]:
        return self.base.attributes.get("species", [])

    @property
    def r_max(self) -> float | None:
        return self.base.attributes.get("r_max")

    @property
    def heads(self) -> list[str]:
        return self.base.attributes.get("heads", ["Default"])

    @property
    def head(self) -> str:
        return self.base.attributes.get("head", "Default")

    @property
    def parent_sha256(self) -> str | None:
        return self.base.attributes.get("parent_sha256")

    @property
    def architecture(self) -> str | None:
        return self.base.attributes.get("architecture")
