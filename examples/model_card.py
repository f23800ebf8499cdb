"""A model card: a fine-tuned MACE model (or ensemble) next to its foundation on a framework (verdi run).

The MOFSimBench task set (Krass, Huang, Moosavi, 2025) at this plugin's scale, as ModelCardWorkChain:
relaxation volume change, NPT stability (volume drift of a short LAMMPS run from the relaxed structure),
bulk modulus (Birch-Murnaghan over +-2 %), Cv at 300 K, host-guest interaction energy of the guest at its
best site and errors on the validation frames, for both models. The foundation is found by the
fine-tuned model's ``parent_sha256`` unless given.

    verdi run examples/model_card.py -- --run <AL run PK>     # the run's final ensemble, framework, guest
                                                             # and validation frames; `fast`: minutes

The card is the work chain's ``card`` output (a Dict); ``ModelCardWorkChain.cards_of(model)`` finds the
cards of a model later.
"""

from __future__ import annotations

import argparse
import json

from aiida.engine import run_get_node

from aiida_mofmlp.cli.setup import ensure_codes, ensure_localhost
from aiida_mofmlp.tools.queries import load_run
from aiida_mofmlp.workflows.properties.model_card import ModelCardWorkChain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="PK of a finished ActiveLearningWorkChain")
    parser.add_argument("--protocol", default="fast", choices=["fast", "balanced", "stringent"])
    args = parser.parse_args()
    codes = ensure_codes(ensure_localhost())
    run = load_run(args.run)
    models = dict(run.outputs.models)
    builder = ModelCardWorkChain.get_builder_from_protocol(
        run.inputs.structure,
        models,
        codes,
        protocol=args.protocol,
        guest=run.inputs.guest if "guest" in run.inputs else None,
        validation_frames=run.outputs.validation_frames if "validation_frames" in run.outputs else None,
    )
    results, node = run_get_node(builder)
    print(f"ModelCardWorkChain<{node.pk}> exit status {node.exit_status}")
    card = results["card"].get_dict()
    labels = sorted(card["models"])
    print(f"{'quantity':40s}" + "".join(f"{label:>16s}" for label in labels) + "  unit")
    for key in card["quantities"]:
        values = [card["models"][label].get(key) for label in labels]
        cells = "".join(f"{v:16.4g}" if isinstance(v, float) else f"{v!s:>16s}" for v in values)
        print(f"{key:40s}{cells}  {card['units'][key]}")
    print(json.dumps({label: card["models"][label]["wall_time_s"] for label in labels}, indent=1))


if __name__ == "__main__":
    main()
