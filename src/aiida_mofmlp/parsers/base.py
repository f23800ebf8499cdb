"""Common base of the parsers of aiida-mofmlp's engines (counterpart of ``calculations.base``).

An engine run leaves its output files and ``stderr.txt`` in the retrieved folder. :class:`EngineParser`
does what every engine parser needs before reading the results:

* when a file of :attr:`~EngineParser.REQUIRED_FILES` is missing, the engine's standard error decides the
  exit code: the last line matching one of :attr:`~EngineParser.ERROR_PATTERNS` (by default
  ``"<ENGINE>: error:"``, what the engines print when they reject their input) gives its exit code
  (302 ``ERROR_INVALID_INPUT``) with the text after the pattern; otherwise 300 ``ERROR_MISSING_OUTPUT``
  with the last lines of stderr;
* reading helpers (:meth:`~EngineParser.read_text`, :meth:`~EngineParser.read_json`,
  :meth:`~EngineParser.read_npz`, :meth:`~EngineParser.read_structure_set`) raise
  :class:`OutputFileMissing` / :class:`OutputFileUnreadable`, which :meth:`~EngineParser.parse` turns into
  300 ``ERROR_MISSING_OUTPUT`` / 301 ``ERROR_UNREADABLE_OUTPUT`` naming the file.

Subclasses implement :meth:`~EngineParser.parse_outputs`.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from aiida import orm
from aiida.engine import ExitCode
from aiida.parsers import Parser

from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.io import STDERR_FILENAME

__all__ = ["EngineParser", "OutputFileMissing", "OutputFileUnreadable"]

#: errors of reading a retrieved file that mean it is corrupt or truncated
READ_ERRORS = (OSError, ValueError, UnicodeDecodeError, EOFError, KeyError, zipfile.BadZipFile)


class OutputFileMissing(Exception):
    """An output file the parser needs was not retrieved (exit code 300)."""


class OutputFileUnreadable(Exception):
    """An output file was retrieved but cannot be read (exit code 301)."""


class EngineParser(Parser):
    """Parser of an :class:`~aiida_mofmlp.calculations.base.EngineCalculation`.

    Class attributes of a subclass: :attr:`ENGINE` (the console script, e.g. ``mofmlp-deviation``),
    :attr:`REQUIRED_FILES` (without them nothing can be parsed) and, when the engine reports rejected
    input differently, :attr:`ERROR_PATTERNS`.
    """

    #: name of the engine's console script; its error lines start with ``"<ENGINE>: error:"``
    ENGINE: ClassVar[str] = ""
    #: output files without which nothing is parsed
    REQUIRED_FILES: ClassVar[tuple[str, ...]] = ()
    #: stderr pattern -> exit code label; ``None`` means ``{"<ENGINE>: error:": "ERROR_INVALID_INPUT"}``
    ERROR_PATTERNS: ClassVar[dict[str, str] | None] = None

    @classmethod
    def error_patterns(cls) -> dict[str, str]:
        """The stderr patterns this parser maps to exit code labels, in order of precedence."""
        if cls.ERROR_PATTERNS is not None:
            return dict(cls.ERROR_PATTERNS)
        return {f"{cls.ENGINE}: error:": "ERROR_INVALID_INPUT"}

    # --- parse --------------------------------------------------------------------------------------

    def parse(self, **kwargs) -> ExitCode | None:
        """Check :attr:`REQUIRED_FILES`, then :meth:`parse_outputs`; read errors become exit codes."""
        missing = [name for name in self.REQUIRED_FILES if name not in self.retrieved_names]
        if missing:
            return self.exit_code_from_stderr(missing)
        try:
            return self.parse_outputs(**kwargs)
        except OutputFileMissing as error:
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(detail=str(error))
        except OutputFileUnreadable as error:
            return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(detail=str(error))

    def parse_outputs(self, **kwargs) -> ExitCode | None:
        """Attach the outputs (all :attr:`REQUIRED_FILES` are there); return an exit code or None."""
        raise NotImplementedError

    def exit_code_from_stderr(self, missing: list[str]) -> ExitCode:
        """The exit code of a run that left ``missing`` files out: its error line, else 300 with stderr."""
        stderr = self.stderr()
        patterns = self.error_patterns()
        for line in reversed(stderr.splitlines()):
            for pattern, label in patterns.items():
                if pattern in line:
                    detail = line.split(pattern, 1)[1].strip()
                    return getattr(self.exit_codes, label).format(detail=detail)
        tail = " | ".join(stderr.strip().splitlines()[-3:]) or "no stderr"
        return self.exit_codes.ERROR_MISSING_OUTPUT.format(detail=f"{', '.join(missing)} absent; {tail}")

    # --- reading the retrieved folder ---------------------------------------------------------------

    @cached_property
    def retrieved_names(self) -> set[str]:
        """Names of the files in the retrieved folder."""
        return set(self.retrieved.base.repository.list_object_names())

    def stderr(self) -> str:
        """The engine's standard error ('' when it was not retrieved or is not text)."""
        try:
            return self.read_text(STDERR_FILENAME)
        except (OutputFileMissing, OutputFileUnreadable):
            return ""

    def read_bytes(self, name: str) -> bytes:
        """Content of retrieved file ``name``; raises :class:`OutputFileMissing` when absent."""
        if name not in self.retrieved_names:
            raise OutputFileMissing(f"{name} absent")
        return self.retrieved.base.repository.get_object_content(name, mode="rb")

    def read_text(self, name: str) -> str:
        """Retrieved file ``name`` decoded as UTF-8."""
        try:
            return self.read_bytes(name).decode("utf8")
        except UnicodeDecodeError as error:
            raise OutputFileUnreadable(f"{name}: {error}") from error

    def read_json(self, name: str) -> Any:
        """Retrieved JSON file ``name``."""
        text = self.read_text(name)
        try:
            return json.loads(text)
        except ValueError as error:
            raise OutputFileUnreadable(f"{name}: {error}") from error

    def read_npz(self, name: str, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """Arrays of retrieved NumPy archive ``name`` (all, or ``keys``, each of which must be there)."""
        content = self.read_bytes(name)
        try:
            with np.load(io.BytesIO(content)) as data:
                return {key: data[key] for key in (data.files if keys is None else keys)}
        except READ_ERRORS as error:
            raise OutputFileUnreadable(f"{name}: {error}") from error

    def read_structure_set(self, name: str) -> StructureSetData:
        """A StructureSetData (unstored) of retrieved extxyz file ``name``."""
        content = self.read_bytes(name)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_bytes(content)
            try:
                return StructureSetData.from_file(path)
            except Exception as error:  # ase raises many kinds of errors on a corrupt extxyz
                raise OutputFileUnreadable(f"{name}: {error}") from error

    def singlefile(self, name: str) -> orm.SinglefileData:
        """A SinglefileData (unstored) of retrieved file ``name``."""
        return orm.SinglefileData(io.BytesIO(self.read_bytes(name)), filename=name)

    @staticmethod
    def array_data(arrays: dict[str, np.ndarray], units: dict[str, str] | None = None) -> orm.ArrayData:
        """An ArrayData of ``arrays``, with a ``units`` attribute when given."""
        node = orm.ArrayData()
        for key, value in arrays.items():
            node.set_array(key, value)
        if units is not None:
            node.base.attributes.set("units", units)
        return node
