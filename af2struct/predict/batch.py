"""Many targets: FASTA in, one folder per target out; shortest first, resumable, atomic.

The run is :func:`~af2struct.common.runner.run_batch`'s (the loop relax and evaluate use too);
targets run here, one after another, or on Ray (:mod:`af2struct.predict.ray_backend`). The
output folder is a :class:`~af2struct.common.runner.RunFolder`: one run at a time, each
target written in a temporary folder and moved into place when complete, then recorded with a
fingerprint of its input and options. A rerun skips targets finished with the same fingerprint and
redoes the rest (changed, failed, missing or unreadable), saying why; ``force`` redoes all. One
failing target is reported in ``summary.csv`` and the rest go on.
"""

from __future__ import annotations

import glob
import logging
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

from af2struct.common.files import write_csv
from af2struct.common.runner import Batch, Finished, RunFolder, run_batch
from af2struct.predict.options import PredictOptions
from af2struct.predict.pipeline import best_device, load_default_model
from af2struct.predict.ray_backend import predict_on_ray
from af2struct.predict.stages import predict_target
from af2struct.predict.targets import Target, resolve_inputs

logger = logging.getLogger(__name__)

SUMMARY = "summary.csv"
TIME_EXPONENT = 1.2  # a target's time grows about as length^1.2 (benchmarks/bench_throughput.py): the time left
SUMMARY_COLUMNS = ["name", "length", "status", "mean_plddt", "msa_depth", "n_templates", "t_msa", "t_templates",
                   "t_features", "t_trunk", "t_structure", "t_relax", "t_total", "relax_rmsd", "clashscore", "lddt_ca",
                   "gdt_ts", "tm_score", "native_error", "error"]


def predict_batch(targets: Sequence[Target], out_dir: Path, opts: PredictOptions, force: bool = False) -> List[Dict]:
    """Predict every target not already finished (shortest first) into ``out_dir``; writes
    ``summary.csv`` after each target and at the end, also when interrupted. Returns the rows."""
    order = sorted(targets, key=lambda t: (len(t.sequence), t.name))
    inputs = resolve_inputs(order, RunFolder(out_dir), opts)  # each target's files, caches and fingerprint, once
    by_name = {i.name: i for i in inputs}

    def execute(folder: RunFolder, todo: List[str]) -> Iterator[Finished]:
        if not todo:  # all finished: no model loaded, no Ray started
            return
        todo_inputs = [by_name[n] for n in todo]
        if force:  # --force searches again too: this run's own search caches of these targets go
            for t in todo_inputs:
                for kind, ext in (("msas", "a3m"), ("templates", "json")):
                    for f in folder.cache_path(kind).glob(f"{glob.escape(t.name)}.*.{ext}"):
                        f.unlink()
        if opts.run.use_ray:  # the parallel executor: the same steps on a cluster
            yield from predict_on_ray(todo_inputs, folder, opts)
            return
        device = best_device(opts.model.device)
        model, _ = load_default_model(opts.model.weights, device)
        for t in todo_inputs:
            yield predict_target(model, folder, t, opts, device)

    earlier: Dict[str, Dict] = {}  # other targets' records: read once per run (this run never writes them)

    def report(folder: RunFolder, records: Dict[str, Dict], final: bool) -> None:
        if "read" not in earlier:
            earlier["read"] = {n: r for n, r in folder.recorded().items()
                               if n not in by_name and folder.item_path(n).is_dir()}
        write_summary(order, records, folder.out, earlier["read"])

    batch = Batch(Path(out_dir), [(i.name, i.fingerprint) for i in inputs], [SUMMARY], report, "predict", "target",
                  report_every=0.0, cost={t.name: len(t.sequence) ** TIME_EXPONENT for t in order})
    records = run_batch(batch, execute, force, opts.outputs.progress)
    return [records.get(t.name, {"name": t.name, "status": "not run"}) for t in order]


def write_summary(order: Sequence[Target], rows: Dict[str, Dict], out_dir: Path,
                  earlier: Optional[Dict[str, Dict]] = None) -> None:
    """``summary.csv``: one row per target of this run in run order (targets not reached say
    ``not run``), then the targets earlier runs left in the folder (``earlier_run`` = 1), by name:
    every target folder in ``DIR`` has its row."""
    listed = [rows.get(t.name, {"name": t.name, "length": len(t.sequence), "status": "not run"}) for t in order]
    listed += [dict(r, name=n, earlier_run=1) for n, r in sorted((earlier or {}).items())]
    write_csv(Path(out_dir) / SUMMARY, SUMMARY_COLUMNS + ["earlier_run"], listed,
              lambda v: f"{v:.4f}" if isinstance(v, float) else v)
