"""Active learning of a MACE potential for CO2 in DMOF-1 (ZnBDCdabco): the demo loop, as a script.

Run it in a profile that has the plugin's codes (`aiida-mofmlp setup` makes them):

    verdi -p mofmlp run examples/active_learning_demo.py

It is what `aiida-mofmlp demo` runs (about 6 minutes on 2 idle cores), written out so each choice is visible.
Everything is deliberately tiny; examples/active_learning_seed000.py shows the production settings.

The loop, in a chemist's terms:
  0. initial sampling  RASPA puts CO2 into the rigid framework at sensible sites (canonical Monte Carlo,
                       UFF + TraPPE); the guests are folded back into one unit cell. The foundation model
                       then drives short MD (LAMMPS) of the empty and the loaded framework. SOAP descriptors
                       + farthest-point sampling pick a few diverse frames per loading; CP2K labels them
                       (GFN1-xTB here, PBE-D3 in production).
  1. training          Two MACE models are fine-tuned on those labels with different random seeds.
  2. exploration       Model 0 runs MD of the empty and the loaded framework.
  3. deviation         Both models predict forces on every MD frame; sigma_max (eV/Angstrom) is how much they
                       disagree on the worst atom. Below 0.06: known ground; 0.06-0.24: worth a label;
                       above 0.24: unphysical (the trust window of Jin et al., Chem. Sci. 2026,
                       DOI 10.1039/D5SC09058J; the demo scales it up for its tiny models).
  4. convergence       Done when, at every loading, 95 % of the frames are below 0.06 and none above 0.24.
  5. selection         Otherwise the most diverse candidates per loading are labelled and added to the
                       training set (a new node, derived from the previous one), and the loop goes on.
  6. validation        A fresh MD per loading with the final model; random frames are labelled and the
                       ensemble's energy and force errors reported.
"""

from pathlib import Path

from aiida import orm
from aiida.engine import run_get_node

from aiida_mofmlp.cli.demo import framework_cif
from aiida_mofmlp.common.codes import code_label
from aiida_mofmlp.data import GuestMoleculeData, MaceModelData
from aiida_mofmlp.engines.mace.foundation import make_small_model
from aiida_mofmlp.tools.intake import load_cif
from aiida_mofmlp.workflows.active_learning.workchain import ActiveLearningWorkChain
from aiida_mofmlp.workflows.protocols.utils import packaged_overrides_path

# the framework, checked at intake (overlaps, partial occupancy, missing H, cell vs cutoff)
structure, warnings = load_cif(framework_cif("ZnBDCdabco"))
guest = GuestMoleculeData.builtin("CO2")  # TraPPE sites and charges

# offline there is no MACE-MP: a tiny random MACE model stands in for the foundation model. A real study
# uses e.g. MaceModelData.get_or_create("/path/to/mace-mp-0b3-medium.model")
species = sorted(set(structure.get_symbols_set()) | set(guest.symbols))
foundation = MaceModelData.get_or_create(make_small_model(species, Path("demo-foundation.model")))

codes = {kind: orm.load_code(code_label(kind)) for kind in ("cp2k", "raspa", "train", "md", "deviation")}

# `fast` protocol of every stage + the demo's sizes: a packaged overrides file, each choice commented there
# (aiida_mofmlp/workflows/protocols/overrides/demo.yaml); a dict or your own YAML file works the same way
overrides = packaged_overrides_path("demo")
builder = ActiveLearningWorkChain.get_builder_from_protocol(
    structure, foundation, codes, guest=guest, protocol="fast", overrides=overrides
)

results, node = run_get_node(builder)
print(f"ActiveLearningWorkChain<{node.pk}>: exit status {node.exit_status} {node.exit_message or ''}")
for row in node.outputs.iterations.get_dict()["rows"]:
    print(row)
if "validation" in node.outputs:
    print("validation:", {k: v for k, v in node.outputs.validation.get_dict().items() if k != "per_loading"})
