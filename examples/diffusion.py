"""Guest self-diffusion, guest RDFs and the Arrhenius Ea with a trained ensemble (run with ``verdi run``).

The recipe of Liu et al. (H2 in Al-soc-MOF: Einstein MSD, Ea 4.3 kJ/mol, metal-H2 RDF peak 2.73 A) as
DiffusionWorkChain: NVT MD with model 0 per temperature at the loading of the given frames, D with its
error on the automatically found linear regime, metal-guest and framework-guest RDFs, the Arrhenius fit,
and the ensemble's trust on every trajectory.

    verdi run examples/diffusion.py -- --run <AL run PK> --loaded <StructureSetData PK with guests>
    verdi run examples/diffusion.py -- --toy      # tiny random models on a toy framework (minutes, CPU)

``--loaded`` is a frame with guests marked by ``guest_id`` (e.g. an MD-GCMC snapshot of the loop). Tiny
models give unphysical numbers: the toy run shows the machinery, not the science.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from aiida import orm
from aiida.engine import run_get_node

from aiida_mofmlp.cli.setup import ensure_codes, ensure_localhost
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.engines.mace.toy import TOY_SPECIES, build_tiny_model, toy_frame
from aiida_mofmlp.tools.plots_dynamics import plot_diffusion
from aiida_mofmlp.tools.queries import load_run
from aiida_mofmlp.workflows.properties.diffusion import DiffusionWorkChain

TOY_OVERRIDES = {
    "temperatures": [300.0, 450.0, 600.0],
    "analysis": {"equilibration_ps": 0.02},
    "md": {"md": {"parameters": {"steps": 400, "dump_interval": 4, "thermostat_damping_fs": 20.0}}},
}


def toy_inputs():
    folder = Path(tempfile.mkdtemp())
    models = [
        MaceModelData.from_file(build_tiny_model(list(TOY_SPECIES), folder / f"m{k}.model", seed=k))
        for k in range(2)
    ]
    return StructureSetData.from_frames([toy_frame(n_guests=2, rattle=0.0)]), models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="PK of a finished ActiveLearningWorkChain (its `models`)")
    parser.add_argument("--loaded", help="PK of a StructureSetData whose frame 0 holds the guests")
    parser.add_argument("--toy", action="store_true", help="tiny random models on a toy framework")
    parser.add_argument("--protocol", default="fast")
    parser.add_argument("--figure", default="diffusion.png")
    args = parser.parse_args()
    codes = ensure_codes(ensure_localhost())
    if args.toy:
        structure, models = toy_inputs()
        overrides = TOY_OVERRIDES
    else:
        if not (args.run and args.loaded):
            raise SystemExit("give --run and --loaded, or --toy")
        models = dict(load_run(args.run).outputs.models)
        structure, overrides = orm.load_node(args.loaded), None
    builder = DiffusionWorkChain.get_builder_from_protocol(
        structure, models, codes, protocol=args.protocol, overrides=overrides
    )
    results, node = run_get_node(builder)
    print(f"DiffusionWorkChain<{node.pk}> exit status {node.exit_status}")
    for result in sorted(results.get("diffusion", {}).values(), key=lambda r: r["temperature"]):
        print(
            f"  {result['temperature']:6.1f} K  D = {result['D']:.4g} +- {result['D_error']:.2g} A^2/ps  "
            f"(fit {result['fit_start_ps']:.3g}-{result['fit_stop_ps']:.3g} ps), metal-guest peak "
            f"{result.get('metal_guest_first_peak')} A"
        )
    if "arrhenius" in results:
        fit = results["arrhenius"]
        print(f"  Ea = {fit['Ea_kJ_per_mol']:.3g} +- {fit['Ea_error_kJ_per_mol']:.2g} kJ/mol")
    print(f"  trust: {results['trust'].get_dict().get('all', results['trust'].get_dict())}")
    print(f"  figure: {plot_diffusion(node, args.figure).path}")


if __name__ == "__main__":
    main()
