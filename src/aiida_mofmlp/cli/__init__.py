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
def demo(profile_name: str, output_dir: str, model_card: bool) -> None:
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
        run_demo(name, Path(output_dir), echo=click.echo, model_card=model_card)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc


@cli.command("run")
@click.argument("structure", type=click.Path(dir_okay=False))
@click.option(
    "--guest", default="CO2", show_default=True, help="Built-in guest (CO2, N2, CH4, H2O, H2) or 'none'."
)
@click.option("--loadings", default=None, help="Guests per cell, e.g. '1,4,8' (default: the protocol's).")
@click.option("--temperatures", default=None, help="Kelvin, e.g. '300,400' (default: the protocol's).")
@click.option(
    "--protocol",
    default="fast",
    show_default=True,
    help="fast | balanced | stringent (workflows/protocols/active_learning.yaml).",
)
@click.option(
    "--labels",
    type=click.Choice(["xtb", "cp2k"]),
    default=None,
    help="Labelling method: GFN1-xTB in-process (tblite) or CP2K (default: the protocol's).",
)
@click.option(
    "--foundation",
    default="small",
    show_default=True,
    help="'small' (the shipped MOF foundation) or the path of a MACE model file (e.g. MACE-MP-0b3).",
)
@click.option(
    "--replay",
    type=click.Path(dir_okay=False),
    default=None,
    help="extxyz of the foundation's training data for multihead replay (default with 'small': shipped).",
)
@click.option("--sizes", default=None, help="Packaged sizes: demo | tiny (protocols/overrides/<name>.yaml).")
@click.option(
    "--overrides",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML file shaped like get_builder_from_protocol's overrides (see docs/source/workflows.md).",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the resolved settings as YAML and exit; nothing is stored."
)
@click.option("--submit", "to_daemon", is_flag=True, help="Submit to the daemon and print how to follow it.")
@click.option("--profile", "profile_name", default="mofmlp", show_default=True, help="Profile to use.")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for the results of a foreground run (default: ./mofmlp-run-<structure name>).",
)
def run_command(
    structure: str,
    guest: str,
    loadings: str | None,
    temperatures: str | None,
    protocol: str,
    labels: str | None,
    foundation: str,
    replay: str | None,
    sizes: str | None,
    overrides: str | None,
    dry_run: bool,
    to_daemon: bool,
    profile_name: str,
    output_dir: str | None,
) -> None:
    """The active-learning loop on the framework in STRUCTURE (a CIF) with a guest.

    Every option is checked before anything is stored or submitted. In the foreground it prints one line
    per stage and ends with the iteration table and the errors of the fine-tuned ensemble and of its
    foundation on new frames; --submit hands it to the daemon instead.
    """
    from pathlib import Path

    import yaml

    from aiida_mofmlp.cli.run import RunOptionError, RunRequest, output_folder, resolve

    request = RunRequest(
        structure=Path(structure),
        guest=guest,
        loadings=loadings,
        temperatures=temperatures,
        protocol=protocol,
        labels=labels,
        foundation=foundation,
        replay=Path(replay) if replay else None,
        sizes=sizes,
        overrides=Path(overrides) if overrides else None,
    )
    if dry_run and to_daemon:
        raise click.UsageError("--dry-run and --submit exclude each other")
    from aiida_mofmlp.cli.setup import ensure_profile

    name, _ = ensure_profile(profile_name)
    try:
        resolved = resolve(request)
    except RunOptionError as error:
        raise click.UsageError(str(error)) from error
    for warning in resolved.warnings:
        click.echo(f"intake warning: {warning}")
    if dry_run:
        from aiida_mofmlp.cli.run import settings_document

        click.echo(yaml.safe_dump(settings_document(resolved), sort_keys=False, width=100))
        return
    from aiida_mofmlp.cli.demo import DemoError, _codes, run_in_foreground
    from aiida_mofmlp.cli.run import build, needed_codes, submit_run

    try:
        codes = _codes(name, needed_codes(resolved))
    except DemoError as error:
        raise click.ClickException(str(error)) from error
    if to_daemon:
        submit_run(resolved, codes, echo=click.echo)
        return
    folder = output_folder(request, output_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    params = resolved.inputs["parameters"]
    click.echo(
        f"Active learning of a MACE potential for {guest} in {request.structure.name} "
        f"({resolved.structure.get_formula()}, {len(resolved.structure.sites)} atoms): loadings "
        f"{params['loadings']}, {params['temperatures']} K, {params['labelling'].get('engine')} labels, "
        f"protocol {protocol}, at most {params['max_iterations']} iterations. One line per stage below."
    )
    result = run_in_foreground(build(resolved, codes), folder, echo=click.echo)
    click.echo(f"Files in {folder}:")
    for label, path in result.files.items():
        click.echo(f"  {label:<22} {path}")
    node = result.node
    if not node.is_finished_ok and node.exit_status not in (410, 411):
        raise click.ClickException(f"ActiveLearningWorkChain<{node.pk}> failed: {node.exit_message}")


from aiida_mofmlp.cli.runs import register as _register_runs  # noqa: E402  (needs `cli` defined above)

_register_runs(cli)
