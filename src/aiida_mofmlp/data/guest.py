"""Guest molecules: atomistic geometry (for DFT and MACE) and force-field sites (for GCMC)."""

from __future__ import annotations

import re

import numpy as np
from aiida import orm
from ase import Atoms

from aiida_mofmlp.common.frames import GUEST_ID_KEY

# Built-in guests. Geometry in Angstrom (centred on the centre of mass by the node), charges in e,
# Lennard-Jones epsilon in K and sigma in Angstrom. Critical constants for the Peng-Robinson fugacity.
# Sources: TraPPE (CO2: Potoff & Siepmann 2001; N2: Potoff & Siepmann 2001; CH4: TraPPE-UA,
# Martin & Siepmann 1998); H2 has no TraPPE model: Darkrim & Levesque 1998; H2O: TIP4P/2005.
_CH = 1.087 / np.sqrt(3.0)
_OH_X = 0.9572 * np.sin(np.radians(104.52 / 2))
_OH_Z = 0.9572 * np.cos(np.radians(104.52 / 2))

#: a guest's name: it names files of RASPA's and LAMMPS's inputs, so letters, digits and underscores only
GUEST_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")

BUILTIN_GUESTS: dict[str, dict] = {
    "CO2": {
        "symbols": ["C", "O", "O"],
        "positions": [[0, 0, 0], [0, 0, 1.16], [0, 0, -1.16]],
        "sites": [
            {"label": "C_co2", "element": "C", "atom": 0, "charge": 0.70, "epsilon": 27.0, "sigma": 2.80},
            {"label": "O_co2", "element": "O", "atom": 1, "charge": -0.35, "epsilon": 79.0, "sigma": 3.05},
            {"label": "O_co2", "element": "O", "atom": 2, "charge": -0.35, "epsilon": 79.0, "sigma": 3.05},
        ],
        "critical_temperature": 304.1282,
        "critical_pressure": 7.3773e6,
        "acentric_factor": 0.22394,
        "force_field": "TraPPE",
    },
    "N2": {
        "symbols": ["N", "N"],
        "positions": [[0, 0, 0.55], [0, 0, -0.55]],
        "sites": [
            {"label": "N_n2", "element": "N", "atom": 0, "charge": -0.482, "epsilon": 36.0, "sigma": 3.31},
            {"label": "N_n2", "element": "N", "atom": 1, "charge": -0.482, "epsilon": 36.0, "sigma": 3.31},
            {
                "label": "N_com",
                "element": "M",
                "position": [0, 0, 0],
                "charge": 0.964,
                "epsilon": 0.0,
                "sigma": 0.0,
            },
        ],
        "critical_temperature": 126.192,
        "critical_pressure": 3.3958e6,
        "acentric_factor": 0.0372,
        "force_field": "TraPPE",
    },
    "H2": {
        "symbols": ["H", "H"],
        "positions": [[0, 0, 0.37], [0, 0, -0.37]],
        "sites": [
            {"label": "H_h2", "element": "H", "atom": 0, "charge": 0.468, "epsilon": 0.0, "sigma": 0.0},
            {"label": "H_h2", "element": "H", "atom": 1, "charge": 0.468, "epsilon": 0.0, "sigma": 0.0},
            {
                "label": "H_com",
                "element": "M",
                "position": [0, 0, 0],
                "charge": -0.936,
                "epsilon": 34.2,
                "sigma": 2.96,
            },
        ],
        "critical_temperature": 33.145,
        "critical_pressure": 1.2964e6,
        "acentric_factor": -0.219,
        "force_field": "Darkrim-Levesque",
    },
    "CH4": {
        "symbols": ["C", "H", "H", "H", "H"],
        "positions": [[0, 0, 0], [_CH, _CH, _CH], [-_CH, -_CH, _CH], [-_CH, _CH, -_CH], [_CH, -_CH, -_CH]],
        "sites": [
            {"label": "CH4_sp3", "element": "C", "atom": 0, "charge": 0.0, "epsilon": 148.0, "sigma": 3.73},
        ],
        "critical_temperature": 190.564,
        "critical_pressure": 4.5992e6,
        "acentric_factor": 0.01142,
        "force_field": "TraPPE-UA",
    },
    "H2O": {
        "symbols": ["O", "H", "H"],
        "positions": [[0, 0, 0], [_OH_X, 0, _OH_Z], [-_OH_X, 0, _OH_Z]],
        "sites": [
            {"label": "Ow", "element": "O", "atom": 0, "charge": 0.0, "epsilon": 93.2, "sigma": 3.1589},
            {"label": "Hw", "element": "H", "atom": 1, "charge": 0.5564, "epsilon": 0.0, "sigma": 0.0},
            {"label": "Hw", "element": "H", "atom": 2, "charge": 0.5564, "epsilon": 0.0, "sigma": 0.0},
            {
                "label": "Mw",
                "element": "M",
                "position": [0, 0, 0.1546],
                "charge": -1.1128,
                "epsilon": 0.0,
                "sigma": 0.0,
            },
        ],
        "critical_temperature": 647.096,
        "critical_pressure": 22.064e6,
        "acentric_factor": 0.3443,
        "force_field": "TIP4P/2005",
    },
}


