"""Command line interface: ``aiida-mofmlp setup | check | demo | run | runs | datasets | models``."""

from __future__ import annotations

import click

from aiida_mofmlp import __version__
from aiida_mofmlp.common.codes import put_environment_bin_on_path

# before aiida-core's daemon client is imported (it looks `verdi` up on PATH once, at import): a daemon
# started by a command run by its full path, with nothing activated, then finds `verdi`
put_environment_bin_on_path()


@click.group()
@click.version_option(__version__, prog_name="aiida-mofmlp")
def cli() -> None:
    """aiida-mofmlp: active learning of MACE potentials for MOFs and their guests."""


@cli.command()
@click.option(
    "--profile",
    "profile_name",
    default="mofmlp",
    show_default=True,
    help="Profile to use; created (SQLite storage) when it does not exist, used as it is otherwise.",
)
@click.option(
    "--computer",
    default=None,
    help="Local computer to create or reuse (default: localhost; localhost-slurm with --scheduler slurm).",
)
@click.option(
    "--scheduler",
    type=click.Choice(["direct", "slurm"]),
    default="direct",
    show_default=True,
    help="direct: run jobs as plain processes; slurm: submit them to this machine's Slurm "
    "(start it with `bash scripts/slurm.sh`).",
)
@click.option(
    "--cp2k",
    type=click.Path(exists=True, dir_okay=False),
    help="CP2K executable (default: cp2k.psmp on PATH).",
)
@click.option(
    "--raspa", type=click.Path(exists=True, dir_okay=False), help="RASPA `simulate` (default: from RASPA2)."
)
def setup(
    profile_name: str, computer: str | None, scheduler: str, cp2k: str | None, raspa: str | None
) -> None:
    """Create (or reuse) the profile, the local computer and every code the plugin needs. Idempotent."""
    from aiida_mofmlp.cli.setup import SchedulerNotAvailable, ensure_codes, ensure_computer, ensure_profile

    name, created = ensure_profile(profile_name)
    click.echo(f"profile {name!r}: {'created' if created else 'exists, reused'}")
    try:
        computer_node = ensure_computer(scheduler, computer)
    except (SchedulerNotAvailable, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"computer {computer_node.label!r}: ready (work dir {computer_node.get_workdir()})")
    codes = ensure_codes(computer_node, {"cp2k": cp2k, "raspa": raspa})
    missing = []
    for kind, code in codes.items():
        if code is None:
            missing.append(kind)
            click.echo(f"code for {kind}: NOT FOUND (install it, then run `aiida-mofmlp setup` again)")
        else:
            click.echo(f"code {code.full_label}: {code.filepath_executable}")
    if missing:
        raise click.ClickException(f"missing programs: {', '.join(missing)}")


@cli.command()
def check() -> None:
    """Print the versions of the programs and libraries the plugin drives."""
    from aiida_mofmlp.tools.environment import describe_environment

    for name, value in describe_environment().items():
        click.echo(f"{name:>12}: {value}")


@cli.command()
@click.option(
    "--profile",
    "profile_name",
    default="mofmlp",
    show_default=True,
    help="Profile to run in; created (SQLite storage) when it does not exist.",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False),
    default="./mofmlp-demo-output",
    show_default=True,
    help="Folder for the demo's training set, models, iteration table and plots.",
)
@click.option(
    "--model-card/--no-model-card",
    default=False,
    show_default=True,
    help="Afterwards compare the final ensemble with its foundation (ModelCardWorkChain, about 10 min).",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace an earlier demo's files in --output-dir (others are kept)."
)
def demo(profile_name: str, output_dir: str, model_card: bool, overwrite: bool) -> None:
    """The active-learning loop on DMOF-1 (ZnBDCdabco) + CO2, fast protocol (about 4 min of loop on 2 cores).

    Needs `aiida-mofmlp setup` first (codes). One ActiveLearningWorkChain: RASPA snapshots, foundation MD,
    SOAP selection, GFN1-xTB labels, a 2-model MACE ensemble, LAMMPS exploration, ensemble deviation,
    convergence check, repeated; then a final validation (and, with --model-card, the model card).
    """
    from pathlib import Path

    from aiida_mofmlp.cli.demo import DemoError, run_demo
    from aiida_mofmlp.cli.setup import ensure_profile

    name, _ = ensure_profile(profile_name)
    try:
        run_demo(name, Path(output_dir), echo=click.echo, model_card=model_card, overwrite=overwrite)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc


from aiida_mofmlp.cli.runs import register as _register_runs  # noqa: E402  (needs `cli` defined above)

_register_runs(cli)

from aiida_mofmlp.cli.run import register as _register_run  # noqa: E402  (needs `cli` defined above)

_register_run(cli)
