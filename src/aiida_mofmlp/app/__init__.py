"""AiiDAlab app of aiida-mofmlp: one folder per wizard step (structure, configure, submit, results, runs).

Each step is a traitlets model (``model.py``, no widgets, tested headless) and an ipywidgets view
(``view.py``); :mod:`aiida_mofmlp.app.controller.app` wires them together. The app only chooses
protocols and overrides: builders come from ``ActiveLearningWorkChain.get_builder_from_protocol``.
The notebook ``mofmlp.ipynb`` at the repository root only imports and displays :class:`MofMlpApp`.
"""

from __future__ import annotations

__all__ = ["MofMlpApp"]


def __getattr__(name: str):
    if name == "MofMlpApp":  # ipywidgets only when the app is shown, not for the headless models
        from aiida_mofmlp.app.controller.app import MofMlpApp

        return MofMlpApp
    raise AttributeError(name)
