"""A prediction run's inputs and a target's stages: the targets (names, normalised sequences),
the options, each target's inputs resolved once with its fingerprint, and the stage functions
(check, MSA, relax) :mod:`af2struct.predict.stages` calls in order; templates are
:mod:`af2struct.predict.templates`, the outputs :mod:`af2struct.predict.outputs`.

The run over many targets (order, resume, reports) is :mod:`af2struct.predict.batch`; the Ray
backend (:mod:`af2struct.predict.ray_backend`) runs the same steps on a cluster.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from af2struct.common import residue_constants as rc
from af2struct.common.io import STRUCTURE_SUFFIXES
from af2struct.common.runner import RunFolder, file_digest, fingerprint
from af2struct.data.msa import MsaError, parse_fasta, read_msa, read_text_file
from af2struct.data.msa_search import search_msa
from af2struct.predict.errors import InputError
from af2struct.predict.options import PredictOptions
from af2struct.predict.templates import TemplateResult, check_sources, search_cache
from refine import relax

logger = logging.getLogger(__name__)

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclasses.dataclass(frozen=True)
class Target:
    """One sequence to fold: ``name`` (safe as a folder name) and the FASTA header it came from.
    The sequence is normalised here, once for the whole run: white space removed, upper case."""

    name: str
    sequence: str
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sequence", "".join(self.sequence.split()).upper())


def safe_name(text: str) -> str:
    """``text`` made safe for a folder name: runs of other characters become ``_`` (at most 100)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:100].rstrip("._-")
    return name or "target"


def target_names(headers: List[str]) -> List[str]:
    """Folder names for FASTA headers, as the field reads them: the identifier (first word;
    ``sp|P69905|HBA_HUMAN`` -> ``sp_P69905_HBA_HUMAN``), or the whole header where identifiers
    repeat (``>my protein 1``, ``>my protein 2``). Distinct headers that still make the same
    name (``>x|y`` and ``>x_y``, ``>.`` and ``>..``) get ``_2``, ``_3``... in file order; only
    identical headers (true duplicates) raise :class:`InputError`."""
    dup_headers = sorted({h for h in headers if headers.count(h) > 1})
    if dup_headers:
        shown = "; ".join(f"{safe_name(h)!r} from headers {[h] * headers.count(h)}" for h in dup_headers[:5])
        raise InputError(f"duplicate target names: {shown}")
    ids = [safe_name(h.split()[0]) if h.split() else "target" for h in headers]
    names = [i if ids.count(i) == 1 else safe_name(h) for i, h in zip(ids, headers)]
    seen: Dict[str, int] = {}
    taken = {n.lower() for n in names}
    out = []
    for n in names:
        k = seen.get(n.lower(), 0) + 1
        seen[n.lower()] = k
        if k > 1:
            while f"{n}_{k}".lower() in taken:
                k += 1
            taken.add(f"{n}_{k}".lower())
            n = f"{n}_{k}"
        out.append(n)
    return out


def read_targets(fasta: Optional[str] = None, sequence: Optional[str] = None,
                 name: Optional[str] = None) -> List[Target]:
    """Targets from a FASTA file, or one ``sequence``/``name``; checks names (sequences are
    checked per target so one bad sequence does not stop the run)."""
    if (fasta is None) == (sequence is None):
        raise InputError("give a FASTA file or --sequence (not both)")
    if fasta is not None:
        path = Path(fasta)
        try:
            text = read_text_file(path, "FASTA file")  # a folder, FIFO or device: said so, not "no such file"
            if not text.strip():
                raise InputError(f"{path}: empty FASTA file")
            records = parse_fasta(text, str(path), full_headers=True)
        except MsaError as exc:
            raise InputError(str(exc)) from None
        names = target_names([h for h, _ in records])
        return [Target(n, s, h) for n, (h, s) in zip(names, records)]
    label = name or "query"
    if not SAFE_NAME.match(label):
        raise InputError(f"--name must be a safe file name (letters, digits, . _ -; max 100): {label!r}")
    return [Target(label, sequence, label)]


def _msa_file(target: Target, opts: PredictOptions, n_targets: int) -> Optional[Path]:
    """The MSA file given for ``target`` (``--msa`` file or ``--msa FOLDER/<name>.a3m|.sto``), if any."""
    if not opts.msa.msa:
        return None
    p = Path(opts.msa.msa)
    if p.is_file():
        if n_targets > 1:
            raise InputError("--msa FILE works with one target; give a folder of <name>.a3m for many")
        return p
    if p.is_dir():
        return next((p / f"{target.name}{ext}" for ext in (".a3m", ".sto", ".stockholm")
                     if (p / f"{target.name}{ext}").exists()), None)
    raise InputError(f"{p}: no such MSA file or folder")


def _native_file(target: Target, opts: PredictOptions, n_targets: int) -> Tuple[Optional[Path], str]:
    """The native structure file to score ``target`` against and ``""``, or ``None`` and why not
    (``""`` without ``--native``)."""
    if not opts.outputs.native:
        return None, ""
    p = Path(opts.outputs.native)
    if p.is_file():
        if n_targets == 1:
            return p, ""
        why = (f"--native FILE scores a single target; give a folder of <name>.pdb|cif for {n_targets} targets")
    elif not p.is_dir():
        why = f"--native {p}: no such file or folder; not scored"
    else:
        found = next((p / f"{target.name}{ext}" for ext in STRUCTURE_SUFFIXES if (p / f"{target.name}{ext}").exists()),
                     None)
        if found is not None:
            return found, ""
        why = f"no native {p}/{target.name}.pdb|cif; not scored"
    return None, why


