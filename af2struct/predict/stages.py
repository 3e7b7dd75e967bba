"""A target's life, in order: check, MSA, templates, model, relax, then its outputs
(:mod:`af2struct.predict.outputs`); each stage's seconds kept. The serial run
(:mod:`af2struct.predict.batch`) calls :func:`predict_target`; the Ray backend runs the same
stage functions on a cluster."""

from __future__ import annotations

import logging
import time

from af2struct.common.runner import Finished, RunFolder
from af2struct.predict.options import PredictOptions
from af2struct.predict.outputs import fail_target, write_target
from af2struct.predict.pipeline import predict_structure
from af2struct.predict.targets import (
    TargetInputs,
    TargetResult,
    check_target,
    relax_prediction,
    stage_timings,
    target_msa,
)
from af2struct.predict.templates import target_templates

logger = logging.getLogger(__name__)


def predict_target(model, folder: RunFolder, inputs: TargetInputs, opts: PredictOptions, device: str) -> Finished:
    """Predict (and relax, score) one target into its folder; returns its summary row and files."""
    t0 = time.perf_counter()
    stage = _stage_logger(inputs)
    try:
        check_target(inputs.target, opts)
        if inputs.msa_cache is not None or inputs.msa_file is not None:
            stage("MSA")
        msa, t_msa = target_msa(inputs, opts)
        if opts.templates.wanted:
            stage("templates")
        templates = target_templates(inputs.name, inputs.target.sequence, inputs.template_cache, opts.templates, msa)
        stage("model")
        pred = predict_structure(model, inputs.target.sequence, msa, opts.model.num_recycles, opts.model.seed, device,
                                 templates=templates.features if templates else None)
        tr = time.perf_counter()
        if opts.relax.backend != "none":
            stage(f"relax ({opts.relax.backend})")
        relaxed = relax_prediction(pred.protein, opts)
        timings = stage_timings(opts, t_msa, templates, pred.timings, time.perf_counter() - tr, relaxed)
    except Exception as exc:  # one target's failure never stops the batch
        return fail_target(folder, inputs, exc, time.perf_counter() - t0)
    log_timings(inputs.name, timings)
    return write_target(folder, inputs, opts, TargetResult(pred, relaxed, timings, msa, templates))


def log_timings(name: str, timings) -> None:
    """A finished target's seconds per stage, one log line (the serial run and Ray alike)."""
    logger.info("%s: %s", name, ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))


def _stage_logger(inputs: TargetInputs):
    """``stage(what)`` logs that the target enters a stage: a long single target is never silent."""
    n = len(inputs.target.sequence)

    def stage(what: str) -> None:
        logger.info("%s (%d residues): %s", inputs.name, n, what)

    return stage
