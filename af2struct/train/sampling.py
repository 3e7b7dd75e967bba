"""What a training step sees: pools of chains, cluster- and length-balanced sampling, crops.

Every sample is a pure function of ``(seed, step, slot)``, so a resumed run draws exactly what an
uninterrupted one would, with no epoch bookkeeping. Two kinds of pool:

* all-atom chains (:class:`~af2struct.common.protein.Protein`: distogram, backbone and chi targets);
* a backbone database (:class:`~af2struct.data.backbone_db.BackboneDB`: distogram and backbone
  targets, chis masked), optionally with templates (:class:`TemplateSource`: each crop gets 0-4
  of its chain's template hits, as AlphaFold trains, so the model learns both to copy and to do
  without).

A chain's weight is ``min(L, crop) / crop / cluster_size``: each sequence cluster is drawn about
equally often, and short chains (which fill only part of a crop) proportionally less.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from af2struct.data.features import Example, crop_example, make_example
from af2struct.data.templates import MAX_TEMPLATES, TemplateHit, filter_hits, template_features

# (chain index, crop start, crop size, rng) -> example; rng None: the deterministic choice
# (validation), else random choices (templates) drawn from it
Maker = Callable[[int, int, int, Optional[np.random.Generator]], Example]


@dataclasses.dataclass
class Pool:
    """Chains of one kind: ``make(i, start, size)`` builds the crop of chain ``i``."""

    name: str
    names: List[str]
    lengths: np.ndarray
    weights: np.ndarray
    make: Maker

    def __len__(self) -> int:
        return len(self.names)


def balanced_weights(names: Sequence[str], lengths: Sequence[int], clusters: Optional[Mapping[str, str]],
                     crop_size: int) -> np.ndarray:
    """``[n]`` sampling probabilities: ``min(L, crop) / crop / cluster_size`` normalised (a chain
    without a cluster is its own)."""
    keys = [clusters.get(n, "_own_" + n) if clusters else "_own_" + n for n in names]
    size: Dict[str, int] = {}
    for k in keys:
        size[k] = size.get(k, 0) + 1
    w = np.array([min(int(l), crop_size) / crop_size / size[k] for l, k in zip(lengths, keys)], np.float64)
    if len(w) == 0 or w.sum() <= 0:
        return w
    return w / w.sum()


def protein_pool(proteins: Mapping[str, object], clusters: Optional[Mapping[str, str]], crop_size: int,
                 min_length: int = 16) -> Pool:
    """A pool of all-atom Proteins (features are built once per chain, then cropped)."""
    names = sorted(n for n, p in proteins.items() if len(p) >= min_length)
    cache: Dict[int, Example] = {}

    def make(i: int, start: int, size: int, rng: Optional[np.random.Generator] = None) -> Example:
        if i not in cache:
            cache[i] = make_example(proteins[names[i]])
        return crop_example(cache[i], start, size)

    lengths = np.array([len(proteins[n]) for n in names], np.int64)
    return Pool("all-atom", names, lengths, balanced_weights(names, lengths, clusters, crop_size), make)


@dataclasses.dataclass
class TemplateSource:
    """Templates for the chains of a backbone database, from its self-search table
    (``self_hits_phmmer.tsv.gz``, read by :func:`~af2struct.data.templates.read_hits_table`).

    A chain never gets itself, its own PDB entry or a near-identical sequence
    (:func:`~af2struct.data.templates.filter_hits`), nor a chain in ``exclude`` (the held-out
    chains: their structures are never a training input); with ``clusters``, nor a chain of its
    own sequence cluster (validation: templates only from other clusters).
    """

    db: object
    hits: Mapping[int, Sequence[TemplateHit]]
    exclude: frozenset = frozenset()
    clusters: Optional[Mapping[str, str]] = None
    max_templates: int = MAX_TEMPLATES
    max_identity: Optional[float] = None
    min_templates: int = 0

    def __post_init__(self) -> None:
        self._usable: Dict[int, List[TemplateHit]] = {}

    def usable(self, i: int) -> List[TemplateHit]:
        """Chain ``i``'s hits after the filters (best E-value first; at most 20)."""
        if i not in self._usable:
            name = self.db.names[i]
            hits = filter_hits(self.hits.get(i, ()), self.db.sequence(i), query_pdb_id=name.split("_")[0],
                               exclude=set(self.exclude) | {i}, max_identity=self.max_identity)
            if self.clusters is not None:
                own = self.clusters.get(name, "_own_" + name)
                hits = [h for h in hits if self.clusters.get(h.name, "_own_" + h.name) != own]
            self._usable[i] = hits
        return self._usable[i]

    def features(self, i: int, rng: Optional[np.random.Generator]) -> Example:
        """Template features of whole chain ``i``: with ``rng``, a number of templates drawn
        uniformly from ``min_templates`` (0) to ``max_templates`` (at most what the chain has),
        chosen at random among its hits and kept in E-value order; without, its best
        ``max_templates``."""
        hits = self.usable(i)
        if rng is not None and hits:
            top = min(self.max_templates, len(hits))
            n = int(rng.integers(min(self.min_templates, top), top + 1))
            hits = [hits[k] for k in sorted(rng.choice(len(hits), n, replace=False))]
        return template_features(hits, self.db, int(self.db.lengths[i]), self.max_templates)


