"""CP2K protocols, input generation and output parsing for the CP2K work chains (no AiiDA imports).

The CP2K input is a nested dict in aiida-cp2k's format. Units of CP2K's printed results: energy in
Hartree (``ENERGY| Total FORCE_EVAL``), forces in Hartree/Bohr (``ATOMIC FORCES in [a.u.]``) and the
stress tensor in GPa (``STRESS| Analytical stress tensor [GPa]``) with CP2K's sign convention
(positive = compressive, the opposite of ASE's): :func:`parse_single_point` converts all of them to
eV, eV/Angstrom and eV/Angstrom^3 in ASE's convention.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from aiida_mofmlp.common.protocols import deep_merge, load_protocol, read_protocol_file
from aiida_mofmlp.common.units import (
    GPA_TO_EV_PER_ANGSTROM3,
    HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM,
    HARTREE_TO_EV,
)

WFN_RESTART_FILE = "./parent_calc/aiida-RESTART.wfn"


def available_protocols() -> list[str]:
    """Names of the CP2K protocols."""
    return list(read_protocol_file("cp2k.yaml")["protocols"])


def get_protocol(name: str | None = None, overrides: Mapping | None = None) -> dict:
    """The settings of protocol ``name`` (default: the file's default) with ``overrides`` deep-merged in."""
    data = read_protocol_file("cp2k.yaml")
    name = name or data["default_protocol"]
    return deep_merge({"name": name, "valence": data["valence"]}, load_protocol("cp2k.yaml", name, overrides))


def is_xtb(parameters: Mapping) -> bool:
    """Whether a CP2K input dict runs (GFN1-)xTB."""
    method = parameters.get("FORCE_EVAL", {}).get("DFT", {}).get("QS", {}).get("METHOD", "")
    return str(method).upper() == "XTB"


def kind_sections(protocol: Mapping, elements: Iterable[str]) -> list[dict]:
    """``&KIND`` sections (basis set and pseudopotential) for ``elements`` under a DFT protocol.

    Raises ValueError naming every element that has neither an explicit entry in ``kinds`` nor a
    valence charge for the protocol's basis/pseudopotential family.
    """
    explicit = protocol.get("kinds") or {}
    valence = protocol.get("valence") or {}
    sections, missing = [], []
    for element in sorted(set(elements)):
        entry = explicit.get(element)
        if entry:
            if "basis_set" not in entry or "potential" not in entry:
                raise ValueError(
                    f"kinds.{element} must give both `basis_set` and `potential`, got {sorted(entry)}"
                )
            sections.append({"_": element, "BASIS_SET": entry["basis_set"], "POTENTIAL": entry["potential"]})
        elif element in valence:
            q = valence[element]
            sections.append(
                {
                    "_": element,
                    "BASIS_SET": f"{protocol['basis_set']}-q{q}",
                    "POTENTIAL": f"{protocol['potential']}-q{q}",
                }
            )
        else:
            missing.append(element)
    if missing:
        raise ValueError(
            f"elements {missing} have no basis set/pseudopotential in CP2K protocol "
            f"{protocol.get('name', '?')!r} ({protocol.get('basis_set')}/{protocol.get('potential')}); "
            f"available: {', '.join(sorted(valence))}. Add them with "
            "overrides={'kinds': {'El': {'basis_set': ..., 'potential': ...}}}"
        )
    return sections


def check_elements(protocol: Mapping, elements: Iterable[str]) -> str | None:
    """An error message when some of ``elements`` cannot be computed with ``protocol``, else None."""
    elements = sorted(set(elements))
    if protocol.get("method") == "xtb":
        known = set(protocol.get("elements") or [])
        missing = [element for element in elements if element not in known]
        if missing:
            return (
                f"elements {missing} have no GFN1-xTB parameters in CP2K protocol {protocol.get('name')!r}; "
                "GFN1-xTB covers H to Rn"
            )
        return None
    try:
        kind_sections(protocol, elements)
    except ValueError as exc:
        return str(exc)
    return None


def build_parameters(protocol: Mapping, elements: Iterable[str], compute_stress: bool = False) -> dict:
    """The full CP2K input dict of ``protocol`` for a system containing ``elements``.

    Raises ValueError when an element is not covered by the protocol.
    """
    message = check_elements(protocol, elements)
    if message:
        raise ValueError(message)
    parameters = copy.deepcopy(dict(protocol["parameters"]))
    force_eval = parameters.setdefault("FORCE_EVAL", {})
    if protocol.get("method") != "xtb":
        subsys = force_eval.setdefault("SUBSYS", {})
        subsys["KIND"] = kind_sections(protocol, elements)
    printing = force_eval.setdefault("PRINT", {})
    printing.setdefault("FORCES", {"_": "ON"})
    if compute_stress:
        force_eval["STRESS_TENSOR"] = "ANALYTICAL"
        printing.setdefault("STRESS_TENSOR", {"_": "ON"})
    return parameters


# ---------------------------------------------------------------------------------------------------
# SCF escalation and restarts (used by the error handlers of Cp2kSinglePointWorkChain)

#: what each stage of the SCF-convergence handler does, in order
SCF_STAGES = (
    "more SCF steps, restart from the last wavefunction",
    "diagonalisation with Fermi-Dirac smearing and Broyden mixing, atomic initial guess",
    "smaller mixing parameter and more SCF steps, atomic initial guess",
)


def _scf(parameters: dict) -> dict:
    return parameters.setdefault("FORCE_EVAL", {}).setdefault("DFT", {}).setdefault("SCF", {})


def add_wavefunction_restart(parameters: Mapping) -> dict:
    """A copy of ``parameters`` that starts the SCF from the parent calculation's wavefunction."""
    parameters = copy.deepcopy(dict(parameters))
    dft = parameters.setdefault("FORCE_EVAL", {}).setdefault("DFT", {})
    dft["WFN_RESTART_FILE_NAME"] = WFN_RESTART_FILE
    _scf(parameters)["SCF_GUESS"] = "RESTART"
    return parameters


def remove_wavefunction_restart(parameters: Mapping) -> dict:
    """A copy of ``parameters`` that starts the SCF from atomic densities."""
    parameters = copy.deepcopy(dict(parameters))
    parameters.get("FORCE_EVAL", {}).get("DFT", {}).pop("WFN_RESTART_FILE_NAME", None)
    _scf(parameters)["SCF_GUESS"] = "ATOMIC"
    return parameters


def escalate_scf(parameters: Mapping, stage: int, xtb: bool = False) -> dict:
    """A copy of ``parameters`` with the SCF settings of ``stage`` (1-based, see :data:`SCF_STAGES`)."""
    if not 1 <= stage <= len(SCF_STAGES):
        raise ValueError(f"SCF stage must be in 1..{len(SCF_STAGES)}, got {stage}")
    parameters = copy.deepcopy(dict(parameters))
    scf = _scf(parameters)
    if stage == 1:
        scf["MAX_SCF"] = max(2 * int(scf.get("MAX_SCF", 50)), 200 if xtb else 100)
        if "OUTER_SCF" in scf:
            scf["OUTER_SCF"]["MAX_SCF"] = max(2 * int(scf["OUTER_SCF"].get("MAX_SCF", 10)), 20)
        return add_wavefunction_restart(parameters)
    scf.pop("OT", None)
    scf.pop("OUTER_SCF", None)
    scf["ADDED_MOS"] = -1 if xtb else 50
    scf["DIAGONALIZATION"] = {"ALGORITHM": "STANDARD"}
    scf["SMEAR"] = {"_": "ON", "METHOD": "FERMI_DIRAC", "ELECTRONIC_TEMPERATURE": 300}
    if stage == 2:
        scf["MAX_SCF"] = max(int(scf.get("MAX_SCF", 50)), 300)
        scf["MIXING"] = {"METHOD": "BROYDEN_MIXING", "ALPHA": 0.1, "NBROYDEN": 8}
    else:
        scf["MAX_SCF"] = max(int(scf.get("MAX_SCF", 50)), 600)
        scf["MIXING"] = {"METHOD": "BROYDEN_MIXING", "ALPHA": 0.03, "NBROYDEN": 12}
    return remove_wavefunction_restart(parameters)


# ---------------------------------------------------------------------------------------------------
# output parsing

_ENERGY_RE = re.compile(r"^ ENERGY\| Total FORCE_EVAL \( \w+ \) energy \[a\.u\.\]:\s+(\S+)", re.MULTILINE)
_STRESS_RE = re.compile(r"^ STRESS\|\s+([xyz])\s+(\S+)\s+(\S+)\s+(\S+)\s*$", re.MULTILINE)


def _parse_forces(text: str) -> np.ndarray | None:
    """The last ``ATOMIC FORCES in [a.u.]`` block of a CP2K output, in Hartree/Bohr."""
    start = text.rfind("ATOMIC FORCES in [a.u.]")
    if start < 0:
        return None
    rows = []
    for line in text[start:].splitlines()[1:]:
        parts = line.split()
        if not parts or parts[0] == "#":
            continue
        if parts[0] == "SUM":
            break
        rows.append([float(value) for value in parts[3:6]])
    return np.array(rows, dtype=float) if rows else None


def _parse_stress(text: str) -> np.ndarray | None:
    """The last analytical/numerical stress tensor of a CP2K output, in GPa (CP2K's sign)."""
    start = text.rfind("STRESS| Analytical stress tensor [GPa]")
    if start < 0:
        start = text.rfind("STRESS| Numerical stress tensor [GPa]")
    if start < 0:
        return None
    rows: dict[str, list[float]] = {}
    for match in _STRESS_RE.finditer(text[start:]):
        if match.group(1) in rows:  # the eigenvector table that follows reuses the x/y/z row labels
            break
        rows[match.group(1)] = [float(match.group(i)) for i in (2, 3, 4)]
    if set(rows) != {"x", "y", "z"}:
        return None
    return np.array([rows["x"], rows["y"], rows["z"]])


def parse_single_point(text: str) -> dict[str, Any]:
    """Energy (eV), forces (eV/Angstrom), stress (eV/Angstrom^3, ASE sign) and status of a CP2K output.

    Keys: ``energy`` (float or None), ``forces`` (array or None), ``stress`` (3x3 array or None),
    ``scf_converged`` (False when CP2K warned that an SCF did not converge), ``walltime_exceeded``,
    ``completed`` (CP2K reached its normal end).
    """
    energies = _ENERGY_RE.findall(text)
    forces = _parse_forces(text)
    stress = _parse_stress(text)
    return {
        "energy": float(energies[-1]) * HARTREE_TO_EV if energies else None,
        "forces": None if forces is None else forces * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM,
        "stress": None if stress is None else -stress * GPA_TO_EV_PER_ANGSTROM3,
        "scf_converged": "SCF run NOT converged" not in text,
        "walltime_exceeded": "exceeded requested execution time" in text,
        "completed": "PROGRAM STOPPED IN" in text,
    }


def smeared_scf_overrides(alpha: float = 0.2, max_scf: int = 300, temperature: float = 300.0) -> dict:
    """Protocol overrides for an SCF that converges distorted MD frames in one run.

    Diagonalisation with Fermi-Dirac smearing (``temperature`` K) and Broyden mixing (``alpha``) from the
    start: the settings the SCF handler escalates to, used for every frame so that all labels share one
    recipe. Deep-merge into a protocol with ``overrides=`` (e.g. GFN1-xTB frames of MOFs with guests).
    """
    scf = {
        "MAX_SCF": int(max_scf),
        "ADDED_MOS": -1,
        "DIAGONALIZATION": {"ALGORITHM": "STANDARD"},
        "SMEAR": {"_": "ON", "METHOD": "FERMI_DIRAC", "ELECTRONIC_TEMPERATURE": float(temperature)},
        "MIXING": {"METHOD": "BROYDEN_MIXING", "ALPHA": float(alpha), "NBROYDEN": 8},
    }
    return {"parameters": {"FORCE_EVAL": {"DFT": {"SCF": scf}}}}
