"""Temperature-driven active learning of an empty MOF (e.g. ZIF-8, MOF-5) on a cluster: submit to the daemon.

The recipe of Sharma & Sanvito, npj Comput. Mater. 2024, DOI 10.1038/s41524-024-01427-y, as the
`temperature_ramp` strategy of ActiveLearningWorkChain (docs/source/workflows.md, "Strategies").

    verdi -p <profile> run examples/temperature_ramp.py framework.cif /path/to/mace-mp-0b3-medium.model

Before: the cluster computer and the codes, as in examples/active_learning_mil120.py (no RASPA needed: the
framework is explored empty). The daemon must run (`verdi daemon start`).

What the loop does, in a chemist's terms:
  0. initial sampling  the foundation model runs short MD of the framework; SOAP picks diverse frames; CP2K
                       labels them with energies, forces and the stress (six components, as the paper).
  1. training          an ensemble of MACE models is fine-tuned on the labels, the stress included.
  2. exploration       iteration k heats: T = 100 K + 100 K per iteration, up to 1000 K. Each iteration runs
                       50 short NPT runs (1 bar, fully flexible cell) with model 0, each from a copy of the
                       framework with every atom nudged at random (0.05 A), so the runs differ.
  3. selection (CBAD)  every frame is described by the bins its cell lengths and angles, bond lengths, bond
                       angles and dihedrals fall in, per element combination (e.g. Zn-N bonds in 0.02 A
                       bins). A frame is worth a label only when it fills a bin no labelled frame fills;
                       at most one such frame is taken per run (in a seeded random order).
  4. stop              when an iteration at 1000 K finds no frame with a new bin. Narrower bins make a
                       bigger training set (the paper needed about 600 frames for a 400-atom MOF).
  5. validation        as for every strategy: a fresh MD with the final model, random frames labelled, errors.
The ensemble's sigma_max is still computed on every explored frame and reported, as a check on the model.
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
        "max_wallclock_seconds": 4 * 3600,
    },
    "deviation": {
        "resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1},
        "max_wallclock_seconds": 4 * 3600,
    },
}

cif_path, model_path = sys.argv[1], sys.argv[2]
structure, _ = load_cif(cif_path, r_cut=6.0, supercell="auto")  # wide enough for the cutoffs
foundation = MaceModelData.get_or_create(model_path, trusted=True)  # a pickle you trust: opened once, aside
codes = {kind: orm.load_code(label) for kind, label in CODES.items()}

builder = ActiveLearningWorkChain.get_builder_from_protocol(
    structure,
    foundation,
    codes,
    protocol="stringent",  # the strategy's `stringent` preset: 50 runs per iteration, up to 20 iterations
    options=OPTIONS,
    overrides={
        "parameters": {
            "strategy": "temperature_ramp",
            # the paper's schedule (also the default): 100 K, 200 K, ..., 1000 K, then 1000 K until done
            "temperature_ramp": {
                "start_K": 100.0,
                "step_K": 100.0,
                "top_K": 1000.0,
                "n_runs": 50,
                "pressure_bar": 1.0,
                "barostat": "tri",  # cell lengths and angles free; "aniso" keeps the angles
                "frames_per_run": 1,
                # CBAD bin widths (Angstrom, degrees): the knob that sets the size of the training set
                "cbad": {
                    "cell_length_width": 0.05,
                    "cell_angle_width": 0.5,
                    "bond_width": 0.02,
                    "angle_width": 2.0,
                    "dihedral_width": 10.0,
                },
            },
            # stress labels (the strategy's preset sets this, and a stress weight in training)
            "labelling": {"compute_stress": True},
        },
        "md": {"md": {"parameters": {"steps": 2000}}},  # 1 ps per NPT run at 0.5 fs
    },
)
node = submit(builder)
print(f"submitted ActiveLearningWorkChain<{node.pk}>; follow it with `verdi process report {node.pk}`")
