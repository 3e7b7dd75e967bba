#!/usr/bin/env python
"""Time ``scripts/predict.py`` end to end (model + Amber relax) for 100/200/400-residue sequences.

Each length is the first N residues of a real CASP14 target sequence (the shortest target with at
least N residues), run in a fresh process with the shipped weights, as a user would run it.
Prints stage times from ``timings.json`` and the process's peak resident memory.

    python benchmarks/bench_predict.py [--lengths 100 200 400] [--relax openmm|none] [--out DIR]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from af2struct.data.msa import read_fasta  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", type=int, nargs="+", default=[100, 200, 400])
    ap.add_argument("--fasta", type=Path, default=ROOT.parent / "shared/data/casp_eval/casp14_target_sequences.fasta")
    ap.add_argument("--relax", default="openmm", choices=("openmm", "none"))
    ap.add_argument("--out", type=Path, default=None, help="keep the predictions here (default: a temp folder)")
    args = ap.parse_args()
    seqs = sorted(read_fasta(args.fasta), key=lambda r: len(r[1]))
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_predict_"))
    print(f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs; relax {args.relax}")
    print("| residues | from | features s | trunk s | structure s | relax s | total s | peak RSS MiB "
          "| relax RMSD A | clashscore after |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in args.lengths:
        name, seq = next(((k, s) for k, s in seqs if len(s) >= n), seqs[-1])
        seq = seq[:n]
        target = f"L{n}"
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(ROOT / "scripts/predict.py"), "--sequence", seq, "--name", target,
                                 "--out", str(out), "--relax", args.relax, "--quiet", "--max-length", "5000"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        err = proc.stderr.read()
        if status != 0:
            print(f"| {n} | {name} | failed: {err.strip().splitlines()[-1] if err.strip() else status} |")
            continue
        t = json.loads((out / target / "timings.json").read_text())
        r = json.loads((out / target / "result.json").read_text())
        rss = usage.ru_maxrss / 1024  # KiB on Linux
        print(f"| {n} | {name} | {t['features']:.2f} | {t['trunk']:.1f} | {t['structure']:.1f} | "
              f"{t.get('relax', 0):.1f} | {wall:.1f} | {rss:.0f} | {r.get('relax_rmsd', float('nan')):.2f} | "
              f"{r.get('clashscore', float('nan')):.1f} |", flush=True)


if __name__ == "__main__":
    main()
