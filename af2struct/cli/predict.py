"""``af2struct predict`` / ``scripts/predict.py``: sequence (+MSA) in, refined all-atom structure out."""

from __future__ import annotations

import argparse
import logging
from typing import Optional, Sequence

from af2struct.cli import run_command
from af2struct.common.argtypes import SEED_MAX, HelpFormatter, float_in, int_in, out_folder
from af2struct.common.runner import closing_line, failed_count
from af2struct.predict.batch import predict_batch
from af2struct.predict.targets import PredictOptions, read_targets
from refine.cli import add_relax_arguments, relax_config_from_args

DESCRIPTION = (
    "Predict structures with af2struct: (templates ->) trunk -> distogram -> MDS -> SE(3) refinement -> side "
    "chains -> Amber relax. Writes DIR/<name>/ (unrelaxed.pdb, relaxed.pdb with pLDDT in the B-factor column, "
    "distogram.npz, confidence.json, pae.json, pLDDT.png, pae.png, distogram.png, timings.json, result.json; "
    "templates.json with --templates; .cif with --format cif) and DIR/summary.csv. Targets "
    "run shortest first; a rerun skips targets finished with the same input and options and redoes the rest "
    "(--force: all). One run writes into DIR at a time. Status 'ok' means relaxed clean (as `af2struct relax` "
    "says it); 'violations': written, but relax left violations (a warning line says which; not a failure); "
    "'relax_failed': the unrelaxed model only. Exit code 1: the run could not start; 3: some targets failed "
    "(error or relax_failed), the others finished."
)


