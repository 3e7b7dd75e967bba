#!/usr/bin/env python
"""Quality of a checkpoint on the held-out CASP14 monomers (<= 400 observed residues), with two
baselines computed the same way: an ideal alpha-helix of the same length, and the MDS of the
model's own distogram without SE(3) refinement.

Full target sequences are predicted (CASP numbering: residue i is sequence[i-1]) and scored over
the observed residues by residue number. Contact precision: top-L/5 long-range (|i-j| >= 24)
Calpha-Calpha contacts (< 8 A) ranked by the distogram's P(d < 8 A). Confidence: Pearson r of
per-residue pLDDT against the true per-residue lDDT-CA (all residues of all targets pooled, and
the mean of the within-target r), and of PAE against the true aligned error of the written
model's backbone (:func:`af2struct.model.frames.aligned_error`; pairs pooled per target).

    python benchmarks/bench_model_quality.py [--weights af2struct/weights/default.pt] [--out DIR]
"""

import argparse
import csv
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from af2struct import Protein, load_structure
from af2struct.common import residue_constants as rc
from af2struct.data.msa import read_fasta
from af2struct.eval.metrics import score_model
from af2struct.model.frames import aligned_error
from af2struct.predict.pipeline import load_default_model, predict_structure

ROOT = Path(__file__).resolve().parents[1]
MONOMERS = ("T1024 T1025 T1026 T1027 T1029 T1030 T1031 T1032 T1033 T1035 T1038 T1039 T1040 T1041 T1042 T1043 "
            "T1049 T1054 T1056 T1064 T1067 T1073 T1074 T1080 T1082 T1090 T1099").split()


def ca_protein(aatype, ca, residue_index, plddt=None) -> Protein:
    n = len(aatype)
    pos = np.zeros((n, 37, 3), np.float32)
    mask = np.zeros((n, 37), np.float32)
    pos[:, rc.ca_index] = ca
    mask[:, rc.ca_index] = 1
    return Protein(aatype=aatype, atom_positions=pos, atom_mask=mask, residue_index=residue_index)


def ideal_helix(n: int) -> np.ndarray:
    t = np.arange(n)
    return np.stack([2.3 * np.cos(np.radians(100) * t), 2.3 * np.sin(np.radians(100) * t), 1.5 * t], -1)


