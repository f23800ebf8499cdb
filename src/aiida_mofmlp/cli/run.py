"""``aiida-mofmlp run STRUCTURE.cif``: the active-learning loop on a framework of the user's own.

Everything the command line gives is checked before anything is stored or submitted: the CIF goes
through intake (:func:`aiida_mofmlp.tools.intake.load_cif`), the options and the overrides file are merged
into the loop's settings (protocol, strategy preset, packaged sizes, file, options; in that order) and
validated by the loop's own validator, and the elements of framework and guest are checked against the
foundation model. ``--dry-run`` prints the resolved settings as YAML; ``--submit`` hands the work chain to
the daemon; otherwise it runs in the foreground with one progress line per stage, as the demo does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: ``--foundation`` value for the model shipped with the plugin (a stand-in for MACE-MP offline)
SHIPPED_FOUNDATION = "small"
#: ``--guest`` value for the empty framework
NO_GUEST = "none"


class RunOptionError(ValueError):
    """An option of ``aiida-mofmlp run`` is not valid; the message names it and what is valid."""


@dataclass
class RunRequest:
    """The command line of ``aiida-mofmlp run`` (plain values; see the command's help)."""

    structure: Path
    guest: str = "CO2"
    loadings: str | None = None
    temperatures: str | None = None
    protocol: str = "fast"
    labels: str | None = None
    foundation: str = SHIPPED_FOUNDATION
    trust_model: bool = False
    replay: Path | None = None
    sizes: str | None = None
    overrides: Path | None = None
    properties: str | None = None  # comma-separated keys or labels of the property registry


@dataclass
class ResolvedRun:
    """A request checked and resolved: the structure (unstored), intake warnings, the overrides handed to
    ``get_builder_from_protocol`` and the loop's resolved inputs."""

    request: RunRequest
    structure: Any
    warnings: list[str] = field(default_factory=list)
    overrides: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    foundation_species: list[str] = field(default_factory=list)
    properties: list[str] = field(default_factory=list)  # registry keys, run as the loop's last step
    property_overrides: dict = field(default_factory=dict)  # the overrides file's ``properties`` section


def parse_list(text: str, kind: type, option: str) -> list:
    """``"1, 4 8"`` -> [1, 4, 8], all positive; :class:`RunOptionError` names ``option`` and the bad item."""
    values = []
    for item in text.replace(",", " ").split():
        try:
            values.append(kind(item))
        except ValueError:
            what = "whole numbers" if kind is int else "numbers"
            raise RunOptionError(
                f"{option} {text!r}: {item!r} is not a number; give {what}, e.g. 1,4"
            ) from None
    if not values:
        raise RunOptionError(f"{option} is empty; give {'whole numbers' if kind is int else 'numbers'}")
    bad = [value for value in values if value <= 0]
    if bad:
        raise RunOptionError(f"{option} {text!r}: {bad[0]!r} is not positive; every value must be above 0")
    return values


def request_overrides(request: RunRequest) -> dict:
    """The overrides of ``request``: packaged sizes (``--sizes``), then the file, then the options."""
    from aiida_mofmlp.common.protocols import deep_merge
    from aiida_mofmlp.workflows.protocols.utils import load_overrides, packaged_overrides_path

    merged: dict = {}
    if request.sizes:
        try:
            merged = load_overrides(packaged_overrides_path(request.sizes))
        except ValueError as error:
            raise RunOptionError(f"--sizes: {error}") from None
    if request.overrides is not None:
        try:
            merged = deep_merge(merged, load_overrides(request.overrides))
        except (OSError, TypeError, ValueError) as error:
            raise RunOptionError(f"--overrides {request.overrides}: {error}") from None
    parameters: dict = {}
    if request.loadings is not None:
        parameters["loadings"] = parse_list(request.loadings, int, "--loadings")
    if request.temperatures is not None:
        parameters["temperatures"] = parse_list(request.temperatures, float, "--temperatures")
    if request.labels is not None:
        parameters["labelling"] = {"engine": request.labels}
    return deep_merge(merged, {"parameters": parameters}) if parameters else merged


def foundation_species(foundation: str, trusted: bool = False) -> list[str]:
    """Elements of the ``--foundation`` model (the shipped one's from its card).

    A pickled model file is read only with ``trusted`` (``--trust-model``), converted in a subprocess.
    """
    if foundation == SHIPPED_FOUNDATION:
        from aiida_mofmlp.common.resources import foundation_card

        return list(foundation_card()["model"]["species"])
    path = Path(foundation)
    if not path.is_file():
        raise RunOptionError(
            f"--foundation {foundation!r}: no such file; give {SHIPPED_FOUNDATION!r} (the shipped model) "
            "or the path of a MACE model file (e.g. MACE-MP-0b3)"
        )
    from aiida_mofmlp.data.mace_model import describe_model_file

    try:
        return list(describe_model_file(path, trusted=trusted)["species"])
    except ValueError as error:
        raise RunOptionError(f"--foundation {foundation!r}: {error}") from None


def resolve(request: RunRequest) -> ResolvedRun:
    """Check ``request`` and resolve its settings; nothing is stored.

    Raises:
        RunOptionError: naming the option (or the structure) and what would be valid.
    """
    from aiida import orm

    from aiida_mofmlp.data.guest import BUILTIN_GUESTS
    from aiida_mofmlp.tools.intake import StructureIntakeError, load_cif
    from aiida_mofmlp.workflows.active_learning.builders import resolved_inputs
    from aiida_mofmlp.workflows.active_learning.settings import validate_parameters
    from aiida_mofmlp.workflows.active_learning.workchain import ActiveLearningWorkChain

    protocols = ActiveLearningWorkChain.get_available_protocols()
    if request.protocol not in protocols:
        raise RunOptionError(f"--protocol {request.protocol!r} is not known; valid: {', '.join(protocols)}")
    if request.guest != NO_GUEST and request.guest not in BUILTIN_GUESTS:
        valid = ", ".join([*BUILTIN_GUESTS, NO_GUEST])
        raise RunOptionError(f"--guest {request.guest!r} is not a built-in guest; valid: {valid}")
    if request.guest == NO_GUEST and request.loadings:
        raise RunOptionError("--loadings given with --guest none: the empty framework has no guests")
    if request.replay is not None and not Path(request.replay).is_file():
        raise RunOptionError(
            f"--replay {str(request.replay)!r}: no such file (an extxyz of the foundation's data)"
        )
    overrides = request_overrides(request)
    property_overrides = overrides.pop("properties", None) or {}
    try:
        inputs = resolved_inputs(ActiveLearningWorkChain, request.protocol, overrides)
    except ValueError as error:
        raise RunOptionError(f"settings: {error}") from None
    parameters = inputs["parameters"]
    if request.guest == NO_GUEST:
        parameters["loadings"] = []
    message = validate_parameters(orm.Dict(parameters))
    if message:
        raise RunOptionError(f"settings: {message}")
    properties = resolve_properties(request.properties, request.guest != NO_GUEST, parameters["loadings"])
    if not isinstance(property_overrides, dict) or set(property_overrides) - set(properties):
        raise RunOptionError(
            f"--overrides: the 'properties' section must map chosen --properties ({', '.join(properties)}) "
            f"to their overrides; got {property_overrides!r}"
        )
    path = Path(request.structure)
    if not path.is_file():
        raise RunOptionError(f"STRUCTURE {str(path)!r}: no such file; give the path of a CIF")
    try:
        structure, issues = load_cif(path)
    except StructureIntakeError as error:
        raise RunOptionError(f"STRUCTURE {path.name} was not accepted: {error}") from None
    species = foundation_species(request.foundation, request.trust_model)
    elements = set(structure.get_symbols_set())
    if request.guest != NO_GUEST:
        elements |= set(BUILTIN_GUESTS[request.guest]["symbols"])
    missing = sorted(elements - set(species))
    if missing:
        raise RunOptionError(
            f"--foundation {request.foundation!r} knows {', '.join(species)} but not {', '.join(missing)} of "
            f"{path.name}{' and ' + request.guest if request.guest != NO_GUEST else ''}: fine-tuning cannot "
            "add elements; give a foundation that has them (e.g. MACE-MP-0b3)"
        )
    return ResolvedRun(
        request=request,
        structure=structure,
        warnings=[str(issue) for issue in issues],
        overrides=overrides,
        inputs=inputs,
        foundation_species=species,
        properties=properties,
        property_overrides=property_overrides,
    )


def resolve_properties(text: str | None, has_guest: bool, loadings: list) -> list[str]:
    """The registry keys of ``--properties`` (comma-separated keys or labels); RunOptionError names what
    is unknown or what a property lacks (a guest; loaded frames)."""
    from aiida_mofmlp.common.codes import CODES
    from aiida_mofmlp.workflows.properties.registry import PROPERTIES, property_key, property_problems

    if not text:
        return []
    names = [name.strip() for name in text.split(",") if name.strip()]
    try:
        keys = list(dict.fromkeys(property_key(name) for name in names))
    except ValueError as error:
        raise RunOptionError(f"--properties: {error}") from None
    if not keys:
        raise RunOptionError(f"--properties is empty; give some of {', '.join(PROPERTIES)}")
    every_code = dict.fromkeys(CODES, True)  # codes are checked by needed_codes against the profile
    loaded = has_guest and any(int(n) > 0 for n in loadings)
    problems = property_problems(keys, every_code, has_guest=has_guest, has_loaded_frame=loaded)
    if problems:
        raise RunOptionError(f"--properties: {'; '.join(problems)}")
    return keys


def settings_document(resolved: ResolvedRun) -> dict:
    """What ``--dry-run`` prints: the structure, the choices, the loop's settings and each stage's."""
    structure = resolved.structure
    request = resolved.request
    parameters = dict(resolved.inputs["parameters"])
    stages = {key: value for key, value in resolved.inputs.items() if key != "parameters" and value}
    document = {
        "structure": {
            "file": str(request.structure),
            "formula": structure.get_formula(),
            "atoms": len(structure.sites),
            "cell_lengths_A": [round(x, 4) for x in structure.cell_lengths],
            "intake_warnings": resolved.warnings,
        },
        "guest": None if request.guest == NO_GUEST else request.guest,
        "protocol": request.protocol,
        "foundation": request.foundation,
        "foundation_species": resolved.foundation_species,
        "replay": str(request.replay)
        if request.replay
        else ("shipped" if request.foundation == "small" else None),
        "properties": resolved.properties,
        "property_overrides": resolved.property_overrides,
        "parameters": parameters,
        "stages": stages,
    }
    # plain types only (numpy scalars from the structure), so that the document dumps as YAML
    return json.loads(
        json.dumps(document, default=lambda value: value.item() if hasattr(value, "item") else str(value))
    )


def build(resolved: ResolvedRun, codes: Mapping):
    """The ActiveLearningWorkChain builder of a resolved run (stores the foundation and replay nodes)."""
    from aiida_mofmlp.data import GuestMoleculeData, MaceModelData, StructureSetData
    from aiida_mofmlp.data.foundation import small_mof_foundation_replay
    from aiida_mofmlp.workflows.active_learning.workchain import ActiveLearningWorkChain

    request = resolved.request
    if request.foundation == SHIPPED_FOUNDATION:
        foundation = MaceModelData.small_mof_foundation()
        replay = small_mof_foundation_replay() if request.replay is None else None
    else:
        foundation = MaceModelData.get_or_create(request.foundation, trusted=request.trust_model)
        replay = None
    if request.replay is not None:
        replay = StructureSetData.from_file(request.replay)
    guest = None if request.guest == NO_GUEST else GuestMoleculeData.builtin(request.guest)
    builder = ActiveLearningWorkChain.get_builder_from_protocol(
        resolved.structure,
        foundation,
        dict(codes),
        guest=guest,
        protocol=request.protocol,
        overrides=resolved.overrides,
        replay_set=replay,
    )
    if resolved.properties:  # run by the loop on its final ensemble, as its last step
        from aiida import orm

        from aiida_mofmlp.workflows.active_learning.properties_step import codes_in_inputs

        builder.properties = orm.List(resolved.properties)
        own = codes_in_inputs(builder)
        builder.property_codes = {kind: code for kind, code in codes.items() if kind not in own}
        if resolved.property_overrides:
            builder.property_overrides = orm.Dict(resolved.property_overrides)
    builder.metadata.label = f"{Path(request.structure).stem} + {request.guest} ({request.protocol})"
    builder.metadata.description = "submitted with `aiida-mofmlp run`"
    return builder


def needed_codes(resolved: ResolvedRun) -> tuple[str, ...]:
    """Code kinds the run needs: its labelling engine, RASPA with a guest, training, MD, deviation (and the
    reference check for ``stop: property`` or ``both``)."""
    engine = resolved.inputs["parameters"]["labelling"].get("engine", "cp2k")
    kinds = [engine, "train", "md", "deviation"]
    if resolved.request.guest != NO_GUEST:
        kinds.append("raspa")
    if (
        int(resolved.inputs["parameters"]["initial_sampling"].get("aimd_steps") or 0) > 0
        and "cp2k" not in kinds
    ):
        kinds.append("cp2k")
    if resolved.inputs["parameters"].get("stop", "sigma") != "sigma":
        kinds.append("reference")  # the property stop rule
    from aiida_mofmlp.workflows.properties.registry import PROPERTIES

    for key in resolved.properties:
        kinds += [kind for kind in PROPERTIES[key].required_codes if kind not in kinds]
    return tuple(kinds)


def submit_run(resolved: ResolvedRun, codes: Mapping, echo: Callable[[str], None] = print):
    """Submit to the daemon; the process node. Says how to follow it (and when no daemon runs)."""
    from aiida.engine import submit
    from aiida.engine.daemon.client import get_daemon_client

    node = submit(build(resolved, codes))
    echo(f"Submitted ActiveLearningWorkChain<{node.pk}> ({node.label}).")
    client = get_daemon_client()
    if not client.is_daemon_running:
        echo(
            f"Note: the daemon of profile {client.profile.name!r} is not running; the run waits until one "
            f"picks it up: `verdi -p {client.profile.name} daemon start`."
        )
    echo(
        f"Follow it: `aiida-mofmlp runs show {node.pk}` (iteration table), `verdi process report {node.pk}`."
    )
    return node


def output_folder(request: RunRequest, given: str | os.PathLike | None) -> Path:
    """``given``, else ``./mofmlp-run-<structure name>``."""
    return Path(given) if given else Path(f"mofmlp-run-{Path(request.structure).stem}")


def register(group) -> None:
    """Add ``run`` to the ``aiida-mofmlp`` command group."""
    import click

    @group.command("run")
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
        "--trust-model",
        is_flag=True,
        help="Accept a pickled --foundation file (it can run code when opened): it is opened once, in a "
        "process without the profile, and kept as weights plus architecture.",
    )
    @click.option(
        "--replay",
        type=click.Path(dir_okay=False),
        default=None,
        help="extxyz of the foundation's training data for multihead replay (default with 'small': shipped).",
    )
    @click.option(
        "--sizes", default=None, help="Packaged sizes: demo | tiny (protocols/overrides/<name>.yaml)."
    )
    @click.option(
        "--overrides",
        type=click.Path(dir_okay=False),
        default=None,
        help="YAML file shaped like get_builder_from_protocol's overrides (see docs/source/workflows.md); "
        "a 'properties' section maps each of --properties to its protocol overrides.",
    )
    @click.option(
        "--properties",
        default=None,
        help="Properties run on the final ensemble as the loop's last step, comma-separated: adsorption, "
        "diffusion, thermal_expansion, melt_quench, phonons, model_card.",
    )
    @click.option(
        "--dry-run", is_flag=True, help="Print the resolved settings as YAML and exit; nothing is stored."
    )
    @click.option(
        "--submit", "to_daemon", is_flag=True, help="Submit to the daemon and print how to follow it."
    )
    @click.option("--profile", "profile_name", default="mofmlp", show_default=True, help="Profile to use.")
    @click.option(
        "--output-dir",
        type=click.Path(file_okay=False),
        default=None,
        help="Folder for the results of a foreground run (default: ./mofmlp-run-<structure name>).",
    )
    @click.option(
        "--overwrite",
        is_flag=True,
        help="Replace an earlier run's files in the output folder (others are kept).",
    )
    def run_command(
        structure: str,
        guest: str,
        loadings: str | None,
        temperatures: str | None,
        protocol: str,
        labels: str | None,
        foundation: str,
        trust_model: bool,
        replay: str | None,
        sizes: str | None,
        overrides: str | None,
        properties: str | None,
        dry_run: bool,
        to_daemon: bool,
        profile_name: str,
        output_dir: str | None,
        overwrite: bool,
    ) -> None:
        """The active-learning loop on the framework in STRUCTURE (a CIF) with a guest.

        Every option is checked before anything is stored or submitted. In the foreground it prints one line
        per stage and ends with the iteration table and the errors of the fine-tuned ensemble and of its
        foundation on new frames; --submit hands it to the daemon instead.
        """
        import yaml

        request = RunRequest(
            structure=Path(structure),
            guest=guest,
            loadings=loadings,
            temperatures=temperatures,
            protocol=protocol,
            labels=labels,
            foundation=foundation,
            trust_model=trust_model,
            replay=Path(replay) if replay else None,
            sizes=sizes,
            overrides=Path(overrides) if overrides else None,
            properties=properties,
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
            click.echo(yaml.safe_dump(settings_document(resolved), sort_keys=False, width=100))
            return
        from aiida_mofmlp.cli.demo import DemoError, _codes, run_in_foreground

        try:
            codes = _codes(name, needed_codes(resolved))
        except DemoError as error:
            raise click.ClickException(str(error)) from error
        if to_daemon:
            submit_run(resolved, codes, echo=click.echo)
            return
        from aiida_mofmlp.common.staging import check_output_directory

        try:
            folder = check_output_directory(output_folder(request, output_dir), overwrite, hint="--overwrite")
        except ValueError as error:
            raise click.UsageError(str(error)) from error
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
