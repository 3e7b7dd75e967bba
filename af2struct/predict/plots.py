"""Plots people look at: per-residue pLDDT, predicted aligned error, the distogram (expected
distance and contacts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from af2struct.common.files import atomic_path


def _plt():
    import matplotlib  # lazy: when a plot is drawn, after the run set MPLCONFIGDIR (read on import)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after the Agg backend is chosen

    return plt


def _save(plt, fig, path: Path) -> None:
    """Write ``fig`` as a PNG atomically and free it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _pair_map_extent(n: int, residue_index: np.ndarray = None) -> tuple:
    """``imshow`` extent putting residue numbers (default 1..n) on both axes of an ``[n, n]`` map."""
    ridx = np.arange(1, n + 1) if residue_index is None else np.asarray(residue_index)
    return (ridx[0] - 0.5, ridx[-1] + 0.5, ridx[-1] + 0.5, ridx[0] - 0.5)


PLDDT_BANDS = ((90, 100, "#0053d6", "very high (> 90)"), (70, 90, "#65cbf3", "confident (70-90)"),
               (50, 70, "#ffdb13", "low (50-70)"), (0, 50, "#ff7d45", "very low (< 50)"))


def plot_plddt(plddt: np.ndarray, residue_index: np.ndarray, path: Path, title: str = "") -> None:
    """pLDDT per residue over AlphaFold's confidence bands (with their legend)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for lo, hi, color, label in PLDDT_BANDS:
        ax.axhspan(lo, hi, color=color, alpha=0.2, lw=0, label=label)
    ax.plot(residue_index, plddt, color="black", lw=1, label="pLDDT")
    ax.set(xlabel="residue number", ylabel="pLDDT", ylim=(0, 100),
           title=f"{title} (mean pLDDT {np.mean(plddt):.1f})")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    _save(plt, fig, path)


def plot_pae(pae: np.ndarray, max_pae: float, path: Path, title: str = "",
             residue_index: np.ndarray = None) -> None:
    """The predicted aligned error map as AlphaFold's pages draw it: green, dark = confident;
    row = the residue whose frame aligns, column = the residue scored."""
    plt = _plt()
    extent = _pair_map_extent(pae.shape[0], residue_index)
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    im = ax.imshow(pae, cmap="Greens_r", vmin=0, vmax=max_pae, extent=extent, interpolation="nearest")
    ax.set(xlabel="scored residue", ylabel="aligned residue", title=f"{title} (mean PAE {np.mean(pae):.1f} \u00c5)")
    fig.colorbar(im, ax=ax, label="expected position error (\u00c5)")
    fig.tight_layout()
    _save(plt, fig, path)


def plot_distogram(probs: np.ndarray, edges: np.ndarray, path: Path, title: str = "",
                   residue_index: np.ndarray = None) -> None:
    """Expected distance (near bins) and contact probability (< 8 Å) maps; residue numbers on
    both axes, self-pairs masked (grey, in the legend); the colour bar's top says the far bin
    stands for "20 Å or more"."""
    plt = _plt()
    n = probs.shape[0]
    centers = (edges[:-1] + edges[1:]) / 2
    near = probs[..., :-1]
    expected = (near * centers).sum(-1) / np.maximum(near.sum(-1), 1e-6)
    expected = np.where(probs[..., -1] > 0.5, edges[-1], expected)
    contact = probs[..., : int(np.searchsorted(edges, 8.0))].sum(-1)
    eye = np.eye(n, dtype=bool)
    extent = _pair_map_extent(n, residue_index)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    panels = ((np.ma.masked_where(eye, expected), "viridis_r", (edges[0], edges[-1]),
               "expected C$\\alpha$-C$\\alpha$ distance", "\u00c5"),
              (np.ma.masked_where(eye, contact), "Greys", (0, 1), "P(C$\\alpha$-C$\\alpha$ < 8 \u00c5)", "probability"))
    from matplotlib.patches import Patch  # lazy: with matplotlib (above)

    for k, (ax, (data, cmap, (lo, hi), name, unit)) in enumerate(zip(axes, panels)):
        masked_colour = plt.get_cmap(cmap).with_extremes(bad="#b0b0b0")  # self-pairs, masked
        im = ax.imshow(data, cmap=masked_colour, vmin=lo, vmax=hi, extent=extent, interpolation="nearest")
        ax.set(title=name, xlabel="residue number", ylabel="residue number")
        bar = fig.colorbar(im, ax=ax, fraction=0.046, label=unit)
        if k == 0:  # the far bin: everything beyond the last edge
            ticks = [t for t in bar.get_ticks() if lo <= t < hi] + [hi]
            bar.set_ticks(ticks)
            bar.set_ticklabels([f"{t:g}" for t in ticks[:-1]] + [f"\u2265 {hi:g}"])
        ax.legend(handles=[Patch(color="#b0b0b0", label="self-pair (not predicted)")], loc="upper right",
                  fontsize=7, framealpha=0.8)
    fig.suptitle(title)
    fig.tight_layout()
    _save(plt, fig, path)
