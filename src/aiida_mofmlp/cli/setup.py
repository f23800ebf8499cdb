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
        # no login shell: the codes are absolute paths, and sourcing the profile files for every job costs
        # time (a stale `pyenv rehash` lock there made each job wait a minute on this machine)
        computer.configure(use_login_shell=False)
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


# --- a computer on a batch scheduler (Slurm) ---------------------------------------------------------------

#: scheduler name accepted by ``aiida-mofmlp setup --scheduler`` -> AiiDA scheduler plugin
SCHEDULERS = {"direct": "core.direct", "slurm": "core.slurm"}

#: computer label used for each scheduler when ``--computer`` is not given
DEFAULT_COMPUTER_LABELS = {"direct": COMPUTER_LABEL, "slurm": "localhost-slurm"}

#: seconds between two ``squeue`` polls of the local Slurm (a remote cluster wants 30 s or more)
SLURM_POLL_INTERVAL = 2.0


class SchedulerNotAvailable(RuntimeError):
    """The batch scheduler asked for does not answer on this machine."""


def default_computer_label(scheduler: str) -> str:
    """The computer label ``aiida-mofmlp setup`` uses for ``scheduler`` when none is given."""
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler {scheduler!r} is not supported; valid: {', '.join(SCHEDULERS)}")
    return DEFAULT_COMPUTER_LABELS[scheduler]


def check_slurm() -> str:
    """The partitions of the local Slurm as ``sinfo`` prints them; raises when Slurm does not answer."""
    sinfo = find_executable("sinfo")
    if sinfo is None:
        raise SchedulerNotAvailable(
            "Slurm's `sinfo` is not installed on this machine; install and start a single-node Slurm with "
            "`bash scripts/slurm.sh` (as root), or use --scheduler direct"
        )
    try:
        result = subprocess.run(
            [sinfo, "-h", "-o", "%P %a %l %D %T"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired as exc:
        raise SchedulerNotAvailable(
            "Slurm is not answering (`sinfo` did not return within 30 s); start it with "
            "`bash scripts/slurm.sh` (as root) or check slurmctld's log"
        ) from exc
    if result.returncode != 0 or not result.stdout.strip():
        raise SchedulerNotAvailable(
            f"Slurm is not running (`sinfo` exited with {result.returncode}: "
            f"{(result.stderr or result.stdout).strip()}); start it with `bash scripts/slurm.sh` (as root)"
        )
    return result.stdout.strip()


def ensure_slurm_computer(
    label: str = DEFAULT_COMPUTER_LABELS["slurm"],
    poll_interval: float | None = None,
    workdir: str | Path | None = None,
):
    """The computer ``label`` that submits to the Slurm of this machine (core.local + core.slurm).

    Created when missing, reused when it already is a core.local/core.slurm computer; any other computer of
    that label is left untouched and a ValueError says so. Raises :class:`SchedulerNotAvailable` before
    anything is created when Slurm does not answer. ``workdir`` (default ``~/.aiida_mofmlp/work-slurm``)
    must be visible from the compute node: on a single machine any local folder is.
    """
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    check_slurm()
    try:
        computer = orm.load_computer(label)
    except NotExistent:
        workdir = Path(workdir) if workdir else Path.home() / ".aiida_mofmlp" / "work-slurm"
        workdir.mkdir(parents=True, exist_ok=True)
        computer = orm.Computer(
            label=label,
            hostname="localhost",
            description="the Slurm of this machine (created by aiida-mofmlp setup --scheduler slurm)",
            transport_type="core.local",
            scheduler_type="core.slurm",
            workdir=str(workdir),
        ).store()
        computer.set_minimum_job_poll_interval(
            SLURM_POLL_INTERVAL if poll_interval is None else poll_interval
        )
        computer.set_default_mpiprocs_per_machine(1)
    if (computer.transport_type, computer.scheduler_type) != ("core.local", "core.slurm"):
        raise ValueError(
            f"computer {label!r} exists with transport {computer.transport_type!r} and scheduler "
            f"{computer.scheduler_type!r}; `aiida-mofmlp setup --scheduler slurm` needs core.local + "
            "core.slurm (pass another --computer)"
        )
    if not computer.is_configured:
        # no login shell: each squeue/sbatch would otherwise source the profile files (slow, and a
        # `pyenv rehash` there can block for a minute)
        computer.configure(safe_interval=0.0, use_login_shell=False)
    return computer


def ensure_computer(scheduler: str = "direct", label: str | None = None):
    """The local computer for ``scheduler`` (``direct`` or ``slurm``), created when missing."""
    label = label or default_computer_label(scheduler)
    if scheduler == "slurm":
        return ensure_slurm_computer(label)
    default_computer_label(scheduler)  # validates the name
    return ensure_localhost(label)
