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

``--quality N``: the same model from the PDB as from a database. A local mirror in the wwPDB
layout is made from the library minus the training run's held-out 30 % clusters
(``pdb_seqres.txt`` of its chains, and an mmCIF file, backbone only, for every entry among the
hits), and a database file from the same chains; N held-out chains with a hit are folded with
``--templates pdb --pdb-mirror`` and with ``--templates DB`` (shipped weights, no relax), and the
TM-scores compared (a rerun with the network down is a test: tests/predict/test_templates_pdb.py).

    python benchmarks/bench_pdb_templates.py --quality 12
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


def _subset_arrays(db: BackboneDB, keep) -> dict:
    """The library's arrays for chains ``keep`` only (same layout)."""
    rows = np.concatenate([np.arange(db.offsets[i], db.offsets[i] + db.lengths[i]) for i in keep])
    lengths = db.lengths[keep]
    with np.load(LIBRARY, allow_pickle=False) as d:
        pdb_ids, chain_ids = d["pdb_ids"][keep], d["chain_ids"][keep]
    return {"coords_centiA": db.coords[rows], "chain_center": db.center[keep],
            "offsets": np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64), "lengths": lengths,
            "pdb_ids": pdb_ids, "chain_ids": chain_ids, "start_resnum": db.start_resnum[keep],
            "sequence": db._sequence[rows], "atom_order": np.array([b"N", b"CA", b"C", b"O"])}


def _write_entry(path: Path, pdb_id: str, chains) -> None:
    """An mmCIF file of backbone-only chains ``[(chain id, sequence, backbone [n, 4, 3])]``."""
    import gemmi

    from af2struct.common import residue_constants as rc

    st = gemmi.Structure()
    st.name = pdb_id
    model = gemmi.Model("1")
    for cid, seq, bb in chains:
        ch = gemmi.Chain(cid)
        for k, (letter, xyz) in enumerate(zip(seq, bb)):
            res = gemmi.Residue()
            res.name = rc.restype_1to3.get(letter, "UNK")
            res.seqid = gemmi.SeqId(k + 1, " ")
            res.entity_type = gemmi.EntityType.Polymer
            for name, el, pos in zip(("N", "CA", "C", "O"), ("N", "C", "C", "O"), xyz):
                atom = gemmi.Atom()
                atom.name, atom.element, atom.pos = name, gemmi.Element(el), gemmi.Position(*map(float, pos))
                res.add_atom(atom)
            ch.add_residue(res)
        model.add_chain(ch)
    st.add_model(model)
    st.setup_entities()
    st.assign_label_seq_id(True)
    doc = st.make_mmcif_document()
    doc[0].set_pair("_entry.id", pdb_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    import gzip

    with gzip.open(path, "wt") as fh:
        fh.write(doc.as_string())


def quality(n: int, out: Path) -> dict:
    """The A/B of ``--quality`` (module doc)."""
    import shutil

    from af2struct import load_structure
    from af2struct.cli.predict import main as predict_main
    from af2struct.common.io import structure_name
    from af2struct.data.clusters import find_structures, read_clusters, split_by_cluster
    from af2struct.data.pdb_mirror import SEQRES, entry_path
    from af2struct.data.template_search import TemplateDB
    from af2struct.data.templates import filter_hits
    from af2struct.eval.metrics import score_model

    lib = TemplateDB(LIBRARY)
    clusters = read_clusters(ROOT / "af2struct" / "data" / "splits" / "pdb2018_train_clusters30.tsv.gz", "cluster")
    shared = LIBRARY.parents[1]
    train_names = [structure_name(f) for f in find_structures([str(shared / "train" / "chains")])]
    split = split_by_cluster(sorted(set(lib.names) | set(train_names)), clusters, 0.02, 0)
    held = [i for i, nm in enumerate(lib.names) if split.get(nm, "train") != "train"]
    seen, keep = set(), []
    for i, nm in enumerate(lib.names):
        if split.get(nm, "train") == "train" and nm not in seen:
            seen.add(nm)
            keep.append(i)
    mirror = out / "mirror"
    shutil.rmtree(mirror, ignore_errors=True)
    arrays = _subset_arrays(lib, np.array(keep))
    db_path = out / "library_train.npz"
    np.savez(db_path, **arrays)
    db = TemplateDB(db_path)
    (mirror / SEQRES).parent.mkdir(parents=True, exist_ok=True)
    with open(mirror / SEQRES, "w") as fh:
        for i, nm in enumerate(db.names):
            pid, _, cid = nm.partition("_")
            fh.write(f">{pid.lower()}_{cid} mol:protein length:{db.lengths[i]}  LIBRARY\n{db.sequence(i)}\n")
    by_entry = {}
    for i, nm in enumerate(db.names):
        by_entry.setdefault(nm.partition("_")[0], []).append(i)
    rng = np.random.default_rng(0)
    held = [i for i in held if 40 <= lib.lengths[i] <= 300]
    rng.shuffle(held)
    targets, written = [], set()
    from af2struct.data.template_search import search_templates
    for i in held:
        if len(targets) >= n:
            break
        seq = lib.sequence(i)
        hits = filter_hits(search_templates(seq, db, method="jackhmmer"), seq)
        if not hits:
            continue
        targets.append(i)
        for h in hits:
            pid = h.name.partition("_")[0]
            if pid not in written:
                written.add(pid)
                _write_entry(mirror / entry_path(pid), pid, [(db.names[j].partition("_")[2], db.sequence(j),
                                                              db.backbone(j)) for j in by_entry[pid]])
    rows = []
    for i in targets:
        name, seq = lib.names[i], lib.sequence(i)
        native = lib.protein(i)
        row = {"target": name, "length": len(seq)}
        for tag, extra in (("database", ["--templates", str(db_path)]),
                           ("pdb", ["--templates", "pdb", "--pdb-mirror", str(mirror), "--template-cache",
                                    str(out / "cache")])):
            d = out / f"run_{tag}"
            assert predict_main(["--sequence", seq, "--name", name, "--out", str(d), "--relax", "none",
                                 "--no-plots", "--quiet", *extra]) == 0
            s = score_model(load_structure(d / name / "unrelaxed.pdb"), native)
            used = json.loads((d / name / "templates.json").read_text())["used"]
            row[f"{tag}_tm"], row[f"{tag}_used"] = round(s.tm_score, 4), used
        rows.append(row)
        print(row, flush=True)
    tm_db = np.array([r["database_tm"] for r in rows])
    tm_pdb = np.array([r["pdb_tm"] for r in rows])
    return {"targets": rows, "mean_tm_database": round(float(tm_db.mean()), 4),
            "mean_tm_pdb": round(float(tm_pdb.mean()), 4), "max_abs_diff": round(float(np.abs(tm_db - tm_pdb).max()), 4)}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=850_000)
    ap.add_argument("--distinct", type=int, default=140_000)
    ap.add_argument("--mutate", type=float, default=0.3)
    ap.add_argument("--out", type=Path, default=Path("/tmp/af2struct_bench_pdb_templates"),
                    help="where the synthetic pdb_seqres.txt (~270 MB) and summary.json go")
    ap.add_argument("--quality", type=int, default=0, help="the PDB-against-database A/B on this many held-out chains")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.quality:
        result = quality(args.quality, args.out)
        (args.out / "quality.json").write_text(json.dumps(result, indent=1))
        print(json.dumps({k: v for k, v in result.items() if k != "targets"}, indent=1))
        return
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