@dataclasses.dataclass(frozen=True)
class TargetInputs:
    """One target's inputs, resolved once when the run is planned; the per-target work reads
    only this record (and the run's options)."""

    target: Target
    msa_file: Optional[Path]  # a given alignment: --msa FILE, or FOLDER/<name>.a3m|.sto
    msa_cache: Optional[Path]  # where the --msa-db search is kept (None: no search)
    template_cache: Optional[Path]  # where the --templates search is kept (None: no templates)
    native_file: Optional[Path]  # --native FILE, or FOLDER/<name>.pdb|cif
    native_note: str  # why the target is not scored, when --native was given and nothing matched
    fingerprint: str  # what the outputs depend on (the run records it; a rerun compares)

    @property
    def name(self) -> str:
        return self.target.name


def resolve_inputs(targets: Sequence[Target], folder: RunFolder, opts: PredictOptions) -> List[TargetInputs]:
    """Every target's :class:`TargetInputs`; raises ``InputError`` for a run that cannot start
    (``--msa FILE`` with several targets, a missing ``--msa`` or ``--templates`` path)."""
    check_sources(opts.templates)
    options_key = opts.key()  # the same for every target (weights digest, template sources): once
    out = []
    for t in targets:
        msa_file = _msa_file(t, opts, len(targets))
        native, note = _native_file(t, opts, len(targets))
        searched = msa_cache(folder, t, opts) if opts.msa.msa_db and msa_file is None else None
        out.append(TargetInputs(t, msa_file, searched, search_cache(folder, t.name, t.sequence, opts.templates), native,
                                note, _fingerprint(t, options_key, msa_file, native)))
    return out


def _fingerprint(target: Target, options_key: Dict, msa: Optional[Path], native: Optional[Path]) -> str:
    """What a target's outputs depend on: its sequence and header, the content of its MSA and
    native files, and every option that changes a result (``options_key``:
    :meth:`PredictOptions.key`, each option group's ``key``: the weights, recycles, seed, the MSA
    search, template sources, relax, format and plots; not the device, workers, caches or progress)."""
    return fingerprint({"sequence": target.sequence, "description": target.description,
                        "msa": file_digest(msa) if msa else None, "native": file_digest(native) if native else None,
                        **options_key})


def check_target(target: Target, opts: PredictOptions) -> np.ndarray:
    """The target's residue types; raises ``SequenceError`` for unknown letters or a sequence
    longer than ``--max-length``."""
    aatype = rc.sequence_to_aatype(target.sequence)
    if len(aatype) > opts.model.max_length:
        raise rc.SequenceError(f"{len(aatype)} residues exceed the maximum length {opts.model.max_length} "
                               "(--max-length)")
    return aatype


def target_msa(inputs: TargetInputs, opts: PredictOptions):
    """The target's MSA: a given file first, else a jackhmmer search of ``--msa-db`` (kept at
    ``inputs.msa_cache`` so a rerun does not search again), else ``None``.
    Returns ``(msa, seconds spent searching)``."""
    if inputs.msa_file is not None:
        return read_msa(inputs.msa_file), 0.0
    if inputs.msa_cache is None:
        return None, 0.0
    t0 = time.perf_counter()
    msa = search_msa(inputs.target.sequence, opts.msa.msa_db, inputs.msa_cache, name=inputs.name,
                     iterations=opts.msa.msa_iterations, cpus=opts.msa.msa_cpus)
    return msa, time.perf_counter() - t0


def msa_cache(folder: RunFolder, target: Target, opts: PredictOptions) -> Path:
    """Where a ``--msa-db`` search for ``target`` is kept between runs (named by what it searched)."""
    return folder.cache_path("msas", f"{target.name}.{opts.msa.search_key(target.sequence)}.a3m")


@dataclasses.dataclass(frozen=True)
class RelaxFailed:
    """Relax could not run on a model (e.g. an unknown residue Amber has no template for): the
    unrelaxed model is still written, and the target's status says ``relax_failed``."""

    error: str


def relax_prediction(protein, opts: PredictOptions):
    """Relax with the chosen backend; ``None`` with ``--relax none``, a :class:`RelaxFailed`
    when relax raised."""
    if opts.relax.backend == "none":
        return None
    try:
        return relax(protein, opts.relax_settings)
    except Exception as exc:  # noqa: BLE001 - the unrelaxed model stands; the row says why relax failed
        logger.error("relax failed (the unrelaxed model is kept): %s: %s", type(exc).__name__, exc)
        return RelaxFailed(f"{type(exc).__name__}: {exc}")


def stage_timings(opts: PredictOptions, t_msa: float, templates, pred_timings: Dict[str, float],
                  t_relax: Optional[float], relaxed) -> Dict[str, float]:
    """A target's seconds per stage, one way for the serial run and for Ray: ``msa`` (with
    ``--msa-db``), ``templates``, the model's stages, ``relax`` (only when it ran and did not fail),
    and ``total``, their sum (on Ray, queueing between stages is not a stage)."""
    timings = ({"msa": t_msa} if opts.msa.msa_db else {}) | ({"templates": templates.seconds} if templates else {}) \
        | dict(pred_timings)
    if relaxed is not None and not isinstance(relaxed, RelaxFailed) and t_relax is not None:
        timings["relax"] = t_relax
    timings["total"] = sum(timings.values())
    return timings


@dataclasses.dataclass
class TargetResult:
    """What one target's work made: the prediction (:class:`~af2struct.predict.pipeline.Prediction`),
    its relax (a ``RelaxResult``, a :class:`RelaxFailed`, or ``None``), seconds per stage, and the
    MSA and templates it used."""

    pred: object
    relaxed: object
    timings: Dict[str, float]
    msa: object = None
    templates: Optional[TemplateResult] = None