class GuestMoleculeData(orm.Data):
    """A rigid guest molecule: atoms (for DFT/MACE), force-field sites and critical constants.

    Each site is a dict ``{label, element, position, charge, epsilon, sigma}`` in Angstrom, e, K,
    Angstrom; a site on an atom gives ``atom`` (its index) and takes that atom's position; a site that is
    not on an atom (element ``"M"``, e.g. the N2 centre) gives ``position``.
    """

    def __init__(
        self,
        name: str | None = None,
        symbols: list[str] | None = None,
        positions: list[list[float]] | None = None,
        sites: list[dict] | None = None,
        critical_temperature: float | None = None,
        critical_pressure: float | None = None,
        acentric_factor: float | None = None,
        force_field: str = "custom",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if name is None:
            return
        if not isinstance(name, str) or not GUEST_NAME.fullmatch(name):
            raise ValueError(
                f"guest name {name!r} is not valid: it becomes a file name of RASPA's and LAMMPS's inputs; "
                "give a letter followed by at most 31 letters, digits or underscores (e.g. 'CO2', 'my_guest')"
            )
        if not symbols or positions is None or len(symbols) != len(positions):
            raise ValueError(
                f"guest {name!r}: give one position (Angstrom) for each of the symbols {symbols}"
            )
        atoms = Atoms(symbols=symbols, positions=positions)
        centre = atoms.get_center_of_mass()
        atoms.positions -= centre
        resolved = [self._resolve_site(name, site, atoms, centre) for site in (sites or [])]
        self.base.attributes.set_many(
            {
                "name": name,
                "symbols": list(symbols),
                "positions": atoms.positions.tolist(),
                "sites": resolved,
                "charges": self._atom_charges(resolved, len(symbols)),
                "molar_mass": float(atoms.get_masses().sum()),
                "critical_temperature": critical_temperature,
                "critical_pressure": critical_pressure,
                "acentric_factor": acentric_factor,
                "force_field": force_field,
            }
        )

    @staticmethod
    def _resolve_site(name: str, site: dict, atoms: Atoms, centre: np.ndarray) -> dict:
        missing = {"label", "charge", "epsilon", "sigma"} - set(site)
        if missing:
            raise ValueError(f"guest {name!r}: site {site} lacks {sorted(missing)}")
        resolved = dict(site)
        if "atom" in site:
            index = int(site["atom"])
            if not 0 <= index < len(atoms):
                raise ValueError(
                    f"guest {name!r}: site {site['label']} names atom {index}, valid 0..{len(atoms) - 1}"
                )
            resolved["position"] = atoms.positions[index].tolist()
            resolved.setdefault("element", atoms[index].symbol)
        elif "position" in site:
            resolved["position"] = (np.asarray(site["position"], dtype=float) - centre).tolist()
        else:
            raise ValueError(
                f"guest {name!r}: site {site['label']} needs `atom` (index) or `position` (Angstrom)"
            )
        return resolved

    @staticmethod
    def _atom_charges(sites: list[dict], n_atoms: int) -> list[float]:
        charges = [0.0] * n_atoms
        for site in sites:
            if "atom" in site:
                charges[int(site["atom"])] = float(site["charge"])
        return charges

    def force_field_problem(self) -> str | None:
        """Why RASPA (GCMC, Widom, snapshots) cannot use this guest, or None: it needs force-field sites and
        the critical constants of the Peng-Robinson equation (written into RASPA's molecule file)."""
        if not self.sites:
            return (
                f"guest {self.name!r} has no force-field sites; give `sites` (label, charge, epsilon, sigma)"
            )
        constants = {
            "critical_temperature (K)": self.critical_temperature,
            "critical_pressure (Pa)": self.critical_pressure,
            "acentric_factor": self.acentric_factor,
        }
        missing = [name for name, value in constants.items() if not isinstance(value, int | float)]
        if missing:
            return (
                f"guest {self.name!r} lacks {', '.join(missing)}: RASPA writes them into the guest's "
                "molecule file (Peng-Robinson fugacity); give them when creating the GuestMoleculeData"
            )
        if self.critical_temperature <= 0 or self.critical_pressure <= 0:
            return f"guest {self.name!r}: critical temperature and pressure must be positive (K, Pa)"
        return None

    @classmethod
    def builtin(cls, name: str) -> GuestMoleculeData:
        """A new node for a built-in guest: CO2, N2, H2, CH4 or H2O."""
        key = name.upper().replace("_", "")
        if key not in BUILTIN_GUESTS:
            raise ValueError(f"unknown built-in guest {name!r}; built-in guests: {', '.join(BUILTIN_GUESTS)}")
        return cls(name=key, **BUILTIN_GUESTS[key])

    def get_ase(self, guest_id: int = 1) -> Atoms:
        """The molecule as ASE Atoms centred on its centre of mass, atoms tagged with ``guest_id``."""
        atoms = Atoms(symbols=self.symbols, positions=self.positions)
        atoms.arrays[GUEST_ID_KEY] = np.full(len(atoms), guest_id, dtype=int)
        atoms.set_initial_charges(self.charges)
        return atoms

    @property
    def name(self) -> str:
        return self.base.attributes.get("name")

    @property
    def symbols(self) -> list[str]:
        return self.base.attributes.get("symbols")

    @property
    def positions(self) -> list[list[float]]:
        return self.base.attributes.get("positions")

    @property
    def charges(self) -> list[float]:
        return self.base.attributes.get("charges")

    @property
    def sites(self) -> list[dict]:
        return self.base.attributes.get("sites")

    @property
    def molar_mass(self) -> float:
        return self.base.attributes.get("molar_mass")

    @property
    def critical_temperature(self) -> float | None:
        return self.base.attributes.get("critical_temperature")

    @property
    def critical_pressure(self) -> float | None:
        return self.base.attributes.get("critical_pressure")

    @property
    def acentric_factor(self) -> float | None:
        return self.base.attributes.get("acentric_factor")

    @property
    def force_field(self) -> str:
        return self.base.attributes.get("force_field")
