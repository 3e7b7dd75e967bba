"""Many targets: FASTA in, one folder per target out; sorted by length, resumable, atomic.

A target's folder is written under a temporary name and renamed into place only when every
file is complete, with ``result.json`` inside; a rerun skips targets whose ``result.json``
says ``ok`` and retries the others. One failing target is reported in ``summary.csv`` and the
rest go on.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import logging
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

import numpy as np

from af2struct.common import residue_constants as rc
from af2struct.common.atomic import atomic_write_text
from af2struct.common.io import save_structure
from af2struct.data.msa import MsaError, read_fasta, read_msa

if TYPE_CHECKING:
    from refine.types import RelaxConfig

logger = logging.getLogger(__name__)

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
SUMMARY_COLUMNS = ["name", "length", "status", "mean_plddt", "msa_depth", "t_msa", "t_features", "t_trunk",
                   "t_structure", "t_relax", "t_total", "relax_rmsd", "clashscore", "lddt_ca", "gdt_ts", "tm_score",
                   "native_error", "error"]


class InputError(ValueError):
    """A problem with the run's input as a whole (no targets, duplicate or unsafe names)."""


@dataclasses.dataclass(frozen=True)
class Target:
    """One sequence to fold: ``name`` (safe as a folder name) and the FASTA header it came from."""

    name: str
    sequence: str
    description: str = ""


