"""Predict on a Ray cluster: the model on GPU workers, MSA search and relax on CPU workers.

The parallel executor of the run loop (:func:`af2struct.common.runner.run_batch`, as
:mod:`af2struct.predict.batch` calls it): same outputs, records and resume as targets run one
after another, because the same loop records them. The driver alone writes target folders
(under a temporary name, renamed when complete) and ``summary.csv``, so workers need no shared
file system. Each target flows through three stages:

1. ``prepare`` (CPU task): check the sequence, read its MSA or search ``--msa-db`` with jackhmmer;
2. ``predict`` (a model actor; one per GPU, or ``model_workers`` CPU actors): trunk, MDS, SE(3), side chains;
3. ``relax`` (CPU task): Amber (or Rosetta) refinement;

and targets are pipelined: while one target is on the model another is being relaxed.
``ray`` is imported only when this backend is chosen (``--ray-address`` or ``--workers``).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import tempfile
import time
from typing import Dict, Iterator, List, Optional, Sequence

import torch

from af2struct.common.runner import Finished, RunFolder
from af2struct.predict.errors import InputError
from af2struct.predict.options import PredictOptions
from af2struct.predict.outputs import fail_target, write_target
from af2struct.predict.pipeline import load_default_model, predict_structure
from af2struct.predict.stages import log_timings
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


class _ModelWorker:
    """Holds one copy of the model (loaded once) on its device."""

    def __init__(self, weights: Optional[str], device: str, threads: int) -> None:
        if device == "cpu" and threads > 0:
            torch.set_num_threads(threads)
        self.device = device
        self.model, _ = load_default_model(weights, device)

    def predict(self, sequence: str, msa, num_recycles: Optional[int], seed: int, templates=None):
        return predict_structure(self.model, sequence, msa, num_recycles, seed, self.device,
                                 templates=templates.features if templates else None)


def _prepare(inputs: TargetInputs, opts: PredictOptions):
    """The target's MSA and templates (searched on a CPU worker): ``(msa, seconds, templates)``."""
    check_target(inputs.target, opts)
    msa, t_msa = target_msa(inputs, opts)
    templates = target_templates(inputs.name, inputs.target.sequence, inputs.template_cache, opts.templates, msa)
    return msa, t_msa, templates.detached() if templates is not None else None


def _relax(protein, opts: PredictOptions):
    t0 = time.perf_counter()
    result = relax_prediction(protein, opts)
    return result, time.perf_counter() - t0


