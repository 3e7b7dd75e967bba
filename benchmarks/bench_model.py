#!/usr/bin/env python
"""Forward time and peak memory of the trunk and the whole model against sequence length and
options. Each case runs in a fresh process so peak RSS (CPU) or max allocated (GPU) is its own.

    python benchmarks/bench_model.py [--lengths 64 128 256 512] [--device cpu]
"""

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

CASES = {
    "default (trunk)": {},
    "default, reversible (train step)": {"reversible": True, "_train": True},
    "default, plain (train step)": {"_train": True},
    "default, attn_chunk_size=16": {"attn_chunk_size": 16},
    "default, sparse_self_attn": {"sparse_self_attn": True},
    "default + unaligned MSA 8x L/2, compress 1": {"_msa": True},
    "default + unaligned MSA 8x L/2, compress 4": {"_msa": True, "cross_attn_compress_ratio": 4},
    "whole model (trunk + MDS + SE(3))": {"_full": True},
}


def run_case(name: str, length: int, device: str) -> dict:
    import torch

    from af2struct.model.config import preset
    from af2struct.model.network import Alphafold2

    opts = dict(CASES[name])
    train, msa_on, full = opts.pop("_train", False), opts.pop("_msa", False), opts.pop("_full", False)
    cfg = preset("default")
    model = Alphafold2(config=cfg, **opts).to(device)
    seq = torch.randint(0, 20, (1, length), device=device)
    msa = torch.randint(0, 21, (1, 8, length // 2), device=device) if msa_on else None
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    if train:
        model(seq, msa).float().pow(2).mean().backward()
    elif full:
        model.predict(seq)
    else:
        with torch.no_grad():
            model(seq, msa)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"case": name, "length": length, "seconds": round(dt, 2), "peak_MiB": round(peak)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256, 512])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    ap.add_argument("--_one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._one:
        print(json.dumps(run_case(args._one[0], int(args._one[1]), args.device)))
        return
    mem = "max allocated (GPU)" if args.device.startswith("cuda") else "peak RSS (process)"
    print(f"machine: {platform.machine()} {args.device}; preset 'default'; memory = {mem}")
    print("| case | L | seconds | peak MiB |")
    print("|---|---|---|---|")
    for name in args.cases:
        for length in args.lengths:
            r = subprocess.run([sys.executable, __file__, "--device", args.device, "--_one", name, str(length)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print(f"| {name} | {length} | failed: {r.stderr.strip().splitlines()[-1][:80]} | |", flush=True)
                continue
            res = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"| {name} | {length} | {res['seconds']} | {res['peak_MiB']} |", flush=True)


if __name__ == "__main__":
    main()