def safe_name(text: str) -> str:
    """``text`` made safe for a folder name: runs of other characters become ``_`` (at most 100)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:100].rstrip("._-")
    return name or "target"


def target_names(headers: List[str]) -> List[str]:
    """Folder names for FASTA headers, as the field reads them: the identifier (first word;
    ``sp|P69905|HBA_HUMAN`` -> ``sp_P69905_HBA_HUMAN``), or the whole header where identifiers
    repeat (``>my protein 1``, ``>my protein 2``). Raises :class:`InputError` for true duplicates."""
    ids = [safe_name(h.split()[0]) if h.split() else "target" for h in headers]
    names = [i if ids.count(i) == 1 else safe_name(h) for i, h in zip(ids, headers)]
    seen: Dict[str, List[str]] = {}
    for n, h in zip(names, headers):
        seen.setdefault(n, []).append(h)
    dup = {n: hs for n, hs in seen.items() if len(hs) > 1}
    if dup:
        shown = "; ".join(f"{n!r} from headers {hs[:3]}" for n, hs in list(dup.items())[:5])
        raise InputError(f"duplicate target names: {shown}")
    return names


@dataclasses.dataclass(frozen=True)
class PredictOptions:
    weights: Optional[str] = None
    device: str = "auto"
    num_recycles: Optional[int] = None
    seed: int = 0
    relax: str = "openmm"  # openmm | rosetta | none
    fmt: str = "pdb"  # pdb | cif (pdb is always written; cif in addition)
    max_length: int = 800
    msa: Optional[str] = None  # an .a3m/.sto file (one target) or a folder of <name>.a3m|.sto
    msa_db: Optional[str] = None  # protein FASTA to search with jackhmmer when a target has no MSA
    msa_iterations: int = 3
    msa_cpus: int = 0
    ray_address: Optional[str] = None  # "auto" or host:port of a running Ray cluster
    workers: int = 0  # > 0: start a local Ray with this many CPUs
    model_workers: int = 0  # model replicas on Ray (0: one per GPU, else one)
    native: Optional[str] = None  # a structure file (one target) or a folder of <name>.pdb|cif
    relax_config: Optional[RelaxConfig] = None  # relax settings (backend and seed come from relax / seed)
    plots: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if self.relax not in ("openmm", "rosetta", "none"):
            raise ValueError("relax must be openmm, rosetta or none")
        if self.fmt not in ("pdb", "cif"):
            raise ValueError("format must be pdb or cif")
        if self.ray_address and self.workers:
            raise ValueError("give --ray-address (an existing cluster) or --workers (a local Ray), not both")

    @property
    def use_ray(self) -> bool:
        return bool(self.ray_address or self.workers)


def read_targets(fasta: Optional[str] = None, sequence: Optional[str] = None, name: Optional[str] = None) -> List[Target]:
    """Targets from a FASTA file, or one ``sequence``/``name``; checks names (sequences are
    checked per target so one bad sequence does not stop the run)."""
    if (fasta is None) == (sequence is None):
        raise InputError("give a FASTA file or --sequence (not both)")
    if fasta is not None:
        path = Path(fasta)
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        if path.stat().st_size == 0:
            raise InputError(f"{path}: empty FASTA file")
        try:
            records = read_fasta(path, full_headers=True)
        except MsaError as exc:
            raise InputError(str(exc)) from None
        names = target_names([h for h, _ in records])
        return [Target(n, s, h) for n, (h, s) in zip(names, records)]
    label = name or "query"
    if not SAFE_NAME.match(label):
        raise InputError(f"--name must be a safe file name (letters, digits, . _ -; max 100): {label!r}")
    return [Target(label, sequence, label)]


def _msa_for(target: Target, opts: PredictOptions, n_targets: int):
    if not opts.msa:
        return None
    p = Path(opts.msa)
    if p.is_file():
        if n_targets > 1:
            raise InputError("--msa FILE works with one target; give a folder of <name>.a3m for many")
        return read_msa(p)
    if p.is_dir():
        for ext in (".a3m", ".sto", ".stockholm"):
            if (p / f"{target.name}{ext}").exists():
                return read_msa(p / f"{target.name}{ext}")
        return None
    raise InputError(f"{p}: no such MSA file or folder")


def _native_for(target: Target, opts: PredictOptions, n_targets: int):
    """The native structure to score ``target`` against, or ``None`` (with the reason logged).
    An unreadable native raises :class:`~af2struct.common.io.StructureError`."""
    from af2struct.common.io import STRUCTURE_SUFFIXES, load_structure

    if not opts.native:
        return None
    p = Path(opts.native)
    if p.is_file():
        if n_targets > 1:
            logger.warning("%s: --native FILE scores a single target; give a folder of <name>.pdb|cif for %d "
                           "targets", target.name, n_targets)
            return None
        return load_structure(p)
    if not p.is_dir():
        logger.warning("--native %s: no such file or folder; %s is not scored", p, target.name)
        return None
    for ext in STRUCTURE_SUFFIXES:
        if (p / f"{target.name}{ext}").exists():
            return load_structure(p / f"{target.name}{ext}")
    logger.warning("%s: no native %s/%s.pdb|cif; not scored", target.name, p, target.name)
    return None


def check_target(target: Target, opts: PredictOptions) -> np.ndarray:
    """The target's residue types; raises ``SequenceError`` for unknown letters or a sequence
    longer than ``opts.max_length``."""
    aatype = rc.sequence_to_aatype(target.sequence)
    if len(aatype) > opts.max_length:
        raise rc.SequenceError(f"{len(aatype)} residues exceed the maximum length {opts.max_length} (--max-length)")
    return aatype


def target_msa(target: Target, out_dir: Path, opts: PredictOptions, n_targets: int):
    """The target's MSA: a given file/folder first, else a jackhmmer search of ``--msa-db`` (kept
    in ``out_dir/msas/<name>.a3m`` so a rerun does not search again), else ``None``.
    Returns ``(msa, seconds spent searching)``."""
    msa = _msa_for(target, opts, n_targets)
    if msa is not None or not opts.msa_db:
        return msa, 0.0
    from af2struct.data.msa_search import search_msa

    t0 = time.perf_counter()
    msa = search_msa(target.sequence, opts.msa_db, Path(out_dir) / "msas" / f"{target.name}.a3m", name=target.name,
                     iterations=opts.msa_iterations, cpus=opts.msa_cpus)
    return msa, time.perf_counter() - t0


def relax_prediction(protein, opts: PredictOptions):
    """Relax with the chosen backend; ``None`` when ``opts.relax == "none"``."""
    if opts.relax == "none":
        return None
    from refine import RelaxConfig, relax

    return relax(protein, dataclasses.replace(opts.relax_config or RelaxConfig(), backend=opts.relax, seed=opts.seed))


def write_target(target: Target, out_dir: Path, opts: PredictOptions, pred, relaxed, timings: Dict[str, float],
                 n_targets: int, msa=None) -> Dict:
    """Write one target's folder (under a temporary name, renamed when complete); returns its
    summary row. ``pred`` is a :class:`~af2struct.predict.pipeline.Prediction`, ``relaxed`` a
    ``RelaxResult`` or ``None``."""
    final = out_dir / target.name
    partial = out_dir / f".{target.name}.partial"
    row: Dict = {"name": target.name, "length": len(pred.plddt)}
    try:
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        save_structure(pred.protein, partial / "unrelaxed.pdb", model_remarks(target, opts, None))
        final_protein = pred.protein
        if relaxed is not None:
            final_protein = relaxed.protein
            save_structure(relaxed.protein, partial / "relaxed.pdb", model_remarks(target, opts, relaxed))
            row.update(relax_rmsd=relaxed.rmsd_heavy, clashscore=relaxed.clashscore_after)
        if opts.fmt == "cif":  # ModelCIF, as the AlphaFold database serves models
            from af2struct.common.modelcif import to_modelcif_string

            for tag, prot, rel in (("unrelaxed", pred.protein, None), ("relaxed", final_protein, relaxed)):
                if tag == "relaxed" and relaxed is None:
                    continue
                atomic_write_text(partial / f"{tag}.cif", to_modelcif_string(
                    prot, target.name, pred.plddt, target.description, "; ".join(model_remarks(target, opts, rel)[2:])))
        buf = io.BytesIO()
        np.savez_compressed(buf, probabilities=pred.distogram_probs.astype(np.float16), bin_edges=pred.bin_edges,
                            sequence=np.array(target.sequence))
        (partial / "distogram.npz").write_bytes(buf.getvalue())
        if msa is not None:
            row["msa_depth"] = len(msa)
        conf = {"name": target.name, "description": target.description, "sequence": final_protein.sequence, "mean_plddt": float(np.mean(pred.plddt)),
                "plddt": [round(float(x), 2) for x in pred.plddt]}
        atomic_write_text(partial / "confidence.json", json.dumps(conf))
        if opts.plots:
            from af2struct.predict.plots import plot_distogram, plot_plddt

            plot_plddt(pred.plddt, final_protein.residue_index, partial / "pLDDT.png", target.name)
            plot_distogram(pred.distogram_probs, pred.bin_edges, partial / "distogram.png", target.name,
                           final_protein.residue_index)
        row.update(score_against_native(target, final_protein, opts, n_targets))
        atomic_write_text(partial / "timings.json", json.dumps(timings, indent=1))
        row.update(status="ok", mean_plddt=conf["mean_plddt"],
                   **{f"t_{k}": round(v, 3) for k, v in timings.items()})
        atomic_write_text(partial / "result.json", json.dumps(row, indent=1, default=float))
        if final.exists():
            shutil.rmtree(final)
        partial.rename(final)
    except Exception as exc:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
        return error_row(target, exc, timings.get("total", 0.0))
    return row


@functools.lru_cache(maxsize=8)
def weights_label(weights: Optional[str]) -> str:
    """The checkpoint that made a model: its file name and the first 12 hex digits of its SHA-256."""
    import hashlib

    from af2struct.predict.pipeline import DEFAULT_WEIGHTS

    path = Path(weights) if weights else DEFAULT_WEIGHTS
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.is_file() else "unknown"
    return f"{'shipped ' if not weights else ''}{path.name} (sha256 {digest})"


def model_remarks(target: Target, opts: PredictOptions, relaxed) -> List[str]:
    """What a model file says about itself (PDB ``REMARK 999`` lines)."""
    import af2struct

    out = [f"af2struct {af2struct.__version__} model of {target.name}",
           "B-factor column: per-residue pLDDT (0-100, higher = more confident)",
           f"weights: {weights_label(opts.weights)}; seed {opts.seed}"]
    if relaxed is None:
        out.append("not relaxed")
    else:
        out.append(f"relaxed: {relaxed.backend} ({relaxed.violations_after} violations left, heavy-atom RMSD "
                   f"{relaxed.rmsd_heavy:.2f} A to the unrelaxed model)")
    return out


def score_against_native(target: Target, protein, opts: PredictOptions, n_targets: int) -> Dict:
    """lDDT-CA, GDT_TS and TM-score against the target's native, if one was given. A native that
    cannot be read or matched costs only the scores (noted in ``native_error``), never the
    finished prediction."""
    try:
        native = _native_for(target, opts, n_targets)
        if native is None:
            return {}
        from af2struct.eval.metrics import score_model

        s = score_model(protein, native, align=True)
    except Exception as exc:  # noqa: BLE001 - reported in the row; the prediction stands
        logger.warning("%s: not scored against the native: %s", target.name, exc)
        return {"native_error": f"{type(exc).__name__}: {exc}"}
    return {"lddt_ca": s.lddt_ca, "gdt_ts": s.gdt_ts, "tm_score": s.tm_score}


def error_row(target: Target, exc: BaseException, seconds: float = 0.0) -> Dict:
    """The summary row of a failed target (and the error logged)."""
    msg = f"{type(exc).__name__}: {exc}"
    logger.error("%s: %s", target.name, msg)
    return {"name": target.name, "length": len("".join(target.sequence.split())), "status": "error",
            "error": msg, "t_total": round(seconds, 3)}


def predict_target(model, target: Target, out_dir: Path, opts: PredictOptions, device: str, n_targets: int) -> Dict:
    """Predict (and relax, score) one target into ``out_dir/<name>/``; returns its summary row."""
    from af2struct.predict.pipeline import predict_structure

    t0 = time.perf_counter()
    try:
        check_target(target, opts)
        msa, t_msa = target_msa(target, out_dir, opts, n_targets)
        pred = predict_structure(model, target.sequence, msa, opts.num_recycles, opts.seed, device)
        timings = ({"msa": t_msa} if opts.msa_db else {}) | dict(pred.timings)
        tr = time.perf_counter()
        relaxed = relax_prediction(pred.protein, opts)
        if relaxed is not None:
            timings["relax"] = time.perf_counter() - tr
    except Exception as exc:  # one target's failure never stops the batch
        return error_row(target, exc, time.perf_counter() - t0)
    timings["total"] = time.perf_counter() - t0
    return write_target(target, out_dir, opts, pred, relaxed, timings, n_targets, msa)


def _done(out_dir: Path, name: str) -> Optional[Dict]:
    path = out_dir / name / "result.json"
    if path.exists():
        rec = json.loads(path.read_text())
        if rec.get("status") == "ok":
            return rec
    return None


def predict_batch(targets: Sequence[Target], out_dir: Path, opts: PredictOptions) -> List[Dict]:
    """Predict every target (shortest first), skipping finished ones; writes ``summary.csv``."""
    from tqdm import tqdm

    from af2struct.predict.pipeline import best_device, load_default_model

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    order = sorted(targets, key=lambda t: (len(t.sequence), t.name))
    rows: Dict[str, Dict] = {}
    todo = []
    for t in order:
        rec = _done(out_dir, t.name)
        if rec is not None:
            rows[t.name] = rec
        else:
            todo.append(t)
    if rows:
        logger.info("resuming: %d of %d targets already finished", len(rows), len(order))
    if todo and opts.use_ray:
        from af2struct.predict.ray_backend import predict_on_ray

        for row in predict_on_ray(todo, out_dir, opts, len(order)):
            rows[row["name"]] = row
            write_summary([rows[x.name] for x in order if x.name in rows], out_dir)
    elif todo:
        device = best_device(opts.device)
        model, _ = load_default_model(opts.weights, device)
        for t in tqdm(todo, desc="predict", unit="target", disable=not opts.progress):
            rows[t.name] = predict_target(model, t, out_dir, opts, device, len(order))
            write_summary([rows[x.name] for x in order if x.name in rows], out_dir)
    records = [rows[t.name] for t in order]
    write_summary(records, out_dir)
    return records


def write_summary(records: List[Dict], out_dir: Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
    w.writeheader()
    for r in records:
        w.writerow({k: (f"{r[k]:.4f}" if isinstance(r.get(k), float) else r.get(k, "")) for k in SUMMARY_COLUMNS})
    atomic_write_text(out_dir / "summary.csv", buf.getvalue())
