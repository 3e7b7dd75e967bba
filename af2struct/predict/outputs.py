"""A target's outputs: its folder (models, confidence, plots, templates, timings, its row),
written in a temporary folder and moved into place when complete; a failed target's row."""

from __future__ import annotations

import io
import json
import logging
import shutil
from pathlib import Path
from typing import Dict, List

import numpy as np

from af2struct.common.files import atomic_write_text
from af2struct.common.io import load_structure, save_structure
from af2struct.common.modelcif import to_modelcif_string
from af2struct.common.runner import Finished, RunFolder
from af2struct.eval.metrics import score_model
from af2struct.predict.options import PredictOptions, weights_label
from af2struct.predict.plots import plot_distogram, plot_pae, plot_plddt
from af2struct.predict.targets import RelaxFailed, Target, TargetInputs, TargetResult
from af2struct.predict.templates import remark_line, template_records
from af2struct.version import __version__

logger = logging.getLogger(__name__)


def write_target(folder: RunFolder, inputs: TargetInputs, opts: PredictOptions, result: TargetResult) -> Finished:
    """Write one target's folder (in a temporary folder moved into place when complete); returns
    its summary row and files for the run to record."""
    target, pred, relaxed, timings = inputs.target, result.pred, result.relaxed, result.timings
    msa, templates = result.msa, result.templates
    row: Dict = {"name": target.name, "length": len(pred.plddt)}
    relax_error = relaxed.error if isinstance(relaxed, RelaxFailed) else None
    relaxed = None if relax_error else relaxed
    partial = folder.temp_dir(target.name)
    used = templates.used if templates else None
    try:
        save_structure(pred.protein, partial / "unrelaxed.pdb", model_remarks(target, opts, None, used))
        final_protein = pred.protein
        if relaxed is not None:
            final_protein = relaxed.protein
            save_structure(relaxed.protein, partial / "relaxed.pdb", model_remarks(target, opts, relaxed, used))
            if relaxed.pdb_with_hydrogens:  # --relax-keep-hydrogens
                atomic_write_text(partial / "relaxed_with_h.pdb", relaxed.pdb_with_hydrogens)
            row.update(relax_rmsd=relaxed.rmsd_heavy, clashscore=relaxed.clashscore_after)
        if opts.outputs.fmt == "cif":  # ModelCIF, as the AlphaFold database serves models
            for tag, prot, rel in (("unrelaxed", pred.protein, None), ("relaxed", final_protein, relaxed)):
                if tag == "relaxed" and relaxed is None:
                    continue
                atomic_write_text(partial / f"{tag}.cif", to_modelcif_string(
                    prot, target.name, pred.plddt, target.description,
                    "\n".join(model_remarks(target, opts, rel, used)[2:]),
                    templates=template_records(used)))
        buf = io.BytesIO()
        np.savez_compressed(buf, probabilities=pred.distogram_probs.astype(np.float16), bin_edges=pred.bin_edges,
                            sequence=np.array(target.sequence))
        (partial / "distogram.npz").write_bytes(buf.getvalue())
        if msa is not None:
            row["msa_depth"] = len(msa)
            # the searched alignment goes with the model
            if inputs.msa_cache is not None and inputs.msa_cache.is_file():
                shutil.copyfile(inputs.msa_cache, partial / "msa.a3m")
        if templates is not None:
            row["n_templates"] = len(templates.used)
            atomic_write_text(partial / "templates.json",
                              json.dumps(templates.report(len(pred.plddt)), indent=1))
        conf = write_confidence(partial, target, pred, final_protein, opts.outputs.plots)
        row.update(score_against_native(inputs, final_protein))
        atomic_write_text(partial / "timings.json", json.dumps(timings, indent=1))
        # one rule with `af2struct relax`: "ok" is clean; violations left after relax are "violations"
        status = "relax_failed" if relax_error else "violations" if relaxed is not None and not relaxed.clean \
            else "ok"
        if status == "violations":
            logger.warning("%s: %s", target.name, relaxed.remark())
        row.update(status=status, mean_plddt=conf["mean_plddt"],
                   **{f"t_{k}": round(v, 3) for k, v in timings.items()})
        if relax_error:
            row["error"] = f"relax failed (unrelaxed model written): {relax_error}"
        atomic_write_text(partial / "result.json", json.dumps(row, indent=1, default=float))
        final = folder.publish_dir(partial, target.name)
        return Finished(target.name, row, sorted(final.iterdir()))
    except Exception as exc:
        shutil.rmtree(partial, ignore_errors=True)
        return fail_target(folder, inputs, exc, timings.get("total", 0.0))


