#!/usr/bin/env python
"""Model speed and memory. Every measurement runs in its own process, so peak memory is its own.

``step``: one training step (forward, distogram cross-entropy, backward, AdamW), single sequence,
for af2struct's ``default`` preset and for the model at the peer's widths ("matched":
``dim=64, depth=2, heads=8, dim_head=32`` with ``pair_heads=8, pair_dim_head=32,
transition_factor=4``), against alphafold2-pytorch 0.4.32 (alphafold2-pytorch's package, same
constructor arguments) and against an older af2struct commit (``--baseline``, checked out into a
temporary git worktree). The cases of one length run interleaved, ``--rounds`` times; a row
gives the median over rounds of each process's fastest timed step, and the ratios.

    python benchmarks/bench_model.py step --baseline 7d0c4dd --peer benchmarks/.peer --bf16

``--bf16`` adds af2struct with its trunk under bf16 autocast, which is how training runs where
the hardware multiplies bf16 natively (a GPU; a CPU with AVX512-BF16 or AMX); the peer and the
baseline run float32, as their training does on a CPU.

The peer is installed beside the project, not into it:
``pip install --no-deps --target benchmarks/.peer alphafold2-pytorch==0.4.32
invariant-point-attention mp-nerf`` (its other imports, einops, biopython and sidechainnet, are
af2struct's own dependencies). ``pytorch3d`` is not on the package index; the peer imports two
quaternion functions from it for its structure module only, which a trunk step never calls, so
when it is missing a stand-in module that raises on use is put on the peer's path.

``profile``: torch.profiler over one training step of ``--model`` (default or matched), the
operators with the most self CPU time, for ``--baseline`` and this checkout:
``python benchmarks/bench_model.py profile --model default --lengths 128 --baseline 7d0c4dd``.

``options``: forward time and peak memory of the trunk options (reversible, chunking, sparse
attention, unaligned MSA, whole model) against sequence length.

Memory is the peak RSS of the process (CPU) or the maximum allocated (GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MATCHED = dict(dim=64, depth=2, heads=8, dim_head=32)
MATCHED_PAIR = dict(pair_heads=8, pair_dim_head=32, transition_factor=4)

OPTION_CASES = {
    "default (trunk)": {},
    "default, reversible (train step)": {"reversible": True, "_train": True},
    "default, plain (train step)": {"_train": True},
    "default, attn_chunk_size=16": {"attn_chunk_size": 16},
    "default, sparse_self_attn": {"sparse_self_attn": True},
    "default + unaligned MSA 8x L/2, compress 1": {"_msa": True},
    "default + unaligned MSA 8x L/2, compress 4": {"_msa": True, "cross_attn_compress_ratio": 4},
    "whole model (trunk + MDS + SE(3))": {"_full": True},
}


def _peak_mib(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- one process: one measurement
def run_step(impl: str, model_name: str, length: int, steps: int, device: str, threads: int,
             profile_rows: int = 0) -> dict:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    amp = impl.endswith("-bf16")  # the trunk under bf16 autocast, as training runs where bf16 is native
    if impl == "peer":
        from alphafold2_pytorch import Alphafold2 as Peer

        model = Peer(**MATCHED)
    else:
        from af2struct import Alphafold2
        from af2struct.model.config import preset

        if model_name == "default":
            model = Alphafold2(config=preset("default"))
        else:
            model = Alphafold2(**MATCHED, **MATCHED_PAIR)
    model = model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    seq = torch.randint(0, 20, (1, length), device=device)
    mask = torch.ones_like(seq, dtype=torch.bool)
    target = torch.randint(0, 37, (1, length, length), device=device)

    def step() -> float:
        t0 = time.perf_counter()
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=amp):
            out = model(seq, mask=mask)
        logits = out.distance if hasattr(out, "distance") else out
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    warm = step()
    if profile_rows:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            step()
        events = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total)
        total = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e3
        return {"impl": impl, "model": model_name, "length": length, "total_ms": total,
                "top": [(e.key, e.count, e.self_cpu_time_total / 1e3, str(e.input_shapes)[:70])
                        for e in events[:profile_rows]]}
    times = [step() for _ in range(steps)]
    return {"impl": impl, "model": model_name, "length": length, "warmup_s": warm, "step_s": min(times),
            "peak_MiB": _peak_mib(device)}


def run_option(name: str, length: int, device: str) -> dict:
    import torch

    from af2struct import Alphafold2
    from af2struct.model.config import preset

    opts = dict(OPTION_CASES[name])
    train, msa_on, full = opts.pop("_train", False), opts.pop("_msa", False), opts.pop("_full", False)
    model = Alphafold2(config=preset("default"), **opts).to(device)
    seq = torch.randint(0, 20, (1, length), device=device)
    msa = torch.randint(0, 21, (1, 8, length // 2), device=device) if msa_on else None
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    if train:
        model(seq, msa).float().pow(2).mean().backward()
    elif full:
        with torch.no_grad():
            model.structure(model(seq, return_all=True), torch.ones_like(seq, dtype=torch.bool))
    else:
        with torch.no_grad():
            model(seq, msa)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return {"case": name, "length": length, "seconds": round(time.perf_counter() - t0, 2),
            "peak_MiB": round(_peak_mib(device))}


# ---------------------------------------------------------------- driver
def _child(args_list, pythonpath=None, threads=2) -> dict:
    """Run one measurement in a fresh interpreter. Its imports come from ``pythonpath`` (the
    checkout, the baseline worktree or the peer) and then site-packages; ``-S`` keeps the
    editable install of this checkout from shadowing a baseline worktree."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    site_paths = list(dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib")))
    env["PYTHONPATH"] = os.pathsep.join(list(pythonpath or [str(ROOT)]) + site_paths)
    r = subprocess.run([sys.executable, "-S", __file__, *args_list], capture_output=True, text=True, env=env,
                       cwd=tempfile.gettempdir())
    if r.returncode != 0:
        lines = r.stderr.strip().splitlines() or ["no output"]
        return {"error": lines[-1][:100]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def _peer_path(peer: Path, tmp: Path):
    """The peer's import path, with a stand-in for pytorch3d when it is not installed."""
    paths = [str(peer.resolve())]
    if not (peer / "pytorch3d").exists():
        stub = tmp / "pytorch3d_stub" / "pytorch3d"
        stub.mkdir(parents=True, exist_ok=True)
        (stub / "__init__.py").write_text("")
        (stub / "transforms.py").write_text(
            "def _missing(*args, **kwargs):\n"
            "    raise ImportError('pytorch3d is not installed (the trunk benchmark never calls it)')\n\n"
            "quaternion_multiply = quaternion_to_matrix = _missing\n")
        paths.append(str(stub.parent))
    return paths


def _worktree(commit: str, tmp: Path) -> Path:
    path = tmp / f"baseline-{commit}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit],
                   check=True, capture_output=True)
    return path