def _cause(exc: BaseException) -> BaseException:
    """The user's exception inside a ``RayTaskError`` (so the summary says what went wrong)."""
    return getattr(exc, "cause", None) or exc


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A ``host:port`` Ray address that nothing answers on is one clear error after at most
    ``timeout`` seconds (``ray.init`` itself retries for minutes, then raises)."""
    if address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--ray-address {address!r}: expected 'auto' or host:port")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise InputError(f"--ray-address {address}: no Ray cluster answers there ({exc.strerror or exc}); "
                         "start one with `ray start --head` or check the address") from None


def _connect(opts: PredictOptions) -> Optional[str]:
    """Connect to (or start) Ray; returns the temporary folder of a Ray this call started (to shut
    down and remove), else ``None``."""
    try:
        import ray  # lazy: Ray is an optional extra (af2struct[ray])
    except ImportError:
        raise InputError("the Ray backend needs ray: pip install 'af2struct[ray]' "
                         "(or drop --ray-address/--workers)") from None
    if ray.is_initialized():
        return None
    run = opts.run
    if run.ray_address:
        _check_reachable(run.ray_address)
        try:
            ray.init(address=run.ray_address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise InputError(f"--ray-address {run.ray_address}: cannot join that Ray cluster ({exc})") from None
        return None
    if run.workers < 2:
        raise InputError("--workers needs at least 2 CPUs (one for the model, one for relax and MSA search)")
    temp = tempfile.mkdtemp(prefix="af2struct-ray-")  # short: Ray's socket paths must fit 107 characters
    # the local Ray's auth token is made here and given in the environment (its workers inherit it),
    # so Ray does not write one to the user's home folder (~/.ray/auth_token)
    if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    try:
        ray.init(num_cpus=run.workers, num_gpus=None, include_dashboard=False, log_to_driver=False, _temp_dir=temp)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)  # a Ray that did not start leaves no folder behind
        raise
    return temp


def predict_on_ray(targets: Sequence[TargetInputs], folder: RunFolder, opts: PredictOptions) -> Iterator[Finished]:
    """Predict ``targets`` on Ray (the run's parallel executor), yielding each as its folder is complete."""
    import ray  # lazy: optional extra, present once _connect succeeded

    started = _connect(opts)
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        cpus = int(resources.get("CPU", 0))
        if opts.model.device.startswith("cuda") and not gpus:
            raise InputError("--device cuda requested but the Ray cluster has no GPUs")
        use_gpu = gpus > 0 and opts.model.device != "cpu"
        n_models = opts.run.model_workers or (gpus if use_gpu else 1)
        if not use_gpu and n_models >= cpus:
            raise InputError(f"the Ray cluster has {cpus} CPUs: {n_models} CPU model worker(s) leave none for relax")
        actor_resources = {"num_gpus": 1, "num_cpus": 1} if use_gpu else {"num_cpus": 1}
        Worker = ray.remote(**actor_resources)(_ModelWorker)
        actors = [Worker.remote(opts.model.weights, "cuda" if use_gpu else "cpu", 1 if not use_gpu else 0)
                  for _ in range(n_models)]
        prepare = ray.remote(num_cpus=1)(_prepare)
        relax = ray.remote(num_cpus=1)(_relax)
        logger.info("Ray: %d model worker(s) on %s, %d CPUs, %d targets", n_models, "GPU" if use_gpu else "CPU",
                    cpus, len(targets))
        yield from _pipeline(targets, folder, opts, actors, (prepare, relax))
    finally:
        if started:
            ray.shutdown()
            shutil.rmtree(started, ignore_errors=True)


def _pipeline(targets: Sequence[TargetInputs], folder: RunFolder, opts: PredictOptions, actors: List,
              tasks) -> Iterator[Finished]:
    """Prepare (MSA, templates) -> predict on a model actor -> relax, pipelined over ``targets``;
    ``tasks`` are the remote prepare and relax functions."""
    import ray  # lazy: optional extra, present once _connect succeeded

    prepare, relax = tasks
    pending: Dict = {}  # object ref -> (stage, target inputs, state)
    load = [0] * len(actors)
    for t in targets:
        pending[prepare.remote(t, opts)] = ("prepare", t, {"t0": time.perf_counter()})
    try:
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            stage, target, state = pending.pop(ref)
            if stage == "predict":
                load[state["actor"]] -= 1
            try:
                value = ray.get(ref)
            except Exception as exc:  # the target fails; the batch goes on
                yield fail_target(folder, target, _cause(exc), time.perf_counter() - state["t0"])
                continue
            if stage == "prepare":
                state["msa"], state["t_msa"], state["templates"] = value
                i = min(range(len(actors)), key=load.__getitem__)
                load[i] += 1
                state["actor"] = i
                ref2 = actors[i].predict.remote(target.target.sequence, state["msa"], opts.model.num_recycles,
                                                opts.model.seed,
                                                state["templates"])
                pending[ref2] = ("predict", target, state)
            elif stage == "predict":
                state["pred"] = value
                if opts.relax.backend == "none":
                    yield _finish(folder, target, opts, state, None, None)
                else:
                    pending[relax.remote(value.protein, opts)] = ("relax", target, state)
            else:
                result, t_relax = value
                yield _finish(folder, target, opts, state, result, t_relax)
    finally:
        for ref in pending:  # interrupted: stop what is still queued (finished folders are kept)
            try:
                ray.cancel(ref)
            except Exception:  # noqa: BLE001 - best effort on shutdown
                pass


def _finish(folder: RunFolder, inputs: TargetInputs, opts: PredictOptions, state: Dict, relaxed,
            t_relax) -> Finished:
    timings = stage_timings(opts, state["t_msa"], state["templates"], state["pred"].timings, t_relax, relaxed)
    log_timings(inputs.name, timings)
    return write_target(folder, inputs, opts, TargetResult(state["pred"], relaxed, timings, state.get("msa"),
                                                           state.get("templates")))
