"""Lattice against temperature, expansion coefficients and the VDOS with a trained ensemble (``verdi run``).

The recipe of Sharma & Sanvito, npj Comput. Mater. 2024, DOI 10.1038/s41524-024-01427-y (MOF-5: linear
expansion -13.3e-6 /K against -13.1e-6 /K measured) as ThermalExpansionWorkChain: NPT MD with model 0 per
temperature with the cell angles fixed, lattice parameters with errors over the detected equilibrated part,
linear and volumetric expansion coefficients, and a VDOS from an NVE run normalised to 3N. NPT needs a
model trained with stress labels: the work chain warns when it was not.

    verdi run examples/thermal_expansion.py -- --run <AL run PK>     # the run's framework and models
    verdi run examples/thermal_expansion.py -- --toy                 # tiny random model, toy framework
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from aiida import orm
from aiida.engine import run_get_node

from aiida_mofmlp.cli.setup import ensure_codes, ensure_localhost
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.engines.mace.toy import TOY_SPECIES, build_tiny_model, toy_frame
from aiida_mofmlp.tools.plots_dynamics import plot_thermal_expansion
from aiida_mofmlp.tools.queries import load_run
from aiida_mofmlp.workflows.properties.thermal_expansion import ThermalExpansionWorkChain

TOY_OVERRIDES = {
    "temperatures": [100.0, 200.0, 300.0],
    "vdos": {"temperature": 300.0, "steps": 400, "dump_interval": 2},
    "md": {"md": {"parameters": {"steps": 400, "dump_interval": 10, "barostat_damping_fs": 100.0}}},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="PK of a finished ActiveLearningWorkChain (its structure and `models`)")
    parser.add_argument("--toy", action="store_true", help="tiny random model on a toy framework")
    parser.add_argument("--protocol", default="fast")
    parser.add_argument("--figure", default="thermal_expansion.png")
    args = parser.parse_args()
    codes = ensure_codes(ensure_localhost())
    if args.toy:
        path = build_tiny_model(list(TOY_SPECIES), Path(tempfile.mkdtemp()) / "tiny.model")
        structure = orm.StructureData(ase=toy_frame(n_guests=0, rattle=0.0))
        models, overrides = [MaceModelData.from_file(path)], TOY_OVERRIDES
    elif args.run:
        run = load_run(args.run)
        structure, models, overrides = run.inputs.structure, dict(run.outputs.models), None
    else:
        raise SystemExit("give --run or --toy")
    builder = ThermalExpansionWorkChain.get_builder_from_protocol(
        structure, models, codes, protocol=args.protocol, overrides=overrides
    )
    results, node = run_get_node(builder)
    print(f"ThermalExpansionWorkChain<{node.pk}> exit status {node.exit_status}")
    expansion = results["expansion"].get_dict()
    for run in sorted(expansion["per_run"].values(), key=lambda r: r["temperature"]):
        print(
            f"  {run['temperature']:6.1f} K  a = {run['a']['mean']:.4f} +- {run['a']['error']:.2g} A, "
            f"V = {run['volume']['mean']:.1f} +- {run['volume']['error']:.2g} A^3"
        )
    for name, value in expansion["expansion"].items():
        print(
            f"  alpha_{name} = {value['alpha']:.3g}"
            + (f" +- {value['alpha_error']:.2g}" if "alpha_error" in value else "")
            + " 1/K"
        )
    for warning in expansion.get("warnings", []):
        print(f"  WARNING: {warning}")
    if "vdos" in results:
        print(f"  VDOS main peaks (THz): {results['vdos'].base.attributes.get('main_peaks_thz')}")
    print(f"  figure: {plot_thermal_expansion(node, args.figure).path}")


if __name__ == "__main__":
    main()
