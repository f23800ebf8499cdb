"""A MACE model file with the facts needed to use it: hash, architecture, heads, species, cutoff."""

from __future__ import annotations

from pathlib import Path

from aiida import orm
from ase.data import chemical_symbols

from aiida_mofmlp.common.frames import sha256_of_file


def inspect_mace_model(path: str | Path) -> dict:
    """Read architecture, heads, species and r_max from a saved MACE model (needs mace-torch)."""
    import mace  # noqa: F401  (import mace before torch.load: it registers the classes e3nn needs)
    import torch

    try:
        model = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as error:
        raise ValueError(f"{path} is not a loadable MACE model file: {error}") from error
    if not hasattr(model, "atomic_numbers") or not hasattr(model, "r_max"):
        raise ValueError(f"{path} holds a {type(model).__name__}, not a MACE model (no atomic_numbers/r_max)")
    numbers = [int(z) for z in model.atomic_numbers.tolist()]
    heads = list(getattr(model, "heads", None) or ["Default"])
    return {
        "architecture": type(model).__name__,
        "heads": heads,
        "species": [chemical_symbols[z] for z in numbers],
        "r_max": float(model.r_max),
        "num_interactions": int(getattr(model, "num_interactions", 0)),
    }


class MaceModelData(orm.SinglefileData):
    """A MACE model file; identical files are recognised by their SHA-256 (see :meth:`find_by_hash`)."""

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        parent_sha256: str | None = None,
        head: str | None = None,
        inspect: bool = True,
        **attributes,
    ) -> MaceModelData:
        """A new node for the model at ``path``, its facts read from the file when ``inspect`` is True.

        ``parent_sha256`` is the hash of the foundation model it was fine-tuned from; ``head`` is the
        head to use for inference (default: the last head, which is the fine-tuned one in multihead mode).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"MACE model file {path} does not exist")
        node = cls(file=str(path.resolve()), filename=path.name)
        facts = inspect_mace_model(path) if inspect else {}
        facts.update(attributes)
        heads = facts.get("heads") or ["Default"]
        if head is not None and head not in heads:
            raise ValueError(f"head {head!r} is not in the model {path.name}; valid heads: {heads}")
        node.base.attributes.set_many(
            {
                **facts,
                "heads": heads,
                "head": head or heads[-1],
                "sha256": sha256_of_file(path),
                "parent_sha256": parent_sha256,
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
        """Stored model nodes whose file has this SHA-256."""
        query = orm.QueryBuilder().append(cls, filters={"attributes.sha256": sha256})
        return [row[0] for row in query.all()]

    @classmethod
    def get_or_create(cls, path: str | Path, **kwargs) -> MaceModelData:
        """The stored node of this file if one exists, else a new stored node."""
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
