"""Helpers for hybrid MD-GCMC in LAMMPS: guest template, fugacity, loading statistics (no AiiDA)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers

GAS_CONSTANT = 8.314462618  # J/(mol K)


@dataclass
class Guest:
    """A rigid guest molecule: element symbols and positions (Angstrom, centred on the centre of mass)."""

    name: str
    symbols: list[str]
    positions: np.ndarray
    critical_temperature: float | None = None  # K
    critical_pressure: float | None = None  # Pa
    acentric_factor: float | None = None

    @property
    def molar_mass(self) -> float:
        """g/mol."""
        return float(sum(atomic_masses[atomic_numbers[s]] for s in self.symbols))

    @property
    def n_atoms(self) -> int:
        return len(self.symbols)

    def atoms(self) -> Atoms:
        return Atoms(symbols=self.symbols, positions=self.positions)


def read_guest(source: str | Path | dict) -> Guest:
    """Read a guest from a JSON file or dict with ``symbols`` and ``positions`` (and optional constants)."""
    data = source if isinstance(source, dict) else json.loads(Path(source).read_text())
    missing = [key for key in ("symbols", "positions") if key not in data]
    if missing:
        raise ValueError(f"guest definition {source!r} lacks {missing}; it needs 'symbols' and 'positions'")
    symbols = [str(s) for s in data["symbols"]]
    positions = np.asarray(data["positions"], dtype=float)
    if positions.shape != (len(symbols), 3):
        raise ValueError(f"guest positions must have shape ({len(symbols)}, 3), got {positions.shape}")
    unknown = [s for s in symbols if s not in atomic_numbers]
    if unknown:
        raise ValueError(f"guest symbols {unknown} are not chemical elements")
    masses = np.array([atomic_masses[atomic_numbers[s]] for s in symbols])
    positions = positions - masses @ positions / masses.sum()
    return Guest(
        name=str(data.get("name", "".join(symbols))),
        symbols=symbols,
        positions=positions,
        critical_temperature=data.get("critical_temperature"),
        critical_pressure=data.get("critical_pressure"),
        acentric_factor=data.get("acentric_factor"),
    )


def write_molecule_file(guest: Guest, path: str | Path, type_of: dict[str, int]) -> Path:
    """Write a LAMMPS molecule template (coordinates, types, masses) for ``guest``."""
    lines = [f"# {guest.name} rigid guest for fix gcmc", "", f"{guest.n_atoms} atoms", "", "Coords", ""]
    lines += [f"{i + 1} {x:.8f} {y:.8f} {z:.8f}" for i, (x, y, z) in enumerate(guest.positions)]
    lines += ["", "Types", ""]
    lines += [f"{i + 1} {type_of[s]}" for i, s in enumerate(guest.symbols)]
    lines += ["", "Masses", ""]
    lines += [f"{i + 1} {atomic_masses[atomic_numbers[s]]:.6f}" for i, s in enumerate(guest.symbols)]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def peng_robinson_fugacity_coefficient(
    temperature: float,
    pressure_bar: float,
    critical_temperature: float,
    critical_pressure: float,
    omega: float,
) -> float:
    """Fugacity coefficient of a pure gas from the Peng-Robinson equation of state (vapour root)."""
    pressure = pressure_bar * 1.0e5
    kappa = 0.37464 + 1.54226 * omega - 0.26992 * omega**2
    alpha = (1.0 + kappa * (1.0 - math.sqrt(temperature / critical_temperature))) ** 2
    a = 0.45724 * GAS_CONSTANT**2 * critical_temperature**2 / critical_pressure * alpha
    b = 0.07780 * GAS_CONSTANT * critical_temperature / critical_pressure
    big_a = a * pressure / (GAS_CONSTANT * temperature) ** 2
    big_b = b * pressure / (GAS_CONSTANT * temperature)
    roots = np.roots(
        [1.0, -(1.0 - big_b), big_a - 3.0 * big_b**2 - 2.0 * big_b, -(big_a * big_b - big_b**2 - big_b**3)]
    )
    z = max(r.real for r in roots if abs(r.imag) < 1e-10 and r.real > big_b)
    sq2 = math.sqrt(2.0)
    ln_phi = (
        z
        - 1.0
        - math.log(z - big_b)
        - big_a / (2.0 * sq2 * big_b) * math.log((z + (1.0 + sq2) * big_b) / (z + (1.0 - sq2) * big_b))
    )
    return math.exp(ln_phi)


def block_average(samples: np.ndarray, n_blocks: int) -> tuple[float, float]:
    """Mean and standard error of the mean from ``n_blocks`` block averages (error nan with < 2 blocks)."""
    samples = np.asarray(samples, dtype=float)
    if samples.size == 0:
        return float("nan"), float("nan")
    n_blocks = max(1, min(n_blocks, samples.size))
    blocks = np.array([block.mean() for block in np.array_split(samples, n_blocks)])
    if n_blocks < 2:
        return float(samples.mean()), float("nan")
    return float(blocks.mean()), float(blocks.std(ddof=1) / math.sqrt(n_blocks))


def molecules_to_mol_per_kg(molecules_per_cell: float, framework_mass: float) -> float:
    """Loading in mol/kg of framework from molecules per cell and the framework mass per cell (g/mol)."""
    return 1000.0 * molecules_per_cell / framework_mass


#: keys of ``gcmc.mc_moves``: fractions of all Monte Carlo trials (insertions and deletions take the rest)
MC_MOVE_KEYS = ("translation", "rotation")


def mc_move_arguments(mc_moves: dict | None, exchanges_per_attempt: int) -> tuple[int, str]:
    """Number of MC moves per fix gcmc call and the ``mcmoves`` keyword for translation/rotation fractions.

    ``mc_moves`` gives the fractions of all trials that are molecule translations and rotations (e.g. 0.2 and
    0.2 with 0.3 insertions + 0.3 deletions, the H2 MLP-GCMC setting of Liu et al. for Al-soc-MOF); the
    ``exchanges_per_attempt`` insertions/deletions take the remaining fraction. LAMMPS refuses MC moves of
    rigid molecules, so guests with MC moves are flexible. Returns ``(0, "")`` without moves.
    Raises ValueError for unknown keys, negative fractions or fractions that leave no exchanges.
    """
    if not mc_moves:
        return 0, ""
    unknown = sorted(set(mc_moves) - set(MC_MOVE_KEYS))
    if unknown:
        raise ValueError(f"gcmc.mc_moves: unknown keys {unknown}; valid: {list(MC_MOVE_KEYS)}")
    translation = float(mc_moves.get("translation", 0.0))
    rotation = float(mc_moves.get("rotation", 0.0))
    if translation < 0 or rotation < 0 or translation + rotation >= 1.0:
        raise ValueError(
            "gcmc.mc_moves: translation and rotation must be >= 0 with a sum below 1 (the rest are "
            f"insertions/deletions), got translation={translation}, rotation={rotation}"
        )
    moves = translation + rotation
    if moves == 0:
        return 0, ""
    n_moves = max(1, round(int(exchanges_per_attempt) * moves / (1.0 - moves)))
    return n_moves, f" mcmoves 0 {translation / moves:.6f} {rotation / moves:.6f}"
