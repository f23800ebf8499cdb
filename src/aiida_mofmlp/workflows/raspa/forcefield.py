"""RASPA force-field files for a rigid framework with a rigid guest (no AiiDA imports).

Framework atoms get UFF Lennard-Jones parameters (Rappe et al., J. Am. Chem. Soc. 1992, 114, 10024),
guest sites take theirs from :class:`~aiida_mofmlp.data.guest.GuestMoleculeData` (TraPPE for the built-in
guests); cross terms follow Lorentz-Berthelot. Framework pseudo atoms are named by element; guest sites keep
their labels (``C_co2``, ``O_co2``, ...), so the two never collide.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
from ase import Atoms

from aiida_mofmlp.common.geometry import perpendicular_widths as perpendicular_widths  # re-exported
from aiida_mofmlp.common.geometry import supercell_for_cutoff

#: kcal/mol -> K (divide by the gas constant in kcal/mol/K)
KCAL_PER_MOL_TO_K = 1.0 / 1.987204259e-3

#: UFF nonbonded parameters per element: (x_i, bond length at the minimum in Angstrom; D_i in kcal/mol).
_UFF_XD: dict[str, tuple[float, float]] = {
    "H": (2.886, 0.044),
    "Li": (2.451, 0.025),
    "Be": (2.745, 0.085),
    "B": (4.083, 0.180),
    "C": (3.851, 0.105),
    "N": (3.660, 0.069),
    "O": (3.500, 0.060),
    "F": (3.364, 0.050),
    "Na": (2.983, 0.030),
    "Mg": (3.021, 0.111),
    "Al": (4.499, 0.505),
    "Si": (4.295, 0.402),
    "P": (4.147, 0.305),
    "S": (4.035, 0.274),
    "Cl": (3.947, 0.227),
    "K": (3.812, 0.035),
    "Ca": (3.399, 0.238),
    "Sc": (3.295, 0.019),
    "Ti": (3.175, 0.017),
    "V": (3.144, 0.016),
    "Cr": (3.023, 0.015),
    "Mn": (2.961, 0.013),
    "Fe": (2.912, 0.013),
    "Co": (2.872, 0.014),
    "Ni": (2.834, 0.015),
    "Cu": (3.495, 0.005),
    "Zn": (2.763, 0.124),
    "Ga": (4.383, 0.415),
    "Ge": (4.280, 0.379),
    "As": (4.230, 0.309),
    "Se": (4.205, 0.291),
    "Br": (4.189, 0.251),
    "Rb": (4.114, 0.040),
    "Sr": (3.641, 0.235),
    "Y": (3.345, 0.072),
    "Zr": (3.124, 0.069),
    "Nb": (3.165, 0.059),
    "Mo": (3.052, 0.056),
    "Ru": (2.963, 0.056),
    "Rh": (2.929, 0.053),
    "Pd": (2.899, 0.048),
    "Ag": (3.148, 0.036),
    "Cd": (2.848, 0.228),
    "In": (4.463, 0.599),
    "Sn": (4.392, 0.567),
    "Sb": (4.420, 0.449),
    "Te": (4.470, 0.398),
    "I": (4.500, 0.339),
    "Cs": (4.517, 0.045),
    "Ba": (3.703, 0.364),
    "La": (3.522, 0.017),
    "Ce": (3.556, 0.013),
    "Hf": (3.141, 0.072),
    "W": (3.069, 0.067),
    "Pt": (2.754, 0.080),
    "Au": (3.293, 0.039),
    "Hg": (2.705, 0.385),
    "Pb": (4.297, 0.663),
    "Bi": (4.370, 0.518),
}

#: UFF Lennard-Jones parameters per element: (epsilon in K, sigma in Angstrom), sigma = x_i / 2^(1/6).
UFF: dict[str, tuple[float, float]] = {
    element: (round(d * KCAL_PER_MOL_TO_K, 4), round(x / 2 ** (1 / 6), 4))
    for element, (x, d) in _UFF_XD.items()
}


def framework_lj_parameters(
    elements: Iterable[str], extra: Mapping[str, Mapping[str, float]] | None = None
) -> dict[str, tuple[float, float]]:
    """(epsilon K, sigma Angstrom) per framework element: UFF, overridden/extended by ``extra``.

    ``extra`` maps an element to ``{"epsilon": K, "sigma": Angstrom}``. Raises ``ValueError`` naming every
    element that has no parameters.
    """
    extra = dict(extra or {})
    params: dict[str, tuple[float, float]] = {}
    missing = []
    for element in sorted(set(elements)):
        if element in extra:
            entry = extra[element]
            try:
                params[element] = (float(entry["epsilon"]), float(entry["sigma"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(
                    f"force-field parameters for {element!r} must be {{'epsilon': K, 'sigma': Angstrom}}, "
                    f"got {entry!r}"
                ) from exc
        elif element in UFF:
            params[element] = UFF[element]
        else:
            missing.append(element)
    if missing:
        raise ValueError(
            f"no UFF Lennard-Jones parameters for framework element(s) {', '.join(missing)}; give them in "
            "`force_field_parameters` as {element: {'epsilon': K, 'sigma': Angstrom}}; elements with UFF "
            f"parameters: {', '.join(UFF)}"
        )
    return params


def guest_site_types(sites: list[dict]) -> dict[str, dict]:
    """Unique guest pseudo-atom types (label -> site dict) in first-seen order; inconsistent ones fail."""
    types: dict[str, dict] = {}
    for site in sites:
        label = site["label"]
        if label in types:
            old = types[label]
            if any(not math.isclose(float(old[k]), float(site[k])) for k in ("charge", "epsilon", "sigma")):
                raise ValueError(
                    f"guest sites labelled {label!r} have different charge/epsilon/sigma: {old}, {site}"
                )
            continue
        types[label] = site
    return types


def pseudo_atoms_def(framework: Mapping[str, tuple[float, float]], sites: list[dict]) -> str:
    """Text of ``pseudo_atoms.def``: framework elements (charge from the CIF or 0) then guest site types."""
    from ase.data import atomic_masses, atomic_numbers

    rows = []
    for element in framework:
        mass = atomic_masses[atomic_numbers[element]]
        rows.append(
            f"{element:<10s} yes {element:<3s} {element:<3s} 0 {mass:10.5f} 0.0 0.0 1.0 1.0 0 0 absolute 0"
        )
    for label, site in guest_site_types(sites).items():
        element = site.get("element", "M")
        if element in atomic_numbers:
            mass, symbol = atomic_masses[atomic_numbers[element]], element
        else:
            mass, symbol = 0.0, "M"
        rows.append(
            f"{label:<10s} yes {symbol:<3s} {symbol:<3s} 0 {mass:10.5f} {float(site['charge']):+.6f} "
            "0.0 1.0 1.0 0 0 absolute 0"
        )
    header = [
        "#number of pseudo atoms",
        str(len(rows)),
        "#type print as chem oxidation mass charge polarization B-factor radii connectivity anisotropic "
        "anisotropic-type tinker-type",
    ]
    return "\n".join(header + rows) + "\n"


def mixing_rules_def(framework: Mapping[str, tuple[float, float]], sites: list[dict]) -> str:
    """Text of ``force_field_mixing_rules.def``: shifted, truncated LJ with Lorentz-Berthelot mixing."""
    rows = []
    for element, (epsilon, sigma) in framework.items():
        rows.append(f"{element:<10s} lennard-jones {epsilon:.4f} {sigma:.4f}")
    for label, site in guest_site_types(sites).items():
        epsilon, sigma = float(site["epsilon"]), float(site["sigma"])
        if epsilon == 0.0 or sigma == 0.0:
            rows.append(f"{label:<10s} none")
        else:
            rows.append(f"{label:<10s} lennard-jones {epsilon:.4f} {sigma:.4f}")
    lines = [
        "# general rule for shifted vs truncated",
        "shifted",
        "# general rule tailcorrections",
        "no",
        "# number of defined interactions",
        str(len(rows)),
        "# type interaction, parameters (epsilon in K, sigma in Angstrom)",
        *rows,
        "# general mixing rule for Lennard-Jones",
        "Lorentz-Berthelot",
    ]
    return "\n".join(lines) + "\n"


def force_field_def() -> str:
    """Text of ``force_field.def``: no rule overrides (everything comes from the mixing rules)."""
    return "# rules to overwrite\n0\n# number of defined interactions\n0\n# mixing rules to overwrite\n0\n"


def molecule_def(
    name: str,
    sites: list[dict],
    critical_temperature: float,
    critical_pressure: float,
    acentric_factor: float,
) -> str:
    """Text of ``<name>.def``: a rigid molecule whose sites are its pseudo atoms (positions in Angstrom)."""
    n_sites = len(sites)
    lines = [
        f"# critical constants: Temperature [T], Pressure [Pa], and Acentric factor [-] ({name})",
        f"{float(critical_temperature):.6f}",
        f"{float(critical_pressure):.6f}",
        f"{float(acentric_factor):.6f}",
        "# Number Of Atoms",
        str(n_sites),
        "# Number of groups",
        "1",
        "# group",
        "rigid",
        "# number of atoms",
        str(n_sites),
        "# atomic positions",
    ]
    for index, site in enumerate(sites):
        x, y, z = (float(v) for v in site["position"])
        lines.append(f"{index} {site['label']} {x:.6f} {y:.6f} {z:.6f}")
    lines += [
        "# Chiral centers Bond  BondDipoles Bend  UrayBradley InvBend  Torsion Imp. Torsion Bond/Bond "
        "Stretch/Bend Bend/Bend Stretch/Torsion Bend/Torsion IntraVDW IntraCoulomb",
        f"               0 {n_sites - 1:4d}            0    0            0       0        0            0"
        "         0            0         0               0            0        0            0",
    ]
    if n_sites > 1:
        # rigid bonds along the site list give RASPA's CBMC growth the molecule's connectivity
        lines.append("# Bond stretch: atom n1-n2, type, parameters")
        lines += [f"{i} {i + 1} RIGID_BOND" for i in range(n_sites - 1)]
    lines += ["# Number of config moves", "0"]
    return "\n".join(lines) + "\n"


def unit_cells_for_cutoff(cell: np.ndarray, cutoff: float) -> list[int]:
    """Smallest repetition of the cell along each vector whose perpendicular widths are >= 2 x cutoff."""
    return list(supercell_for_cutoff(cell, cutoff))


def p1_cif(atoms: Atoms, charges: Iterable[float] | None = None, name: str = "framework") -> str:
    """A P1 CIF of ``atoms`` (labels = element + index, fractional coordinates, optional charges in e)."""
    a, b, c, alpha, beta, gamma = atoms.cell.cellpar()
    lines = [
        f"data_{name}",
        f"_cell_length_a {a:.6f}",
        f"_cell_length_b {b:.6f}",
        f"_cell_length_c {c:.6f}",
        f"_cell_angle_alpha {alpha:.6f}",
        f"_cell_angle_beta {beta:.6f}",
        f"_cell_angle_gamma {gamma:.6f}",
        "_symmetry_space_group_name_H-M 'P 1'",
        "_symmetry_Int_Tables_number 1",
        "loop_",
        "_symmetry_equiv_pos_as_xyz",
        "'x, y, z'",
        "loop_",
        "_atom_site_label",
        "_atom_site_type_symbol",
        "_atom_site_fract_x",
        "_atom_site_fract_y",
        "_atom_site_fract_z",
        "_atom_site_charge",
    ]
    charges = np.zeros(len(atoms)) if charges is None else np.asarray(list(charges), dtype=float)
    if charges.shape != (len(atoms),):
        raise ValueError(f"give one charge per atom ({len(atoms)}), got {charges.shape}")
    fractional = atoms.cell.scaled_positions(atoms.positions) % 1.0
    for index, (symbol, (x, y, z), q) in enumerate(
        zip(atoms.get_chemical_symbols(), fractional, charges, strict=True)
    ):
        lines.append(f"{symbol}{index + 1} {symbol} {x:.8f} {y:.8f} {z:.8f} {q:+.6f}")
    return "\n".join(lines) + "\n"
