"""RASPA2 output text beyond aiida-raspa's parser: loading blocks, drift, enthalpy, final guest positions.

No AiiDA imports: text in, numbers out. The output file is ``Output/System_<i>/output_*.data``, the final
configuration ``Restart/System_<i>/restart_*`` (D. Dubbeldam, S. Calero, D. E. Ellis, R. Q. Snurr, Mol.
Simul. 42, 81 (2016), doi:10.1080/08927022.2015.1010082).
"""

from __future__ import annotations

import re

import numpy as np

_BLOCK = re.compile(r"^\s*Block\[\s*\d+\]\s+([-+0-9.eE]+)")
_COMPONENT = re.compile(r"^Component (\d+) \[(.+?)\] \(")
_UNIT_CELLS = re.compile(r"^Number of unitcells \[([abc])\]:\s+(\d+)")
_TO_MOL_KG = "Conversion factor molecules/unit cell -> mol/kg:"

#: units of the values :func:`parse_loadings` returns
LOADING_UNITS = {
    "molecules_per_box": "molecules",
    "molecules_per_cell": "molecules/unit cell",
    "mol_kg": "mol/kg",
    "relative_drift": "-",
}


def component_names(output_text: str) -> list[str]:
    """Names of the components in their RASPA order (``Component 0 [CO2] (Adsorbate molecule)``)."""
    names: dict[int, str] = {}
    for line in output_text.splitlines():
        match = _COMPONENT.match(line)
        if match and "molecule)" in line:
            names.setdefault(int(match.group(1)), match.group(2))
    return [names[index] for index in sorted(names)]


def unit_cells(output_text: str) -> list[int] | None:
    """Number of unit cells along a, b, c in the simulation box, or None for a box without framework."""
    found: dict[str, int] = {}
    for line in output_text.splitlines():
        match = _UNIT_CELLS.match(line)
        if match:
            found.setdefault(match.group(1), int(match.group(2)))
    return [found[axis] for axis in "abc"] if len(found) == 3 else None


def mol_kg_factors(output_text: str) -> list[float]:
    """Per component, RASPA's conversion factor from molecules per unit cell to mol per kg of framework."""
    return [
        float(line.split(":", 1)[1].split()[0])
        for line in output_text.splitlines()
        if line.strip().startswith(_TO_MOL_KG)
    ]


def loading_blocks(output_text: str, component: int = 0) -> list[float]:
    """Per-block average number of molecules of ``component`` in the box (RASPA's 'Number of molecules')."""
    lines = output_text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("Number of molecules:"))
    except StopIteration:
        return []
    header = f"Component {component} ["
    try:
        first = next(i for i in range(start, len(lines)) if lines[i].startswith(header))
    except StopIteration:
        return []
    blocks = []
    for line in lines[first + 1 :]:
        match = _BLOCK.match(line)
        if match:
            blocks.append(float(match.group(1)))
        elif "Average loading absolute" in line:
            break
    return blocks


def relative_drift(blocks: list[float], floor: float = 1.0) -> float | None:
    """Drift between the first and last halves of the production blocks, relative to the mean loading.

    ``(mean(second half) - mean(first half)) / max(mean, floor)``; the middle block of an odd count is left
    out. ``floor`` (molecules per box) keeps near-empty boxes from reporting huge relative drifts.
    """
    if len(blocks) < 2:
        return None
    half = len(blocks) // 2
    first, second = np.mean(blocks[:half]), np.mean(blocks[-half:])
    return float((second - first) / max(float(np.mean(blocks)), floor))


