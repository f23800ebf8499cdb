"""A real small labelled dataset and ensemble for the provenance, export and plot tests.

``small_training_run`` labels 3 frames of ZnBDCdabco (54 atoms: the RASPA2 CIF and two rattled copies)
with CP2K GFN1-xTB (LabellingWorkChain, fast protocol) and trains a 2-model MACE ensemble on them from a
tiny random foundation model (EnsembleTrainingWorkChain, 2 epochs). About 1-2 minutes on 2 cores, once per
test session.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

ZN_BDC_DABCO = "structures/cif/ZnBDCdabco.cif"


@pytest.fixture(scope="session")
def zn_bdc_dabco_cif(raspa_share_dir) -> Path:
    """The ZnBDCdabco CIF shipped with RASPA2 (54 atoms)."""
    return raspa_share_dir / ZN_BDC_DABCO


@pytest.fixture(scope="session")
def small_training_run(aiida_profile, zn_bdc_dabco_cif, tmp_path_factory) -> dict:
    """Nodes of a real run: pool, labelling, labelled, foundation, ensemble, models."""
    from aiida.engine import run_get_node

    from aiida_mofmlp.cli.setup import ensure_codes, ensure_localhost
    from aiida_mofmlp.common.frames import composition_e0s
    from aiida_mofmlp.data import MaceModelData, StructureSetData
    from aiida_mofmlp.engines.mace.foundation import make_small_model
    from aiida_mofmlp.tools.intake import load_cif
    from aiida_mofmlp.workflows.cp2k.labelling import LabellingWorkChain
    from aiida_mofmlp.workflows.mace.ensemble import EnsembleTrainingWorkChain

    codes = ensure_codes(ensure_localhost())
    for kind in ("cp2k", "train"):
        if codes.get(kind) is None:
            pytest.fail(f"the {kind} program is not installed; run the README's test command to install it")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structure, _ = load_cif(zn_bdc_dabco_cif)
    framework = structure.get_ase()
    framework.set_array("guest_id", np.zeros(len(framework), dtype=int))
    rng = np.random.default_rng(0)
    frames = []
    for index in range(3):
        atoms = framework.copy()
        if index:
            atoms.positions += rng.normal(0.0, 0.03, atoms.positions.shape)
        atoms.info.update({"source": "cif", "loading": 0, "config_type": "rattled" if index else "cif"})
        atoms.info["temperature"] = 0.0
        frames.append(atoms)
    pool = StructureSetData.from_frames(frames).store()

    builder = LabellingWorkChain.get_builder_from_protocol(codes["cp2k"], pool, protocol="fast")
    results, labelling = run_get_node(builder)
    assert labelling.is_finished_ok, labelling.exit_message
    labelled = results["labelled"]

    folder = Path(tmp_path_factory.mktemp("foundation"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model_path = make_small_model(
            labelled.species, folder / "foundation.model", e0s=composition_e0s(labelled.get_frames())
        )
    foundation = MaceModelData.from_file(model_path).store()
    builder = EnsembleTrainingWorkChain.get_builder_from_protocol(
        codes["train"],
        labelled,
        foundation,
        protocol="fast",
        overrides={
            "train": {"train": {"parameters": {"max_num_epochs": 2, "batch_size": 2, "mode": "naive"}}}
        },
    )
    results, ensemble = run_get_node(builder)
    assert ensemble.is_finished_ok, ensemble.exit_message
    models = [results["models"][key] for key in sorted(results["models"])]
    return {
        "pool": pool,
        "labelling": labelling,
        "labelled": labelled,
        "foundation": foundation,
        "ensemble": ensemble,
        "models": models,
    }


@pytest.fixture(scope="session")
def al_run(finished_al_run):
    """The finished ActiveLearningWorkChain of tests/conftest.py (a direct dependency, so that the tests
    using it join its xdist group and the loop is run once per test session)."""
    return finished_al_run
