"""Short Langevin MD with the bootstrap model: frames the rattles and strains do not reach."""

from __future__ import annotations

import warnings

import numpy as np
from ase import Atoms

from aiida_mofmlp.common.frames import GUEST_ID_KEY, read_frames, write_frames

from .plan import MIN_CONTACT_RATIO
from .structures import min_contact_ratio


def md_run(job: dict) -> dict:
    """One Langevin NVT run (1 fs steps) of cell ``job['index']`` of ``job['cells']``; writes ``job['out']``.

    A run stops when two atoms come closer than :data:`MIN_CONTACT_RATIO` x the sum of their covalent
    radii (the young model failing); its last two frames before that are dropped.
    """
    import torch
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    torch.set_num_threads(1)
    from aiida_mofmlp.engines.mace.common import mace_calculator

    atoms = read_frames(job["cells"])[job["index"]]
    ids = atoms.arrays[GUEST_ID_KEY].copy()
    info = dict(atoms.info)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the bootstrap model is the campaign's own training output (an older one may be a pickle)
        atoms.calc = mace_calculator(job["model"], device="cpu", default_dtype="float32", trusted=True)
    rng = np.random.default_rng(job["seed"])
    temperature = job["temperature"]
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    warnings.simplefilter("ignore", FutureWarning)  # ase's note on Langevin(fixcm=True)
    dyn = Langevin(atoms, 1.0 * units.fs, temperature_K=temperature, friction=0.02, rng=rng)
    frames, status = [], "ok"
    dyn.run(job["equilibrate"])
    while len(frames) < job["n_frames"]:
        dyn.run(job["stride"])
        ratio = min_contact_ratio(atoms)
        if ratio < MIN_CONTACT_RATIO or not np.all(np.isfinite(atoms.positions)):
            frames = frames[:-2]
            status = f"stopped: contact ratio {ratio:.2f} after {len(frames) + 2} frames"
            break
        frame = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
        frame.set_array(GUEST_ID_KEY, ids)
        frame.info.update({**info, "kind": "md", "temperature": temperature})
        frames.append(frame)
    write_frames(frames, job["out"])
    return {"out": job["out"], "status": status, "n": len(frames)}
