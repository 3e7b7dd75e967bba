"""``predict``'s options in six groups (model, MSA, templates, relax, outputs, run), each a frozen
dataclass validated once when it is made. Each field's help is in its group's docstring, its
flag, type and choices in its metadata (:func:`af2struct.common.options.meta`), and whether it
changes a target's result (``result``): the command line is generated from them
(:func:`add_predict_arguments`), and a target's fingerprint takes every group's :meth:`key`
(the fields that change a result; a test checks each field against its marking).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import re
from dataclasses import field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from af2struct.common.argtypes import SEED_MAX, float_in, int_in
from af2struct.common.files import file_key
from af2struct.common.options import add_dataclass_arguments, from_arguments, meta
from af2struct.common.runner import fingerprint
from af2struct.data.pdb_mirror import DEFAULT_MIRROR
from af2struct.data.template_chains import valid_date
from af2struct.data.template_search import SEARCH_METHODS
from af2struct.predict.pipeline import DEFAULT_WEIGHTS
from af2struct.predict.templates import PDB, sources_key
from refine.cli import add_relax_arguments, relax_config_from_args
from refine.types import RelaxConfig

RELAX_BACKENDS = ("openmm", "rosetta", "none")


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    """The model.

    Attributes:
        weights: checkpoint to load (default: the shipped weights in af2struct/weights)
        device: auto (a GPU if present), cpu, cuda, cuda:1, ...
        num_recycles: recycling passes (default: the checkpoint's)
        seed: seeds the model's random state and relax (atoms PDBFixer builds); same seed, same output
        max_length: longest sequence to fold (800: about 2 GiB for the model on CPU, see
            benchmarks/RESULTS.md; the model accepts up to 2048)
    """

    weights: Optional[str] = None
    device: str = field(default="auto", metadata=meta(result=False))
    num_recycles: Optional[int] = field(default=None, metadata=meta(type=int_in(0, 32)))
    seed: int = field(default=0, metadata=meta(type=int_in(0, SEED_MAX)))
    max_length: int = field(default=800, metadata=meta(type=int_in(1, 2048), result=False))

    def __post_init__(self) -> None:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", self.device):
            raise ValueError(f"--device must be auto, cpu, cuda, cuda:N or mps, not {self.device!r}")

    def key(self) -> Dict[str, Any]:
        return {"weights": weights_label(self.weights), "num_recycles": self.num_recycles, "seed": self.seed}


@dataclasses.dataclass(frozen=True)
class MsaOptions:
    """Multiple sequence alignments.

    Attributes:
        msa: an .a3m/.sto for one target, or a folder of <name>.a3m|.sto
        msa_db: protein FASTA database: targets without --msa get an MSA from a jackhmmer search
            (pyhmmer) of it, kept for reruns in DIR/.af2struct/msas and copied to DIR/<name>/msa.a3m
        msa_iterations: jackhmmer iterations
        msa_cpus: jackhmmer threads (0: all cores)
    """

    msa: Optional[str] = None
    msa_db: Optional[str] = None
    msa_iterations: int = field(default=3, metadata=meta(type=int_in(1, 20)))
    msa_cpus: int = field(default=0, metadata=meta(type=int_in(0, 1024), result=False))

    def key(self) -> Dict[str, Any]:
        """The search database and its iterations (a given ``--msa`` enters each target's
        fingerprint as its file's content)."""
        db = Path(self.msa_db) if self.msa_db else None
        return {"msa_db": [file_key(db), self.msa_iterations] if db and db.is_file() else None}

    def search_key(self, sequence: str) -> str:
        """Names a ``--msa-db`` search of ``sequence`` kept between runs (what it searched: the
        database file, its iterations)."""
        db = Path(self.msa_db or "")
        return fingerprint([sequence, file_key(db) if db.is_file() else str(db.resolve()), self.msa_iterations])


@dataclasses.dataclass(frozen=True)
class TemplateOptions:
    """Templates (AlphaFold2-style: structures of homologues).

    Attributes:
        source: where to search for templates: 'pdb' (the PDB itself: pdb_seqres.txt, ~270 MB,
            downloaded once into --template-cache, then only the mmCIF entries of the hits used,
            each a few hundred KB), or a template database file (e.g.
            ../shared/data/pdb2018_backbone/chains_backbone.npz, or one made by `af2struct templates
            build`). Each target is searched (jackhmmer; with an MSA, hmmsearch with its profile),
            the search kept for reruns in DIR/.af2struct/templates; every candidate and why it was
            or was not used go to DIR/<name>/templates.json, the used ones to the models' REMARK
            lines and ModelCIF
        custom: your own template structures: PDB/mmCIF files (.gz too) or folders of them, with or
            without --templates. Every chain is aligned to each target; each is used (before other
            templates) or reported in templates.json with why not
        max_templates: templates used per target at most
        max_date: use no template released after this date, nor one whose release date is unknown
        max_identity: use no template above this sequence identity to the target (benchmarks: e.g. 0.95)
        search: search from a single sequence: jackhmmer (3 iterations) or phmmer (one round, faster)
        pdb_mirror: --templates pdb: where the PDB's files come from, in the wwPDB layout
            (pub/pdb/derived_data/pdb_seqres.txt, pub/pdb/data/structures/divided/mmCIF/): the
            wwPDB's file server, another URL, or a local folder (an rsync mirror, read in place)
        cache: --templates pdb: where downloads are kept and shared between runs (default:
            $XDG_CACHE_HOME/af2struct/pdb, i.e. ~/.cache/af2struct/pdb)
        offline: --templates pdb: never use the network; files not in the cache are named and the
            targets that need them fail
    """

    source: Optional[str] = field(default=None, metadata=meta(flag="--templates", metavar="DB|pdb"))
    custom: Tuple[str, ...] = field(default=(), metadata=meta(flag="--custom-templates", nargs="+", metavar="PATH"))
    max_templates: int = field(default=4, metadata=meta(type=int_in(0, 20)))
    max_date: Optional[str] = field(default=None, metadata=meta(flag="--max-template-date", metavar="YYYY-MM-DD"))
    max_identity: Optional[float] = field(default=None, metadata=meta(
        flag="--template-max-identity", type=float_in(0, 1, lo_open=True), metavar="FRACTION"))
    search: str = field(default="jackhmmer", metadata=meta(flag="--template-search", choices=SEARCH_METHODS))
    # another mirror may serve another snapshot of the PDB: its pdb_seqres.txt enters the key
    pdb_mirror: str = field(default=DEFAULT_MIRROR, metadata=meta(metavar="URL|DIR"))
    cache: Optional[str] = field(default=None, metadata=meta(flag="--template-cache", metavar="DIR", result=False))
    offline: bool = field(default=False, metadata=meta(result=False))
    progress: bool = field(default=True, metadata=meta(cli=False, result=False))  # download progress (--quiet)

    def __post_init__(self) -> None:
        if not 0 <= self.max_templates <= 20:
            raise ValueError("--max-templates must be between 0 and 20")
        if self.max_date is not None and valid_date(self.max_date) != self.max_date:
            raise ValueError(f"--max-template-date must be a date written YYYY-MM-DD, not {self.max_date!r}")
        if self.max_identity is not None and not 0 < self.max_identity <= 1:
            raise ValueError("--template-max-identity must be in (0, 1]")
        if self.search not in SEARCH_METHODS:
            raise ValueError(f"--template-search must be one of {SEARCH_METHODS}")
        if not self.source:
            given = [flag for flag, on in (("--max-template-date", self.max_date is not None),
                                           ("--template-max-identity", self.max_identity is not None),
                                           ("--template-search", self.search != "jackhmmer")) if on]
            if not self.custom:
                given += ["--max-templates"] if self.max_templates != 4 else []
            if given:
                raise ValueError(f"{', '.join(given)} without --templates has no effect: give --templates DB too")
        if self.source != PDB:
            given = [flag for flag, on in (("--pdb-mirror", self.pdb_mirror != DEFAULT_MIRROR),
                                           ("--template-cache", self.cache is not None),
                                           ("--offline", self.offline)) if on]
            if given:
                raise ValueError(f"{', '.join(given)} without --templates pdb has no effect")

    @property
    def wanted(self) -> bool:
        """Whether any template source is given."""
        return bool(self.source or self.custom)

    def key(self) -> Dict[str, Any]:
        """Every source's content and the options that choose among its hits; ``template_options``
        stays ``None`` so that a run without templates keeps the fingerprint it had before."""
        return {"templates": sources_key(self), "template_options": None}


@dataclasses.dataclass(frozen=True)
class RelaxOptions:
    """Relax (every setting of `af2struct relax`, prefixed --relax-).

    Attributes:
        backend: openmm: Amber restrained minimisation (AlphaFold2's protocol, improved); rosetta:
            PyRosetta FastRelax (needs PyRosetta); none: unrelaxed models only
        config: the relax settings (the --relax-* options; backend and seed come from --relax and --seed)
    """

    backend: str = field(default="openmm", metadata=meta(flag="--relax", choices=RELAX_BACKENDS))
    config: Optional[RelaxConfig] = field(default=None, metadata=meta(cli=False))

    def __post_init__(self) -> None:
        if self.backend not in RELAX_BACKENDS:
            raise ValueError("relax must be openmm, rosetta or none")

    def key(self) -> Dict[str, Any]:
        return {"relax": self.backend, "relax_config": dataclasses.asdict(self.config) if self.config else None}


@dataclasses.dataclass(frozen=True)
class OutputOptions:
    """Outputs.

    Attributes:
        fmt: pdb: PDB files only; cif: mmCIF files as well
        plots: pLDDT.png, pae.png and distogram.png are written unless --no-plots (pae.json and
            confidence.json always are)
        native: native structure (one target) or folder of <name>.pdb|cif to score against
        progress: a progress bar and per-target progress lines unless --quiet
    """

    fmt: str = field(default="pdb", metadata=meta(flag="--format", choices=("pdb", "cif")))
    plots: bool = field(default=True, metadata=meta(flag="--no-plots", invert=True))
    native: Optional[str] = None
    progress: bool = field(default=True, metadata=meta(flag="--quiet", invert=True, result=False))

    def __post_init__(self) -> None:
        if self.fmt not in ("pdb", "cif"):
            raise ValueError("format must be pdb or cif")

    def key(self) -> Dict[str, Any]:
        """The format and plots (a ``--native`` enters each target's fingerprint as its file's content)."""
        return {"format": self.fmt, "plots": self.plots}


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """Ray (many targets on a cluster: model on GPU workers, relax on CPU workers).

    Attributes:
        ray_address: connect to a running Ray cluster ('auto' or host:port)
        workers: start a local Ray with this many CPUs (>= 2)
        model_workers: model replicas (0: one per GPU of the cluster, else one)
    """

    ray_address: Optional[str] = field(default=None, metadata=meta(result=False))
    workers: int = field(default=0, metadata=meta(type=int_in(0, 4096), result=False))
    model_workers: int = field(default=0, metadata=meta(type=int_in(0, 1024), result=False))

    def __post_init__(self) -> None:
        if self.ray_address and self.workers:
            raise ValueError("give --ray-address (an existing cluster) or --workers (a local Ray), not both")

    @property
    def use_ray(self) -> bool:
        return bool(self.ray_address or self.workers)

    def key(self) -> Dict[str, Any]:
        return {}


def weights_label(weights: Optional[str]) -> str:
    """The checkpoint that made a model: its file name and the first 12 hex digits of its SHA-256
    (hashed once per process while the file's size and modification time stay the same)."""
    path = Path(weights) if weights else DEFAULT_WEIGHTS
    digest = _sha256_prefix(str(path), file_key(path)) if path.is_file() else "unknown"
    return f"{'shipped ' if not weights else ''}{path.name} (sha256 {digest})"


@functools.lru_cache(maxsize=8)
def _sha256_prefix(path: str, key: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


GROUPS = {"model": ModelOptions, "msa": MsaOptions, "templates": TemplateOptions, "relax": RelaxOptions,
          "outputs": OutputOptions, "run": RunOptions}


@dataclasses.dataclass(frozen=True)
class PredictOptions:
    """Every option of a prediction run, by group (each validated when made)."""

    model: ModelOptions = field(default_factory=ModelOptions)
    msa: MsaOptions = field(default_factory=MsaOptions)
    templates: TemplateOptions = field(default_factory=TemplateOptions)
    relax: RelaxOptions = field(default_factory=RelaxOptions)
    outputs: OutputOptions = field(default_factory=OutputOptions)
    run: RunOptions = field(default_factory=RunOptions)

    def key(self) -> Dict[str, Any]:
        """What the options contribute to a target's fingerprint: every group's :meth:`key`."""
        out: Dict[str, Any] = {}
        for name in GROUPS:
            out.update(getattr(self, name).key())
        return out

    @functools.cached_property
    def relax_settings(self) -> RelaxConfig:
        """The relax settings every target uses, built once: the ``--relax-*`` settings with the
        backend of ``--relax`` and the run's ``--seed``."""
        return dataclasses.replace(self.relax.config or RelaxConfig(), backend=self.relax.backend,
                                   seed=self.model.seed)


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    """Every group's options, each group under its docstring's first line (the relax settings
    of :class:`RelaxConfig` among them, prefixed ``--relax-``)."""
    for name, cls in GROUPS.items():
        title = (cls.__doc__ or name).split("\n")[0].rstrip(".")
        group = parser if name == "model" else parser.add_argument_group(title)
        add_dataclass_arguments(group, cls, dest_prefix=f"{name}.")
        if name == "relax":
            add_relax_arguments(group, prefix="relax-", skip=("backend", "seed"))


def options_from_arguments(args: argparse.Namespace) -> PredictOptions:
    """The :class:`PredictOptions` of :func:`add_predict_arguments`' options."""
    groups = {name: from_arguments(cls, args, dest_prefix=f"{name}.") for name, cls in GROUPS.items()
              if name not in ("relax", "templates")}
    groups["templates"] = from_arguments(TemplateOptions, args, dest_prefix="templates.",
                                         progress=groups["outputs"].progress)
    groups["relax"] = from_arguments(RelaxOptions, args, dest_prefix="relax.",
                                     config=relax_config_from_args(args, prefix="relax-"))
    return PredictOptions(**groups)
