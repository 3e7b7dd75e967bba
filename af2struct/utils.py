"""Compatibility layer for the original alphafold2-pytorch README (``from af2struct.utils import
MDScaling, center_distogram_torch``). Same implementation as the model uses (af2struct.model.mds)."""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from af2struct.model.mds import center_distogram, weighted_mds


def center_distogram_torch(distogram: torch.Tensor, d_min: float = 2.0, d_max: float = 20.0,
                           mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Distogram logits ``[B, L, L, K]`` exactly as the model returns them (softmax inside) ->
    ``(distances, weights)`` ``[B, L, L]``; the last bin (beyond ``d_max``) counts as "far"."""
    return center_distogram(distogram, d_min, d_max, mask=mask)


def MDScaling(distances: torch.Tensor, weights: Optional[torch.Tensor] = None, iters: int = 200,
              tol: float = 1e-6, fix_mirror: int = 1, mask: Optional[torch.Tensor] = None,
              d_max: float = 20.0, **_ignored) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weighted MDS: ``[B, L, L]`` distances -> ``(coords [B, 3, L], stress history [B, T])``.

    ``fix_mirror`` (truthy) picks the natural hand from the Calpha trace. Extra keyword
    arguments of the original (``N_mask``, ``CA_mask``, ``eigen``, ``verbose``) are accepted and
    ignored.
    """
    if distances.dim() == 2:
        distances = distances[None]
        weights = None if weights is None else weights[None]
    x, history = weighted_mds(distances, weights, iters=iters, tol=tol, d_max=d_max, mask=mask,
                              fix_mirror=bool(fix_mirror))
    return x.transpose(-1, -2), history
