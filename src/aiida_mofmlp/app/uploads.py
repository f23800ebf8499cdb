"""Uploaded files on the server's disk: one folder per upload widget, replaced by the next upload and removed
when the kernel exits (uploads are never left behind in the temporary directory)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path


class UploadFolder:
    """Holds the latest upload of one widget; :meth:`put` removes the previous one."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.folder: Path | None = None
        atexit.register(self.clear)

    def put(self, name: str, content: bytes) -> Path:
        """Write ``content`` as ``name`` (its base name only) in a fresh folder; return the path."""
        self.clear()
        self.folder = Path(tempfile.mkdtemp(prefix=self.prefix))
        path = self.folder / (Path(name).name or "upload")
        path.write_bytes(bytes(content))
        return path

    def clear(self) -> None:
        """Remove the current upload, if any."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
