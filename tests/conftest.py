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
