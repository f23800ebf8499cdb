"""A MOF glass by melt-quench with per-frame integrity checks, with a trained ensemble (``verdi run``).

The recipe of Castel et al., Digital Discovery 2024, DOI 10.1039/d3dd00236e (amorphous ZIF-4) as
MeltQuenchWorkChain: heat to 1500 K at 20 K/ps, a 50 ps plateau, quench at 20 K/ps, 100 ps at 300 K
(0.25 fs above 1500 K); every frame checked for broken linkers and metal-N/O coordination (2.5 A); melting
confirmed at the plateau; crystal vs glass RDFs, coordination, pore volume and surface area (Zeo++).
A run whose linkers break ends with ERROR_LINKERS_BROKEN and hands the frames over as `untrusted_frames`
(extra candidates for the next active-learning round).

    verdi run examples/melt_quench.py -- --run <AL run PK> --protocol balanced
    verdi run examples/melt_quench.py -- --toy     # tiny random model: its linkers break (no chemistry)
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
from aiida_mofmlp.tools.plots_dynamics import plot_melt_quench
from aiida_mofmlp.tools.queries import load_run
from aiida_mofmlp.workflows.properties.melt_quench import MeltQuenchWorkChain

TOY_OVERRIDES = {
    "program": {
        "heating_rate": 20000.0,
        "quench_rate": 20000.0,
        "plateau_ps": 0.05,
        "equilibration_ps": 0.05,
    },
    "checks": {"probe_radius": 1.2},
    "md": {"md": {"parameters": {"dump_interval": 10, "thermostat_damping_fs": 20.0}}},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="PK of a finished ActiveLearningWorkChain (its structure and `models`)")
    parser.add_argument("--toy", action="store_true", help="tiny random model on a toy framework")
    parser.add_argument("--protocol", default="fast")
    parser.add_argument("--figure", default="melt_quench.png")
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
    builder = MeltQuenchWorkChain.get_builder_from_protocol(
        structure, models, codes, protocol=args.protocol, overrides=overrides
    )
    results, node = run_get_node(builder)
    print(f"MeltQuenchWorkChain<{node.pk}> exit status {node.exit_status}: {node.exit_message or 'ok'}")
    if "integrity" in results:
        integrity = results["integrity"].get_dict()
        print(f"  frames with broken linker bonds: {len(integrity['broken_frames'])}/{integrity['n_frames']}")
        print(
            f"  coordination {integrity['reference_coordination_mean']:.2f} (crystal) -> "
            f"{integrity['final_coordination_mean']:.2f} (final)"
        )
        print(f"  melting: {integrity['melting']}")
        print(f"  pores: {results['pores'].get_dict()}")
        print(f"  figure: {plot_melt_quench(node, args.figure).path}")
    if "untrusted_frames" in results:
        print(f"  untrusted frames for the next round: StructureSetData<{results['untrusted_frames'].pk}>")


if __name__ == "__main__":
    main()
