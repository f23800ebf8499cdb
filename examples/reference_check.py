"""Each model against the method that labelled it: V0, bulk modulus, binding energy, Gamma (``verdi run``).

ReferenceCheckWorkChain computes the properties with GFN1-xTB (tblite) and with every model, each from its
own relaxed structure, in one job per calculator, and prints the table with the tolerances of the protocol
(reference_check.yaml); a property outside its tolerance comes with the reference-labelled frames behind it.

    verdi run examples/reference_check.py -- --run <AL run PK>     # the run's framework, ensemble, frames
    verdi run examples/reference_check.py -- --cif my_mof.cif      # the shipped foundation alone
"""

from __future__ import annotations

import argparse

from aiida.engine import run_get_node

from aiida_mofmlp.cli.setup import ensure_codes, ensure_localhost
from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.tools.intake import load_cif
from aiida_mofmlp.tools.queries import load_run
from aiida_mofmlp.workflows.properties.reference_check import ReferenceCheckWorkChain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="PK of a finished ActiveLearningWorkChain (structure, models, frames)")
    parser.add_argument("--cif", help="a framework CIF (at most 150 atoms), with the shipped foundation")
    parser.add_argument("--protocol", default="fast", choices=["fast", "balanced", "stringent"])
    args = parser.parse_args()
    codes = ensure_codes(ensure_localhost())
    frames = None
    if args.run:
        run = load_run(args.run)
        structure, models = run.inputs.structure, dict(run.outputs.models)
        frames = run.outputs.get("validation_frames")
    elif args.cif:
        structure, _ = load_cif(args.cif)
        models = [MaceModelData.small_mof_foundation()]
    else:
        raise SystemExit("give --run or --cif")
    builder = ReferenceCheckWorkChain.get_builder_from_protocol(
        structure, models, codes, protocol=args.protocol, validation_frames=frames
    )
    results, node = run_get_node(builder)
    print(f"ReferenceCheckWorkChain<{node.pk}> exit status {node.exit_status} {node.exit_message or ''}")
    table = results["table"].get_dict()
    print(f"{'property':16}{'model':>10}{'reference':>12}{'value':>12}{'difference':>12}  unit")
    for row in table["rows"]:
        print(
            f"{row['property']:16}{row['model']:>10}{row['reference']:12.4g}{row['value']:12.4g}"
            f"{row['difference']:12.3g}  {row['unit']}  {'pass' if row['passed'] else 'FAIL'}"
        )
    print(f"seconds per calculator: {results['results'].get_dict()['seconds']}")
    if "untrusted_frames" in results:
        print(
            f"{len(results['untrusted_frames'])} reference-labelled frames behind the failures: "
            f"StructureSetData<{results['untrusted_frames'].pk}> (give them to a loop's extra_candidates)"
        )


if __name__ == "__main__":
    main()
