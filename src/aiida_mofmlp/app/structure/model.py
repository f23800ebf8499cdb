"""Structure step: a CIF (uploaded, or from RASPA2's framework library) or a stored StructureData.

Intake runs on every choice, in a child process with time and memory limits
(:func:`aiida_mofmlp.tools.intake_isolated.load_cif_isolated`): no CIF can stall or exhaust the kernel;
its errors and warnings are kept as readable lines, and a too-small cell offers the suggested supercell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import traitlets as tl

from aiida_mofmlp.app.messages import readable_error
from aiida_mofmlp.app.uploads import UploadFolder


@dataclass
class IntakeOutcome:
    """What reading one CIF gave: the checked atoms, or errors and a suggested supercell; warnings."""

    path: Path
    atoms: object = None  # ase.Atoms when accepted
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    supercell: list = field(default_factory=list)


def raspa_framework_folder() -> Path | None:
    """RASPA2's folder of framework CIFs, or None when RASPA2 is not installed."""
    try:
        import RASPA2
    except ImportError:
        return None
    folder = Path(RASPA2.__file__).parent / "share" / "raspa" / "structures" / "cif"
    return folder if folder.is_dir() else None


def raspa_frameworks() -> list[str]:
    """Names of RASPA2's framework CIFs (without ``.cif``), sorted."""
    folder = raspa_framework_folder()
    return sorted(path.stem for path in folder.glob("*.cif")) if folder else []


def stored_structures(limit: int = 50) -> list[tuple[str, int]]:
    """(description, pk) of the newest StructureData nodes of the profile."""
    from aiida import orm

    query = orm.QueryBuilder().append(orm.StructureData, project=["id", "label", "ctime", "attributes.kinds"])
    query.order_by({orm.StructureData: {"ctime": "desc"}}).limit(limit)
    rows = []
    for pk, label, ctime, _ in query.all():
        rows.append((f"<{pk}> {label or 'structure'} ({ctime:%Y-%m-%d %H:%M})", pk))
    return rows


