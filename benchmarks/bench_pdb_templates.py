#!/usr/bin/env python
"""The PDB as a template source at full size: reading ``pdb_seqres.txt`` and searching it.

The live ``pdb_seqres.txt`` (~850k protein chains, ~270 MB) cannot be downloaded here, so one of
that size is made from real sequences: the 21,118 chains of ``pdb2018_backbone`` and variants of
them (each residue changed with probability ``--mutate``) as the distinct sequences, each carried
by several chains (as in the PDB, where copies of a chain and the same protein in many entries
share a sequence), to ``--records`` records and ``--distinct`` distinct sequences. Measured on one
core: the first read (parse, index written to the cache), a later read (index), digitising for
pyhmmer, and the search (phmmer and jackhmmer, 3 iterations) of library sequences of about 100,
200 and 400 residues (they are in the set, as a target's close homologue would be), with the
peak memory.

    python benchmarks/bench_pdb_templates.py [--records 850000 --distinct 140000] [--out DIR]
"""

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import numpy as np

from af2struct.data.backbone_db import BackboneDB
from af2struct.data.seqres_db import SeqresDB
from af2struct.data.template_search import search_templates

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT.parent / "shared" / "data" / "pdb2018_backbone" / "chains_backbone.npz"
AMINO = np.frombuffer(b"ACDEFGHIKLMNPQRSTVWY", np.uint8)


def synthetic_seqres(path: Path, records: int, distinct: int, mutate: float, seed: int = 0) -> None:
    """A ``pdb_seqres.txt`` of ``records`` protein records, ``distinct`` distinct sequences."""
    rng = np.random.default_rng(seed)
    lib = BackboneDB(LIBRARY)
    base = [lib.sequence(i).encode() for i in range(len(lib))]
    seqs = []
    for k in range(distinct):
        s = np.frombuffer(base[k % len(base)], np.uint8).copy()
        if k >= len(base):
            hit = rng.random(len(s)) < mutate
            s[hit] = AMINO[rng.integers(0, 20, hit.sum())]
        seqs.append(s.tobytes().decode())
    copies = np.ones(distinct, np.int64) + rng.multinomial(records - distinct, np.ones(distinct) / distinct)
    with open(path, "w") as fh:
        n = 0
        for s, c in zip(seqs, copies):
            for _ in range(c):
                fh.write(f">{np.base_repr(n, 36).lower():0>4}_A mol:protein length:{len(s)}  SYNTHETIC\n{s}\n")
                n += 1


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=850_000)
    ap.add_argument("--distinct", type=int, default=140_000)
    ap.add_argument("--mutate", type=float, default=0.3)
    ap.add_argument("--out", type=Path, default=Path("/tmp/af2struct_bench_pdb_templates"),
                    help="where the synthetic pdb_seqres.txt (~270 MB) and summary.json go")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    seqres = args.out / "pdb_seqres.txt"
    t0 = time.perf_counter()
    synthetic_seqres(seqres, args.records, args.distinct, args.mutate)
    rows = {"machine": platform.processor() or platform.machine(), "records": args.records,
            "distinct": args.distinct, "file_MB": round(seqres.stat().st_size / 1e6, 1),
            "make_s": round(time.perf_counter() - t0, 1)}
    for f in args.out.glob(".pdb_seqres.txt.index.npz"):
        f.unlink()
    t0 = time.perf_counter()
    db = SeqresDB(seqres)
    rows["first_read_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    db = SeqresDB(seqres)
    rows["read_from_index_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    _ = db.block
    rows["digitise_s"] = round(time.perf_counter() - t0, 2)
    rows["peak_MB_after_load"] = round(peak_mb())
    lib = BackboneDB(LIBRARY)
    lengths = lib.lengths
    searches = []
    for target in (100, 200, 400):
        i = int(np.argmin(np.abs(lengths - target)))
        seq = lib.sequence(i)
        row = {"length": len(seq), "query": lib.names[i]}
        for method in ("phmmer", "jackhmmer"):
            t0 = time.perf_counter()
            hits = search_templates(seq, db, method=method, cpus=1)
            row[f"{method}_s"] = round(time.perf_counter() - t0, 2)
            row[f"{method}_hits"] = len(hits)
        searches.append(row)
        print(row, flush=True)
    rows["searches"] = searches
    rows["peak_MB"] = round(peak_mb())
    (args.out / "summary.json").write_text(json.dumps(rows, indent=1))
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
