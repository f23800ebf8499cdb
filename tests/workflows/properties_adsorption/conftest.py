"""Fixtures of the adsorption work chain tests: DMOF-1, CO2 and tiny MACE models."""

from __future__ import annotations

import pytest

DMOF_ELEMENTS = ["H", "C", "N", "O", "Zn"]


@pytest.fixture(scope="module")
def dmof(aiida_profile, raspa_share_dir):
    from aiida import orm
    from ase.io import read

    return orm.StructureData(ase=read(raspa_share_dir / "structures" / "cif" / "ZnBDCdabco.cif"))


@pytest.fixture(scope="module")
def tiny_models(aiida_profile, tmp_path_factory):
    """Two tiny random MACE models of DMOF-1's elements (an ensemble) and one without Zn."""
    from aiida_mofmlp.data.mace_model import MaceModelData
    from aiida_mofmlp.engines.mace.toy import build_tiny_model

    tmp_path = tmp_path_factory.mktemp("models")

    models = {
        f"model_{seed}": MaceModelData.from_file(
            build_tiny_model(DMOF_ELEMENTS, tmp_path / f"m{seed}.model", seed=seed)
        )
        for seed in (0, 1)
    }
    models["no_zn"] = MaceModelData.from_file(build_tiny_model(["H", "C", "N", "O"], tmp_path / "nozn.model"))
    return models
