"""A 2-D map of the descriptor space (PCA, or t-SNE) with selected and training frames marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MAP_METHODS = ("pca", "tsne")


def embed_2d(
    pool: np.ndarray,
    training: np.ndarray | None = None,
    method: str = "pca",
    seed: int = 0,
    perplexity: float = 30.0,
) -> tuple[np.ndarray, np.ndarray]:
    """2-D coordinates of pool rows and training rows, embedded together in one space."""
    if method not in MAP_METHODS:
        raise ValueError(f"map.method must be one of {MAP_METHODS}, got {method!r}")
    training = np.zeros((0, pool.shape[1])) if training is None else training
    stacked = np.vstack([pool, training]).astype(np.float64)
    if len(stacked) < 3:
        coords = np.zeros((len(stacked), 2))
        coords[:, 0] = np.arange(len(stacked))
    elif method == "pca":
        from sklearn.decomposition import PCA

        n = min(2, stacked.shape[1])
        coords = np.zeros((len(stacked), 2))
        coords[:, :n] = PCA(n_components=n, random_state=seed).fit_transform(stacked)
    else:
        from sklearn.decomposition import PCA
        from sklearn.manifold import TSNE

        reduced = stacked
        if stacked.shape[1] > 50:
            reduced = PCA(n_components=min(50, len(stacked)), random_state=seed).fit_transform(stacked)
        perplexity = float(min(perplexity, max(1.0, (len(stacked) - 1) / 3)))
        coords = TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(
            reduced
        )
    return coords[: len(pool)], coords[len(pool) :]


def save_map(
    path_stem: str | Path,
    pool_xy: np.ndarray,
    selected: np.ndarray,
    training_xy: np.ndarray | None = None,
    method: str = "pca",
    title: str | None = None,
) -> tuple[Path, Path]:
    """Write ``<stem>.npz`` (pool_xy, selected indices, training_xy) and ``<stem>.png``; return both paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stem = Path(path_stem)
    training_xy = np.zeros((0, 2)) if training_xy is None else training_xy
    selected = np.asarray(selected, dtype=np.int64)
    npz = stem.with_suffix(".npz")
    np.savez(npz, pool_xy=pool_xy, selected=selected, training_xy=training_xy, method=np.array(method))
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=120)
    ax.scatter(pool_xy[:, 0], pool_xy[:, 1], s=6, c="0.7", label=f"pool ({len(pool_xy)})", linewidths=0)
    if len(training_xy):
        ax.scatter(
            training_xy[:, 0],
            training_xy[:, 1],
            s=14,
            marker="s",
            facecolors="none",
            edgecolors="tab:blue",
            label=f"training set ({len(training_xy)})",
        )
    if len(selected):
        ax.scatter(
            pool_xy[selected, 0],
            pool_xy[selected, 1],
            s=18,
            c="tab:red",
            label=f"selected ({len(selected)})",
            linewidths=0,
        )
    label = "PC" if method == "pca" else "t-SNE "
    ax.set_xlabel(f"{label}1")
    ax.set_ylabel(f"{label}2")
    ax.set_title(title or "SOAP map")
    ax.legend(loc="best", fontsize=8, frameon=False)
    fig.tight_layout()
    png = stem.with_suffix(".png")
    fig.savefig(png)
    plt.close(fig)
    return npz, png
