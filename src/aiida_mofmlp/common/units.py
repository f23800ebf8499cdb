"""Units used everywhere in aiida-mofmlp, and conversions to them.

Every label stored by the plugin is in these units; every output states them in its attributes.
"""

ENERGY = "eV"
FORCES = "eV/Angstrom"
STRESS = "eV/Angstrom^3"
LENGTH = "Angstrom"
TEMPERATURE = "K"
PRESSURE = "bar"
LOADING = "mol/kg"

UNITS = {
    "energy": ENERGY,
    "forces": FORCES,
    "stress": STRESS,
    "positions": LENGTH,
    "cell": LENGTH,
    "temperature": TEMPERATURE,
    "pressure": PRESSURE,
}

HARTREE_TO_EV = 27.211386245988
BOHR_TO_ANGSTROM = 0.529177210903
HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM = HARTREE_TO_EV / BOHR_TO_ANGSTROM
GPA_TO_EV_PER_ANGSTROM3 = 1.0 / 160.21766208
BAR_TO_EV_PER_ANGSTROM3 = 1.0e-4 * GPA_TO_EV_PER_ANGSTROM3
KJ_PER_MOL_TO_EV = 1.0 / 96.48533212
BOLTZMANN_EV_PER_K = 8.617333262e-5
