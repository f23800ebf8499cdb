"""Phonons, heat capacity, bulk modulus and quasi-harmonic expansion with a MACE model (``verdi run``).

The recipe of Elena et al., npj Comput. Mater. 2025, DOI 10.1038/s41524-025-01611-8 (MACE-MP-MOF0) as
PhononsWorkChain: relax with ASE's FrechetCellFilter, phonopy in a supercell at least 2 r_max wide, DOS,
bands, F/S/Cv(T), imaginary modes fixed by rattling (0.01 A) and relaxing again, bulk modulus from a
Birch-Murnaghan fit over +-2 % strain and (balanced/stringent) the QHA expansion over >= 5 volumes.

    verdi run examples/phonons.py -- --mgo                  # rock-salt MgO, shipped foundation (~1 min)
    verdi run examples/phonons.py -- --run <AL run PK>      # the run's framework with its ensemble (model_0)
    verdi run examples/phonons.py -- --cif my_mof.cif --protocol balanced
"""

from __future__ import annotations

import argparse

from aiida import orm
from aiida.engine import run_get_node
from ase.build import bulk

from aiida_mofmlp.cli.setup import ensure_codes, ensure_localhost
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.tools.intake import load_cif
from aiida_mofmlp.tools.plots_phonons import plot_phonons_run
from aiida_mofmlp.tools.queries import load_run
from aiida_mofmlp.workflows.properties.phonons import PhononsWorkChain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mgo", action="store_true", help="rock-salt MgO with the shipped foundation")
    parser.add_argument("--run", help="PK of a finished ActiveLearningWorkChain (its structure and `models`)")
    parser.add_argument("--cif", help="a framework CIF, with the shipped foundation")
    parser.add_argument("--protocol", default="fast", choices=["fast", "balanced", "stringent"])
    parser.add_argument("--figures", default="phonon_figures", help="folder for the figures")
    args = parser.parse_args()
    codes = ensure_codes(ensure_localhost())
    if args.run:
        run = load_run(args.run)
        structure, models = run.inputs.structure, dict(run.outputs.models)
    elif args.cif:
        structure, _ = load_cif(args.cif)
        models = [MaceModelData.small_mof_foundation()]
    elif args.mgo:
        structure = orm.StructureData(ase=bulk("MgO", "rocksalt", a=4.2))
        models = [MaceModelData.small_mof_foundation()]
    else:
        raise SystemExit("give --mgo, --run or --cif")
    builder = PhononsWorkChain.get_builder_from_protocol(structure, models, codes, protocol=args.protocol)
    results, node = run_get_node(builder)
    print(f"PhononsWorkChain<{node.pk}> exit status {node.exit_status} {node.exit_message or ''}")
    summary = results["results"].get_dict()
    relax, phonons, eos = summary.get("relax", {}), summary.get("phonons", {}), summary.get("eos", {})
    print(f"  relaxation: volume change {relax.get('volume_change_percent', 0):+.2f} %")
    print(f"  phonons: supercell {phonons.get('supercell')}, status {phonons.get('status')}")
    print(
        f"    lowest frequency {phonons.get('min_frequency', 0):.3f} THz, "
        f"{len(phonons.get('attempts', []))} attempt(s)"
    )
    print(f"    Cv(300 K) = {phonons.get('heat_capacity_300K_per_gram')} J/(g K)")
    print(f"  bulk modulus (Birch-Murnaghan): {eos.get('bulk_modulus_eos_gpa')} GPa")
    if "qha" in summary:
        print(f"  alpha_V(300 K) = {summary['qha'].get('thermal_expansion_300K')} 1/K")
    print(f"  wall time per task (s): {summary.get('wall_time_s')}")
    print(f"  trust: {results['trust'].get_dict()}")
    for plot in plot_phonons_run(node, args.figures).values():
        print(f"  figure: {plot.path}")


if __name__ == "__main__":
    main()
