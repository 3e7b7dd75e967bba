"""A prediction run's inputs and a target's stages: the targets (names, normalised sequences),
the options, each target's inputs resolved once with its fingerprint, and the stage functions
(check, MSA, relax) :mod:`af2struct.predict.stages` calls in order; templates are
:mod:`af2struct.predict.templates`, the outputs :mod:`af2struct.predict.outputs`.

The run over many targets (order, resume, reports) is :mod:`af2struct.predict.batch`; the Ray
backend (:mod:`af2struct.predict.ray_backend`) runs the same steps on a cluster.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import re
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from af2struct.common import residue_constants as rc
from af2struct.common.files import file_key
from af2struct.common.io import STRUCTURE_SUFFIXES
from af2struct.common.runner import RunFolder, file_digest, fingerprint
from af2struct.data.msa import MsaError, parse_fasta, read_msa, read_text_file
from af2struct.data.msa_search import search_msa
from af2struct.data.pdb_mirror import DEFAULT_MIRROR
from af2struct.data.template_chains import valid_date
from af2struct.data.template_search import SEARCH_METHODS
from af2struct.predict.errors import InputError
from af2struct.predict.pipeline import DEFAULT_WEIGHTS
from af2struct.predict.templates import (
    PDB,
    TemplateResult,
    check_sources,
    search_cache,
    sources_key,
)
from refine import RelaxConfig, relax

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


@dataclasses.dataclass(frozen=True)
class PredictOptions:
    weights: Optional[str] = None
    device: str = "auto"
    num_recycles: Optional[int] = None
    seed: int = 0
    relax: str = "openmm"  # openmm | rosetta | none
    fmt: str = "pdb"  # pdb | cif (pdb is always written; cif in addition)
    max_length: int = 800
    msa: Optional[str] = None  # an .a3m/.sto file (one target) or a folder of <name>.a3m|.sto
    msa_db: Optional[str] = None  # protein FASTA to search with jackhmmer when a target has no MSA
    msa_iterations: int = 3
    msa_cpus: int = 0
    ray_address: Optional[str] = None  # "auto" or host:port of a running Ray cluster
    workers: int = 0  # > 0: start a local Ray with this many CPUs
    model_workers: int = 0  # model replicas on Ray (0: one per GPU, else one)
    native: Optional[str] = None  # a structure file (one target) or a folder of <name>.pdb|cif
    relax_config: Optional[RelaxConfig] = None  # relax settings (backend and seed come from relax / seed)
    plots: bool = True
    progress: bool = True
    templates: Optional[str] = None  # a template database (chains_backbone.npz layout), or "pdb": the PDB on demand
    max_templates: int = 4  # featurised per target (AlphaFold: 4)
    max_template_date: Optional[str] = None  # YYYY-MM-DD: templates released after it are not used
    template_max_identity: Optional[float] = None  # benchmarks: no template above this identity
    template_search: str = "jackhmmer"  # or phmmer; with an MSA: hmmsearch with its profile
    custom_templates: Tuple[str, ...] = ()  # the user's own PDB/mmCIF files or folders
    pdb_mirror: str = DEFAULT_MIRROR  # --templates pdb: URL or folder in the wwPDB layout
    template_cache: Optional[str] = None  # --templates pdb: download cache (default ~/.cache/af2struct/pdb)
    offline: bool = False  # --templates pdb: never use the network

    def __post_init__(self) -> None:
        if not 0 <= self.max_templates <= 20:
            raise ValueError("--max-templates must be between 0 and 20")
        if self.max_template_date is not None and valid_date(self.max_template_date) != self.max_template_date:
            raise ValueError(f"--max-template-date must be a date written YYYY-MM-DD, not {self.max_template_date!r}")
        if self.template_max_identity is not None and not 0 < self.template_max_identity <= 1:
            raise ValueError("--template-max-identity must be in (0, 1]")
        if self.template_search not in SEARCH_METHODS:
            raise ValueError(f"--template-search must be one of {SEARCH_METHODS}")
        if not self.templates:
            given = [flag for flag, on in (("--max-template-date", self.max_template_date is not None),
                                           ("--template-max-identity", self.template_max_identity is not None),
                                           ("--template-search", self.template_search != "jackhmmer")) if on]
            if not self.custom_templates:
                given += ["--max-templates"] if self.max_templates != 4 else []
            if given:
                raise ValueError(f"{', '.join(given)} without --templates has no effect: give --templates DB too")
        if self.templates != PDB:
            given = [flag for flag, on in (("--pdb-mirror", self.pdb_mirror != DEFAULT_MIRROR),
                                           ("--template-cache", self.template_cache is not None),
                                           ("--offline", self.offline)) if on]
            if given:
                raise ValueError(f"{', '.join(given)} without --templates pdb has no effect")
        if self.relax not in ("openmm", "rosetta", "none"):
            raise ValueError("relax must be openmm, rosetta or none")
        if self.fmt not in ("pdb", "cif"):
            raise ValueError("format must be pdb or cif")
        if self.ray_address and self.workers:
            raise ValueError("give --ray-address (an existing cluster) or --workers (a local Ray), not both")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", self.device):
            raise ValueError(f"--device must be auto, cpu, cuda, cuda:N or mps, not {self.device!r}")

    @property
    def use_ray(self) -> bool:
        return bool(self.ray_address or self.workers)

    @functools.cached_property
    def relax_settings(self) -> RelaxConfig:
        """The relax settings every target uses, built once: ``relax_config`` with the backend of
        ``--relax`` and the run's ``--seed``."""
        return dataclasses.replace(self.relax_config or RelaxConfig(), backend=self.relax, seed=self.seed)


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
    if not opts.msa:
        return None
    p = Path(opts.msa)
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
    if not opts.native:
        return None, ""
    p = Path(opts.native)
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
    check_sources(opts)
    out = []
    for t in targets:
        msa_file = _msa_file(t, opts, len(targets))
        native, note = _native_file(t, opts, len(targets))
        searched = msa_cache(folder, t, opts) if opts.msa_db and msa_file is None else None
        out.append(TargetInputs(t, msa_file, searched, search_cache(folder, t.name, t.sequence, opts), native, note,
                                _fingerprint(t, opts, msa_file, native)))
    return out


