"""Active learning of a MACE potential for CO2 in DMOF-1 (ZnBDCdabco): the demo loop, as a script.

Run it in a profile that has the plugin's codes (`aiida-mofmlp setup` makes them):

    verdi -p mofmlp run examples/active_learning_demo.py

It is what `aiida-mofmlp demo` runs (at most 3 iterations, about 4 minutes on 2 cores), written out so each
choice is visible.
Everything is deliberately tiny; examples/active_learning_mil120.py shows the production settings.

The loop, in a chemist's terms:
  0. initial sampling  RASPA puts CO2 into the rigid framework at sensible sites (canonical Monte Carlo,
                       UFF + TraPPE); the guests are folded back into one unit cell. The foundation model
                       then drives short MD (LAMMPS) of the empty and the loaded framework. SOAP descriptors
                       + farthest-point sampling pick a few diverse frames per loading; GFN1-xTB labels
                       them (tblite in-process here; CP2K PBE-D3 in production).
  1. training          Two MACE models are fine-tuned from the foundation on those labels with different
                       random seeds; multihead replay keeps the foundation's own data in a second head.
  2. exploration       Model 0 runs MD of the empty and the loaded framework.
  3. deviation         Both models predict forces on every MD frame; sigma_max (eV/Angstrom) is how much they
                       disagree on the worst atom. Below 0.06: known ground; 0.06-0.24: worth a label;
                       above 0.24: unphysical (the trust window of Jin et al., Chem. Sci. 2026,
                       DOI 10.1039/D5SC09058J; the demo uses 0.3 / 1.2 for its small models, see
                       overrides/demo.yaml for the measured numbers behind that).
  4. convergence       Done when, at every loading, 95 % of the frames are below lo and none above hi.
  5. selection         Otherwise the most diverse candidates per loading are labelled and added to the
                       training set (a new node, derived from the previous one), and the loop goes on.
  6. validation        A fresh MD per loading with the final model; random frames are labelled and the
                       ensemble's energy and force errors reported.
"""

from aiida import orm
from aiida.engine import run_get_node

from aiida_mofmlp.cli.demo import framework_cif
from aiida_mofmlp.common.codes import code_label
from aiida_mofmlp.data import GuestMoleculeData, MaceModelData
from aiida_mofmlp.data.foundation import small_mof_foundation_replay
from aiida_mofmlp.tools.intake import load_cif
from aiida_mofmlp.workflows.active_learning.workchain import ActiveLearningWorkChain
from aiida_mofmlp.workflows.protocols.utils import packaged_overrides_path

# the framework, checked at intake (overlaps, partial occupancy, missing H, cell vs cutoff)
structure, warnings = load_cif(framework_cif("ZnBDCdabco"))
guest = GuestMoleculeData.builtin("CO2")  # TraPPE sites and charges

# offline there is no MACE-MP: the small MOF foundation shipped with the plugin (GFN1-xTB labels of 7 MOFs
# with guests) stands in, with its replay sample for multihead fine-tuning. A real study uses e.g.
# MaceModelData.get_or_create("/path/to/mace-mp-0b3-medium.model", trusted=True) (a pickle you trust) and the
# foundation's own replay data
foundation = MaceModelData.small_mof_foundation()
replay = small_mof_foundation_replay()

kinds = ("xtb", "raspa", "train", "md", "deviation")
codes = {kind: orm.load_code(code_label(kind)) for kind in kinds}

# `fast` protocol of every stage + the demo's sizes: a packaged overrides file, each choice commented there
# (aiida_mofmlp/workflows/protocols/overrides/demo.yaml); a dict or your own YAML file works the same way
overrides = packaged_overrides_path("demo")
builder = ActiveLearningWorkChain.get_builder_from_protocol(
    structure, foundation, codes, guest=guest, protocol="fast", overrides=overrides, replay_set=replay
)

results, node = run_get_node(builder)
print(f"ActiveLearningWorkChain<{node.pk}>: exit status {node.exit_status} {node.exit_message or ''}")
for row in node.outputs.iterations.get_dict()["rows"]:
    print(row)
for key in ("validation", "validation_foundation"):  # the fine-tuned ensemble vs the foundation
    if key in node.outputs:
        print(key, {k: v for k, v in node.outputs[key].get_dict().items() if k != "per_loading"})