def build_parser(p: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    d = PredictOptions()
    p = p or argparse.ArgumentParser(prog="af2struct predict")
    p.description = DESCRIPTION
    p.formatter_class = HelpFormatter
    p.add_argument("input", nargs="?", help="FASTA file with one or more sequences")
    p.add_argument("--sequence", help="a single sequence instead of a FASTA file")
    p.add_argument("--name", default="query", help="name (output folder) for --sequence")
    p.add_argument("--out", required=True, type=out_folder, help="output folder")
    p.add_argument("--weights", help="checkpoint to load (default: the shipped weights in af2struct/weights)")
    p.add_argument("--device", default=d.device, help="auto (a GPU if present), cpu, cuda, cuda:1, ...")
    p.add_argument("--num-recycles", type=int_in(0, 32), default=None,
                   help="recycling passes (default: the checkpoint's)")
    p.add_argument("--seed", type=int_in(0, SEED_MAX), default=d.seed,
                   help="seeds the model's random state and relax (atoms PDBFixer builds); same seed, same output")
    p.add_argument("--format", choices=("pdb", "cif"), default=d.fmt,
                   help="pdb: PDB files only; cif: mmCIF files as well")
    p.add_argument("--max-length", type=int_in(1, 2048), default=d.max_length,
                   help="longest sequence to fold (800: about 2 GiB for the model on CPU, see "
                        "benchmarks/RESULTS.md; the model accepts up to 2048)")
    p.add_argument("--native", help="native structure (one target) or folder of <name>.pdb|cif to score against")
    p.add_argument("--no-plots", action="store_true", help="skip pLDDT.png, pae.png and distogram.png (pae.json "
                                                               "and confidence.json are still written)")
    p.add_argument("--force", action="store_true",
                   help="redo every target; by default a rerun skips targets finished with the same sequence, "
                        "MSA, native, weights and options, and redoes the rest")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    msa = p.add_argument_group("MSA")
    msa.add_argument("--msa", help="an .a3m/.sto for one target, or a folder of <name>.a3m|.sto")
    msa.add_argument("--msa-db", help="protein FASTA database: targets without --msa get an MSA from a jackhmmer "
                     "search (pyhmmer) of it, kept for reruns in DIR/.af2struct/msas and copied to DIR/<name>/msa.a3m")
    msa.add_argument("--msa-iterations", type=int_in(1, 20), default=d.msa_iterations, help="jackhmmer iterations")
    msa.add_argument("--msa-cpus", type=int_in(0, 1024), default=d.msa_cpus, help="jackhmmer threads (0: all cores)")
    tpl = p.add_argument_group("templates (AlphaFold2-style: structures of homologues)")
    tpl.add_argument("--templates", metavar="DB|pdb",
                     help="where to search for templates: 'pdb' (the PDB itself: pdb_seqres.txt, ~270 MB, downloaded "
                          "once into --template-cache, then only the mmCIF entries of the hits used, each a few "
                          "hundred KB), or a template database file (e.g. ../shared/data/pdb2018_backbone/"
                          "chains_backbone.npz, or one made by `af2struct templates build`). Each target is searched "
                          "(jackhmmer; with an MSA, hmmsearch with its profile), the search kept for reruns in "
                          "DIR/.af2struct/templates; every candidate and why it was or was not used go to "
                          "DIR/<name>/templates.json, the used ones to the models' REMARK lines and ModelCIF")
    tpl.add_argument("--custom-templates", nargs="+", metavar="PATH", default=(),
                     help="your own template structures: PDB/mmCIF files (.gz too) or folders of them, with or "
                          "without --templates. Every chain is aligned to each target; each is used (before other "
                          "templates) or reported in templates.json with why not")
    tpl.add_argument("--max-templates", type=int_in(0, 20), default=d.max_templates,
                     help="templates used per target at most")
    tpl.add_argument("--max-template-date", metavar="YYYY-MM-DD",
                     help="use no template released after this date, nor one whose release date is unknown")
    tpl.add_argument("--template-max-identity", type=float_in(0, 1, lo_open=True), metavar="FRACTION",
                     help="use no template above this sequence identity to the target (benchmarks: e.g. 0.95)")
    tpl.add_argument("--template-search", choices=("jackhmmer", "phmmer"), default=d.template_search,
                     help="search from a single sequence: jackhmmer (3 iterations) or phmmer (one round, faster)")
    tpl.add_argument("--pdb-mirror", metavar="URL|DIR", default=d.pdb_mirror,
                     help="--templates pdb: where the PDB's files come from, in the wwPDB layout "
                          "(pub/pdb/derived_data/pdb_seqres.txt, pub/pdb/data/structures/divided/mmCIF/): the wwPDB's "
                          "file server, another URL, or a local folder (an rsync mirror, read in place)")
    tpl.add_argument("--template-cache", metavar="DIR",
                     help="--templates pdb: where downloads are kept and shared between runs "
                          "(default: $XDG_CACHE_HOME/af2struct/pdb, i.e. ~/.cache/af2struct/pdb)")
    tpl.add_argument("--offline", action="store_true",
                     help="--templates pdb: never use the network; files not in the cache are named and the targets "
                          "that need them fail")
    rel = p.add_argument_group("relax (every setting of `af2struct relax`, prefixed --relax-)")
    rel.add_argument("--relax", choices=("openmm", "rosetta", "none"), default=d.relax,
                     help="openmm: Amber restrained minimisation (AlphaFold2's protocol, improved); rosetta: "
                          "PyRosetta FastRelax (needs PyRosetta); none: unrelaxed models only")
    add_relax_arguments(rel, prefix="relax-", skip=("backend", "seed"))
    ray = p.add_argument_group("Ray (many targets on a cluster: model on GPU workers, relax on CPU workers)")
    ray.add_argument("--ray-address", help="connect to a running Ray cluster ('auto' or host:port)")
    ray.add_argument("--workers", type=int_in(0, 4096), default=0, help="start a local Ray with this many CPUs (>= 2)")
    ray.add_argument("--model-workers", type=int_in(0, 1024), default=0,
                     help="model replicas (0: one per GPU of the cluster, else one)")
    return p


def run(args: argparse.Namespace) -> int:
    log = logging.getLogger("predict")
    try:
        targets = read_targets(args.input, args.sequence, args.name)
        relax_cfg = relax_config_from_args(args, prefix="relax-")  # backend and seed: from --relax, --seed
        opts = PredictOptions(weights=args.weights, device=args.device, num_recycles=args.num_recycles,
                              seed=args.seed, relax=args.relax, fmt=args.format, max_length=args.max_length,
                              msa=args.msa, native=args.native, msa_db=args.msa_db,
                              msa_iterations=args.msa_iterations, msa_cpus=args.msa_cpus,
                              ray_address=args.ray_address, workers=args.workers, model_workers=args.model_workers,
                              relax_config=relax_cfg, plots=not args.no_plots, progress=not args.quiet,
                              templates=args.templates, max_templates=args.max_templates,
                              max_template_date=args.max_template_date,
                              template_max_identity=args.template_max_identity,
                              template_search=args.template_search,
                              custom_templates=tuple(args.custom_templates), pdb_mirror=args.pdb_mirror,
                              template_cache=args.template_cache, offline=args.offline)
        records = predict_batch(targets, args.out, opts, force=args.force)
    except Exception as exc:  # run-level problems (bad input, missing weights): one message, no traceback
        log.error("%s", exc)
        return 1
    if args.native:
        print(score_table(records))
    # one rule with relax: violations left are said (status, a warning line), not a failure
    log.info("%s", closing_line(records, "predicted (relaxed clean or not relaxed)", args.out / "summary.csv"))
    return 3 if failed_count(records) else 0


def score_table(records) -> str:
    """The scores against the natives as a small plain-text table (what --native computed)."""
    cols = [("name", "target", "{}"), ("length", "L", "{}"), ("mean_plddt", "pLDDT", "{:.1f}"),
            ("lddt_ca", "lDDT-CA", "{:.3f}"), ("gdt_ts", "GDT_TS", "{:.1f}"), ("tm_score", "TM", "{:.3f}"),
            ("relax_rmsd", "relax RMSD", "{:.2f}"), ("status", "status", "{}")]
    rows = [[h for _, h, _ in cols]]
    for r in records:
        cells = []
        for key, _, fmt in cols:
            v = r.get(key)
            cells.append("-" if v in (None, "") else fmt.format(float(v) if fmt != "{}" else v))
        if r.get("status") in ("error", "not run"):
            cells[2:] = ["failed" if r.get("status") == "error" else "not run"] + [""] * (len(cols) - 3)
        elif r.get("native_error"):
            cells[3:6] = ["no score"] + [""] * 2
        rows.append(cells)
    width = [max(len(str(row[i])) for row in rows) for i in range(len(cols))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, width)).rstrip() for row in rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command("predict", argv)