def _fingerprint(target: Target, opts: PredictOptions, msa: Optional[Path], native: Optional[Path]) -> str:
    """What a target's outputs depend on: its sequence and header, the content of its MSA and
    native files, the weights and every option that changes the result (not device or workers)."""
    db = Path(opts.msa_db) if opts.msa_db else None
    return fingerprint({
        "sequence": target.sequence, "description": target.description, "weights": weights_label(opts.weights),
        "num_recycles": opts.num_recycles, "seed": opts.seed, "relax": opts.relax, "format": opts.fmt,
        "relax_config": dataclasses.asdict(opts.relax_config) if opts.relax_config else None, "plots": opts.plots,
        "msa": file_digest(msa) if msa else None,
        "msa_db": [file_key(db), opts.msa_iterations] if db and db.is_file() else None,
        "native": file_digest(native) if native else None,
        # one key for every template source and option ("template_options" kept as None so a run
        # without templates keeps the fingerprint it had before)
        "templates": sources_key(opts), "template_options": None,
    })


def check_target(target: Target, opts: PredictOptions) -> np.ndarray:
    """The target's residue types; raises ``SequenceError`` for unknown letters or a sequence
    longer than ``opts.max_length``."""
    aatype = rc.sequence_to_aatype(target.sequence)
    if len(aatype) > opts.max_length:
        raise rc.SequenceError(f"{len(aatype)} residues exceed the maximum length {opts.max_length} (--max-length)")
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
    msa = search_msa(inputs.target.sequence, opts.msa_db, inputs.msa_cache, name=inputs.name,
                     iterations=opts.msa_iterations, cpus=opts.msa_cpus)
    return msa, time.perf_counter() - t0


def msa_cache(folder: RunFolder, target: Target, opts: PredictOptions) -> Path:
    """Where a ``--msa-db`` search for ``target`` is kept between runs (named by what it searched)."""
    db = Path(opts.msa_db or "")
    key = fingerprint([target.sequence, file_key(db) if db.is_file() else str(db.resolve()), opts.msa_iterations])
    return folder.cache_path("msas", f"{target.name}.{key}.a3m")


@dataclasses.dataclass(frozen=True)
class RelaxFailed:
    """Relax could not run on a model (e.g. an unknown residue Amber has no template for): the
    unrelaxed model is still written, and the target's status says ``relax_failed``."""

    error: str


def relax_prediction(protein, opts: PredictOptions):
    """Relax with the chosen backend; ``None`` when ``opts.relax == "none"``, a :class:`RelaxFailed`
    when relax raised."""
    if opts.relax == "none":
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
    timings = ({"msa": t_msa} if opts.msa_db else {}) | ({"templates": templates.seconds} if templates else {}) \
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


def weights_label(weights: Optional[str]) -> str:
    """The checkpoint that made a model: its file name and the first 12 hex digits of its SHA-256
    (hashed once per process while the file's size and modification time stay the same)."""
    path = Path(weights) if weights else DEFAULT_WEIGHTS
    digest = _sha256_prefix(str(path), file_key(path)) if path.is_file() else "unknown"
    return f"{'shipped ' if not weights else ''}{path.name} (sha256 {digest})"


@functools.lru_cache(maxsize=8)
def _sha256_prefix(path: str, key: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
