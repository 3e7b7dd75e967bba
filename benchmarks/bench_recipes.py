#!/usr/bin/env python
"""Which trunk recipe buys the most validation distogram CE per CPU-hour: each recipe trains
from scratch (stage ``distogram``) on the same data, split, seed and validation crops for the
same wall-clock budget, and is validated on a fixed step interval; the table gives the
validation CE reached at common points in time (linear interpolation between validations; time
includes validation, so every recipe pays for its own forward) and its step time.

The learning rate is the same for all (warm-up, then cosine over ``--steps``, long enough that it
stays near the peak within the budget), so the curves compare recipes, not schedules. Run with
nothing else on the threads given (``--threads``).

    python benchmarks/bench_recipes.py --minutes 15 --threads 1 [--recipes default tri_attn ...]
"""

import argparse
import json
import logging
import platform
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from af2struct.train.loop import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

# recipe name -> overrides of the default preset (af2struct.model.config.ModelConfig.with_overrides)
RECIPES = {
    "default": [],
    "tri_attn": ["trunk.triangle_attn=true"],
    "depth2": ["trunk.depth=2"],
    "depth8": ["trunk.depth=8"],
    "wide64": ["trunk.dim=64", "trunk.pair_dim=64", "trunk.dim_head=16", "trunk.pair_dim_head=16"],
    "no_tri_mult": ["trunk.triangle_mult=false"],
    "recycle1": ["trunk.num_recycles=1"],
}


def curve(run_dir: Path):
    """``(time_s, valid CE, contacts)`` rows and the mean training step time of one run."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    valid = [(r["time_s"], r["valid_distogram"], r.get("valid_contact_lr_l5", float("nan")))
             for r in rows if "valid_distogram" in r]
    train_rows = [r for r in rows if "loss" in r and "valid_loss" not in r]
    step_s = train_rows[-1]["time_s"] / train_rows[-1]["step"] if train_rows else float("nan")
    return valid, step_s, (train_rows[-1]["step"] if train_rows else 0)


def at(valid, t: float) -> float:
    """Validation CE at time ``t`` (interpolated; NaN before the first validation)."""
    ts = np.array([v[0] for v in valid])
    ce = np.array([v[1] for v in valid])
    if len(ts) == 0 or t < ts[0]:
        return float("nan")
    return float(np.interp(t, ts, ce))


def run_recipe(name: str, args, out: Path) -> Path:
    run_dir = out / name
    cfg = TrainConfig(backbone_db=str(args.backbone_db), data=str(args.data), clusters=str(args.clusters),
                      valid_fraction=0.02, out=str(run_dir), steps=args.steps, warmup=args.warmup, lr=args.lr,
                      time_limit_min=args.minutes, eval_every=args.eval_every, ckpt_every=10 ** 6,
                      max_valid=args.max_valid, log_every=10, seed=args.seed, resume=False, progress=False,
                      model_overrides=tuple(RECIPES[name]))
    train(cfg)
    return run_dir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=sorted(RECIPES))
    p.add_argument("--minutes", type=float, default=15.0, help="wall-clock budget per recipe")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--max-valid", type=int, default=32)
    p.add_argument("--steps", type=int, default=20000, help="LR schedule length (>> steps run: LR near peak)")
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backbone-db", type=Path, default=DATA / "pdb2018_backbone" / "chains_backbone.npz")
    p.add_argument("--data", type=Path, default=DATA / "train" / "chains")
    p.add_argument("--clusters", type=Path, default=ROOT / "af2struct/data/splits/pdb2018_train_clusters30.tsv.gz")
    p.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    out = args.out or Path(tempfile.mkdtemp(prefix="af2struct_recipes_"))
    results = {}
    for name in args.recipes:
        done = out / name / "metrics.jsonl"
        if not (done.exists() and (out / name / "last.pt").exists()):  # resume a killed sweep
            run_recipe(name, args, out)
        results[name] = curve(out / name)
        valid, step_s, steps = results[name]
        print(f"{name}: {steps} steps, {step_s:.2f} s/step, last valid CE {valid[-1][1]:.4f}", flush=True)
    marks = [args.minutes * 60 * f for f in (0.25, 0.5, 0.75, 1.0)]
    print(f"\n{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s), "
          f"{args.minutes:g} min per recipe, crop 128, batch 2, LR {args.lr:g}")
    print("| recipe | overrides | s/step | steps | " + " | ".join(f"CE @ {m / 60:.1f} min" for m in marks)
          + " | contacts (last) |")
    print("|---|---|---|---|" + "---|" * len(marks) + "---|")
    for name, (valid, step_s, steps) in results.items():
        ces = " | ".join(f"{at(valid, m):.4f}" for m in marks)
        print(f"| {name} | {' '.join(RECIPES[name]) or '(preset default)'} | {step_s:.2f} | {steps} | {ces} | "
              f"{valid[-1][2]:.3f} |")
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
