#!/usr/bin/env python
"""Templates, measured: per target and on average, (a) the template copy (the top usable hit's
Calpha positions on the aligned residues, the rest absent: the floor) and the best of the top
five hits' copies (chosen by their TM-score against the native: an oracle), (b) the model with
templates, (c) the model without, scored by TM-score and lDDT-CA over every native residue
(absent residues count as wrong, as the metrics do). The summary also gives, over the chains
whose top copy scores TM >= 0.8, the model's worst shortfall against that copy.

Sets:
* ``valid``: whole chains of the training run's held-out 30 %-identity clusters
  (pdb2018_backbone, ``--split-seed 0``, ``--valid-fraction 0.02``: what no checkpoint trained on),
  templates searched (jackhmmer) in the library, never the chain itself, its PDB entry, a
  near-identical sequence, a chain of its own cluster or another held-out chain;
* ``casp14``: the 27 CASP14 monomers (full target sequences, scored over the observed residues),
  templates searched in the whole library (culled against CASP14: few hits).

Also the time of search and prediction with and without templates at 100/200/400 residues
(``--timing``). Results go to ``--out`` (CSV per set, JSON summary).

    python benchmarks/bench_templates.py --sets valid casp14 --timing [--weights W] [--n-hit 30 --n-nohit 10]
"""

import argparse
import csv
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from af2struct import load_structure
from af2struct.common.io import structure_name
from af2struct.data.clusters import find_structures, read_clusters
from af2struct.data.msa import read_fasta
from af2struct.data.template_search import (
    SEARCH_METHODS,
    TemplateDB,
    held_out_chains,
    hits_from_other_clusters,
    search_templates,
    usable_hits,
)
from af2struct.data.templates import template_copy_ca, template_features
from af2struct.eval.metrics import lddt, tm_score
from af2struct.model.frames import aligned_error
from af2struct.predict.pipeline import load_default_model, predict_structure

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
LIBRARY = SHARED / "pdb2018_backbone" / "chains_backbone.npz"
CLUSTERS = ROOT / "af2struct" / "data" / "splits" / "pdb2018_train_clusters30.tsv.gz"
MONOMERS = ("T1024 T1025 T1026 T1027 T1029 T1030 T1031 T1032 T1033 T1035 T1038 T1039 T1040 T1041 T1042 T1043 "
            "T1049 T1054 T1056 T1064 T1067 T1073 T1074 T1080 T1082 T1090 T1099").split()


def scores(pred_ca: np.ndarray, present: np.ndarray, true_ca: np.ndarray, per_residue: bool = False) -> dict:
    """TM-score and lDDT-CA of ``pred_ca [n, 3]`` (``present [n]``) against ``true_ca [n, 3]``
    (with ``per_residue``, also the per-residue lDDT-CA under ``_per_residue``)."""
    n = len(true_ca)
    tm = tm_score(pred_ca[present], true_ca[present], n) if present.sum() >= 3 else 0.0
    l, per = lddt(pred_ca, true_ca, np.ones(n, bool), pred_mask=present)
    out = {"tm": round(float(tm), 4), "lddt_ca": round(float(l), 4)}
    if per_residue:
        out["_per_residue"] = np.asarray(per, np.float64)
    return out


def pae_calibration(pred, true_bb, prefix: str, row: dict) -> None:
    """PAE against the written model's true aligned error: the within-target Pearson r."""
    if true_bb is None or pred.pae is None:
        return
    model_bb = torch.tensor(pred.protein.atom_positions[:, :3], dtype=torch.float64)
    err = aligned_error(model_bb, torch.tensor(true_bb, dtype=torch.float64)).numpy()
    row[f"{prefix}_pae_r"] = round(float(np.corrcoef(pred.pae.ravel(), err.ravel())[0, 1]), 3)
    row[f"{prefix}_pae_mean"] = round(float(pred.pae.mean()), 2)
    row[f"{prefix}_true_ae_mean"] = round(float(err.mean()), 2)


def calibration(plddt: np.ndarray, true: dict, prefix: str, row: dict) -> None:
    """pLDDT against the true lDDT-CA x 100: the chain's mean and each residue (kept for the
    pooled correlation in the summary)."""
    row[f"{prefix}_plddt"] = round(float(plddt.mean()), 1)
    row[f"{prefix}_plddt_err"] = round(float(plddt.mean() - 100 * true["lddt_ca"]), 1)
    row[f"_{prefix}_residues"] = (plddt, 100 * true["_per_residue"])


def model_ca(model, sequence: str, feats=None, seed: int = 0):
    pred = predict_structure(model, sequence, None, seed=seed, templates=feats)
    return pred.protein.ca_positions, pred


