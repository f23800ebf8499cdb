"""What every restart work chain of the plugin (a ``BaseRestartWorkChain`` around one CalcJob) shares."""

from __future__ import annotations

from aiida.engine import CalcJob, ProcessSpec


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
