"""Many targets: FASTA in, one folder per target out; shortest first, resumable, atomic.

The output folder is a :class:`~af2struct.common.runner.RunFolder`: one run at a time, each
target written in a temporary folder and moved into place when complete, then recorded with a
fingerprint of its input and options. A rerun skips targets finished with the same fingerprint and
redoes the rest (changed, failed, missing or unreadable), saying why; ``force`` redoes all. One
failing target is reported in ``summary.csv`` and the rest go on.
"""

from __future__ import annotations

import csv
import glob
import io
import logging
from pathlib import Path
from typing import Dict, List, Sequence

from tqdm import tqdm

from af2struct.common.files import atomic_write_text, csv_cell
from af2struct.common.runner import RunFolder, plan
from af2struct.predict.pipeline import best_device, load_default_model
from af2struct.predict.ray_backend import predict_on_ray
from af2struct.predict.targets import PredictOptions, Target, predict_target, resolve_inputs

logger = logging.getLogger(__name__)

SUMMARY = "summary.csv"
SUMMARY_COLUMNS = ["name", "length", "status", "mean_plddt", "msa_depth", "t_msa", "t_features", "t_trunk",
                   "t_structure", "t_relax", "t_total", "relax_rmsd", "clashscore", "lddt_ca", "gdt_ts", "tm_score",
                   "native_error", "error"]


def predict_batch(targets: Sequence[Target], out_dir: Path, opts: PredictOptions, force: bool = False) -> List[Dict]:
    """Predict every target not already finished (shortest first) into ``out_dir``; writes
    ``summary.csv`` after each target and at the end, also when interrupted. Returns the rows."""
    order = sorted(targets, key=lambda t: (len(t.sequence), t.name))
    with RunFolder(out_dir, reserved=[SUMMARY]) as folder:
        inputs = resolve_inputs(order, folder, opts)  # each target's files, caches and fingerprint, once
        rows, todo_names = plan(folder, [(i.name, i.fingerprint) for i in inputs], force, "targets")
        redo = set(todo_names)
        todo = [i for i in inputs if i.name in redo]
        if force:  # --force searches again too: this run's own search caches of these targets go
            for t in todo:
                for kind, ext in (("msas", "a3m"), ("templates", "json")):
                    for f in folder.cache_path(kind).glob(f"{glob.escape(t.name)}.*.{ext}"):
                        f.unlink()
        try:
            if todo and opts.use_ray:
                for row in predict_on_ray(todo, folder, opts):
                    rows[row["name"]] = row
                    write_summary(order, rows, folder.out)
            elif todo:
                device = best_device(opts.device)
                model, _ = load_default_model(opts.weights, device)
                for t in tqdm(todo, desc="predict", unit="target", disable=not opts.progress):
                    rows[t.name] = predict_target(model, folder, t, opts, device)
                    write_summary(order, rows, folder.out)
        finally:
            write_summary(order, rows, folder.out)
    return [rows.get(t.name, {"name": t.name, "status": "not run"}) for t in order]


def write_summary(order: Sequence[Target], rows: Dict[str, Dict], out_dir: Path) -> None:
    """``summary.csv``: one row per target in run order; targets not reached say ``not run``."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
    w.writeheader()
    for t in order:
        r = rows.get(t.name, {"name": t.name, "length": len(t.sequence), "status": "not run"})
        w.writerow({k: csv_cell(f"{r[k]:.4f}" if isinstance(r.get(k), float) else r.get(k, "")) for k in SUMMARY_COLUMNS})
    atomic_write_text(Path(out_dir) / SUMMARY, buf.getvalue())
