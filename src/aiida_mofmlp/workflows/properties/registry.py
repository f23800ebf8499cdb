"""Every property work chain in one table, with one way to build it on an ensemble.

:data:`PROPERTIES` maps a key (``adsorption``, ``diffusion``, ``thermal_expansion``, ``melt_quench``,
``phonons``, ``model_card``, ``reference_check``) to a :class:`PropertyEntry`: the label people read, the
entry point, the code kinds it takes and needs, and what else it needs (a guest; frames with guests).
Every work chain's own ``get_builder_from_protocol`` takes
``(structure, models, codes, protocol=, overrides=, trust=, **extra)``; :func:`property_builder` calls it for
any key from one set of arguments. ``PropertiesWorkChain``, the loop's ``properties`` step, the app and the
command line all go through here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from aiida import orm


@dataclass(frozen=True)
class PropertyEntry:
    """One property work chain: how people call it, where it is, what it needs."""

    key: str
    label: str
    entry_point: str
    codes: tuple[str, ...]  # code kinds it takes (aiida_mofmlp.common.codes.CODES)
    required_codes: tuple[str, ...]  # code kinds without which it cannot run
    needs_guest: bool = False
    needs_loaded_frame: bool = False  # a frame with guests in it (the loop's loaded starting frame)
    extra_inputs: tuple[str, ...] = ()  # keyword inputs of its builder beyond the common ones

    def workflow(self):
        """The work chain class (loaded by entry point)."""
        from aiida.plugins import WorkflowFactory

        return WorkflowFactory(self.entry_point)


PROPERTIES: dict[str, PropertyEntry] = {
    entry.key: entry
    for entry in (
        PropertyEntry(
            "adsorption",
            "adsorption",
            "mofmlp.properties.adsorption",
            ("md", "widom", "raspa", "xtb", "deviation"),
            ("md", "widom"),
            needs_guest=True,
            extra_inputs=("guest",),
        ),
        PropertyEntry(
            "diffusion",
            "diffusion",
            "mofmlp.properties.diffusion",
            ("md", "deviation"),
            ("md",),
            needs_loaded_frame=True,
        ),
        PropertyEntry(
            "thermal_expansion",
            "thermal expansion",
            "mofmlp.properties.thermal_expansion",
            ("md", "deviation"),
            ("md",),
        ),
        PropertyEntry(
            "melt_quench", "melt-quench", "mofmlp.properties.melt_quench", ("md", "deviation"), ("md",)
        ),
        PropertyEntry(
            "phonons", "phonons", "mofmlp.properties.phonons", ("phonons", "deviation"), ("phonons",)
        ),
        PropertyEntry(
            "model_card",
            "model card",
            "mofmlp.properties.model_card",
            ("phonons", "md", "deviation", "reference"),
            ("phonons",),
            extra_inputs=("guest", "validation_frames"),
        ),
        PropertyEntry(
            "reference_check",
            "reference check",
            "mofmlp.properties.reference_check",
            ("reference",),
            ("reference",),
            extra_inputs=("validation_frames",),
        ),
    )
}


def property_key(name: str) -> str:
    """The key of a property named by key or label (``"thermal expansion"`` -> ``thermal_expansion``)."""
    for entry in PROPERTIES.values():
        if name in (entry.key, entry.label):
            return entry.key
    valid = ", ".join(PROPERTIES)
    raise ValueError(f"property {name!r} is not known; valid: {valid} (or their labels with spaces)")


def property_problems(
    keys: list[str],
    codes: Mapping[str, object],
    *,
    has_guest: bool,
    has_loaded_frame: bool,
    overrides: Mapping | None = None,
    overrides_name: str = "overrides",
) -> list[str]:
    """Why the properties ``keys`` cannot run with these codes and inputs (a sentence each)."""
    problems = []
    for name in keys:
        try:
            entry = PROPERTIES[property_key(name)]
        except ValueError as error:
            problems.append(str(error))
            continue
        missing = [kind for kind in entry.required_codes if codes.get(kind) is None]
        if missing:
            problems.append(f"{entry.label}: needs codes {missing} (run `aiida-mofmlp setup`)")
        if entry.needs_guest and not has_guest:
            problems.append(f"{entry.label}: needs a guest (an empty framework adsorbs nothing)")
        if entry.needs_loaded_frame and not has_loaded_frame:
            problems.append(f"{entry.label}: needs frames with guests in them (the loop's starting frames)")
    if overrides:  # per-property overrides may only name chosen properties
        chosen = sorted({property_key(str(name)) for name in keys})
        extra = sorted(set(overrides) - set(chosen))
        if extra:
            problems.append(f"{overrides_name}: keys {extra} are not among the chosen properties {chosen}")
    return problems


def property_builder(
    key: str,
    structure: orm.StructureData,
    models: Mapping[str, orm.Data],
    codes: Mapping[str, orm.AbstractCode | None],
    *,
    protocol: str | None = None,
    overrides: Mapping | str | os.PathLike | None = None,
    trust: Mapping | None = None,
    guest: orm.Data | None = None,
    loaded_frame: orm.Data | None = None,
    validation_frames: orm.Data | None = None,
):
    """The builder of property ``key`` on the ensemble ``models`` (nothing stored or submitted).

    ``codes`` by kind; ``trust`` the ensemble's trust window (``lo``/``hi``, eV/Å; the property's default when
    None); ``loaded_frame`` a one-frame StructureSetData with guests (diffusion); ``validation_frames``
    labelled frames (model card). A single model gets no ``deviation`` (there is no ensemble to disagree).
    """
    entry = PROPERTIES[property_key(key)]
    problems = property_problems(
        [entry.key], codes, has_guest=guest is not None, has_loaded_frame=loaded_frame is not None
    )
    if problems:
        raise ValueError(problems[0])
    models = dict(models)
    kinds = {kind: codes.get(kind) for kind in entry.codes if codes.get(kind) is not None}
    if len(models) < 2:
        kinds.pop("deviation", None)  # one model: nothing to disagree
    given = {"guest": guest, "validation_frames": validation_frames}
    extra = {name: given[name] for name in entry.extra_inputs if given[name] is not None}
    start = loaded_frame if entry.needs_loaded_frame else structure
    trust_window = None
    if trust:
        from aiida_mofmlp.common.trust import TrustWindow

        trust_window = TrustWindow.from_mapping(dict(trust)).as_dict()
    return entry.workflow().get_builder_from_protocol(
        start, models, kinds, protocol=protocol, overrides=overrides, trust=trust_window, **extra
    )


def loaded_frame_index(frames) -> int | None:
    """Index of the frame with the most guests (``info['loading']``), or None when none has one."""
    best, index = 0, None
    for position, atoms in enumerate(frames.iter_frames()):
        loading = int(atoms.info.get("loading", 0) or 0)
        if loading > best:
            best, index = loading, position
    return index
