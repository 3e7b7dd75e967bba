"""What a training step sees: pools of chains, cluster- and length-balanced sampling, crops.

Every sample is a pure function of ``(seed, step, slot)``, so a resumed run draws exactly what an
uninterrupted one would, with no epoch bookkeeping. Two kinds of pool:

* all-atom chains (:class:`~af2struct.common.protein.Protein`: distogram, backbone and chi targets);
* a backbone database (:class:`~af2struct.data.backbone_db.BackboneDB`: distogram and backbone
  targets, chis masked).

A chain's weight is ``min(L, crop) / crop / cluster_size``: each sequence cluster is drawn about
equally often, and short chains (which fill only part of a crop) proportionally less.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from af2struct.data.features import Example, crop_example, make_example

Maker = Callable[[int, int, int], Example]  # (chain index, crop start, crop size) -> example


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

    def make(i: int, start: int, size: int) -> Example:
        if i not in cache:
            cache[i] = make_example(proteins[names[i]])
        return crop_example(cache[i], start, size)

    lengths = np.array([len(proteins[n]) for n in names], np.int64)
    return Pool("all-atom", names, lengths, balanced_weights(names, lengths, clusters, crop_size), make)


def backbone_pool(db, indices: Sequence[int], clusters: Optional[Mapping[str, str]], crop_size: int,
                  min_length: int = 16) -> Pool:
    """A pool of chains ``indices`` of a :class:`~af2struct.data.backbone_db.BackboneDB`."""
    idx = [int(i) for i in indices if db.lengths[i] >= min_length]
    names = [db.names[i] for i in idx]
    lengths = db.lengths[idx].astype(np.int64)
    return Pool("backbone", names, lengths, balanced_weights(names, lengths, clusters, crop_size),
                lambda i, start, size: db.example(idx[i], start, size))


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
        return pool.make(i, start, self.crop_size)

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
