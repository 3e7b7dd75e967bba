#!/usr/bin/env python
"""The predicted aligned error map against the truth: its diagonal (residue i aligned on its own
frame: the true error is 0), its first off-diagonals (|i-j| = 1), its mean, and its Pearson
correlation with the true aligned error of the written model, for held-out CASP14 natives.

    python benchmarks/bench_pae.py [--weights af2struct/weights/default.pt] [--natives T1082.pdb ...]

Prints a Markdown table (results kept in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from af2struct import load_structure
from af2struct.model.frames import aligned_error
from af2struct.predict.pipeline import load_default_model, predict_structure

ROOT = Path(__file__).resolve().parents[1]
BACKBONE = [0, 1, 2]  # N, CA, C in atom37


def pae_row(model, native_path: Path) -> dict:
    native = load_structure(native_path)
    pred = predict_structure(model, native.sequence)
    pae = pred.pae
    ok = (native.atom_mask[:, BACKBONE] > 0).all(-1)
    true = aligned_error(torch.tensor(pred.protein.atom_positions[None][:, :, BACKBONE]),
                         torch.tensor(native.atom_positions[None][:, :, BACKBONE]))[0].numpy()
    pairs = ok[:, None] & ok[None]
    return {"target": native_path.name.split(".")[0], "L": len(pae), "diagonal": np.diag(pae).mean(),
            "neighbours": np.concatenate([np.diag(pae, 1), np.diag(pae, -1)]).mean(),
            "mean PAE": pae.mean(), "true mean": true[pairs].mean(),
            "true diagonal": np.abs(np.diag(true)[ok]).max(),
            "pearson r": np.corrcoef(pae[pairs], true[pairs])[0, 1]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=None, help="checkpoint (default: the shipped one)")
    p.add_argument("--natives", nargs="+", type=Path,
                   default=[ROOT / "tests/fixtures/T1082.pdb", ROOT / "tests/fixtures/T1031.pdb"])
    args = p.parse_args()
    torch.set_num_threads(1)
    model, _ = load_default_model(args.weights)
    rows = [pae_row(model, path) for path in args.natives]
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.2f}" if isinstance(r[c], float | np.floating) else str(r[c]) for c in cols)
              + " |")


if __name__ == "__main__":
    main()