def backbone_pool(db, indices: Sequence[int], clusters: Optional[Mapping[str, str]], crop_size: int,
                  min_length: int = 16, templates: Optional[TemplateSource] = None) -> Pool:
    """A pool of chains ``indices`` of a :class:`~af2struct.data.backbone_db.BackboneDB`
    (with ``templates``, each example carries template features)."""
    idx = [int(i) for i in indices if db.lengths[i] >= min_length]
    if templates is not None and templates.min_templates > 0:  # only chains that have a template
        idx = [i for i in idx if templates.usable(i)]
    names = [db.names[i] for i in idx]
    lengths = db.lengths[idx].astype(np.int64)

    def make(i: int, start: int, size: int, rng: Optional[np.random.Generator] = None) -> Example:
        ex = db.example(idx[i], start, size)
        if templates is not None:
            full = templates.features(idx[i], rng)
            ex.update(crop_example(full, start, size))
        return ex

    return Pool("backbone", names, lengths, balanced_weights(names, lengths, clusters, crop_size), make)


class TrainingMix:
    """Draws crops from pools: pool by ``fractions``, chain by the pool's weights, crop start uniform.

    Args:
        pools: non-empty pools.
        fractions: the share of samples from each pool (normalised).
        crop_size: residues per crop.
        seed: base seed; sample ``slot`` of step ``step`` uses ``(seed, step, slot)``.
    """

    def __init__(self, pools: Sequence[Pool], fractions: Sequence[float], crop_size: int, seed: int = 0) -> None:
        keep = [(p, f) for p, f in zip(pools, fractions) if len(p) and f > 0]
        if not keep:
            raise ValueError("no training chains")
        self.pools = [p for p, _ in keep]
        f = np.array([f for _, f in keep], np.float64)
        self.fractions = f / f.sum()
        self.crop_size = crop_size
        self.seed = seed

    def __len__(self) -> int:
        return sum(len(p) for p in self.pools)

    def sample(self, step: int, slot: int) -> Example:
        rng = np.random.default_rng([self.seed, step, slot])
        pool = self.pools[int(rng.choice(len(self.pools), p=self.fractions))]
        i = int(rng.choice(len(pool), p=pool.weights))
        n = int(pool.lengths[i])
        start = int(rng.integers(0, n - self.crop_size + 1)) if n > self.crop_size else 0
        return pool.make(i, start, self.crop_size, rng)

    def batch(self, step: int, batch_size: int, rank: int = 0) -> List[Example]:
        """The ``batch_size`` examples of process ``rank`` at ``step``."""
        return [self.sample(step, rank * batch_size + j) for j in range(batch_size)]


def center_crops(pool: Pool, crop_size: int, count: int, seed: int = 0) -> List[Example]:
    """Up to ``count`` validation examples: one chain per draw without replacement (seeded),
    each cropped about its centre."""
    rng = np.random.default_rng([seed, 7919])
    order = rng.permutation(len(pool))[:count]
    out = []
    for i in sorted(int(i) for i in order):
        n = int(pool.lengths[i])
        out.append(pool.make(i, max(0, (n - crop_size) // 2), crop_size))
    return out
