"""Diversity sampling in a descriptor space: distances, de-duplication, PCA, k-means and FPS."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def min_distances(x: np.ndarray, y: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """For every row of ``x`` the smallest Euclidean distance to any row of ``y`` (inf when ``y`` is empty).

    Computed in blocks of ``chunk`` rows, so memory stays at ``chunk x len(y)``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    out = np.full(len(x), np.inf)
    if len(y) == 0 or len(x) == 0:
        return out
    y_sq = np.einsum("ij,ij->i", y, y)
    for start in range(0, len(x), chunk):
        block = x[start : start + chunk]
        sq = np.einsum("ij,ij->i", block, block)[:, None] - 2.0 * block @ y.T + y_sq[None, :]
        out[start : start + chunk] = np.sqrt(np.maximum(sq.min(axis=1), 0.0))
    return out


def dedup_mask(x: np.ndarray, reference: np.ndarray | None, threshold: float) -> np.ndarray:
    """True for rows of ``x`` at least ``threshold`` away from every row of ``reference``."""
    if reference is None or len(reference) == 0 or threshold <= 0:
        return np.ones(len(x), dtype=bool)
    return min_distances(x, reference) >= threshold


def pca_fit_transform(
    blocks: Sequence[np.ndarray], n_components: int, seed: int = 0
) -> tuple[list[np.ndarray], np.ndarray]:
    """Fit one PCA on the rows of all ``blocks`` together and return each block projected.

    Fitting on pool and training set together keeps both in the same reduced space. Returns the projected
    blocks and the explained variance ratio.
    """
    from sklearn.decomposition import PCA

    stacked = np.vstack([b for b in blocks if len(b)])
    n_components = int(min(n_components, stacked.shape[0], stacked.shape[1]))
    if n_components < 1:
        raise ValueError(f"pca_components must be >= 1, got {n_components}")
    pca = PCA(n_components=n_components, random_state=seed, svd_solver="auto")
    pca.fit(stacked)
    return [
        pca.transform(b) if len(b) else np.zeros((0, n_components)) for b in blocks
    ], pca.explained_variance_ratio_


def farthest_point_sampling(
    x: np.ndarray,
    n_select: int,
    existing: np.ndarray | None = None,
    min_distance: float = 0.0,
    first: int | None = None,
) -> list[int]:
    """Greedy farthest-point sampling of up to ``n_select`` rows of ``x``.

    Each step takes the row farthest from everything chosen so far and from ``existing`` (already
    labelled frames). Without ``existing`` the first row is ``first`` or, by default, the row farthest
    from the mean. Stops early when the farthest row is closer than ``min_distance``.
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0 or n_select <= 0:
        return []
    if existing is not None and len(existing):
        nearest = min_distances(x, existing)
    else:
        nearest = np.full(len(x), np.inf)
        if first is None:
            first = int(np.argmax(np.linalg.norm(x - x.mean(axis=0), axis=1)))
    chosen: list[int] = []
    sq = np.einsum("ij,ij->i", x, x)
    while len(chosen) < min(n_select, len(x)):
        if not chosen and np.isinf(nearest).all():
            pick = int(first)
        else:
            pick = int(np.argmax(nearest))
            if nearest[pick] < min_distance or nearest[pick] <= 0.0:
                break
        chosen.append(pick)
        step = np.sqrt(np.maximum(sq + sq[pick] - 2.0 * (x @ x[pick]), 0.0))  # one mat-vec per step
        nearest = np.minimum(nearest, step)
        nearest[pick] = -1.0
    return chosen


def kmeans_sampling(
    x: np.ndarray,
    n_select: int,
    existing: np.ndarray | None = None,
    min_distance: float = 0.0,
    seed: int = 0,
) -> list[int]:
    """k-means with ``n_select`` clusters; keep the row nearest each centre (Jin et al., 2026).

    A row closer than ``min_distance`` to ``existing`` or to a row already kept is skipped in favour of
    the next nearest member of the same cluster; clusters left without a pick are filled by farthest-point
    sampling over the remaining rows, so the result has ``n_select`` rows whenever the rows allow it.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    x = np.asarray(x, dtype=np.float64)
    n_select = int(min(n_select, len(x)))
    if n_select <= 0:
        return []
    if len(x) > 5000:
        model = MiniBatchKMeans(n_clusters=n_select, random_state=seed, n_init=3, batch_size=2048)
    else:
        model = KMeans(n_clusters=n_select, random_state=seed, n_init=3)
    labels = model.fit_predict(x)
    centres = model.cluster_centers_
    sizes = np.bincount(labels, minlength=n_select)
    kept: list[int] = []
    blocked = ~dedup_mask(x, existing, min_distance)
    for cluster in np.argsort(-sizes, kind="stable"):
        members = np.flatnonzero(labels == cluster)
        if members.size == 0:
            continue
        order = members[np.argsort(np.linalg.norm(x[members] - centres[cluster], axis=1), kind="stable")]
        for row in order:
            if blocked[row]:
                continue
            if min_distance > 0 and kept and min_distances(x[row : row + 1], x[kept])[0] < min_distance:
                continue
            kept.append(int(row))
            break
    if len(kept) < n_select:
        reference = x[kept] if existing is None or not len(existing) else np.vstack([existing, x[kept]])
        remaining = np.flatnonzero(~blocked & ~np.isin(np.arange(len(x)), kept))
        extra = farthest_point_sampling(
            x[remaining],
            n_select - len(kept),
            existing=reference if len(reference) else None,
            min_distance=min_distance,
        )
        kept.extend(int(remaining[i]) for i in extra)
    return kept


def coverage_metrics(x: np.ndarray, selected: Sequence[int]) -> dict[str, float | None]:
    """How well ``selected`` rows cover ``x``: coverage radius (max distance of a row to its nearest
    selected row), mean such distance, and the smallest distance between two selected rows."""
    x = np.asarray(x, dtype=np.float64)
    selected = list(selected)
    if not selected:
        return {"coverage_radius": None, "mean_nearest": None, "min_pairwise": None}
    nearest = min_distances(x, x[selected])
    sub = x[selected]
    if len(selected) > 1:
        sq = np.einsum("ij,ij->i", sub, sub)
        d2 = sq[:, None] - 2.0 * sub @ sub.T + sq[None, :]
        d2[np.diag_indices_from(d2)] = np.inf
        min_pairwise = float(np.sqrt(max(d2.min(), 0.0)))
    else:
        min_pairwise = None  # undefined for a single row
    return {
        "coverage_radius": float(nearest.max()),
        "mean_nearest": float(nearest.mean()),
        "min_pairwise": min_pairwise,
    }
