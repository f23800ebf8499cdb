"""PhononsParser: results, arrays and the relaxed structure of a PhononsCalculation."""

from __future__ import annotations

from aiida import orm
from aiida.engine import ExitCode

from aiida_mofmlp.common.serialise import to_jsonable
from aiida_mofmlp.parsers.base import EngineParser

#: output ArrayData -> (prefixes of the engine's array names, units)
ARRAY_OUTPUTS = {
    "phonons": (
        ("gamma_", "dos", "band_", "thermal_"),
        {
            "gamma_frequencies": "THz",
            "dos_frequency": "THz",
            "dos": "states/THz per unit cell",
            "band_distance": "1/Angstrom",
            "band_frequencies": "THz",
            "thermal_temperature": "K",
            "thermal_free_energy": "kJ/mol of unit cells",
            "thermal_free_energy_ev": "eV per unit cell",
            "thermal_entropy": "J/(K mol of unit cells)",
            "thermal_entropy_kb": "k_B per unit cell",
            "thermal_heat_capacity": "J/(K mol of unit cells)",
            "thermal_heat_capacity_kb": "k_B per unit cell",
        },
    ),
    "eos": (
        ("eos_",),
        {
            "eos_volumes": "Angstrom^3",
            "eos_energies": "eV",
            "eos_pressures": "eV/Angstrom^3",
            "eos_fit_volumes": "Angstrom^3",
            "eos_fit_energies": "eV",
        },
    ),
    "qha": (
        ("qha_",),
        {
            "qha_volumes": "Angstrom^3",
            "qha_energies": "eV",
            "qha_temperature": "K",
            "qha_volume_temperature": "Angstrom^3",
            "qha_thermal_expansion": "1/K (volumetric)",
            "qha_bulk_modulus_temperature": "GPa",
        },
    ),
}


class PhononsParser(EngineParser):
    """``results.json`` -> Dict, ``phonons.npz`` -> ArrayData per task, ``relaxed.extxyz`` -> StructureData.

    The outputs are attached first; then 420 when the relaxation did not converge and 410 when imaginary
    modes remain after the engine's rattle-and-relax attempts.
    """

    ENGINE = "mofmlp-phonons"
    REQUIRED_FILES = ("results.json", "relaxed.extxyz", "phonons.npz")

    def parse_outputs(self, **kwargs) -> ExitCode | None:
        results = self.read_json("results.json")
        arrays = self.read_npz("phonons.npz")
        for output, (prefixes, units) in ARRAY_OUTPUTS.items():
            selected = {key: value for key, value in arrays.items() if key.startswith(prefixes)}
            if selected:
                self.out(output, self.array_data(selected, units))
        relaxed = self.read_structure_set("relaxed.extxyz").get_frames()[0]
        self.out("relaxed_structure", orm.StructureData(ase=relaxed))
        if "host_guest.extxyz" in self.retrieved_names:
            complex_ = self.read_structure_set("host_guest.extxyz").get_frames()[0]
            self.out("host_guest_structure", orm.StructureData(ase=complex_))
        self.out("results", orm.Dict(to_jsonable(results)))
        relax = results.get("relax")
        if relax is not None and not relax.get("converged", True):
            return self.exit_codes.ERROR_RELAXATION_NOT_CONVERGED.format(
                detail=f"{relax.get('steps')} steps, largest force {relax.get('fmax'):.3g} eV/A"
            )
        phonons = results.get("phonons")
        if phonons is not None and phonons.get("status") == "imaginary":
            return self.exit_codes.ERROR_IMAGINARY_MODES.format(
                detail=f"{phonons['n_imaginary']} modes below -{phonons['imaginary_threshold']} THz "
                f"(lowest {phonons['min_frequency']:.3g} THz) after {len(phonons['attempts']) - 1} attempts"
            )
        return None
