"""Paths of the data files shipped in the package (no AiiDA imports).

The small MOF foundation model (``resources/foundation``) is a MACE model trained from scratch on
GFN1-xTB labels of a few MOFs with and without guests; it stands in for MACE-MP (Batatia et al.,
arXiv:2401.00096) in offline demos and tests and is not meant for production science. How it was built
and its held-out errors are in its card and in docs/source/data.md; ``scripts/build_foundation.py``
rebuilds it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["FoundationFiles", "foundation_card", "foundation_files"]

FOUNDATION_PACKAGE = "aiida_mofmlp.resources.foundation"
FOUNDATION_MODEL = "small_mof_foundation.model"
FOUNDATION_REPLAY = "replay.extxyz.gz"
FOUNDATION_HELDOUT = "heldout.extxyz.gz"
FOUNDATION_CARD = "card.yaml"


class FoundationFiles(NamedTuple):
    """Paths of the shipped foundation: model, replay sample, card (YAML) and held-out sample."""

    model: Path
    replay: Path
    card: Path
    heldout: Path


def foundation_files() -> FoundationFiles:
    """Paths of the small MOF foundation model, its replay sample (gzipped extxyz), card and held-out frames.

    Raises:
        FileNotFoundError: naming the missing file and how to rebuild it.
    """
    folder = Path(str(resources.files(FOUNDATION_PACKAGE)))
    files = FoundationFiles(
        model=folder / FOUNDATION_MODEL,
        replay=folder / FOUNDATION_REPLAY,
        card=folder / FOUNDATION_CARD,
        heldout=folder / FOUNDATION_HELDOUT,
    )
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(
                f"shipped foundation file {path.name} is missing from {folder}; rebuild it with "
                "`python scripts/build_foundation.py` or reinstall aiida-mofmlp"
            )
    return files


def foundation_card() -> dict[str, Any]:
    """The foundation's card: training data, architecture, held-out errors, build command and timings."""
    import yaml

    return yaml.safe_load(foundation_files().card.read_text())