def validation_targets(db: TemplateDB, n_hit: int, n_nohit: int, max_len: int, seed: int,
                       search: str = "jackhmmer"):
    """Held-out chains (the training split) with and without a usable template. The chains are
    chosen by jackhmmer's hits whatever ``search`` is, so that every method folds the same chains;
    a chain's templates are then ``search``'s hits (none where it finds none)."""
    clusters = read_clusters(CLUSTERS, "cluster")
    train_names = [structure_name(f) for f in find_structures([str(SHARED / "train" / "chains")])]
    held = sorted(i for i in held_out_chains(db, clusters, train_names) if 40 <= db.lengths[i] <= max_len)
    held_set = set(held)
    rng = np.random.default_rng(seed)
    rng.shuffle(held)

    def held_out_hits(i: int, method: str):
        return hits_from_other_clusters(db, i, clusters, held_set, method)

    with_hit, without = [], []
    for i in held:
        if len(with_hit) >= n_hit and len(without) >= n_nohit:
            break
        hits = held_out_hits(i, "jackhmmer")
        if hits and len(with_hit) < n_hit:
            if search != "jackhmmer":
                hits = held_out_hits(i, search)
            with_hit.append((db.names[i], db.sequence(i), db.backbone(i), hits))
        elif not hits and len(without) < n_nohit:
            without.append((db.names[i], db.sequence(i), db.backbone(i), hits))
    return with_hit + without


def casp_targets(db: TemplateDB, search: str = "jackhmmer"):
    seqs = dict(read_fasta(SHARED / "casp_eval" / "casp14_target_sequences.fasta"))
    out = []
    for name in MONOMERS:
        native = load_structure(SHARED / "casp_eval" / "casp14" / f"{name}.pdb")
        seq = seqs[name]
        hits = usable_hits(search_templates(seq, db, method=search, name=name), seq, db)
        out.append((name, seq, native, hits))
    return out


def run_set(model, db, targets, casp: bool):
    rows = []
    for name, seq, native, hits in targets:
        t0 = time.perf_counter()
        n = len(seq)
        true_bb = None
        if casp:  # score over the observed residues (CASP numbering: residue r is seq[r - 1])
            obs = native.residue_index - 1
            true = native.ca_positions
        else:
            obs = np.arange(n)
            true, true_bb = native[:, 1], native[:, :3]
        row = {"target": name, "length": n, "n_hits": len(hits),
               "top_hit": hits[0].name if hits else "", "identity": round(hits[0].identity, 3) if hits else "",
               "coverage": round(hits[0].coverage(n), 3) if hits else ""}
        ca0, pred0 = model_ca(model, seq)
        s0 = scores(ca0[obs], np.ones(len(obs), bool), true, per_residue=True)
        row.update({f"model_{k}": v for k, v in s0.items() if not k.startswith("_")})
        calibration(pred0.plddt[obs], s0, "model", row)
        pae_calibration(pred0, true_bb, "model", row)
        if hits:
            copies = [scores(c[obs], p[obs], true) for c, p in (template_copy_ca(h, db, n) for h in hits[:5])]
            row.update({f"copy_{k}": v for k, v in copies[0].items()})
            row.update({f"best5_{k}": v for k, v in max(copies, key=lambda c: c["tm"]).items()})
            feats = template_features(hits, db, n)
            ca_t, pred = model_ca(model, seq, feats)
            st = scores(ca_t[obs], np.ones(len(obs), bool), true, per_residue=True)
            row.update({f"templates_{k}": v for k, v in st.items() if not k.startswith("_")})
            calibration(pred.plddt[obs], st, "templates", row)
            pae_calibration(pred, true_bb, "templates", row)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        print(json.dumps({k: v for k, v in row.items() if not k.startswith("_")}), flush=True)
        rows.append(row)
    return rows


