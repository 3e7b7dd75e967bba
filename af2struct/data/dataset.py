"""Training/evaluation datasets over Proteins (from SidechainNet pickles or structure folders).

Random crops, optional MSAs, padding masks and length-sorted batching.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Union

import numpy as np
from torch.utils.data import DataLoader

from af2struct.common.io import StructureError, load_structure, structure_name
from af2struct.common.protein import Protein
from af2struct.data.clusters import find_structures
from af2struct.data.features import Example, collate, make_example, random_crop
from af2struct.data.msa import Msa
from af2struct.data.sidechainnet import entry_to_protein, load_dataset, split_names

logger = logging.getLogger(__name__)


def proteins_from_sidechainnet(path: Union[str, Path], split: str = "train") -> Dict[str, Protein]:
    """``{id: Protein}`` for one split (or a prefix such as ``valid`` for all ``valid-*``)."""
    data = load_dataset(path)
    chosen = [s for s in split_names(data) if s == split or s.startswith(split + "-")]
    if not chosen:
        raise KeyError(f"{path}: no split {split!r}; splits: {split_names(data)}")
    out = {}
    for s in chosen:
        d = data[s]
        for i, pid in enumerate(d["ids"]):
            out[str(pid)] = entry_to_protein(d, i)
    return out


def proteins_from_folder(folder: Union[str, Path], names: Optional[Sequence[str]] = None) -> Dict[str, Protein]:
    """``{name: Protein}`` for the structure files in ``folder`` (unreadable ones are logged and skipped)."""
    out = {}
    for f in find_structures([str(folder)]):
        name = structure_name(f)
        if names is not None and name not in names:
            continue
        try:
            out[name] = load_structure(f)
        except StructureError as exc:
            logger.warning("skipping %s", exc)
    return out


class ProteinDataset:
    """A map-style dataset of training examples (a ``torch.utils.data.Dataset`` by duck typing).

    Args:
        proteins: ``{name: Protein}``.
        msas: optional ``{name: Msa}`` aligned to the chains (full-length query columns).
        crop_size: random contiguous crops of at most this length (``None``: whole chains).
        max_msa_rows: MSA rows sampled per example (query always kept).
        seed: the base seed; item ``i`` in epoch ``e`` uses ``(seed, e, i)`` so runs reproduce.
        min_length: chains shorter than this are dropped.
    """

    def __init__(
        self,
        proteins: Mapping[str, Protein],
        msas: Optional[Mapping[str, Msa]] = None,
        crop_size: Optional[int] = 256,
        max_msa_rows: int = 64,
        seed: int = 0,
        min_length: int = 16,
    ) -> None:
        self.names = sorted(n for n, p in proteins.items() if len(p) >= min_length)
        self.proteins = {n: proteins[n] for n in self.names}
        self.msas = dict(msas or {})
        self.crop_size = crop_size
        self.max_msa_rows = max_msa_rows
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.names)

    @property
    def lengths(self) -> List[int]:
        """Example lengths after cropping (for length-sorted batching)."""
        return [min(len(self.proteins[n]), self.crop_size or 10**9) for n in self.names]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> Example:
        name = self.names[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        ex = make_example(self.proteins[name], self.msas.get(name), self.max_msa_rows, rng)
        if self.crop_size is not None:
            ex = random_crop(ex, self.crop_size, rng)
        return ex


class LengthBatchSampler:
    """Batches of indices with similar lengths, bounded by ``max_residues`` per batch.

    Sorts by length, cuts into batches of at most ``batch_size`` items and ``max_residues``
    padded residues, and shuffles the batch order each epoch (seeded).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int = 8, max_residues: Optional[int] = None,
                 shuffle: bool = True, seed: int = 0) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.max_residues = max_residues
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> List[List[int]]:
        order = sorted(range(len(self.lengths)), key=lambda i: (self.lengths[i], i))
        batches, cur = [], []
        for i in order:
            longest = max([self.lengths[j] for j in cur] + [self.lengths[i]])
            too_many = self.max_residues is not None and longest * (len(cur) + 1) > self.max_residues
            if cur and (len(cur) == self.batch_size or too_many):
                batches.append(cur)
                cur = []
            cur.append(i)
        if cur:
            batches.append(cur)
        return batches

    def __iter__(self) -> Iterator[List[int]]:
        batches = self._batches()
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch])
            rng.shuffle(batches)
        return iter(batches)

    def __len__(self) -> int:
        return len(self._batches())


def make_loader(dataset: ProteinDataset, batch_size: int = 8, max_residues: Optional[int] = None,
                shuffle: bool = True, num_workers: int = 0):
    """A torch DataLoader with length-sorted batches and padding collation."""
    sampler = LengthBatchSampler(dataset.lengths, batch_size, max_residues, shuffle, dataset.seed)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers)
