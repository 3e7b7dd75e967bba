"""Relax many structure files: resumable, atomic, parallel, one failure never loses the batch.

Per input ``<name>``: ``DIR/<name>_relaxed.pdb`` (or ``.cif``), optionally Amber files. The output
folder is a :class:`~af2struct.common.runner.RunFolder`: one run at a time; a structure is finished
when its record (written last) carries the fingerprint of the same input file content and relax
settings and its outputs are all there; a rerun redoes everything else and says why (``force``:
all). With ``jobs > 1`` structures are relaxed in worker processes and a worker that dies costs
only its structure. ``relax_report.csv`` / ``.json`` gather all records and are always written.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Dict, List, Sequence

from af2struct.common.files import atomic_write_text, write_csv
from af2struct.common.io import find_structure_files, load_structure, read_annotations, save_structure, structure_name
from af2struct.common.modelcif import to_modelcif_string
from af2struct.common.runner import Batch, Finished, RunFolder, file_digest, fingerprint, run_batch
from af2struct.common.workers import run_items
from refine import relax
from refine.openmm_backend import AmberRelaxation
from refine.types import RelaxConfig

logger = logging.getLogger(__name__)

REPORTS = ("relax_report.csv", "relax_report.json")
REPORT_COLUMNS = ["name", "status", "n_residues", "initial_energy", "final_energy", "energy_unit", "rmsd_heavy",
                  "violations_before", "violations_after", "violation_kinds_before", "violation_kinds_after",
                  "clashscore_before", "clashscore_after",
                  "outer_iterations", "attempts", "wall_time", "backend", "platform", "output", "notes", "error"]


def write_relaxed(result, source, target: Path) -> None:
    """Write the relaxed model keeping what its input said about itself (``REMARK 999`` lines: the
    B-factors are pLDDT, which weights made it, its templates), its "not relaxed" note replaced by
    the relax record; a ModelCIF input with QA metrics gives a ModelCIF output with them."""
    notes, modelcif = read_annotations(source)
    notes = [n for n in notes if not n.startswith(("not relaxed", "relaxed:"))] + [result.remark()]
    if target.suffix == ".cif" and modelcif:
        atomic_write_text(target, to_modelcif_string(result.protein, structure_name(target), None,
                                                     model_details="\n".join(notes)))
    else:
        save_structure(result.protein, target, notes)


def relax_file(path: str, prefix: str, config: RelaxConfig, fmt: str = "pdb", amber: bool = False) -> Dict:
    """Relax one file into ``<prefix>_relaxed.<fmt>`` (and Amber files); returns its record with
    the output ``files`` (never raises for bad input)."""
    record: Dict = {"name": structure_name(path), "input": str(path)}
    try:
        protein = load_structure(path)
        if amber:
            if config.backend != "openmm":
                raise ValueError("--amber-out needs the openmm backend")
            result = AmberRelaxation(config).process(protein, amber_prefix=Path(f"{prefix}_relaxed"))
        else:
            result = relax(protein, config)
        target = Path(f"{prefix}_relaxed.{fmt}")
        write_relaxed(result, path, target)
        files = [target] + ([Path(f"{prefix}_relaxed.{x}") for x in ("prmtop", "inpcrd")] if amber else [])
        if result.pdb_with_hydrogens:
            atomic_write_text(Path(f"{prefix}_relaxed_with_h.pdb"), result.pdb_with_hydrogens)
            files.append(Path(f"{prefix}_relaxed_with_h.pdb"))
        # "ok" means clean: a relax that leaves violations says so (the structure is still written)
        status = "ok" if result.clean else "violations"
        record.update(result.as_row(), status=status, output=str(target), files=[str(f) for f in files])
    except Exception as exc:  # one structure's failure is reported, never lost in the batch
        record.update(status="error", error=f"{type(exc).__name__}: {exc}")
    return record


def _is_own_output(path, out_dir: Path) -> bool:
    """A relax output (``*_relaxed.<ext>``, ``*_relaxed_with_h.pdb``) lying in the output folder."""
    p = Path(path)
    try:
        inside = p.resolve().parent == Path(out_dir).resolve()
    except OSError:
        return False
    stem = structure_name(p)
    return inside and (stem.endswith("_relaxed") or stem.endswith("_relaxed_with_h"))


def _set_apart(out: Path, owned, rec: Dict) -> None:
    """A failed rerun's earlier outputs (the files its record listed) are renamed ``<file>.previous``:
    kept, but never beside the error as if they were this run's result."""
    moved = []
    for rel in sorted(owned):
        f = out / rel
        if f.is_file():
            f.rename(f.with_name(f.name + ".previous"))
            moved.append(f.name + ".previous")
    if moved:
        rec["error"] = rec.get("error", "") + f" (earlier output kept as {', '.join(moved)})"


