#!/usr/bin/env python
"""Throughput end to end, as a user folding many sequences on CPUs would run it.

A fixed FASTA of 50 real sequences of mixed length (``benchmarks/throughput_50.fasta``: chains
of the held-out 30 %-identity clusters of the PDB 2018 library, 10 in each of 50-99, 100-149,
150-249, 250-349 and 350-500 residues; ``--make-fasta`` rebuilds it) goes through
``scripts/predict.py`` with templates searched in the library (jackhmmer; never the chain
itself), the shipped model, Amber relax and every output, in a fresh process per run:

* ``serial-1``: one process on one core (torch and OpenMM one thread each);
* ``serial-2``: one process, torch on both cores (the default);
* ``ray-2``: a local Ray with 2 CPUs (``--workers 2``: a model worker, relax and search beside it).

Per run: targets per hour, wall time, CPU seconds of the whole process tree, peak memory (the
tree's summed resident set, sampled every 0.2 s), and from ``summary.csv`` the seconds per
residue of each stage and how a target's time grows with its length (least-squares exponent
b of t = a L^b over the targets). Results: a table on stdout and ``--out`` JSON.

    python benchmarks/bench_throughput.py [--runs serial-1 serial-2 ray-2] [--limit N] [--out F.json]
"""

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

FASTA = ROOT / "benchmarks" / "throughput_50.fasta"
LIBRARY = ROOT.parent / "shared" / "data" / "pdb2018_backbone" / "chains_backbone.npz"
BINS = ((50, 99), (100, 149), (150, 249), (250, 349), (350, 500))
STAGES = ("templates", "features", "trunk", "structure", "relax")
RUNS = {
    "serial-1": ([], {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}),
    "serial-2": ([], {}),
    "ray-2": (["--workers", "2"], {}),
}


def make_fasta(path: Path, seed: int = 0) -> None:
    """10 held-out validation chains per length bin (the split of ``bench_templates.py``)."""
    from bench_templates import CLUSTERS, SHARED

    from af2struct.common.io import structure_name
    from af2struct.data.clusters import find_structures, read_clusters, split_by_cluster
    from af2struct.data.template_search import TemplateDB

    db = TemplateDB(LIBRARY)
    clusters = read_clusters(CLUSTERS, "cluster")
    train_names = [structure_name(f) for f in find_structures([str(SHARED / "train" / "chains")])]
    split = split_by_cluster(sorted(set(db.names) | set(train_names)), clusters, 0.02, 0)
    held = [i for i, n in enumerate(db.names) if split.get(n, "train") != "train"]
    rng = np.random.default_rng(seed)
    lines = []
    for lo, hi in BINS:
        pool = [i for i in held if lo <= db.lengths[i] <= hi]
        for i in sorted(rng.choice(pool, 10, replace=False), key=lambda i: db.lengths[i]):
            lines += [f">{db.names[i]} held-out validation chain, {db.lengths[i]} residues", db.sequence(i)]
    path.write_text("\n".join(lines) + "\n")


def run(name: str, fasta: Path, out: Path) -> dict:
    extra, env = RUNS[name]
    cmd = [sys.executable, str(ROOT / "scripts" / "predict.py"), str(fasta), "--out", str(out),
           "--templates", str(LIBRARY), "--no-plots", "--quiet", *extra]
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    child = subprocess.Popen(cmd, env=os.environ | env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    proc = psutil.Process(child.pid)
    peak, cpu_seen = 0, {}
    while child.poll() is None:
        try:
            procs = [proc] + proc.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        rss = 0
        for p in procs:
            try:
                rss += p.memory_info().rss
                t = p.cpu_times()
                cpu_seen[p.pid] = t.user + t.system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        peak = max(peak, rss)
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    err = child.stderr.read()
    if child.returncode != 0:
        raise SystemExit(f"{name}: predict exited {child.returncode}:\n{err[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    waited = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    cpu = max(sum(cpu_seen.values()), waited)  # processes reaped by the run, or last seen alive
    with open(out / "summary.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh)]
    done = [r for r in rows if r["status"] not in ("failed", "")]
    lengths = np.array([int(r["length"]) for r in done], float)
    residues = lengths.sum()
    per_stage = {s: sum(float(r.get(f"t_{s}") or 0.0) for r in done) / residues for s in STAGES}
    total = np.array([float(r["t_total"]) for r in done])
    b, log_a = np.polyfit(np.log(lengths), np.log(total), 1)
    return {"run": name, "targets": len(rows), "completed": len(done), "residues": int(residues),
            "wall_s": round(wall, 1), "targets_per_hour": round(3600 * len(done) / wall, 1),
            "cpu_s": round(cpu, 1), "cpu_s_per_residue": round(cpu / residues, 4),
            "peak_rss_mib": round(peak / 2**20), "stage_s_per_residue": {k: round(v, 5) for k, v in per_stage.items()},
            "time_vs_length": {"a": round(float(np.exp(log_a)), 5), "b": round(float(b), 2)},
            "status": {s: sum(r["status"] == s for r in rows) for s in sorted({r["status"] for r in rows})}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    ap.add_argument("--limit", type=int, default=0, help="only the first N sequences (a quick check)")
    ap.add_argument("--make-fasta", action="store_true", help=f"rebuild {FASTA.name} from the library")
    ap.add_argument("--out", type=Path, default=None, help="results as JSON")
    args = ap.parse_args()
    if args.make_fasta:
        make_fasta(FASTA)
    fasta = FASTA
    with tempfile.TemporaryDirectory(prefix="bench_throughput_") as tmp:
        if args.limit:
            lines = FASTA.read_text().splitlines()[:2 * args.limit]
            fasta = Path(tmp) / "subset.fasta"
            fasta.write_text("\n".join(lines) + "\n")
        results = []
        for name in args.runs:
            results.append(run(name, fasta, Path(tmp) / name))
            print(json.dumps(results[-1]), flush=True)
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print("| run | targets | targets/hour | wall s | CPU s per residue | "
          + " | ".join(f"{s} s/res" for s in STAGES) + " | peak memory MiB | time ~ L^b |")
    print("|---" * (7 + len(STAGES)) + "|")
    for r in results:
        st = " | ".join(f"{r['stage_s_per_residue'][s]:.4f}" for s in STAGES)
        print(f"| {r['run']} | {r['completed']}/{r['targets']} | {r['targets_per_hour']} | {r['wall_s']} | "
              f"{r['cpu_s_per_residue']:.3f} | {st} | {r['peak_rss_mib']} | {r['time_vs_length']['b']} |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
