"""RaspaParser (``mofmlp.raspa``): aiida-raspa's ``output_parameters`` plus loadings, enthalpy and guests.

:class:`RaspaParser` runs aiida-raspa's parser and adds, to each system's entry of ``output_parameters``:

* ``loading_blocks``: per component the block averages of the loading per box (``molecules_per_box``), per
  unit cell and in mol/kg, and their ``relative_drift`` (second half minus first half of the blocks over the
  mean, floor of one molecule per box); units under ``units``, the box's ``unit_cells``;
* ``enthalpy_of_adsorption``: the fluctuation-formula ``total`` (and, for mixtures, per component)
  ``average`` and ``dev`` in kJ/mol, None for an empty box;
* ``final_configuration`` (canonical runs, i.e. no swap move and molecules created): per component the
  guest ``site_positions`` (Angstrom, shape n_molecules x n_sites x 3) of RASPA's restart file.

RaspaCalculation declares only ``output_parameters`` and ``warnings`` (its outputs namespace is closed), so
these go into ``output_parameters`` rather than into nodes of their own, units as keys next to the values.
Its exit codes have no 3xx range: a missing or unreadable output or restart file gives 101
``ERROR_NO_OUTPUT_FILE`` with the file and the reason in the message.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from aiida.common import NotExistent
from aiida.engine import ExitCode
from aiida_raspa.parsers import RaspaParser as BaseRaspaParser

from aiida_mofmlp.parsers.parse_raw import raspa as raw

#: component moves that change the number of molecules (grand-canonical or Gibbs runs)
SWAP_MOVES = (
    "SwapProbability",
    "CFSwapLambdaProbability",
    "CBCFSwapLambdaProbability",
    "GibbsSwapChangeProbability",
    "GibbsCFSwapChangeProbability",
    "IdentityChangeProbability",
)


def with_detail(exit_code: ExitCode, detail: str) -> ExitCode:
    """``exit_code`` with ``detail`` appended to its message (RaspaCalculation's messages have no fields)."""
    return exit_code._replace(message=f"{exit_code.message.rstrip('.')}: {detail}")


def is_canonical(parameters: dict) -> bool:
    """True when no component has a move that changes the number of molecules and some are created."""
    components = parameters.get("Component", {}).values()
    swaps = any(float(component.get(move, 0) or 0) > 0 for component in components for move in SWAP_MOVES)
    created = any(_created(component.get("CreateNumberOfMolecules", 0)) for component in components)
    return not swaps and created


def _created(value) -> bool:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return any(int(v) > 0 for v in value)
    return int(value or 0) > 0


class RaspaParser(BaseRaspaParser):
    """aiida-raspa's parser plus loading blocks, enthalpy of adsorption and final guest positions."""

    def parse(self, **kwargs) -> ExitCode:
        """Check the files, run aiida-raspa's parser, then add this plugin's entries per system."""
        try:
            _ = self.retrieved
        except NotExistent:
            return self.exit_codes.ERROR_NO_RETRIEVED_FOLDER
        systems = list(self.node.base.extras.get("system_order", []))
        texts, exit_code = self._read_system_files(self.node.process_class.OUTPUT_FOLDER, systems)
        if exit_code:
            return exit_code
        try:
            exit_code = super().parse(**kwargs)
        except (ValueError, KeyError, IndexError, TypeError, StopIteration) as exc:
            return with_detail(self.exit_codes.ERROR_NO_OUTPUT_FILE, f"unreadable RASPA output: {exc!r}")
        if exit_code is not None and exit_code.status:
            return exit_code

        restarts: dict[str, str] = {}
        if is_canonical(self.node.inputs.parameters.get_dict()):
            restarts, exit_code = self._read_system_files(self.node.process_class.RESTART_FOLDER, systems)
            if exit_code:
                return exit_code

        output_parameters = self.outputs.output_parameters
        for system in systems:
            text = texts[system]
            entry = dict(output_parameters[system])
            entry["loading_blocks"] = {
                "unit_cells": raw.unit_cells(text),
                "units": dict(raw.LOADING_UNITS),
                "components": raw.parse_loadings(text),
            }
            entry["enthalpy_of_adsorption"] = self._enthalpy(text)
            if system in restarts:
                try:
                    entry["final_configuration"] = self._final_configuration(text, restarts[system])
                except ValueError as exc:
                    detail = f"unreadable restart file of system {system!r}: {exc}"
                    return with_detail(self.exit_codes.ERROR_NO_OUTPUT_FILE, detail)
            output_parameters[system] = entry
        return ExitCode(0)

    @staticmethod
    def _final_configuration(output_text: str, restart_text: str) -> dict:
        positions = raw.restart_components(restart_text)
        components = {}
        for index, name in enumerate(raw.component_names(output_text)):
            if index in positions:
                sites = positions[index]
                components[name] = {"site_positions": sites.tolist(), "n_molecules": len(sites)}
        return {"unit": "Angstrom", "components": components}

    @staticmethod
    def _enthalpy(text: str) -> dict:
        average, dev = raw.enthalpy_of_adsorption(text)
        result = {"unit": "kJ/mol", "total": {"average": average, "dev": dev}, "components": {}}
        names = raw.component_names(text)
        if len(names) > 1:
            for index, name in enumerate(names):
                average, dev = raw.enthalpy_of_adsorption(text, index)
                result["components"][name] = {"average": average, "dev": dev}
        return result

    def _read_system_files(self, folder: str, systems: list[str]) -> tuple[dict[str, str], ExitCode | None]:
        """Text of the single file in ``<folder>/System_<i>`` per system, or exit code 101 saying why not."""
        repository = self.retrieved.base.repository
        texts = {}
        for index, system in enumerate(systems):
            path = PurePosixPath(folder) / f"System_{index}"
            try:
                names = repository.list_object_names(str(path))
            except (FileNotFoundError, NotADirectoryError):
                names = []
            if len(names) != 1:
                found = "nothing" if not names else f"{len(names)} files"
                return texts, with_detail(
                    self.exit_codes.ERROR_NO_OUTPUT_FILE,
                    f"expected one file in {path} (system {system!r}), found {found}",
                )
            try:
                texts[system] = repository.get_object_content(str(path / names[0]))
            except (OSError, UnicodeDecodeError) as exc:
                return texts, with_detail(self.exit_codes.ERROR_NO_OUTPUT_FILE, f"{path / names[0]}: {exc}")
        return texts, None


__all__ = ["RaspaParser", "is_canonical", "with_detail"]
