"""Reading RASPA output beyond aiida-raspa's parser: loading blocks, equilibration, guest snapshots.

No AiiDA imports: plain text and ASE in, numbers and frames out.
"""

from __future__ import annotations

import re

import numpy as np
from ase import Atoms

from aiida_mofmlp.common.frames import GUEST_ID_KEY

_BLOCK = re.compile(r"^\s*Block\[\s*\d+\]\s+([-+0-9.eE]+)")


def loading_blocks(output_text: str, component: int = 0) -> list[float]:
    """Per-block average number of molecules in the box of ``component`` (RASPA's 'Number of molecules')."""
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


def restart_guest_sites(restart_text: str, n_sites: int) -> np.ndarray:
    """Guest site positions (Angstrom) from a RASPA restart file, shape (n_molecules, n_sites, 3)."""
    rows: dict[tuple[int, int], list[float]] = {}
    for line in restart_text.splitlines():
        if line.startswith("Adsorbate-atom-position:"):
            _, molecule, site, x, y, z = line.split()[:6]
            rows[(int(molecule), int(site))] = [float(x), float(y), float(z)]
    if not rows:
        return np.zeros((0, n_sites, 3))
    n_molecules = max(key[0] for key in rows) + 1
    positions = np.zeros((n_molecules, n_sites, 3))
    for (molecule, site), xyz in rows.items():
        if site >= n_sites:
            raise ValueError(
                f"restart file has site {site} for molecule {molecule}, but the guest has {n_sites}"
            )
        positions[molecule, site] = xyz
    return positions


def _kabsch(reference: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotation R minimising |reference @ R.T - target| for centred point sets."""
    h = reference.T @ target
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


def place_guest(
    site_reference: np.ndarray,
    atom_reference: np.ndarray,
    sites: np.ndarray,
    cell: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Atom positions of one guest whose force-field sites sit at ``sites`` (Angstrom).

    The molecule's sites are made whole across periodic boundaries, the reference sites are fitted onto
    them (rotation + translation, Kabsch), and the same transform is applied to the reference atoms. A
    single-site guest (united atom) gets a random orientation at the site.
    """
    sites = np.array(sites, dtype=float)
    inverse = np.linalg.inv(cell)
    for k in range(1, len(sites)):  # unwrap each site to the image nearest the first one
        delta = (sites[k] - sites[0]) @ inverse
        sites[k] -= np.round(delta) @ cell
    site_centre = site_reference.mean(axis=0)
    if len(sites) == 1:
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        rotation = q * np.sign(np.diag(r))
        if np.linalg.det(rotation) < 0:
            rotation[:, 0] *= -1
    else:
        rotation = _kabsch(site_reference - site_centre, sites - sites.mean(axis=0))
    return (atom_reference - site_centre) @ rotation.T + sites.mean(axis=0)


def build_snapshot(
    framework: Atoms,
    unit_cells: list[int],
    guest_symbols: list[str],
    atom_reference: np.ndarray,
    site_reference: np.ndarray,
    guest_sites: np.ndarray,
    seed: int = 0,
) -> Atoms:
    """Framework supercell plus whole guests (``guest_id`` 1..N per molecule, 0 for framework atoms).

    Each guest's centre of mass is wrapped into the cell; its atoms stay together (they may stick out).
    """
    atoms = framework.repeat(unit_cells)
    atoms.arrays[GUEST_ID_KEY] = np.zeros(len(atoms), dtype=int)
    cell = np.asarray(atoms.cell)
    rng = np.random.default_rng(seed)
    for index, sites in enumerate(guest_sites, start=1):
        positions = place_guest(site_reference, atom_reference, sites, cell, rng)
        molecule = Atoms(symbols=guest_symbols, positions=positions, cell=atoms.cell, pbc=True)
        centre = molecule.get_center_of_mass()
        shift = centre - (np.linalg.solve(cell.T, centre) % 1.0) @ cell
        molecule.positions -= shift
        molecule.arrays[GUEST_ID_KEY] = np.full(len(molecule), index, dtype=int)
        atoms += molecule
    return atoms


def enthalpy_of_adsorption(
    output_text: str, component: int | None = None
) -> tuple[float | None, float | None]:
    """Enthalpy of adsorption and its error in kJ/mol (RASPA's fluctuation formula), or (None, None).

    ``component=None`` reads the total; an index reads that component's section ('[name] Enthalpy of
    adsorption' blocks appear only for mixtures). RASPA notes that the intramolecular energy of the ideal
    gas should be subtracted: it is zero for rigid guests.
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
            # an empty box gives nan: no enthalpy to report
            return (value, error) if np.isfinite(value) and np.isfinite(error) else (None, None)
    return None, None


def min_guest_contact(atoms: Atoms, cutoff: float = 4.0) -> float | None:
    """Shortest distance (Angstrom) from a guest atom to an atom of another molecule or of the framework.

    None when there is no guest or no such contact within ``cutoff``. Small values flag over-filled cells.
    """
    from ase.neighborlist import neighbor_list

    ids = np.asarray(atoms.arrays.get(GUEST_ID_KEY, np.zeros(len(atoms), dtype=int)))
    if not (ids > 0).any():
        return None
    first, second, distance = neighbor_list("ijd", atoms, cutoff)
    mask = (ids[first] > 0) & (ids[first] != ids[second])
    return float(distance[mask].min()) if mask.any() else None