def summary(rows):
    hit = [r for r in rows if r["n_hits"]]
    nohit = [r for r in rows if not r["n_hits"]]
    out = {"n_with_hit": len(hit), "n_without_hit": len(nohit)}
    for key in ("copy", "best5", "templates", "model"):
        for m in ("tm", "lddt_ca"):
            vals = [r[f"{key}_{m}"] for r in hit if f"{key}_{m}" in r]
            if vals:
                out[f"hit_{key}_{m}"] = round(float(np.mean(vals)), 4)
    good = [r for r in hit if r.get("copy_tm", 0) >= 0.8 and "templates_tm" in r]
    out["hit_copy_at_least_0.8"] = len(good)
    if good:
        worst = min(good, key=lambda r: r["templates_tm"] - r["copy_tm"])
        out["hit_copy_at_least_0.8_worst"] = f'{worst["target"]} {worst["templates_tm"] - worst["copy_tm"]:+.4f}'
    for m in ("tm", "lddt_ca"):
        if nohit:
            out[f"nohit_model_{m}"] = round(float(np.mean([r[f"model_{m}"] for r in nohit])), 4)
    # calibration: mean over chains of |mean pLDDT - 100 x lDDT-CA|, the signed mean, and the
    # per-residue Pearson r (pooled over the chains' residues)
    for group, rs, key in (("hit", hit, "templates"), ("hit", hit, "model"), ("nohit", nohit, "model")):
        rs = [r for r in rs if f"_{key}_residues" in r]
        if not rs:
            continue
        out[f"{group}_{key}_plddt_abs_err"] = round(float(np.mean([abs(r[f"{key}_plddt_err"]) for r in rs])), 2)
        out[f"{group}_{key}_plddt_err"] = round(float(np.mean([r[f"{key}_plddt_err"] for r in rs])), 2)
        p = np.concatenate([r[f"_{key}_residues"][0] for r in rs])
        t = np.concatenate([r[f"_{key}_residues"][1] for r in rs])
        out[f"{group}_{key}_plddt_r_residue"] = round(float(np.corrcoef(p, t)[0, 1]), 3)
        if any(f"{key}_pae_r" in r for r in rs):
            for k in ("pae_r", "pae_mean", "true_ae_mean"):
                out[f"{group}_{key}_{k}"] = round(float(np.mean([r[f"{key}_{k}"] for r in rs])), 3)
    return out


def _fastest(fn, repeats: int = 2) -> float:
    """The fastest of ``repeats`` runs of ``fn()`` in seconds (the first run of a process also
    pays one-off costs: lazy imports, the library's digitised sequences, allocator warm-up)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def timing(model, db, threads: int, search: str = "jackhmmer", lengths=(100, 200, 400)):
    """Search + prediction with and without templates for library chains of about these lengths
    that have a homologue (the chain itself excluded from its templates); each time the fastest of
    two runs. The search (``search``) runs on ``threads`` threads as the model does."""
    rows = []
    for L in lengths:
        cand = [i for i in range(len(db)) if abs(int(db.lengths[i]) - L) <= 5]
        for i in cand[:50]:
            seq = db.sequence(i)
            pdb_id = db.names[i].split("_")[0]
            hits = usable_hits(search_templates(seq, db, cpus=threads), seq, db, query_pdb_id=pdb_id)
            if len(hits) < 4:
                continue  # the chains jackhmmer gives four templates, whatever the method timed
            if search != "jackhmmer":
                hits = usable_hits(search_templates(seq, db, method=search, cpus=threads), seq, db,
                                   query_pdb_id=pdb_id)
            t_search = _fastest(lambda: search_templates(seq, db, method=search, cpus=threads))
            feats = template_features(hits, db, len(seq))
            t_with = _fastest(lambda: predict_structure(model, seq, None, templates=feats))
            t_without = _fastest(lambda: predict_structure(model, seq, None))
            rows.append({"length": len(seq), "chain": db.names[i], "templates": len(hits[:4]),
                         "search_s": round(t_search, 2), "predict_with_s": round(t_with, 2),
                         "predict_without_s": round(t_without, 2),
                         "ratio_incl_search": round((t_search + t_with) / t_without, 2)})
            print(json.dumps(rows[-1]), flush=True)
            break
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--sets", nargs="*", default=["valid", "casp14"], choices=["valid", "casp14"],
                    help="sets to fold (none: only --timing)")
    ap.add_argument("--n-hit", type=int, default=30, help="validation chains with a usable template")
    ap.add_argument("--n-nohit", type=int, default=10, help="validation chains without one")
    ap.add_argument("--max-len", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timing", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--search", default="jackhmmer", choices=SEARCH_METHODS,
                    help="template search (predict's --template-search); the validation chains stay jackhmmer's")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, _ = load_default_model(args.weights)
    db = TemplateDB(LIBRARY)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"machine": f"{platform.processor() or platform.machine()}, {args.threads} thread(s)",
              "weights": args.weights or "shipped", "search": args.search}
    for name in args.sets:
        targets = validation_targets(db, args.n_hit, args.n_nohit, args.max_len, args.seed, args.search) \
            if name == "valid" else casp_targets(db, args.search)
        rows = run_set(model, db, targets, casp=name == "casp14")
        keys = sorted({k for r in rows for k in r if not k.startswith("_")}, key=lambda k: (k != "target", k))
        with open(args.out / f"templates_{name}.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
        report[name] = summary(rows)
        print(name, json.dumps(report[name]), flush=True)
    if args.timing:
        report["timing"] = timing(model, db, args.threads, args.search)
    (args.out / "templates_summary.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
