"""A 3D view of a structure that works offline: weas-widget (its JavaScript ships in the Python package);
without it, a static matplotlib projection."""

from __future__ import annotations

import io

import ipywidgets as ipw


def structure_viewer() -> ipw.Widget:
    """An empty viewer; fill it with :func:`show_structure`."""
    try:
        from weas_widget import WeasWidget

        viewer = WeasWidget()
        viewer.layout = ipw.Layout(width="600px", height="420px")
    except Exception:  # weas-widget not installed: a picture instead
        viewer = ipw.Image(format="png", layout=ipw.Layout(width="420px"))
    viewer.add_class("mofmlp-structure-viewer")
    return viewer


def show_structure(viewer: ipw.Widget, atoms) -> None:
    """Show ``atoms`` (ase.Atoms) in ``viewer``."""
    if isinstance(viewer, ipw.Image):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from ase.visualize.plot import plot_atoms

        fig, ax = plt.subplots(figsize=(4, 4))
        plot_atoms(atoms, ax, rotation="10x,20y,0z", radii=0.5)
        ax.set_axis_off()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        viewer.value = buffer.getvalue()
        return
    viewer.from_ase(atoms)
