"""Write a folder of results without losing the previous one: build it aside, then swap it in.

A non-empty target is refused unless ``overwrite``; with ``overwrite`` the old folder stays untouched until
the new one is complete (a failure leaves it as it was), its files that the new one does not write are
carried over, and only then is it removed.
"""

from __future__ import annotations

import contextlib
import fnmatch
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from aiida_mofmlp.common.errors import InputError


def check_output_directory(
    target: str | Path, overwrite: bool, hint: str = "overwrite=True", error: type[Exception] = InputError
) -> Path:
    """``target`` resolved; ``error`` when it is a file, or a non-empty folder and ``overwrite`` is False."""
    target = Path(target).resolve()
    if target.exists() and not target.is_dir():
        raise error(f"output directory {target} is a file; give a new or empty directory")
    if not overwrite and target.is_dir() and any(target.iterdir()):
        raise error(f"output directory {target} is not empty; give a new or empty directory, or {hint}")
    return target


@contextlib.contextmanager
def staged_directory(
    target: str | Path,
    overwrite: bool = False,
    hint: str = "overwrite=True",
    error: type[Exception] = InputError,
    owned: Iterable[str] = (),
) -> Iterator[Path]:
    """Yield a fresh folder beside ``target``; when the block succeeds it becomes ``target``.

    On an exception the staging folder is removed and ``target`` is left as it was. ``owned``: names (or glob
    patterns) in the old folder that belong to the results: never carried over, even when the new lack them.
    """
    target = check_output_directory(target, overwrite, hint, error)
    owned = set(owned)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.writing-", dir=target.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        target.rename(old)
        for entry in old.iterdir():  # files of the user's that the new results do not replace
            mine = any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in owned)
            if not mine and not (staging / entry.name).exists():
                entry.rename(staging / entry.name)
    staging.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