def write_confidence(folder: Path, target: Target, pred, protein, plots: bool) -> Dict:
    """``confidence.json`` (per-residue pLDDT), ``pae.json`` (predicted aligned error in the
    AlphaFold database's layout: ``[{"predicted_aligned_error": [[...]],
    "max_predicted_aligned_error": 31.75}]``, row = the residue whose frame aligns; the maximum is
    the head's range, or the matrix's largest value where a templated model's ensemble term
    exceeds it: :mod:`af2struct.model.pae_ensemble`) and, with ``plots``, ``pLDDT.png``,
    ``pae.png`` (its colours saturate at the head's range) and ``distogram.png``. Returns the
    confidence dict."""
    conf = {"name": target.name, "description": target.description, "sequence": protein.sequence,
            "mean_plddt": round(float(np.mean(pred.plddt)), 2), "plddt": [round(float(x), 2) for x in pred.plddt]}
    if pred.pae is not None:
        conf["mean_pae"] = round(float(np.mean(pred.pae)), 3)
        # two decimals, as the AlphaFold database writes it (float64 first: no float32 noise)
        pae = [{"predicted_aligned_error": np.round(pred.pae.astype(np.float64), 2).tolist(),
                "max_predicted_aligned_error": round(max(float(pred.max_pae), float(np.max(pred.pae))), 2)}]
        atomic_write_text(folder / "pae.json", json.dumps(pae, separators=(",", ":")))
    atomic_write_text(folder / "confidence.json", json.dumps(conf))
    if plots:
        plot_plddt(pred.plddt, protein.residue_index, folder / "pLDDT.png", target.name)
        plot_distogram(pred.distogram_probs, pred.bin_edges, folder / "distogram.png", target.name,
                       protein.residue_index)
        if pred.pae is not None:
            plot_pae(pred.pae, pred.max_pae, folder / "pae.png", target.name, protein.residue_index)
    return conf


def fail_target(folder: RunFolder, inputs: TargetInputs, exc: BaseException, seconds: float = 0.0) -> Finished:
    """A failed target (its error row, for the run to record). An older folder of that name (made
    from other input or options) is never lost: it is set apart as ``<name>.previous`` so it
    cannot pass for this run's result."""
    target = inputs.target
    row = error_row(target, exc, seconds)
    folder.forget(target.name)
    moved = folder.set_apart(target.name)
    if moved is not None:
        logger.warning("%s: the earlier result is kept in %s", target.name, moved)
        row["error"] += f" (the earlier result is kept in {moved.name})"
    return Finished(target.name, row)


def model_remarks(target: Target, opts: PredictOptions, relaxed, templates=None) -> List[str]:
    """What a model file says about itself (PDB ``REMARK 999`` lines)."""
    out = [f"af2struct {__version__} model of {target.name}",
           "B-factor column: per-residue pLDDT (0-100, higher = more confident)",
           f"weights: {weights_label(opts.model.weights)}; seed {opts.model.seed}"]
    if templates is not None:
        out.append(remark_line(templates, len(target.sequence), opts.templates))
    if relaxed is None:
        out.append("not relaxed")
    else:
        out.append(relaxed.remark())
    return out


def score_against_native(inputs: TargetInputs, protein) -> Dict:
    """lDDT-CA, GDT_TS and TM-score against the target's native, if one was given. A native that
    cannot be read or matched costs only the scores (noted in ``native_error``), never the
    finished prediction."""
    if inputs.native_file is None:
        if inputs.native_note:
            logger.warning("%s: %s", inputs.name, inputs.native_note)
        return {}
    try:
        s = score_model(protein, load_structure(inputs.native_file))  # evaluate's rule: by number, else aligned
    except Exception as exc:  # noqa: BLE001 - reported in the row; the prediction stands
        logger.warning("%s: not scored against the native: %s", inputs.name, exc)
        return {"native_error": f"{type(exc).__name__}: {exc}"}
    return {"lddt_ca": s.lddt_ca, "gdt_ts": s.gdt_ts, "tm_score": s.tm_score}


def error_row(target: Target, exc: BaseException, seconds: float = 0.0) -> Dict:
    """The summary row of a failed target (and the error logged)."""
    msg = f"{type(exc).__name__}: {exc}"
    logger.error("%s: %s", target.name, msg)
    return {"name": target.name, "length": len(target.sequence), "status": "error",
            "error": msg, "t_total": round(seconds, 3)}
