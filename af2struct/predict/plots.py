"""Plots people look at: per-residue pLDDT, the distogram (expected distance and contacts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from af2struct.common.atomic import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_plddt(plddt: np.ndarray, residue_index: np.ndarray, path: Path, title: str = "") -> None:
    """pLDDT per residue with AlphaFold's confidence bands."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3))
    for lo, hi, color in ((90, 100, "#0053d6"), (70, 90, "#65cbf3"), (50, 70, "#ffdb13"), (0, 50, "#ff7d45")):
        ax.axhspan(lo, hi, color=color, alpha=0.15, lw=0)
    ax.plot(residue_index, plddt, color="black", lw=1)
    ax.set(xlabel="residue", ylabel="pLDDT", ylim=(0, 100), title=f"{title} (mean pLDDT {np.mean(plddt):.1f})")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_distogram(probs: np.ndarray, edges: np.ndarray, path: Path, title: str = "") -> None:
    """Expected distance (near bins) and contact probability (< 8 A) maps."""
    plt = _plt()
    centers = (edges[:-1] + edges[1:]) / 2
    near = probs[..., :-1]
    expected = (near * centers).sum(-1) / np.maximum(near.sum(-1), 1e-6)
    expected = np.where(probs[..., -1] > 0.5, edges[-1], expected)
    contact = probs[..., : int(np.searchsorted(edges, 8.0))].sum(-1)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    im = axes[0].imshow(expected, cmap="viridis_r", vmin=edges[0], vmax=edges[-1])
    axes[0].set_title("expected C$\\alpha$ distance (A)")
    fig.colorbar(im, ax=axes[0], fraction=0.046)
    im = axes[1].imshow(contact, cmap="Greys", vmin=0, vmax=1)
    axes[1].set_title("P(contact < 8 A)")
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
