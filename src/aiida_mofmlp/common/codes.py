"""Labels of the codes that ``aiida-mofmlp setup`` creates, one per program the plugin drives."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

#: computer label used by ``aiida-mofmlp setup`` (created when missing, reused when it is a local one)
COMPUTER_LABEL = "localhost"

#: kind -> (code label, executable name looked up on PATH / in the virtual environment, default plugin)
CODES = {
    "cp2k": ("mofmlp-cp2k", "cp2k.psmp", "cp2k"),
    "raspa": ("mofmlp-raspa", "simulate", "raspa"),
    "train": ("mofmlp-train", "mofmlp-train", "mofmlp.mace_train"),
    "deviation": ("mofmlp-deviation", "mofmlp-deviation", "mofmlp.deviation"),
    "md": ("mofmlp-md", "mofmlp-md", "mofmlp.lammps_md"),
    "select": ("mofmlp-select", "mofmlp-select", "mofmlp.select"),
    "xtb": ("mofmlp-xtb", "mofmlp-xtb", "mofmlp.xtb"),
    "phonons": ("mofmlp-phonons", "mofmlp-phonons", "mofmlp.phonons"),
    "widom": ("mofmlp-widom", "mofmlp-widom", "mofmlp.widom"),
    "reference": ("mofmlp-reference-check", "mofmlp-reference-check", "mofmlp.reference_check"),
}


def code_label(kind: str) -> str:
    """Full ``label@computer`` of the code of ``kind`` as created by ``aiida-mofmlp setup``."""
    if kind not in CODES:
        raise ValueError(f"unknown code kind {kind!r}; valid kinds: {', '.join(CODES)}")
    return f"{CODES[kind][0]}@{COMPUTER_LABEL}"


def find_executable(name: str) -> str | None:
    """Absolute path of ``name``: the running environment's ``bin`` first, then PATH."""
    local = Path(sys.executable).parent / name
    if local.is_file():
        return str(local)
    return shutil.which(name)


def put_environment_bin_on_path() -> str:
    """Put the running environment's ``bin`` first on ``PATH`` (this process and what it starts); its path.

    aiida-core's daemon client looks ``verdi`` up on PATH once, when it is first imported, and the daemon
    it starts runs ``verdi`` from there: called before that, a command run by its full path from a shell
    where no environment is activated (``.venv/bin/aiida-mofmlp setup``) still starts a working daemon.
    """
    bin_dir = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if not parts or parts[0] != bin_dir:
        os.environ["PATH"] = os.pathsep.join([bin_dir, *(p for p in parts if p and p != bin_dir)])
    return bin_dir
