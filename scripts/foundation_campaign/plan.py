"""What the campaign builds: frameworks with their roles, guests, settings of the full and quick runs."""

from __future__ import annotations

import re
from typing import Any

GUESTS = ("CO2", "N2", "CH4", "H2O", "H2")
MODEL_NAME = "small_mof_foundation"

#: RASPA2 CIF name -> role. ``train``: labelled and trained on; ``heldout``: labelled, never trained on,
#: the card's test frameworks; ``demo``: the demo's framework (DMOF-1), labelled and reported apart, never
#: trained on, so that the demo and the label-efficiency benchmark fine-tune on a framework the
#: foundation has not seen. Cells after primitive reduction and repetition to widths >= 2 r_max: 54-156
#: atoms. Duplicates in the library (MgMOF-74 = Mg-DOBDC, MOF-1-Dybtsev-dmol = ZnBDCdabco, ...) are left out.
FRAMEWORKS: dict[str, str] = {
    # metal-organic frameworks (Zn, Cu, Co, Ni, Mg, Fe, Cr, V, Zr, Cd)
    "MIL-88A-open": "train",
    "MIL-53(Cr)ht": "train",
    "Cd3BTB2": "train",
    "CoBDP": "train",
    "IRMOF-1": "train",
    "Co-DOBDC": "train",
    "Mg-DOBDC": "train",
    "Ni-DOBDC": "train",
    "Zn-DOBDC": "train",
    "MOF-72": "train",
    "ZnBDC": "train",
    "MIL-140A-DFT": "train",
    "MIL-47": "train",
    "Cu-BTC": "train",
    # zeolites and aluminophosphates: other oxygen environments and pore shapes
    "LEV": "train",
    "ITQ-29": "train",
    "RHO": "train",
    "GME": "train",
    "TON": "train",
    "CON": "train",
    "MEI": "train",
    "AlPO-17": "train",
    "ERI_SI": "train",
    "LTA4A": "train",
    "AlPO-5": "train",
    "SAPO-56": "train",
    # held out entirely (the card's test frameworks)
    "IRMOF-7": "heldout",
    "ZnHBDC": "heldout",
    "MIL-88B-open": "heldout",
    "Co(2,6-NDP)": "heldout",
    "MIL-88C-open": "heldout",
    # the demo's framework
    "ZnBDCdabco": "demo",
}
QUICK_FRAMEWORKS: dict[str, str] = {"Zn-DOBDC": "train", "ZnBDCdabco": "heldout"}

#: an MD frame with two atoms closer than this fraction of the sum of their covalent radii ends the run
MIN_CONTACT_RATIO = 0.6

PLANS: dict[str, dict[str, Any]] = {
    "full": {
        "frameworks": FRAMEWORKS,
        "max_atoms": 160,
        "r_max": 5.0,
        # guests per cell: each entry one cell with that many guests of one kind (kinds rotate), and the
        # empty framework; zeolites get the first two only
        "loadings": (1, 2, 3, 4, 1),
        "loadings_small": (1, 2),
        "small_kinds": ("Si", "P"),  # a framework with these elements and no carbon gets loadings_small
        "rattle": (0.01, 0.03, 0.06, 0.1),
        "strains": 4,  # per cell: iso, shear, iso, shear, amounts drawn from [-max_strain, max_strain]
        "max_strain": 0.05,
        "temperatures": (300.0, 500.0, 700.0),
        "md_frames": 4,  # per run; one run per cell and temperature
        "md_stride": 20,
        "md_equilibrate": 40,
        "molecule_frames": 10,  # rattled copies of each isolated guest (in a 20 Angstrom box)
        "bootstrap_frames": 900,
        "bootstrap": {"num_channels": 16, "max_L": 0, "max_num_epochs": 10, "r_max": 5.0, "batch_size": 4},
        "foundation": {"num_channels": 32, "max_L": 1, "max_num_epochs": 40, "r_max": 5.0, "batch_size": 8},
        "valid_fraction": 0.05,
        "replay_frames": 300,
        "heldout_per_framework": 4,
        "chunk": 8,
    },
    "quick": {
        "frameworks": QUICK_FRAMEWORKS,
        "max_atoms": 60,
        "r_max": 3.0,
        "loadings": (1,),
        "loadings_small": (1,),
        "small_kinds": ("Si", "P"),
        "rattle": (0.05,),
        "strains": 1,
        "max_strain": 0.05,
        "temperatures": (300.0,),
        "md_frames": 1,
        "md_stride": 5,
        "md_equilibrate": 5,
        "molecule_frames": 1,
        "bootstrap_frames": 20,
        "bootstrap": {"num_channels": 8, "max_L": 0, "max_num_epochs": 1, "r_max": 3.0, "batch_size": 4},
        "foundation": {"num_channels": 8, "max_L": 0, "max_num_epochs": 2, "r_max": 3.0, "batch_size": 4},
        "valid_fraction": 0.2,
        "replay_frames": 6,
        "heldout_per_framework": 1,
        "chunk": 6,
    },
}


def file_stem(framework: str) -> str:
    """A file name for ``framework`` (RASPA names hold brackets and commas)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", framework).strip("_")
