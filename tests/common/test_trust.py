"""The trust window type: one default, one set of checks, the classification every layer uses."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_mofmlp.common.trust import DEFAULT_TRUST, TrustWindow


def test_default_is_the_mil120_window_and_hi_is_four_lo():
    assert (DEFAULT_TRUST.lo, DEFAULT_TRUST.hi) == (0.06, 0.24)
    assert DEFAULT_TRUST.hi == pytest.approx(4 * DEFAULT_TRUST.lo)
    assert DEFAULT_TRUST.as_dict() == {"lo": 0.06, "hi": 0.24}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"lo": 0.3, "hi": 0.1}, "need 0 < lo < hi (eV/Angstrom), got lo=0.3, hi=0.1"),
        ({"lo": 0.0, "hi": 0.1}, "need 0 < lo < hi"),
        ({"lo": 0.1, "hi": float("inf")}, "need 0 < lo < hi"),
        ({"lo": "fast", "hi": 0.2}, "needs numbers lo and hi"),
        ({"hi": 0.2}, "needs numbers lo and hi"),
        ({"lo": 0.1, "hi": 0.2, "upper": 1}, "unknown keys ['upper']; valid: lo, hi"),
        ({"lo": 0.1, "hi": 0.2, "guest": [0.3, 0.2]}, "X.guest=[0.3, 0.2] must be [lo, hi] with 0 < lo < hi"),
        ({"lo": 0.1, "hi": 0.2, "framework": "wide"}, "X.framework='wide' must be [lo, hi]"),
        ([0.1, 0.2], "must be a mapping with lo and hi"),
    ],
)
def test_problems_name_the_input_and_what_is_valid(values, expected):
    message = TrustWindow.problem(values, "X")
    assert message is not None and expected in message and message.startswith("X")
    if isinstance(values, dict) and "lo" in values and "hi" in values:
        with pytest.raises(ValueError, match="X"):
            TrustWindow.from_mapping(values, "X")


def test_from_mapping_fills_defaults_and_keeps_groups():
    window = TrustWindow.from_mapping({"hi": 0.5, "guest": [0.1, 0.4]})
    assert window == TrustWindow(lo=0.06, hi=0.5, guest=(0.1, 0.4))
    assert window.levels() == {"all": (0.06, 0.5), "guest": (0.1, 0.4)}
    assert TrustWindow.from_mapping(window.as_dict()) == window


def test_classification_at_the_edges():
    window = TrustWindow(lo=0.1, hi=0.4)
    sigma = np.array([0.0, 0.0999, 0.1, 0.25, 0.4, 0.4001, np.inf])
    assert window.classify(sigma).tolist() == [0, 0, 1, 1, 1, 2, 2]


def test_every_layer_takes_the_same_default(aiida_profile):
    from aiida_mofmlp.app.configure.model import ConfigureModel
    from aiida_mofmlp.engines.lammps.md_settings import UNCERTAINTY_DEFAULTS
    from aiida_mofmlp.tools.plots import DEFAULT_TRUST as PLOT_TRUST
    from aiida_mofmlp.workflows.properties.trust import TRUST_DEFAULTS

    assert DEFAULT_TRUST.as_dict() == TRUST_DEFAULTS
    assert (DEFAULT_TRUST.lo, DEFAULT_TRUST.hi) == PLOT_TRUST
    assert UNCERTAINTY_DEFAULTS["upper"] == DEFAULT_TRUST.hi
    assert (ConfigureModel.trust_lo.default_value, ConfigureModel.trust_hi.default_value) == (0.06, 0.24)
