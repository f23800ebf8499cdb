"""Profile, computer and code setup used by ``aiida-mofmlp setup`` and by the test fixtures."""

from __future__ import annotations

import subprocess
from pathlib import Path

from aiida_mofmlp.common.codes import CODES, COMPUTER_LABEL, find_executable

DEFAULT_PROFILE = "mofmlp"


def ensure_profile(name: str = DEFAULT_PROFILE) -> tuple[str, bool]:
    """Load profile ``name``, creating it with ``verdi presto`` (SQLite, RabbitMQ if running, else ZeroMQ).

    An existing profile is used as it is; no other profile is changed, and the default profile stays
    the default when one was set before. Returns the profile name and whether it was created.
    """
    from aiida import load_profile
    from aiida.manage.configuration import get_config, reset_config

    config = get_config(create=True)
    existing = {profile.name for profile in config.profiles}
    created = False
    if name not in existing:
        previous_default = config.default_profile_name
        verdi = find_executable("verdi") or "verdi"
        result = subprocess.run(
            [verdi, "presto", "--profile-name", name, "--non-interactive"], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"`verdi presto --profile-name {name}` failed:\n{result.stdout}\n{result.stderr}"
            )
        created = True
        reset_config()  # the profile was written by another process: read the file again
        if previous_default:
            get_config().set_default_profile(previous_default, overwrite=True).store()
    load_profile(name, allow_switch=True)
    return name, created


def ensure_localhost(label: str = COMPUTER_LABEL):
    """The local computer ``label`` (core.local transport, core.direct scheduler), created when missing."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        computer = orm.load_computer(label)
    except NotExistent:
        workdir = Path.home() / ".aiida_mofmlp" / "work"
        workdir.mkdir(parents=True, exist_ok=True)
        computer = orm.Computer(
            label=label,
            hostname="localhost",
            description="this machine (created by aiida-mofmlp setup)",
            transport_type="core.local",
            scheduler_type="core.direct",
            workdir=str(workdir),
        ).store()
        computer.set_minimum_job_poll_interval(0.0)
        computer.set_default_mpiprocs_per_machine(1)
    if computer.transport_type != "core.local":
        raise ValueError(
            f"computer {label!r} exists but uses transport {computer.transport_type!r}; "
            "aiida-mofmlp setup needs a core.local computer of that name (or pass another --computer)"
        )
    if not computer.is_configured:
        computer.configure()
    return computer


def ensure_codes(computer, executables: dict[str, str] | None = None) -> dict:
    """One InstalledCode per program the plugin drives (see :data:`aiida_mofmlp.common.codes.CODES`).

    Codes that already exist are reused; a program that cannot be found is skipped and reported by the
    returned dict mapping its kind to None.
    """
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    executables = executables or {}
    codes = {}
    for kind, (label, executable, plugin) in CODES.items():
        try:
            codes[kind] = orm.load_code(f"{label}@{computer.label}")
            continue
        except NotExistent:
            pass
        path = executables.get(kind) or find_executable(executable)
        if path is None:
            codes[kind] = None
            continue
        code = orm.InstalledCode(
            label=label,
            computer=computer,
            filepath_executable=path,
            default_calc_job_plugin=plugin,
            description=f"{executable} for aiida-mofmlp",
            with_mpi=False,
        )
        if kind == "cp2k":
            code.prepend_text = "export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}"
        codes[kind] = code.store()
    return codes