def contact_precision(probs, edges, native: Protein, min_sep: int = 24) -> float:
    """Top-L/5 long-range contact precision; ``probs`` indexed by residue number - 1."""
    k8 = int(np.searchsorted(edges, 8.0))
    p = probs[..., :k8].sum(-1)
    idx = native.residue_index - 1
    ca = native.ca_positions
    d = np.linalg.norm(ca[:, None] - ca[None], axis=-1)
    i, j = np.triu_indices(len(idx), k=1)
    keep = np.abs(native.residue_index[i] - native.residue_index[j]) >= min_sep
    i, j = i[keep], j[keep]
    top = np.argsort(-p[idx[i], idx[j]])[: max(1, len(native) // 5)]
    return float((d[i[top], j[top]] < 8.0).mean())


def true_aligned_error(model: Protein, native: Protein):
    """``(positions i, positions j, error [n, n])`` over the native residues with N, CA and C,
    model indexed by residue number - 1."""
    ok = native.atom_mask[:, :3].all(-1) > 0
    idx = native.residue_index[ok] - 1
    pred_bb = torch.tensor(model.atom_positions[idx, :3], dtype=torch.float64)
    true_bb = torch.tensor(native.atom_positions[ok, :3], dtype=torch.float64)
    return idx, aligned_error(pred_bb, true_bb).numpy()


def ca_neighbours(ca: np.ndarray, cutoff: float = 8.0) -> float:
    """Mean number of other Calphas within ``cutoff`` (packing: a native chain's count)."""
    d = np.linalg.norm(ca[:, None] - ca[None], axis=-1)
    return float(((d < cutoff).sum(1) - 1).mean())


def pearson(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--casp-dir", type=Path, default=ROOT.parent / "shared/data/casp_eval")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--targets", nargs="*", default=MONOMERS)
    args = ap.parse_args()
    model, payload = load_default_model(args.weights)
    seqs = dict(read_fasta(args.casp_dir / "casp14_target_sequences.fasta"))
    rows, res_plddt, res_lddt = [], [], []
    t_all = time.perf_counter()
    for t in args.targets:
        native = load_structure(args.casp_dir / "casp14" / f"{t}.pdb")
        seq = seqs[t]
        t0 = time.perf_counter()
        pred = predict_structure(model, seq)
        dt = time.perf_counter() - t0
        ridx = np.arange(1, len(seq) + 1, dtype=np.int32)
        model_p = pred.protein.replace(residue_index=ridx)
        aat = rc.sequence_to_aatype(seq)
        s_model = score_model(model_p, native)
        s_mds = score_model(ca_protein(aat, pred.ca_mds, ridx), native)
        s_se3 = score_model(ca_protein(aat, pred.ca_se3, ridx), native)
        s_helix = score_model(ca_protein(aat, ideal_helix(len(seq)), ridx), native)
        row = {"target": t, "length": len(seq), "observed": len(native), "seconds": round(dt, 1),
               "mean_plddt": float(np.mean(pred.plddt)),
               "contact_p_L5": contact_precision(pred.distogram_probs, pred.bin_edges, native)}
        observed = native.select(native.ca_mask > 0)
        row["packing_ratio"] = (ca_neighbours(model_p.ca_positions[observed.residue_index - 1])
                                / ca_neighbours(observed.ca_positions))
        plddt_r = pred.plddt[s_model.residue_index - 1]
        res_plddt.append(plddt_r)
        res_lddt.append(s_model.per_residue_lddt_ca)
        row["plddt_r_within"] = pearson(plddt_r, s_model.per_residue_lddt_ca)
        if pred.pae is not None:
            idx, err = true_aligned_error(model_p, native)
            pae = pred.pae[np.ix_(idx, idx)]
            row["mean_pae"] = float(pae.mean())
            row["true_aligned_error"] = float(err.mean())
            row["pae_r"] = pearson(pae.ravel(), err.ravel())
        for tag, s in (("model", s_model), ("se3", s_se3), ("mds", s_mds), ("helix", s_helix)):
            row.update({f"{tag}_lddt_ca": s.lddt_ca, f"{tag}_tm": s.tm_score, f"{tag}_gdt_ts": s.gdt_ts})
        rows.append(row)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "model_quality_casp14.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    mean = lambda k: float(np.nanmean([r[k] for r in rows]))
    print(f"\nmachine: {platform.machine()} CPU; checkpoint step {payload['train_state'].get('step')}; "
          f"{len(rows)} targets; {time.perf_counter() - t_all:.0f} s")
    print("| method | lDDT-CA | TM-score | GDT_TS | top-L/5 long-range contact precision |")
    print("|---|---|---|---|---|")
    print(f"| af2struct (MDS + SE(3) + backbone cleanup) | {mean('model_lddt_ca'):.3f} | {mean('model_tm'):.3f} | "
          f"{mean('model_gdt_ts'):.1f} | {mean('contact_p_L5'):.3f} |")
    print(f"| MDS + SE(3), no cleanup | {mean('se3_lddt_ca'):.3f} | {mean('se3_tm'):.3f} | {mean('se3_gdt_ts'):.1f} | "
          "(same distogram) |")
    print(f"| MDS of the distogram, no SE(3) | {mean('mds_lddt_ca'):.3f} | {mean('mds_tm'):.3f} | {mean('mds_gdt_ts'):.1f} | (same distogram) |")
    print(f"| ideal alpha-helix | {mean('helix_lddt_ca'):.3f} | {mean('helix_tm'):.3f} | {mean('helix_gdt_ts'):.1f} | - |")
    r = np.corrcoef([x["mean_plddt"] for x in rows], [x["model_lddt_ca"] for x in rows])[0, 1]
    print(f"mean pLDDT {mean('mean_plddt'):.1f} vs true lDDT-CA x100 {100 * mean('model_lddt_ca'):.1f}; "
          f"Pearson r across targets {r:.2f}")
    print(f"packing: Calpha neighbours within 8 A, model / native, mean {mean('packing_ratio'):.2f}")
    pooled = pearson(np.concatenate(res_plddt), np.concatenate(res_lddt))
    print(f"per-residue pLDDT vs true lDDT-CA: Pearson r {pooled:.2f} over {sum(map(len, res_plddt))} residues "
          f"pooled; mean within-target r {mean('plddt_r_within'):.2f}")
    if "pae_r" in rows[0]:
        print(f"PAE vs true aligned error: mean within-target Pearson r {mean('pae_r'):.2f}; mean PAE "
              f"{mean('mean_pae'):.1f} A vs true {mean('true_aligned_error'):.1f} A")
    else:
        print("PAE: this checkpoint has no PAE head")


if __name__ == "__main__":
    main()
