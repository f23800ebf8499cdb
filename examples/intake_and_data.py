"""Load a MOF from a CIF with checks, add CO2 guests and store the frames as a structure set.

Run with ``verdi -p mofmlp run examples/intake_and_data.py [path/to/framework.cif]`` (default: MIL-47
shipped with RASPA2). It prints what it stored; nothing is computed.
"""

import sys
from pathlib import Path

import numpy as np
from aiida import orm

from aiida_mofmlp.common.frames import GUEST_ID_KEY
from aiida_mofmlp.data import GuestMoleculeData, StructureSetData
from aiida_mofmlp.tools.intake import StructureIntakeError, load_cif


def default_cif() -> Path:
    """MIL-47 from RASPA2's share folder (a V-terephthalate MOF, 72 atoms)."""
    import RASPA2

    return Path(RASPA2.__file__).parent / "share" / "raspa" / "structures" / "cif" / "MIL-47.cif"


def place_guest(framework, guest: GuestMoleculeData, guest_id: int, seed: int = 0):
    """The framework plus one guest at the grid point farthest from every atom (a pore centre)."""
    rng = np.random.default_rng(seed)
    grid = rng.random((2000, 3)) @ framework.cell.array
    from ase.geometry import get_distances

    _, d = get_distances(grid, framework.positions, cell=framework.cell, pbc=True)
    centre = grid[np.argmax(d.min(axis=1))]
    molecule = guest.get_ase(guest_id=guest_id)
    molecule.positions += centre
    loaded = framework.copy()
    loaded.arrays[GUEST_ID_KEY] = np.zeros(len(loaded), dtype=int)
    loaded += molecule
    return loaded


path = Path(sys.argv[1]) if len(sys.argv) > 1 else default_cif()
try:
    # r_cut: the MACE cutoff; supercell="auto" repeats the cell until it is wide enough for it
    structure, warnings = load_cif(path, r_cut=5.0, supercell="auto")
except StructureIntakeError as error:
    sys.exit(f"{path.name} was refused: {error}")
for issue in warnings:
    print(f"warning: {issue}")
structure.store()
print(f"framework {structure.get_formula()} ({len(structure.sites)} atoms): StructureData<{structure.pk}>")

co2 = GuestMoleculeData.builtin("CO2").store()
framework = structure.get_ase()
empty = framework.copy()
empty.info.update(source="cif", loading=0)
loaded = place_guest(framework, co2, guest_id=1)
loaded.info.update(source="manual", loading=1)
frames = StructureSetData.from_frames([empty, loaded])
frames.store()
print(f"guest {co2.name} ({co2.force_field}): GuestMoleculeData<{co2.pk}>")
print(f"structure set: StructureSetData<{frames.pk}> {frames.count} frames, species {frames.species}")
print(orm.load_node(frames.pk).base.attributes.all)