def step_table(args) -> None:
    with tempfile.TemporaryDirectory(prefix="af2s-bench-") as tmpdir:
        tmp = Path(tmpdir)
        cases = [("af2struct", m, [str(ROOT)]) for m in args.models]
        if args.bf16:
            cases += [("af2struct-bf16", m, [str(ROOT)]) for m in args.models]
        base = None
        if args.baseline:
            base = _worktree(args.baseline, tmp)
            cases += [("baseline", m, [str(base)]) for m in args.models]
        if args.peer and "matched" in args.models:
            cases.append(("peer", "matched", _peer_path(Path(args.peer), tmp) + [str(ROOT)]))
        try:
            print(f"machine: {platform.machine()} {platform.processor() or ''} {args.device}, {args.threads} threads; "
                  f"one training step, batch 1, single sequence; seconds = median over {args.rounds} rounds of the "
                  f"fastest of {args.steps} timed steps (after 1 warm-up); memory = "
                  f"{'max allocated' if args.device.startswith('cuda') else 'peak RSS of the process'}", flush=True)
            print("| model | L | impl | step s | peak MiB | speed-up | memory ratio |")
            print("|---|---|---|---|---|---|---|")
            for length in args.lengths:
                results = {}
                for _ in range(args.rounds):
                    for impl, model_name, path in cases:
                        steps = args.steps if length < 384 else max(1, args.steps - 1)
                        r = _child(["--device", args.device, "--_step", impl, model_name, str(length), str(steps),
                                    str(args.threads)], pythonpath=path, threads=args.threads)
                        results.setdefault((impl, model_name), []).append(r)
                for model_name, ref_impl in (("default", "baseline"), ("matched", "peer"), ("matched", "baseline")):
                    rows = {impl: results[(impl, model_name)] for impl in (ref_impl, "af2struct", "af2struct-bf16")
                            if (impl, model_name) in results}
                    if ref_impl not in rows:
                        continue
                    summary = {}
                    for impl, rs in rows.items():
                        ok = [r for r in rs if "error" not in r]
                        if not ok:
                            summary[impl] = None
                            print(f"| {model_name} | {length} | {impl} | failed: {rs[0]['error']} | | | |")
                            continue
                        summary[impl] = (statistics.median(r["step_s"] for r in ok),
                                         statistics.median(r["peak_MiB"] for r in ok))
                    ref = summary.get(ref_impl)
                    if ref:
                        print(f"| {model_name} | {length} | {ref_impl} | {ref[0]:.2f} | {ref[1]:.0f} | 1.00x | 1.00 |")
                    for impl in ("af2struct", "af2struct-bf16"):
                        new = summary.get(impl)
                        if ref and new:
                            print(f"| {model_name} | {length} | {impl.replace('-', ' ')} vs {ref_impl} | {new[0]:.2f} | "
                                  f"{new[1]:.0f} | {ref[0] / new[0]:.2f}x | {new[1] / ref[1]:.2f} |", flush=True)
        finally:
            if base is not None:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)


