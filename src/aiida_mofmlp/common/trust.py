"""The trust window on the ensemble's force deviation sigma_max: one type with its defaults and checks.

Below ``lo`` a frame is trusted (the model knows it), above ``hi`` it is unphysical (the model extrapolates
wildly), in between it is a candidate for a new label. Optional per-group windows (``framework``, ``guest``:
``[lo, hi]``) apply to the sigma_max of that group's atoms. Units: eV/Angstrom.

The default is the MIL-120 loop's window for a DFT-level fine-tuned MACE-MP ensemble (Jin et al.,
Chem. Sci. 2026, DOI 10.1039/D5SC09058J): lo = 0.06, about 2-3 times its force MAE, and hi = 4 lo.
Every layer (loop parameters, property work chains, the app, the plots) takes its default and its checks
from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: the keys a trust window may have
KEYS = ("lo", "hi", "framework", "guest")
#: the groups that may have their own window
GROUPS = ("framework", "guest")


@dataclass(frozen=True)
class TrustWindow:
    """sigma_max levels in eV/Angstrom: ``lo`` < ``hi``, and optional per-group ``(lo, hi)`` windows."""

    lo: float = 0.06
    hi: float = 0.24
    framework: tuple[float, float] | None = None
    guest: tuple[float, float] | None = None

    @classmethod
    def problem(cls, values: Any, name: str = "trust") -> str | None:
        """Why ``values`` (a mapping) is not a trust window, naming ``name``; None when it is one."""
        if not isinstance(values, Mapping):
            return f"{name}={values!r} must be a mapping with lo and hi (eV/Angstrom)"
        unknown = sorted(set(values) - set(KEYS))
        if unknown:
            return f"{name}: unknown keys {unknown}; valid: lo, hi (eV/Angstrom), framework, guest"
        try:
            lo, hi = float(values["lo"]), float(values["hi"])
        except (KeyError, TypeError, ValueError):
            return f"{name}={dict(values)!r} needs numbers lo and hi (eV/Angstrom)"
        if not 0 < lo < hi or not np.isfinite(hi):
            return f"{name}: need 0 < lo < hi (eV/Angstrom), got lo={lo}, hi={hi}"
        for group in GROUPS:
            levels = values.get(group)
            if levels is None:
                continue
            try:
                group_lo, group_hi = (float(x) for x in levels)
            except (TypeError, ValueError):
                return f"{name}.{group}={levels!r} must be [lo, hi] (eV/Angstrom)"
            if not 0 < group_lo < group_hi or not np.isfinite(group_hi):
                return f"{name}.{group}={list(levels)!r} must be [lo, hi] with 0 < lo < hi"
        return None

    @classmethod
    def from_mapping(cls, values: Any, name: str = "trust") -> TrustWindow:
        """The window of ``values`` (missing keys take the defaults); ValueError naming ``name``."""
        merged = {**cls().as_dict(), **dict(values)} if isinstance(values, Mapping) else values
        message = cls.problem(merged, name)
        if message:
            raise ValueError(message)
        groups = {g: tuple(float(x) for x in merged[g]) for g in GROUPS if merged.get(g) is not None}
        return cls(lo=float(merged["lo"]), hi=float(merged["hi"]), **groups)

    def as_dict(self) -> dict[str, Any]:
        """``{lo, hi}`` plus the groups that have their own window (as lists): a port's or YAML's form."""
        data: dict[str, Any] = {"lo": self.lo, "hi": self.hi}
        for group in GROUPS:
            levels = getattr(self, group)
            if levels is not None:
                data[group] = list(levels)
        return data

    def levels(self) -> dict[str, tuple[float, float]]:
        """``{"all": (lo, hi)}`` plus each group's own window."""
        found = {"all": (self.lo, self.hi)}
        for group in GROUPS:
            levels = getattr(self, group)
            if levels is not None:
                found[group] = (float(levels[0]), float(levels[1]))
        return found

    def classify(self, sigma: np.ndarray) -> np.ndarray:
        """Per value of ``sigma``: 0 trusted (< lo), 1 candidate (lo <= sigma <= hi), 2 beyond hi."""
        sigma = np.asarray(sigma, dtype=float)
        return np.where(sigma < self.lo, 0, np.where(sigma <= self.hi, 1, 2))


#: the default window (see the module docstring)
DEFAULT_TRUST = TrustWindow()