class StructureModel(tl.HasTraits):
    """The framework chosen for the run and what intake said about it."""

    structure = tl.Any(None, allow_none=True)  # orm.StructureData (unstored until submission)
    source = tl.Unicode("")  # where it came from: file name, RASPA2 name or node pk
    errors = tl.List(tl.Unicode())
    warnings = tl.List(tl.Unicode())
    suggested_supercell = tl.List(tl.Int(), default_value=[])  # repeat fixing a too-small cell
    r_cut = tl.Float(0.0)  # Å the cell must hold (0: no check)
    summary = tl.Unicode("")
    busy = tl.Unicode("")  # what intake is reading now ("" when idle)
    #: keyword arguments of load_cif_isolated (timeout, memory, max_atoms, max_cell_length) for this app
    intake_limits = tl.Dict()

    _cif_path: Path | None = None
    _uploads: UploadFolder | None = None  # the latest uploaded CIF (the previous one is removed)

    # --- choices ------------------------------------------------------------------------------------
    def load_upload(self, name: str, content: bytes) -> bool:
        """Intake of an uploaded CIF (file ``name``, bytes ``content``); True when accepted."""
        return self.load_cif_file(self.keep_upload(name, content))

    def keep_upload(self, name: str, content: bytes) -> Path:
        """Write an uploaded file to this model's upload folder (the previous upload is removed)."""
        if self._uploads is None:
            self._uploads = UploadFolder("mofmlp-upload-")
        return self._uploads.put(name, content)

    def load_raspa_framework(self, name: str) -> bool:
        """Intake of RASPA2's framework ``name``.cif; True when accepted."""
        path = self.raspa_framework_path(name)
        return path is not None and self.load_cif_file(path)

    def raspa_framework_path(self, name: str) -> Path | None:
        """The CIF of RASPA2's framework ``name``, or None (and the refusal shown) when there is none."""
        folder = raspa_framework_folder()
        path = folder / f"{name}.cif" if folder else None
        if path is None or not path.is_file():
            self._fail(name, [f"RASPA2 has no framework {name!r}; valid: one of its CIF library's names"])
            return None
        return path

    def load_stored(self, pk: int) -> bool:
        """A StructureData already in the profile, checked by intake's structure checks."""
        from aiida import orm

        from aiida_mofmlp.tools.intake import check_structure

        try:
            node = orm.load_node(int(pk))
        except Exception as error:
            self._fail(f"node {pk}", [readable_error(error, f"loading node {pk}")])
            return False
        if not isinstance(node, orm.StructureData):
            self._fail(f"node {pk}", [f"node {pk} is a {type(node).__name__}, not a StructureData"])
            return False
        report = check_structure(node.get_ase(), self.r_cut or None)
        self._cif_path = None
        self._accept_report(
            f"StructureData<{pk}>", node if report.ok else None, report.errors, report.warnings
        )
        self.suggested_supercell = list(report.supercell or [])
        return report.ok

    def load_cif_file(self, path: str | Path, supercell: tuple[int, int, int] | None = None) -> bool:
        """Intake of the CIF at ``path`` (repeated by ``supercell``); True when accepted."""
        return self.accept(self.read_cif_file(path, supercell))

    def read_cif_file(self, path: str | Path, supercell: tuple[int, int, int] | None = None) -> IntakeOutcome:
        """Read and check the CIF at ``path`` in an isolated child; no AiiDA node, no trait is touched, so
        it may run in a worker thread (then :meth:`accept` the outcome in the kernel's thread)."""
        from aiida_mofmlp.tools.intake import StructureIntakeError
        from aiida_mofmlp.tools.intake_isolated import read_cif_isolated

        path = Path(path)
        outcome = IntakeOutcome(path=path)
        try:
            outcome.atoms, outcome.warnings = read_cif_isolated(
                path, r_cut=self.r_cut or None, supercell=supercell, **self.intake_limits
            )
        except StructureIntakeError as error:
            outcome.errors = [str(issue) for issue in error.issues]
            fixes = [issue.details.get("supercell") for issue in error.issues]
            outcome.supercell = next((list(fix) for fix in fixes if fix), [])
        except Exception as error:  # e.g. an unreadable file that the CIF tokenizer chokes on
            outcome.errors = [readable_error(error, f"reading {path.name}")]
        return outcome

    def accept(self, outcome: IntakeOutcome) -> bool:
        """Take a :meth:`read_cif_file` outcome as the chosen structure (kernel thread: makes the node)."""
        from aiida_mofmlp.tools.intake import structure_from_atoms

        self._cif_path = outcome.path
        structure = structure_from_atoms(outcome.atoms) if outcome.atoms is not None else None
        self._accept_report(outcome.path.name, structure, outcome.errors, outcome.warnings)
        self.suggested_supercell = list(outcome.supercell)
        return structure is not None

    def apply_suggested_supercell(self) -> bool:
        """Reload the last CIF repeated by the suggested supercell (the one-click fix)."""
        request = self.supercell_request()
        return request is not None and self.load_cif_file(*request)

    def supercell_request(self) -> tuple[Path, tuple[int, ...]] | None:
        """``(path, supercell)`` of the one-click fix, or None when there is nothing to repeat."""
        if not self.suggested_supercell or self._cif_path is None:
            return None
        return self._cif_path, tuple(self.suggested_supercell)

    # --- state --------------------------------------------------------------------------------------
    def _fail(self, source: str, errors: list[str]) -> None:
        self.structure = None
        self.source = source
        self.warnings = []
        self.suggested_supercell = []
        self.errors = errors
        self.summary = ""

    def _accept_report(self, source: str, structure, errors, warnings_) -> None:
        self.source = source
        self.errors = [str(issue) for issue in errors]
        self.warnings = [str(issue) for issue in warnings_]
        self.structure = structure
        if structure is None:
            self.summary = ""
            return
        atoms = structure.get_ase()
        lengths = ", ".join(f"{length:.2f}" for length in atoms.cell.lengths())
        self.summary = (
            f"{source}: {structure.get_formula()} ({len(atoms)} atoms), cell lengths {lengths} Å, "
            f"volume {atoms.cell.volume:.1f} Å^3"
        )

    @property
    def elements(self) -> set[str]:
        """Chemical elements of the chosen structure (empty without one)."""
        return set(self.structure.get_symbols_set()) if self.structure is not None else set()