def profile_table(args) -> None:
    """torch.profiler over one training step (after a warm-up): the operators taking the most
    self CPU time, for the baseline commit and this checkout."""
    with tempfile.TemporaryDirectory(prefix="af2s-bench-") as tmpdir:
        tmp = Path(tmpdir)
        cases = [("baseline", _worktree(args.baseline, tmp))] if args.baseline else []
        cases.append(("af2struct", ROOT))
        if args.bf16:
            cases.append(("af2struct-bf16", ROOT))
        try:
            for length in args.lengths:
                for impl, root in cases:
                    r = _child(["--device", args.device, "--_profile", str(args.rows), "--_step", impl, args.model,
                                str(length), "1", str(args.threads)], pythonpath=[str(root)], threads=args.threads)
                    if "error" in r:
                        print(f"{impl}: failed: {r['error']}")
                        continue
                    what = {"baseline": f"commit {args.baseline}", "af2struct-bf16": "this checkout, bf16 autocast"}
                    print(f"\n{impl} ({what.get(impl, 'this checkout')}), "
                          f"model {args.model}, L={length}, {args.threads} threads: {r['total_ms']:.0f} ms self CPU "
                          "in one step (profiler overhead included)\n")
                    print("| operator | calls | ms | input shapes |")
                    print("|---|---|---|---|")
                    for key, count, ms, shapes in r["top"]:
                        print(f"| {key} | {count} | {ms:.1f} | {shapes} |")
        finally:
            for impl, root in cases:
                if impl == "baseline":
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(root)],
                                   capture_output=True)


def options_table(args) -> None:
    mem = "max allocated (GPU)" if args.device.startswith("cuda") else "peak RSS (process)"
    print(f"machine: {platform.machine()} {args.device}; preset 'default'; memory = {mem}")
    print("| case | L | seconds | peak MiB |")
    print("|---|---|---|---|")
    for name in args.cases:
        for length in args.lengths:
            res = _child(["--device", args.device, "--_option", name, str(length)], threads=args.threads)
            if "error" in res:
                print(f"| {name} | {length} | failed: {res['error']} | |", flush=True)
            else:
                print(f"| {name} | {length} | {res['seconds']} | {res['peak_MiB']} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", nargs="?", choices=["step", "profile", "options"], default="step")
    ap.add_argument("--lengths", type=int, nargs="+", default=None,
                    help="sequence lengths (step: 128 256 384; options: 64 128 256 512)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2, help="torch threads in every measured process")
    ap.add_argument("--baseline", help="git commit of af2struct to compare with (checked out into a temporary worktree)")
    ap.add_argument("--peer", help="folder where alphafold2-pytorch 0.4.32 is installed (pip --target)")
    ap.add_argument("--rounds", type=int, default=1, help="step: interleaved rounds per length")
    ap.add_argument("--steps", type=int, default=2, help="step: timed steps per process (one fewer at L >= 384)")
    ap.add_argument("--bf16", action="store_true",
                    help="step, profile: also af2struct with its trunk under bf16 autocast (what training uses on a GPU or "
                         "a CPU with AVX512-BF16/AMX; on other CPUs bf16 is emulated and slow)")
    ap.add_argument("--models", nargs="+", choices=("default", "matched"), default=["default", "matched"],
                    help="step: which models")
    ap.add_argument("--cases", nargs="*", default=list(OPTION_CASES), help="options: which cases")
    ap.add_argument("--model", default="default", choices=["default", "matched"], help="profile: which model")
    ap.add_argument("--rows", type=int, default=12, help="profile: operators listed")
    ap.add_argument("--_step", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--_profile", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--_option", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._step:
        impl, model_name, length, steps, threads = args._step
        print(json.dumps(run_step(impl, model_name, int(length), int(steps), args.device, int(threads),
                                  args._profile)))
        return
    if args._option:
        print(json.dumps(run_option(args._option[0], int(args._option[1]), args.device)))
        return
    if args.mode == "step":
        args.lengths = args.lengths or [128, 256, 384]
        step_table(args)
    elif args.mode == "profile":
        args.lengths = args.lengths or [128]
        profile_table(args)
    else:
        args.lengths = args.lengths or [64, 128, 256, 512]
        options_table(args)


if __name__ == "__main__":
    main()