def parse_loadings(output_text: str) -> dict[str, dict]:
    """Per component name: block loadings per box, per unit cell and in mol/kg, and their relative drift.

    Per unit cell divides by the number of unit cells of the box; mol/kg multiplies that by RASPA's
    conversion factor (both are None for a box without framework). The drift is :func:`relative_drift` of
    the blocks per box. Units: :data:`LOADING_UNITS`.
    """
    cells = unit_cells(output_text)
    n_cells = int(np.prod(cells)) if cells else None
    factors = mol_kg_factors(output_text)
    loadings = {}
    for index, name in enumerate(component_names(output_text)):
        blocks = loading_blocks(output_text, index)
        per_cell = [value / n_cells for value in blocks] if n_cells else None
        factor = factors[index] if index < len(factors) else None
        loadings[name] = {
            "molecules_per_box": blocks,
            "molecules_per_cell": per_cell,
            "mol_kg": [value * factor for value in per_cell] if per_cell is not None and factor else None,
            "relative_drift": relative_drift(blocks),
        }
    return loadings


def enthalpy_of_adsorption(
    output_text: str, component: int | None = None
) -> tuple[float | None, float | None]:
    """Enthalpy of adsorption and its error in kJ/mol (RASPA's fluctuation formula), or (None, None).

    ``component=None`` reads the total; an index reads that component's section ('Component i [name]'
    blocks appear only for mixtures). RASPA notes that the intramolecular energy of the ideal gas should be
    subtracted: it is zero for rigid guests. An empty box prints nan or inf: (None, None).
    """
    lines = output_text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("Enthalpy of adsorption:"))
    except StopIteration:
        return None, None
    marker = "Total enthalpy of adsorption" if component is None else f"Component {component} ["
    in_section = False
    for index in range(start, min(start + 400, len(lines))):
        line = lines[index]
        if marker in line:
            in_section = True
        if in_section and "[KJ/MOL]" in line.upper():
            words = line.split()
            try:
                value, error = float(words[0]), float(words[2])
            except (IndexError, ValueError):
                return None, None
            return (value, error) if np.isfinite(value) and np.isfinite(error) else (None, None)
    return None, None


def restart_components(restart_text: str) -> dict[int, np.ndarray]:
    """Guest site positions (Angstrom) per component index of a RASPA restart file.

    Each value has shape (n_molecules, n_sites, 3); the number of sites is the largest site index + 1.
    Lines before any ``Component:`` header count for component 0.
    """
    rows: dict[int, dict[tuple[int, int], list[float]]] = {}
    component = 0
    for line in restart_text.splitlines():
        if line.startswith("Component:"):
            component = int(line.split()[1])
        elif line.startswith("Adsorbate-atom-position:"):
            _, molecule, site, x, y, z = line.split()[:6]
            rows.setdefault(component, {})[(int(molecule), int(site))] = [float(x), float(y), float(z)]
    positions = {}
    for index, sites in rows.items():
        n_molecules = max(key[0] for key in sites) + 1
        n_sites = max(key[1] for key in sites) + 1
        array = np.full((n_molecules, n_sites, 3), np.nan)
        for (molecule, site), xyz in sites.items():
            array[molecule, site] = xyz
        if np.isnan(array).any():
            raise ValueError(f"restart file: component {index} lacks some site positions")
        positions[index] = array
    return positions


def restart_guest_sites(restart_text: str, n_sites: int | None = None, component: int = 0) -> np.ndarray:
    """Site positions (Angstrom) of ``component`` in a RASPA restart file, shape (n_molecules, n_sites, 3).

    ``n_sites`` (the guest's site count) is checked when given; no molecule gives shape (0, n_sites, 3).
    """
    positions = restart_components(restart_text).get(component)
    if positions is None:
        return np.zeros((0, n_sites or 0, 3))
    if n_sites is not None and positions.shape[1] > n_sites:
        raise ValueError(
            f"restart file has {positions.shape[1]} sites per molecule of component {component}, "
            f"but the guest has {n_sites}"
        )
    if n_sites is not None and positions.shape[1] < n_sites:
        raise ValueError(f"restart file: component {component} lacks sites (the guest has {n_sites})")
    return positions


__all__ = [
    "LOADING_UNITS",
    "component_names",
    "enthalpy_of_adsorption",
    "loading_blocks",
    "mol_kg_factors",
    "parse_loadings",
    "relative_drift",
    "restart_components",
    "restart_guest_sites",
    "unit_cells",
]
