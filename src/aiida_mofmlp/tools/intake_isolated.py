"""Structure intake of an outside CIF in a child process: a hostile or huge file cannot stall its caller.

:func:`load_cif_isolated` runs :func:`~aiida_mofmlp.tools.intake.checked_cif_atoms` through
:func:`~aiida_mofmlp.common.isolation.run_module_isolated` (clean environment, CPU-time and memory limits,
killed after ``timeout`` s) and builds the ``StructureData`` in the caller from the child's JSON. It returns
(warnings are returned, not issued) and raises what :func:`~aiida_mofmlp.tools.intake.load_cif` does; a
child that runs out of time or memory is a :class:`~aiida_mofmlp.tools.intake.StructureIntakeError` of kind
``too_large``. The app's kernel uses it for every CIF a user chooses.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

#: limits of the child (overridable per call): a CIF within intake's MAX_ATOMS reads in a few seconds
INTAKE_TIMEOUT_S = 60
INTAKE_MEMORY_BYTES = 2 * 1024**3


def load_cif_isolated(path: str | Path, r_cut: float | None = None, **kwargs: Any):
    """:func:`~aiida_mofmlp.tools.intake.load_cif` of the file ``path`` in an isolated child process.

    Keyword arguments as :func:`read_cif_isolated`. Returns ``(StructureData, warnings)``; raises
    ``StructureIntakeError`` (also for time or memory exhausted) or ``ValueError`` for a wrong ``supercell``.
    """
    from aiida_mofmlp.tools.intake import structure_from_atoms

    atoms, found = read_cif_isolated(path, r_cut, **kwargs)
    return structure_from_atoms(atoms), found


def read_cif_isolated(
    path: str | Path,
    r_cut: float | None = None,
    *,
    supercell: tuple[int, int, int] | str | None = None,
    timeout: float = INTAKE_TIMEOUT_S,
    memory: int = INTAKE_MEMORY_BYTES,
    **options: Any,
):
    """``(ase.Atoms, warnings)`` of the checked CIF ``path``, read in an isolated child; no AiiDA involved,
    so it may run in any thread. ``options`` are load_cif's keyword arguments (``min_distance``,
    ``max_atoms``, ...); ``timeout`` (s) and ``memory`` (bytes) bound the child."""
    from ase import Atoms

    from aiida_mofmlp.common.isolation import run_module_isolated
    from aiida_mofmlp.tools.intake import IntakeIssue, StructureIntakeError

    path = Path(path).resolve()
    request = {"path": str(path), "r_cut": r_cut, "supercell": supercell, "options": options}
    with tempfile.TemporaryDirectory(prefix="mofmlp-intake-") as folder:
        request_file, answer_file = Path(folder) / "request.json", Path(folder) / "answer.json"
        request_file.write_text(json.dumps(request))
        done = run_module_isolated(__name__, [str(request_file), str(answer_file)], timeout, memory)
        answer = json.loads(answer_file.read_text()) if answer_file.is_file() else None
    if done.timed_out:
        message = f"{path.name}: reading took more than {timeout:g} s; refused (pass a larger timeout)"
        raise StructureIntakeError(message, "too_large")
    if answer is None:
        out_of_memory = any(sign in done.stderr for sign in ("MemoryError", "Unable to allocate", "numpy"))
        reason = "out of memory" if out_of_memory else done.last_error_line.strip()
        message = (
            f"{path.name}: intake stopped ({reason}) within its limits of {timeout:g} s and "
            f"{memory / 1024**2:.0f} MiB; refused (pass larger timeout/memory to read it anyway)"
        )
        raise StructureIntakeError(message, "too_large")
    if "value_error" in answer:
        raise ValueError(answer["value_error"])
    if "intake_error" in answer:
        error = answer["intake_error"]
        issues = [IntakeIssue(**issue) for issue in error["issues"]]
        raise StructureIntakeError(error["message"], error["kind"], issues)
    atoms = Atoms(
        symbols=answer["symbols"],
        positions=answer["positions"],
        cell=answer["cell"],
        pbc=True,
        info=answer["info"],
    )
    return atoms, [IntakeIssue(**issue) for issue in answer["warnings"]]


def _plain(value: Any) -> Any:
    """JSON form of issue details (tuples, numpy values)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _issue(issue) -> dict[str, Any]:
    return {"kind": issue.kind, "message": issue.message, "details": issue.details}


def _intake_main(argv: list[str]) -> int:  # runs in the child of load_cif_isolated
    import warnings

    from aiida_mofmlp.tools.intake import StructureIntakeError, checked_cif_atoms

    request = json.loads(Path(argv[0]).read_text())
    supercell = request["supercell"]
    supercell = tuple(supercell) if isinstance(supercell, list) else supercell
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            atoms, found = checked_cif_atoms(
                request["path"], request["r_cut"], supercell=supercell, **request["options"]
            )
        answer = {
            "symbols": atoms.get_chemical_symbols(),
            "positions": atoms.positions.tolist(),
            "cell": atoms.cell.array.tolist(),
            "info": {key: atoms.info[key] for key in ("source", "supercell") if key in atoms.info},
            "warnings": [_issue(issue) for issue in found],
        }
    except StructureIntakeError as error:
        answer = {
            "intake_error": {
                "message": str(error),
                "kind": error.kind,
                "issues": [_issue(issue) for issue in error.issues],
            }
        }
    except ValueError as error:
        answer = {"value_error": str(error)}
    Path(argv[1]).write_text(json.dumps(answer, default=_plain))
    return 0


if __name__ == "__main__":  # pragma: no cover - the child of load_cif_isolated
    sys.exit(_intake_main(sys.argv[1:]))
