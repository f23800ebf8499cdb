"""Exceptions shared by every layer (no AiiDA imports)."""

from __future__ import annotations


class InputError(ValueError):
    """An input is invalid; the message names the input, the bad value and what would be valid."""
