"""`ensure_slurm_computer` on the real local Slurm: created once, reused, other computers left alone."""

from __future__ import annotations

import pytest
from aiida import orm

from aiida_mofmlp.cli.setup import ensure_codes, ensure_localhost, ensure_slurm_computer

pytestmark = pytest.mark.integration


def test_slurm_computer_is_created_reused_and_leaves_other_computers_alone(slurm, aiida_profile, tmp_path):
    direct = ensure_localhost()
    computer = ensure_slurm_computer("slurm-here", workdir=tmp_path)
    assert (computer.transport_type, computer.scheduler_type) == ("core.local", "core.slurm")
    assert computer.get_workdir() == str(tmp_path)
    assert ensure_slurm_computer("slurm-here").pk == computer.pk
    assert orm.load_computer(direct.label).scheduler_type == "core.direct"
    codes = ensure_codes(computer)
    assert codes["cp2k"].computer.pk == computer.pk
    with pytest.raises(ValueError, match=r"needs core\.local"):
        ensure_slurm_computer(direct.label)  # a core.direct computer of that label is not changed
    assert orm.load_computer(direct.label).scheduler_type == "core.direct"
