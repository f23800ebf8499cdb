"""Shared fixtures: a temporary AiiDA profile (aiida's own fixtures) and the plugin's codes on localhost."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["aiida.tools.pytest_fixtures"]

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def mofmlp_codes(aiida_profile):
    """The codes that ``aiida-mofmlp setup`` creates, created the same way in the test profile."""
    from aiida_mofmlp.cli.setup import ensure_codes, ensure_localhost

    computer = ensure_localhost()
    return ensure_codes(computer)


@pytest.fixture
def require_code(mofmlp_codes):
    """Return a function giving the code of a kind, or failing the test clearly when it is missing."""

    def _require(kind: str):
        code = mofmlp_codes.get(kind)
        if code is None:
            pytest.fail(f"the {kind} program is not installed; run the README's test command to install it")
        return code

    return _require


@pytest.fixture(scope="session")
def raspa_share_dir():
    """RASPA2's share folder (force fields, molecules, framework CIFs)."""
    from pathlib import Path

    import RASPA2

    return Path(RASPA2.__file__).parent / "share" / "raspa"


#: a tiny 2-iteration active-learning run: trust lo so low that iteration 1 is never converged
TINY_AL_SETTINGS = {
    "loadings": [1],
    "temperatures": [300.0],
    "max_iterations": 2,
    "initial_framework": 2,
    "initial_per_loading": 2,
    "per_loading": 1,
    "sampling_md_steps": 20,
    "md_steps": 40,
    "dump_interval": 10,
    "validation_md_steps": 40,
    "validation_per_loading": 1,
    "epochs": 3,
    "trust": {"lo": 1.0e-4, "hi": 10.0},
    "max_concurrent": 2,
    "seed": 0,
    "gcmc": {"pressures_bar": [1.0], "equilibration_steps": 10, "production_steps": 20},
}


@pytest.fixture(scope="session")
def finished_al_run(aiida_profile, tmp_path_factory):
    """The finished ActiveLearningWorkChain node of the demo's loop (DMOF-1 + CO2) at tiny settings.

    Real RASPA, LAMMPS, MACE and CP2K (GFN1-xTB); 2 iterations; about 5 minutes on 2 cores. Shared by the
    integration test of the loop and by the tests of the provenance tools.
    """
    import warnings

    from aiida.engine import run_get_node

    from aiida_mofmlp.cli.demo import demo_builder
    from aiida_mofmlp.cli.setup import ensure_codes, ensure_localhost

    warnings.filterwarnings("ignore", message=r"`CalcJobNode\.(set|get)_extra` is deprecated")
    codes = ensure_codes(ensure_localhost())
    missing = [kind for kind in ("cp2k", "raspa", "train", "md", "deviation") if codes.get(kind) is None]
    if missing:
        pytest.fail(f"programs {missing} are not installed; run the README's test command to install them")
    builder = demo_builder(codes, tmp_path_factory.mktemp("al"), TINY_AL_SETTINGS)
    _, node = run_get_node(builder)
    return node
