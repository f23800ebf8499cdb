"""One active-learning iteration for CO2 in MIL-47, step by step (the same as `aiida-mofmlp demo`).

Run it inside an AiiDA profile that has the plugin's codes (`aiida-mofmlp setup` makes them):

    verdi -p mofmlp run examples/demo_one_iteration.py

What happens, in chemist's terms (all with deliberately tiny, fast settings: about 10 minutes on 2 cores):

 1. intake      MIL-47 (V(O)(bdc), 72 atoms per unit cell) is read from RASPA2's CIF library and checked
                (overlapping atoms, missing hydrogens, cell too small for the cutoff).
 2. guest       CO2 with the TraPPE force field (three charged Lennard-Jones sites).
 3. raspa       Monte Carlo (RASPA) puts 1 and 2 CO2 per unit cell into the rigid framework at 298 K, so
                the guests sit at sensible adsorption sites instead of at random.
 4. pool        The frames to label: the empty framework, the two loaded cells and randomly "rattled"
                copies (atoms displaced by about 0.05 Angstrom) so the training data also sees forces.
 5. labelling   CP2K computes reference energies and forces. The demo uses GFN1-xTB (seconds per frame);
                a production run uses the `balanced` DFT protocol (PBE-D3) instead.
 6. foundation  The starting model. Offline, the demo builds a tiny random MACE model; a real study passes
                a pretrained MACE-MP foundation model file (MaceModelData.from_file("mace-mp-....model")).
 7. ensemble    Two MACE models are fine-tuned on the labelled frames with different random seeds.
 8. md          Model 0 drives a short NVT molecular dynamics run (LAMMPS) of the loaded framework.
 9. deviation   Both models predict forces on every MD frame; where they disagree (sigma_max, eV/Angstrom)
                the models are unsure. Below 0.06: trusted; 0.06-0.24: worth labelling; above: unphysical.
10. selection   Frames inside that window are clustered by their SOAP descriptors and a diverse few are
                picked for the next round of CP2K labels; a 2-D map of all frames is saved as a PNG.

The printed summary lists the PK/UUID of every node (`verdi node show PK`) and where the files are.
"""

from pathlib import Path

from aiida import load_profile
from aiida.manage import get_manager

from aiida_mofmlp.cli.demo import DEMO_DEFAULTS, run_demo

if get_manager().get_profile() is None:  # plain `python` instead of `verdi run`: use the demo profile
    load_profile("mofmlp")

profile = get_manager().get_profile().name
# Every knob of the demo; change e.g. "md_steps" or "loadings" to explore.
settings = dict(DEMO_DEFAULTS)
result = run_demo(profile, Path("mofmlp-demo-output"), settings=settings)
print(
    "sigma_max statistics:", {k: v for k, v in result.numbers.items() if k.startswith(("sigma", "fraction"))}
)
