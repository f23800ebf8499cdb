"""What every restart work chain of the plugin (a ``BaseRestartWorkChain`` around one CalcJob) shares."""

from __future__ import annotations

from aiida.engine import CalcJob, ProcessSpec

#: a job stopped by the scheduler for time runs again with this many times its walltime
WALLTIME_FACTOR = 2.0


def more_walltime(inputs, factor: float = WALLTIME_FACTOR) -> tuple[int, int]:
    """Multiply the walltime of a restart work chain's CalcJob ``inputs`` (its ``ctx.inputs``) by ``factor``
    (3600 s when unset); returns the old and the new walltime in seconds."""
    options = dict(inputs.metadata.get("options", {}))
    walltime = int(options.get("max_wallclock_seconds") or 3600)
    options["max_wallclock_seconds"] = int(walltime * factor)
    inputs.metadata["options"] = options
    return walltime, options["max_wallclock_seconds"]


def expose_calcjob_outputs(spec: ProcessSpec, calcjob: type[CalcJob]) -> None:
    """Expose the outputs of ``calcjob`` on ``spec``, with ``remote_folder`` optional.

    aiida-core (2.9) can finish a CalcJob without its ``remote_folder`` link: when the daemon worker dies
    after the upload has marked the job uploaded but before the next state (and the link) is saved, the
    restarted process skips the upload and never emits the folder, yet submits, runs and parses the job.
    Measured here: a daemon SIGKILL during a labelling wave left a finished, correctly parsed CP2K job
    without ``remote_folder`` (tests/integration/production/test_slurm_daemon_faults.py). Nothing downstream
    needs the folder, so such a job must not fail its work chain; a restart that needs it checks for it.
    """
    spec.expose_outputs(calcjob)
    spec.outputs["remote_folder"].required = False
