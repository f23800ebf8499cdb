"""Adsorption properties with the final ensemble of an active-learning run (run with ``verdi run``).

The run is found by a provenance query: the newest finished ActiveLearningWorkChain for the framework and
guest (``--run PK`` picks one). Its final ensemble (``models``) drives AdsorptionWorkChain: the MLP MD-GCMC
isotherm beside RASPA's, the heat of adsorption from MD, Widom and RASPA, and the ensemble's trust on every
property trajectory. The figure's path is printed at the end.

    verdi run examples/adsorption.py -- --framework ZnBDCdabco --guest CO2 --protocol fast
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aiida.engine import run_get_node

from aiida_mofmlp.cli.setup import ensure_codes, ensure_localhost
from aiida_mofmlp.tools.plots_adsorption import plot_adsorption
from aiida_mofmlp.tools.queries import list_runs, load_run
from aiida_mofmlp.workflows.properties.adsorption import AdsorptionWorkChain


def final_ensemble(framework: str, guest: str, run: str | None):
    """The finished active-learning run (newest match, or ``run``) and its framework structure."""
    if run is None:
        rows = list_runs(framework=framework, guest=guest, status="finished", limit=1)
        if not rows:
            raise SystemExit(f"no finished active-learning run for {framework} + {guest}; run the demo first")
        run = rows[0]["pk"]
    node = load_run(run)
    if "models" not in node.outputs or not node.outputs.models:
        raise SystemExit(f"run {node.pk} has no final ensemble (outputs.models)")
    return node, node.inputs.structure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", default="ZnBDCdabco")
    parser.add_argument("--guest", default="CO2")
    parser.add_argument("--run", help="PK or UUID of the active-learning run (default: the newest match)")
    parser.add_argument("--protocol", default="fast", choices=["fast", "balanced", "stringent"])
    parser.add_argument("--figure", default="adsorption.png")
    args = parser.parse_args()

    run, structure = final_ensemble(args.framework, args.guest, args.run)
    codes = ensure_codes(ensure_localhost())
    builder = AdsorptionWorkChain.get_builder_from_protocol(
        structure,
        dict(run.outputs.models),
        {kind: codes.get(kind) for kind in ("md", "widom", "raspa", "xtb", "deviation")},
        protocol=args.protocol,
        guest=run.inputs.guest if "guest" in run.inputs else args.guest,
    )
    results, node = run_get_node(builder)
    print(f"AdsorptionWorkChain<{node.pk}>: {node.exit_status} {node.exit_message or ''}")
    if not node.is_finished_ok:
        return
    isotherm = results["isotherm"].get_dict()
    for index, pressure in enumerate(isotherm["pressure"]):
        value, error = isotherm["mlp"]["mol_per_kg"][index], isotherm["mlp"]["mol_per_kg_error"][index]
        print(f"{pressure:g} bar: MLP {value:.3f} +- {error:.3f} mol/kg")
    heat = results["heat_of_adsorption"].get_dict()
    for row in heat["mlp_md"]:
        print(
            f"heat of adsorption (MD, N={row['n_guests']}): {row['value']:.1f} +- {row['error']:.1f} kJ/mol"
        )
    print(f"trust: {results['trust'].get_dict().get('all')}")
    plot = plot_adsorption(node, Path(args.figure), title=f"{args.guest} in {args.framework}")
    print(f"figure: {plot.path.resolve()}")


if __name__ == "__main__":
    main()