def item_names(files: Sequence) -> List[str]:
    """Output names of the inputs: the file name without extensions; where that repeats
    (``A/unrelaxed.pdb``, ``B/unrelaxed.pdb``, as predict writes them), the parent folder's name
    joined to it (``A_unrelaxed``, ``B_unrelaxed``), said in the log. Still repeated: an error."""
    stems = [structure_name(f) for f in files]
    names = [s if stems.count(s) == 1 else f"{Path(f).resolve().parent.name}_{s}" for f, s in zip(files, stems)]
    renamed = [(f, n) for f, s, n in zip(files, stems, names) if n != s]
    if renamed:
        logger.info("inputs sharing a file name are named after their folders: %s",
                    ", ".join(f"{f} -> {n}" for f, n in renamed[:10]) + (" ..." if len(renamed) > 10 else ""))
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"several inputs share the name(s) {dup} even with their folder's name; outputs would collide")
    return names


def relax_batch(inputs: Sequence[str], out_dir: Path, config: RelaxConfig, jobs: int = 1, fmt: str = "pdb",
                amber: bool = False, force: bool = False, progress: bool = True) -> List[Dict]:
    """Relax every input not already finished and write the reports; returns all records."""
    files = find_structure_files(inputs)
    ours = [f for f in files if _is_own_output(f, out_dir)]
    if ours:  # outputs are never inputs: a rerun into its own input folder does not relax them again
        logger.info("skipping %d earlier relax output(s) in %s (e.g. %s)", len(ours), out_dir, Path(ours[0]).name)
        files = [f for f in files if f not in ours]
    if not files:
        raise FileNotFoundError(f"no PDB/mmCIF inputs in {list(inputs)}")
    names = item_names(files)
    settings = {"config": dataclasses.asdict(config), "format": fmt, "amber": amber}
    by_name = dict(zip(names, files))

    def execute(folder: RunFolder, todo: List[str]):
        previous = {n: folder.forget(n) for n in todo}
        args = [(str(by_name[n]), str(folder.item_path(n)), config, fmt, amber) for n in todo]
        for i, rec in run_items(relax_file, args, jobs):
            n = todo[i]
            if isinstance(rec, Exception):  # the worker died with the structure
                rec = {"name": n, "input": str(by_name[n]), "status": "error", "error": str(rec)}
            if rec["status"] == "error":
                logger.error("%s: %s", n, rec["error"])
                _set_apart(folder.out, previous[n], rec)
            elif rec["status"] == "violations":
                logger.warning("%s: relaxed with violations left (%s)", n, rec.get("violation_kinds_after"))
            yield Finished(n, rec, [Path(f) for f in rec.pop("files", [])])

    def report(folder: RunFolder, records: Dict[str, Dict], final: bool) -> None:
        write_report([records.get(n) or _unrecorded(folder, n, fmt) for n in names], folder.out)

    batch = Batch(out_dir, [(n, fingerprint([file_digest(f), settings])) for f, n in zip(files, names)], REPORTS,
                  report, "relax", "structure")
    records = run_batch(batch, execute, force, progress)
    return [records[n] for n in names]


def _unrecorded(folder: RunFolder, name: str, fmt: str) -> Dict:
    """The report row of a structure this run did not finish: "not run", or, when an output file
    is there without a record (a worker finished as the run was interrupted, or an earlier
    run's), "interrupted": the report says what is on disk, and a rerun redoes it."""
    out = Path(f"{folder.item_path(name)}_relaxed.{fmt}")
    if out.exists():
        return {"name": name, "status": "interrupted", "output": str(out),
                "notes": "output present but not recorded as finished: a rerun redoes it"}
    return {"name": name, "status": "not run"}


def write_report(records: List[Dict], out_dir: Path) -> None:
    write_csv(out_dir / REPORTS[0], REPORT_COLUMNS, records)
    atomic_write_text(out_dir / REPORTS[1], json.dumps(records, indent=1, default=float))
