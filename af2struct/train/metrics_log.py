"""A training run's ``metrics.jsonl``: trimmed to the resume point, drawn as ``loss.png``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from af2struct.common.files import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)


def trim_log(log_path: Path, step: int) -> None:
    """Drop log rows beyond ``step`` (written after the checkpoint a resumed run starts from)."""
    if not log_path.exists():
        return
    rows = [line for line in log_path.read_text().splitlines() if line.strip()]
    keep = []
    for line in rows:
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            logger.warning("%s: dropping an unreadable row", log_path)
    if len(keep) != len(rows):
        atomic_write_text(log_path, "".join(r + "\n" for r in keep))


def plot_curve(log_path: Path, out_png: Path) -> None:
    import matplotlib  # lazy: when a plot is drawn, after the run set MPLCONFIGDIR (read on import)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after the Agg backend is chosen

    train, valid = [], []
    for line in log_path.read_text().splitlines():
        r = json.loads(line)
        (valid if "valid_loss" in r else train).append(r)
    if not train:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [r["step"] for r in train]
    vals = np.array([r["distogram"] for r in train])
    ax.plot(steps, vals, lw=0.6, alpha=0.35, label="train distogram CE (logged batches)")
    k = min(len(vals), 20)
    if k > 1:
        smooth = np.convolve(vals, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], smooth, lw=1.5, label=f"train, moving mean of {k}")
    if valid:
        ax.plot([r["step"] for r in valid], [r["valid_distogram"] for r in valid], "o-", label="valid distogram CE")
    ax.set(xlabel="step", ylabel="loss")
    ax.legend()
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
