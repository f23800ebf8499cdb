"""CP2K protocols and input generation for the CP2K work chains (no AiiDA imports).

The CP2K input is a nested dict in aiida-cp2k's format. The protocols live in ``protocols/cp2k.yaml``
(``default_protocol`` / ``default_inputs`` / ``protocols`` with per-protocol deltas, plus the ``valence``
table of the DFT basis sets); :class:`Cp2kProtocolMixin` reads them for the three CP2K work chains.
Parsing CP2K's outputs is the job of the ``mofmlp.cp2k`` parser (``aiida_mofmlp.parsers.cp2k``).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from aiida_mofmlp.common.protocols import deep_merge
from aiida_mofmlp.workflows.protocols.utils import ProtocolMixin, read_protocol_file

__all__ = [
    "PARSER_NAME",
    "PROTOCOL_FILE",
    "SCF_STAGES",
    "WFN_RESTART_FILE",
    "Cp2kProtocolMixin",
    "add_wavefunction_restart",
    "available_protocols",
    "build_parameters",
    "check_elements",
    "deep_merge",
    "escalate_scf",
    "get_protocol",
    "is_xtb",
    "kind_sections",
    "remove_wavefunction_restart",
    "smeared_scf_overrides",
]

WFN_RESTART_FILE = "./parent_calc/aiida-RESTART.wfn"
#: protocol file shared by the CP2K work chains
PROTOCOL_FILE = "cp2k.yaml"
#: the parser the CP2K work chains select (entry point of :class:`aiida_mofmlp.parsers.cp2k.Cp2kParser`)
PARSER_NAME = "mofmlp.cp2k"


class Cp2kProtocolMixin(ProtocolMixin):
    """:class:`ProtocolMixin` of ``cp2k.yaml``; the settings also name the protocol and carry ``valence``."""

    _protocol_file: ClassVar[str] = PROTOCOL_FILE

    @classmethod
    def get_protocol_inputs(
        cls, protocol: str | None = None, overrides: Mapping | str | os.PathLike | None = None
    ) -> dict[str, Any]:
        """``default_inputs`` with protocol ``protocol`` and ``overrides`` (dict or YAML path) merged in.

        The result also has ``name`` (the protocol) and ``valence`` (the DFT valence table) unless
        ``overrides`` replaced them. Raises ValueError naming the valid protocols for an unknown one.
        """
        data = cls._protocol_data()
        name = protocol or data["default_protocol"]
        if name not in data["protocols"]:
            raise ValueError(
                f"unknown CP2K protocol {name!r}; valid protocols: {', '.join(data['protocols'])}"
            )
        settings = super().get_protocol_inputs(name, overrides)
        return deep_merge({"name": name, "valence": data["valence"]}, settings)


def available_protocols() -> list[str]:
    """Names of the CP2K protocols."""
    return list(read_protocol_file(PROTOCOL_FILE)["protocols"])


def get_protocol(name: str | None = None, overrides: Mapping | str | os.PathLike | None = None) -> dict:
    """The settings of protocol ``name`` (default: the file's default) with ``overrides`` deep-merged in."""
    return Cp2kProtocolMixin.get_protocol_inputs(name, overrides)


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
