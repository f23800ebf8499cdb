"""AIMD-seeded active learning for melts and glasses (e.g. amorphous ZIF-4) on a cluster, via the daemon.

The recipe of Castel et al., Digital Discovery 2024, DOI 10.1039/d3dd00236e, as the `aimd_flat_histogram`
strategy of ActiveLearningWorkChain (docs/source/workflows.md, "Strategies").

    verdi -p <profile> run examples/aimd_flat_histogram.py framework.cif /path/to/mace-mp-0b3-medium.model

Before: the cluster computer and the codes, as in examples/active_learning_mil120.py (no RASPA needed). The
daemon must run (`verdi daemon start`); the AIMD alone takes days at the paper's length.

What the loop does, in a chemist's terms:
  0. AIMD              CP2K PBE-D3 molecular dynamics of the framework at fixed volume: 300 K (the crystal)
                       and 1500 K and 1750 K (the liquid), 0.5 fs steps, thermostat time constant 1000 fs
                       (Nose-Hoover here; the paper used the CSVR thermostat).
  1. flat histogram    the AIMD frames are binned by energy per atom and one frame is drawn from each bin:
                       the rare high-energy frames count as much as the crowded low-energy ones. The AIMD
                       energies and forces are the labels (no new DFT); the AIMD stress is too noisy to fit,
                       so no stress is trained.
  2. training          an ensemble of MACE models is fine-tuned on those frames.
  3. exploration       model 0 runs MD at 1500 K; the ensemble's disagreement (sigma_max) picks the frames
                       to label with CP2K, as in the uncertainty loop (trust window 0.06-0.24 eV/A).
  4. stop              when 95 % of the explored frames are below 0.06 eV/A and none above 0.24.
  5. validation        as for every strategy: a fresh MD with the final model, random frames labelled, errors.
"""

import sys

from aiida import orm
from aiida.engine import submit

from aiida_mofmlp.data import MaceModelData
from aiida_mofmlp.tools.intake import load_cif
from aiida_mofmlp.workflows.active_learning.workchain import ActiveLearningWorkChain

CODES = {  # label@computer of each code on the cluster
    "cp2k": "cp2k-2024.1@cluster",
    "train": "mofmlp-train@cluster-gpu",
    "md": "mofmlp-md@cluster-gpu",
    "deviation": "mofmlp-deviation@cluster-gpu",
}
OPTIONS = {  # scheduler resources per stage (the AIMD runs with the cp2k options)
    "cp2k": {
        "resources": {"num_machines": 2, "num_mpiprocs_per_machine": 64},
        "max_wallclock_seconds": 48 * 3600,
    },
    "train": {
        "resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1},
        "max_wallclock_seconds": 24 * 3600,
    },
    "md": {
        "resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1},
        "max_wallclock_seconds": 4 * 3600,
    },
    "deviation": {
        "resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1},
        "max_wallclock_seconds": 4 * 3600,
    },
}

cif_path, model_path = sys.argv[1], sys.argv[2]
structure, _ = load_cif(cif_path, r_cut=6.0, supercell="auto")
foundation = MaceModelData.get_or_create(model_path, trusted=True)  # a pickle you trust: opened once, aside
codes = {kind: orm.load_code(label) for kind, label in CODES.items()}

builder = ActiveLearningWorkChain.get_builder_from_protocol(
    structure,
    foundation,
    codes,
    protocol="stringent",  # PBE-D3 labels as the paper; the strategy's preset: 50 ps AIMD, 2500 bins
    options=OPTIONS,
    overrides={
        "parameters": {
            "strategy": "aimd_flat_histogram",
            "aimd_flat_histogram": {
                "temperatures": [300.0, 1500.0, 1750.0],  # crystal and liquid, as the paper
                "aimd_steps": 100000,  # 50 ps at 0.5 fs
                "timestep_fs": 0.5,
                "thermostat_timecon_fs": 1000.0,
                "discard_steps": 2000,  # the first picoseconds are equilibration
                "n_bins": 2500,  # one frame per bin: about 2500 training frames (fewer: empty bins)
                "relabel": False,  # the AIMD labels are the training data
                "md_temperatures": [1500.0],  # the MLP explores the liquid
            },
            "max_iterations": 6,
        },
    },
)
node = submit(builder)
print(f"submitted ActiveLearningWorkChain<{node.pk}>; follow it with `verdi process report {node.pk}`")
