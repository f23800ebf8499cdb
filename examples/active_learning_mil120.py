"""Production active learning as published for MIL-120 + CO2: submit to the daemon on a cluster.

The loop of Jin et al., Chem. Sci. 2026, DOI 10.1039/D5SC09058J (docs/source/workflows.md).

    verdi -p <profile> run examples/active_learning_mil120.py framework.cif /path/to/mace-mp-0b3-medium.model

Before: `verdi computer setup` for the cluster and `verdi code create core.code.installed` for CP2K
(default plugin `cp2k`), RASPA's `simulate` (`raspa`) and this package's engines, installed on the cluster
with `pip install aiida-mofmlp`: `mofmlp-train` (`mofmlp.mace_train`), `mofmlp-md` (`mofmlp.lammps_md`) and
`mofmlp-deviation` (`mofmlp.deviation`); `aiida-mofmlp setup` shows the same codes on localhost. Edit CODES
and OPTIONS below. The daemon must run (`verdi daemon start`): the loop takes days.

What the `balanced` protocol does (protocols/active_learning.yaml and the stages' protocols), with the
numbers it uses:
  labels      CP2K PBE-D3, DZVP-MOLOPT-SR-GTH, GTH pseudopotentials (`stringent`: 600/50 Ry multigrid as the
              paper; `balanced`: 400/40 Ry), energies and forces
  sampling    foundation-model MD of the empty framework at 100, 300, 500 K; RASPA snapshots of 1, 4, 8, 12
              CO2 per cell, then MD from each at the same temperatures
  selection   SOAP (r_cut 6.0 A, n_max 9, l_max 3) + k-means: 800 empty-framework frames, 200 per loading
  fine-tuning 4 MACE models, different seeds; multihead replay when `replay_set` (the foundation's own data)
              is given, else naive; stage 1 E:F 1:100 lr 1e-3, stage 2 10:1 lr 1e-4, batch 8, patience 10
  loop        MD per loading and temperature with model 0; sigma_max trust window [0.06, 0.24] eV/A; 200
              diverse candidates per loading per iteration; converged when 95 % of frames per loading are
              below 0.06 and none above 0.24
  validation  MD per loading with the final model, 200 random frames each, labelled; MAE/RMSE
"""

import sys

from aiida import orm
from aiida.engine import submit

from aiida_mofmlp.data import GuestMoleculeData, MaceModelData
from aiida_mofmlp.tools.intake import load_cif
from aiida_mofmlp.workflows.active_learning.workchain import ActiveLearningWorkChain

CODES = {  # label@computer of each code on the cluster
    "cp2k": "cp2k-2024.1@cluster",
    "raspa": "raspa@cluster",
    "train": "mofmlp-train@cluster-gpu",
    "md": "mofmlp-md@cluster-gpu",
    "deviation": "mofmlp-deviation@cluster-gpu",
}
OPTIONS = {  # scheduler resources per stage
    "cp2k": {
        "resources": {"num_machines": 1, "num_mpiprocs_per_machine": 64},
        "max_wallclock_seconds": 4 * 3600,
    },
    "train": {
        "resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1},
        "max_wallclock_seconds": 24 * 3600,
    },
    "md": {
        "resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1},
        "max_wallclock_seconds": 24 * 3600,
    },
    "deviation": {
        "resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1},
        "max_wallclock_seconds": 3600,
    },
    "raspa": {
        "resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1},
        "max_wallclock_seconds": 12 * 3600,
    },
}

cif_path, model_path = sys.argv[1], sys.argv[2]
structure, _ = load_cif(cif_path, r_cut=6.0, supercell="auto")  # a cell wide enough for the SOAP cutoff
guest = GuestMoleculeData.builtin("CO2")
foundation = MaceModelData.get_or_create(model_path, trusted=True)  # e.g. MACE-MP-0b3-medium (a pickle)
codes = {kind: orm.load_code(label) for kind, label in CODES.items()}

builder = ActiveLearningWorkChain.get_builder_from_protocol(
    structure,
    foundation,
    codes,
    guest=guest,
    protocol="balanced",  # `stringent`: the paper's 600 Ry cutoff, 50 ps MD, 1500 ps validation, AIMD
    options=OPTIONS,
    overrides={
        # MIL-120 saturates at 12 CO2 per cell; choose loadings up to your framework's saturation
        "parameters": {"loadings": [1, 4, 8, 12], "max_iterations": 6},
        "cp2k": {},  # e.g. SCF settings for an open-shell metal
    },
)
node = submit(builder)
print(f"submitted ActiveLearningWorkChain<{node.pk}>; follow it with `verdi process report {node.pk}`")
