"""Flat-histogram selection: bin the pool by energy per atom, draw one frame per bin.

After Castel et al., Digital Discovery 2024, DOI 10.1039/d3dd00236e.
"""

from __future__ import annotations

import numpy as np


def flat_histogram(
    energy_per_atom: np.ndarray,
    n_bins: int | None = None,
    bin_width: float | None = None,
    candidates: np.ndarray | None = None,
    seed: int = 0,
) -> dict:
    """Draw one random frame from every occupied energy bin.

    Bins span the candidates' energy range, either ``n_bins`` equal bins or bins of ``bin_width`` (eV/atom)
    starting at the lowest energy. ``candidates`` restricts the frames that may be drawn (a boolean mask or
    indices); frames with a non-finite energy are never drawn. Returns the selected indices (sorted by bin),
    the bin edges, the count per bin and the number of empty bins.
    """
    energy = np.asarray(energy_per_atom, dtype=np.float64).reshape(-1)
    if candidates is None:
        pool = np.arange(len(energy))
    else:
        candidates = np.asarray(candidates)
        pool = np.flatnonzero(candidates) if candidates.dtype == bool else candidates.astype(np.int64)
    pool = pool[np.isfinite(energy[pool])]
    if (n_bins is None) == (bin_width is None):
        raise ValueError("flat_histogram needs exactly one of n_bins or bin_width")
    if n_bins is not None and int(n_bins) < 1:
        raise ValueError(f"flat_histogram.n_bins must be >= 1, got {n_bins}")
    if bin_width is not None and not float(bin_width) > 0:
        raise ValueError(f"flat_histogram.bin_width must be > 0 eV/atom, got {bin_width}")
    if pool.size == 0:
        edges = np.zeros(1 if n_bins is None else int(n_bins) + 1)
        return {"selected": [], "edges": edges.tolist(), "counts": [], "n_bins": 0, "n_empty_bins": 0}
    lo, hi = float(energy[pool].min()), float(energy[pool].max())
    if bin_width is not None:
        n = max(1, int(np.ceil((hi - lo) / float(bin_width))))
        edges = lo + float(bin_width) * np.arange(n + 1)
        edges[-1] = max(edges[-1], hi)
    else:
        n = int(n_bins)
        edges = np.linspace(lo, hi if hi > lo else lo + 1e-12, n + 1)
    # right edge included in the last bin, as numpy.histogram does
    which = np.clip(np.searchsorted(edges, energy[pool], side="right") - 1, 0, n - 1)
    counts = np.bincount(which, minlength=n)
    rng = np.random.default_rng(seed)
    selected = [int(rng.choice(pool[which == b])) for b in range(n) if counts[b]]
    return {
        "selected": selected,
        "edges": edges.tolist(),
        "counts": counts.tolist(),
        "n_bins": n,
        "n_empty_bins": int((counts == 0).sum()),
    }
