"""Relax many structure files: resumable, atomic, parallel, one failure never loses the batch.

Per input ``<name>``: ``DIR/<name>_relaxed.pdb`` (or ``.cif``), optionally Amber files, and a
record ``DIR/.records/<name>.json`` written last. A structure is complete when its record
exists; a rerun skips complete structures. ``relax_report.csv`` / ``.json`` gather all records.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Dict, List, Sequence

from af2struct.common.files import atomic_write_text
from af2struct.common.io import find_structure_files, load_structure, save_structure, structure_name
from refine.types import RelaxConfig

logger = logging.getLogger(__name__)

REPORT_COLUMNS = ["name", "status", "n_residues", "initial_energy", "final_energy", "energy_unit", "rmsd_heavy",
                  "violations_before", "violations_after", "violation_kinds_before", "violation_kinds_after",
                  "clashscore_before", "clashscore_after",
                  "outer_iterations", "attempts", "wall_time", "backend", "platform", "output", "notes", "error"]


def _record_path(out_dir: Path, name: str) -> Path:
    return out_dir / ".records" / f"{name}.json"


def relax_file(path: str, out_dir: str, config: RelaxConfig, fmt: str = "pdb", amber: bool = False) -> Dict:
    """Relax one file and write its outputs; returns its record (never raises for bad input)."""
    from refine import relax
    from refine.openmm_backend import relax_openmm

    out_dir = Path(out_dir)
    name = structure_name(path)
    record: Dict = {"name": name, "input": str(path)}
    try:
        protein = load_structure(path)
        if amber:
            if config.backend != "openmm":
                raise ValueError("--amber-out needs the openmm backend")
            result = relax_openmm(protein, config, amber_prefix=out_dir / f"{name}_relaxed")
        else:
            result = relax(protein, config)
        target = out_dir / f"{name}_relaxed.{fmt}"
        save_structure(result.protein, target)
        if result.pdb_with_hydrogens:
            atomic_write_text(out_dir / f"{name}_relaxed_with_h.pdb", result.pdb_with_hydrogens)
        # "ok" means clean: a relax that leaves violations says so (the structure is still written)
        status = "ok" if result.clean else "violations"
        record.update(result.as_row(), status=status, output=str(target))
    except Exception as exc:  # one structure's failure is reported, never lost in the batch
        record.update(status="error", error=f"{type(exc).__name__}: {exc}")
    atomic_write_text(_record_path(out_dir, name), json.dumps(record, indent=1, default=float))
    return record


def relax_batch(inputs: Sequence[str], out_dir: Path, config: RelaxConfig, jobs: int = 1, fmt: str = "pdb",
                amber: bool = False, retry_failed: bool = False, progress: bool = True) -> List[Dict]:
    """Relax every input (skipping complete ones) and write the reports; returns all records."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    files = find_structure_files(inputs)
    if not files:
        raise FileNotFoundError(f"no PDB/mmCIF inputs in {list(inputs)}")
    names = [structure_name(f) for f in files]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"several inputs share the name(s) {sorted(dup)}; outputs would collide")
    (out_dir / ".records").mkdir(parents=True, exist_ok=True)
    todo = []
    for f, n in zip(files, names):
        rec = _record_path(out_dir, n)
        if rec.exists():
            done = json.loads(rec.read_text())
            if done.get("status") == "ok" or not retry_failed:
                continue
        todo.append(f)
    if len(todo) < len(files):
        logger.info("resuming: %d of %d structures already done", len(files) - len(todo), len(files))
    bar = tqdm(total=len(todo), desc="relax", unit="structure", disable=not progress)
    if jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futs = [pool.submit(relax_file, str(f), str(out_dir), config, fmt, amber) for f in todo]
            for fut in as_completed(futs):
                _log(fut.result())
                bar.update()
    else:
        for f in todo:
            _log(relax_file(str(f), str(out_dir), config, fmt, amber))
            bar.update()
    bar.close()
    records = [json.loads(_record_path(out_dir, n).read_text()) for n in names]
    write_report(records, out_dir)
    return records


def _log(rec: Dict) -> None:
    if rec["status"] != "ok":
        logger.error("%s: %s", rec["name"], rec["error"])


def write_report(records: List[Dict], out_dir: Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=REPORT_COLUMNS, extrasaction="ignore")
    w.writeheader()
    for r in records:
        w.writerow({k: r.get(k, "") for k in REPORT_COLUMNS})
    atomic_write_text(out_dir / "relax_report.csv", buf.getvalue())
    atomic_write_text(out_dir / "relax_report.json", json.dumps(records, indent=1, default=float))
