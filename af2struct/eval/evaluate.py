"""Batch CASP-style evaluation: match models to natives, score them in parallel, write reports.

Used by ``scripts/evaluate.py``; see :func:`evaluate` for the outputs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from af2struct.common.files import atomic_path, atomic_write_text, write_csv
from af2struct.common.io import STRUCTURE_SUFFIXES, is_structure_file, load_structure, structure_name
from af2struct.common.protein import Protein
from af2struct.common.runner import Batch, Finished, RunFolder, file_digest, fingerprint, run_batch
from af2struct.common.workers import run_items
from af2struct.data.sidechainnet import entry_to_protein, load_dataset, split_names
from af2struct.eval.metrics import score_model

logger = logging.getLogger(__name__)

COLUMNS = ["target", "model", "n_residues", "sequence_identity", "lddt_ca", "lddt", "gdt_ts", "gdt_ha", "tm_score",
           "rmsd_ca", "rmsd_all", "clashscore", "bond_violations"]
REPORTS = ("scores.csv", "scores.json", "summary.md", "distributions.png", "per_residue_lddt")
METRICS = ["lddt_ca", "lddt", "gdt_ts", "gdt_ha", "tm_score", "rmsd_ca", "rmsd_all", "clashscore",
           "bond_violations"]


class EvaluationError(ValueError):
    """Inputs that cannot be evaluated at all (no natives, no models, nothing matched)."""


@dataclasses.dataclass(frozen=True)
class Job:
    target: str
    model: str
    pred_path: str
    native: Union[str, Protein]  # a file path, or a Protein (from a SidechainNet pickle)


def _natural_key(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def discover_natives(native: Union[str, Path], split: Optional[str] = None,
                     trust_pickle: bool = False) -> Dict[str, Union[str, Protein]]:
    """``{target: path or Protein}`` from a structure file, a folder, or a SidechainNet pickle
    (read only with ``trust_pickle``: unpickling runs whatever code the file holds)."""
    native = Path(native)
    if native.is_dir():
        out = {structure_name(p): str(p) for p in sorted(native.iterdir()) if p.is_file() and is_structure_file(p)}
    elif native.is_file() and native.suffix == ".pkl":
        if not trust_pickle:
            raise EvaluationError(f"{native}: a SidechainNet pickle can run arbitrary code when read; pass "
                                  "--trust-pickle if you made it or trust where it came from")
        data = load_dataset(native)
        splits = [split] if split else split_names(data)
        out = {}
        for s in splits:
            if s not in data:
                raise EvaluationError(f"{native}: no split {s!r}; splits: {split_names(data)}")
            for i, pid in enumerate(data[s]["ids"]):
                out[str(pid)] = entry_to_protein(data[s], i)
    elif native.is_file():
        out = {structure_name(native): str(native)}
    else:
        raise EvaluationError(f"{native}: no such file or folder")
    if not out:
        raise EvaluationError(f"{native}: no native structures found")
    return out


def _target_for(stem: str, targets: Sequence[str]) -> Optional[str]:
    best = None
    for t in targets:
        if stem == t or (stem.startswith(t) and stem[len(t)] in "_-."):
            if best is None or len(t) > len(best):
                best = t
    return best


def _same_model(a: Path, b: Path) -> bool:
    """Two files hold the same model: the same residues and atoms at the same positions (0.001 A)."""
    try:
        x, y = load_structure(a), load_structure(b)
    except Exception:  # noqa: BLE001 - an unreadable file is scored (and reported) on its own
        return False
    return (len(x) == len(y) and np.array_equal(x.aatype, y.aatype) and np.array_equal(x.atom_mask, y.atom_mask)
            and bool(np.allclose(x.atom_positions, y.atom_positions, atol=1e-3)))


def _one_file_per_model(paths) -> List[Path]:
    """``paths`` in natural order, a model written in two formats (``relaxed.pdb`` and
    ``relaxed.cif`` holding the same atoms, as ``predict --format cif`` writes them) kept once, in
    its first format in ``STRUCTURE_SUFFIXES`` order (PDB). Files of one name holding different
    models stay two models."""
    paths = sorted(paths, key=lambda p: _natural_key(p.name))
    files = [p for p in paths if p.is_file() and is_structure_file(p)]
    rank = {p: next(k for k, suf in enumerate(STRUCTURE_SUFFIXES) if p.name.lower().endswith(suf)) for p in files}
    groups: Dict[str, List[Path]] = {}
    for p in files:
        groups.setdefault(structure_name(p), []).append(p)
    dropped = set()
    for group in groups.values():
        group.sort(key=lambda p: rank[p])
        for p in group[1:]:
            if _same_model(group[0], p):
                logger.info("%s and %s hold the same model in two formats: scored once", group[0].name, p.name)
                dropped.add(p)
    return [p for p in paths if p not in dropped]


def discover_jobs(pred: Union[str, Path], natives: Dict[str, Union[str, Protein]]) -> Tuple[List[Job], List[str]]:
    """Pair model files with natives; returns jobs and the model files that matched no target.

    PRED may be one file (scored against the only native, or the native its name starts with),
    a folder of ``<target>*.pdb|cif`` files (``T1024.pdb``, ``T1024_model_1.pdb``, ...), or a
    folder of ``<target>/`` subfolders holding that target's models.
    """
    pred = Path(pred)
    targets = list(natives)
    jobs, unmatched = [], []
    if pred.is_file():
        t = targets[0] if len(targets) == 1 else _target_for(structure_name(pred), targets)
        if t is None:
            raise EvaluationError(f"{pred}: no native matches its name among {len(targets)} targets")
        return [Job(t, structure_name(pred), str(pred), natives[t])], []
    if not pred.is_dir():
        raise EvaluationError(f"{pred}: no such file or folder")
    for entry in _one_file_per_model(pred.iterdir()):
        if entry.is_dir() and entry.name in natives:
            for f in _one_file_per_model(entry.iterdir()):
                if f.is_file() and is_structure_file(f):
                    jobs.append(Job(entry.name, structure_name(f), str(f), natives[entry.name]))
        elif entry.is_file() and is_structure_file(entry):
            t = _target_for(structure_name(entry), targets)
            if t is None:
                unmatched.append(str(entry))
            else:
                jobs.append(Job(t, structure_name(entry), str(entry), natives[t]))
    return jobs, unmatched


def score_job(job: Job, align: Optional[bool] = None) -> Dict[str, object]:
    """Score one model; never raises for bad input: failures come back as ``status: error``."""
    row: Dict[str, object] = {"target": job.target, "model": job.model, "pred_path": job.pred_path}
    try:
        native = job.native if isinstance(job.native, Protein) else load_structure(job.native)
        model = load_structure(job.pred_path)
        s = score_model(model, native, align=align)
    except (ValueError, OSError) as exc:  # StructureError, ProteinError, CorrespondenceError, ...
        row.update(status="error", error=str(exc))
        return row
    row.update(s.as_row())
    row.update(
        status="ok",
        per_residue_lddt_ca=[None if math.isnan(v) else round(float(v), 4) for v in s.per_residue_lddt_ca],
        residue_index=s.residue_index.tolist(),
        unmatched_native=s.unmatched_native,
        unmatched_model=s.unmatched_model,
    )
    if s.unmatched_model:
        logger.info("%s/%s: %d model residues have no native counterpart", job.target, job.model,
                    len(s.unmatched_model))
    return row


def _stats(rows: List[dict], metric: str) -> Tuple[float, float]:
    vals = [r[metric] for r in rows if r.get(metric) is not None and not _isnan(r[metric])]
    if not vals:
        return float("nan"), float("nan")
    return float(np.mean(vals)), float(np.median(vals))


def _isnan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def summarize(rows: List[dict]) -> Dict[str, object]:
    """CASP summaries: all models, first model per target, best model per target (by GDT_TS)."""
    ok = [r for r in rows if r["status"] == "ok"]
    by_target: Dict[str, List[dict]] = {}
    for r in ok:
        by_target.setdefault(r["target"], []).append(r)
    first = [sorted(v, key=lambda r: _natural_key(r["model"]))[0] for v in by_target.values()]
    best = [max(v, key=lambda r: r["gdt_ts"]) for v in by_target.values()]
    groups = {"all models": ok, "first model": first, "best model": best}
    return {
        "n_models": len(rows),
        "n_scored": len(ok),
        "n_targets": len(by_target),
        "groups": {g: {m: dict(zip(("mean", "median"), _stats(rs, m))) for m in METRICS} for g, rs in groups.items()},
        "failures": [{"target": r["target"], "model": r["model"], "error": r["error"]}
                     for r in rows if r["status"] != "ok"],
    }


def _fmt(v) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def _json_safe(value):
    """``value`` with numpy scalars as Python numbers and NaN/inf as ``None`` (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def write_reports(rows: List[dict], summary: Dict[str, object], out: Path, plots: bool = True) -> None:
    """scores.csv, scores.json, summary.md and PNG plots in ``out`` (each written atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "scores.csv", COLUMNS + ["status", "error"], rows, _fmt)
    atomic_write_text(out / "scores.json", json.dumps(_json_safe({"summary": summary, "models": rows}), indent=1,
                                                      allow_nan=False))
    lines = [
        "# Evaluation summary", "",
        f"{summary['n_scored']} of {summary['n_models']} models scored over {summary['n_targets']} targets.", "",
        "| group | " + " | ".join(METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
    ]
    for g, stats in summary["groups"].items():
        for k in ("mean", "median"):
            lines.append(f"| {g} ({k}) | " + " | ".join(_fmt(stats[m][k]) for m in METRICS) + " |")
    if summary["failures"]:
        lines += ["", "## Failures", ""]
        lines += [f"- {f['target']} / {f['model']}: {f['error']}" for f in summary["failures"]]
    atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")
    if plots:
        _plots(rows, out)


def _plots(rows: List[dict], out: Path) -> None:
    import matplotlib  # lazy: when a plot is drawn, after the run set MPLCONFIGDIR (read on import)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after the Agg backend is chosen

    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return
    plot_dir = out / "per_residue_lddt"
    plot_dir.mkdir(exist_ok=True)
    by_target: Dict[str, List[dict]] = {}
    for r in ok:
        by_target.setdefault(r["target"], []).append(r)
    # the plots of an earlier evaluation into this folder whose targets this one no longer scores
    # (the folder is this command's report): gone, so the pictures match scores.csv
    for old in plot_dir.glob("*.png"):
        if old.stem not in by_target:
            old.unlink()
    for target, rs in by_target.items():
        fig, ax = plt.subplots(figsize=(8, 3))
        for r in rs:
            y = np.array([np.nan if v is None else v for v in r["per_residue_lddt_ca"]], float)
            ax.plot(r["residue_index"], 100 * y, lw=1, label=r["model"])
        ax.set(xlabel="residue number", ylabel="per-residue lDDT-CA (0-100)", ylim=(0, 100), title=target)
        if len(rs) <= 10:
            ax.legend(fontsize=7)
        fig.tight_layout()
        with atomic_path(plot_dir / f"{target}.png") as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    axes[0].hist([r["gdt_ts"] for r in ok], bins=20, range=(0, 100), color="tab:blue")
    axes[0].set(xlabel="GDT_TS", ylabel="models")
    axes[1].hist([r["tm_score"] for r in ok], bins=20, range=(0, 1), color="tab:orange")
    axes[1].set(xlabel="TM-score")
    fig.suptitle(f"{len(ok)} model(s) scored against their natives: GDT_TS and TM-score")
    fig.tight_layout()
    with atomic_path(out / "distributions.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def evaluate(
    pred: Union[str, Path], native: Union[str, Path], out: Union[str, Path], align: Optional[bool] = None,
    jobs: int = 1, native_split: Optional[str] = None, plots: bool = True, progress: bool = True,
    trust_pickle: bool = False, force: bool = False,
) -> Dict[str, object]:
    """Score every model in ``pred`` against ``native`` and write the reports to ``out``.

    Resumable as predict and relax are: each model's scores are recorded in ``out`` with a
    fingerprint of its file, its native and ``align``; a rerun scores only what is new, changed or
    failed (``force``: everything). The reports are written however the run stops, a model it did
    not reach listed as ``not run``. Returns the summary dict (also in ``scores.json``). Failing
    models are recorded, not raised.
    """
    natives = discover_natives(native, native_split, trust_pickle)
    job_list, unmatched = discover_jobs(pred, natives)
    for u in unmatched:
        logger.warning("%s: no native target matches this file name; skipped", u)
    if not job_list:
        raise EvaluationError(f"no models in {pred} match a native in {native}")
    names = _record_names(job_list)
    used = {j.target for j in job_list}
    native_keys = {t: _native_key(n) for t, n in natives.items() if t in used}
    fps = {n: fingerprint([j.target, j.model, file_digest(j.pred_path), native_keys[j.target], align])
           for n, j in zip(names, job_list)}
    summary: Dict[str, object] = {}

    def execute(folder: RunFolder, todo: List[str]):
        redo = set(todo)
        # biggest models first (file size as the proxy), so a long chain does not start last
        order = [k for k in range(len(job_list)) if names[k] in redo]
        if jobs > 1:
            order.sort(key=lambda k: -_size(job_list[k].pred_path))
        for i, row in run_items(score_job, [(job_list[k], align) for k in order], jobs):
            j = job_list[order[i]]
            if isinstance(row, Exception):  # the worker died with this model
                row = {"target": j.target, "model": j.model, "pred_path": j.pred_path, "status": "error",
                       "error": str(row)}
            if row["status"] != "ok":
                logger.error("%s / %s: %s", row["target"], row["model"], row["error"])
            yield Finished(names[order[i]], row)

    def report(folder: RunFolder, records: Dict[str, Dict], final: bool) -> None:
        rows = [_row(records.get(n), j) for n, j in zip(names, job_list)]
        summary.clear()
        summary.update(summarize(rows), unmatched_files=unmatched)
        write_reports(rows, summary, folder.out, plots=plots and final)

    batch = Batch(Path(out), list(fps.items()), REPORTS, report, "scoring", "model")
    run_batch(batch, execute, force, progress)
    return summary


def _record_names(jobs: Sequence[Job]) -> List[str]:
    """The run records' names of the (target, model) pairs: ``<target>__<model>`` where that is a
    safe file name used once; else made safe and made unique with a hash of the model's path
    (``T1082/m 1.pdb`` and ``T1082/m_1.pdb``, or ``m.pdb`` beside ``m.cif``, never share a record)."""
    raw = [f"{j.target}__{j.model}" for j in jobs]
    safe = [re.sub(r"[^A-Za-z0-9._-]", "_", r) for r in raw]
    return [s if s == r and safe.count(s) == 1 else f"{s}-{hashlib.sha256(j.pred_path.encode()).hexdigest()[:8]}"
            for r, s, j in zip(raw, safe, jobs)]


def _native_key(native: Union[str, Protein]) -> str:
    """A native's identity for the models' fingerprints (a model's record also holds its own file,
    the target and ``align``): the file's content, or the pickle entry's residues and coordinates.
    Computed once per target, however many models it has."""
    if isinstance(native, Protein):
        return fingerprint([native.aatype.tolist(), np.round(native.atom_positions, 3).tolist(),
                            native.atom_mask.tolist(), native.residue_index.tolist()])
    return file_digest(native)


def _row(record: Optional[dict], job: Job) -> dict:
    """A report row: the model's record without the run's bookkeeping, or ``not run``."""
    if record is None:
        return {"target": job.target, "model": job.model, "pred_path": job.pred_path, "status": "not run",
                "error": "not run: the run stopped before this model"}
    return {k: v for k, v in record.items() if k not in ("fingerprint", "files")}
