"""The setup used by ``aiida-mofmlp setup``: computer and codes, idempotent."""

from aiida_mofmlp.cli.setup import ensure_codes, ensure_localhost
from aiida_mofmlp.common.codes import CODES


def test_ensure_codes_is_idempotent(aiida_profile):
    computer = ensure_localhost()
    first = ensure_codes(computer)
    second = ensure_codes(ensure_localhost())
    assert set(first) == set(CODES)
    for kind, code in first.items():
        assert code is not None, f"{kind} executable not found"
        assert second[kind].pk == code.pk
