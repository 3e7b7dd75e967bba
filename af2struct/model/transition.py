"""The MSA and pair transition (AlphaFold2 supplement Algorithms 9 and 15)."""

from __future__ import annotations

import torch
from torch import nn

from af2struct.model.triangle_multiplication import row_blocks


class Transition(nn.Module):
    """Two-layer transition ``[..., C] -> [..., C]`` (AlphaFold2 supplement Algorithms 9 and 15:
    MSA and pair transition; LayerNorm, widen by ``factor``, ReLU, project back; zero-initialised
    output so a new block starts as the identity). Without gradients on the CPU it runs a block of
    rows at a time, so that the widened ``[..., factor * C]`` never leaves the cache."""

    def __init__(self, dim: int, factor: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * factor), nn.ReLU(),
                                 nn.Linear(dim * factor, dim))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or x.device.type != "cpu":
            return self.net(x)
        flat = x.reshape(-1, x.shape[-1])
        out = torch.empty_like(flat)
        for r0, r1 in row_blocks(flat.shape[0], 4 * (2 * flat.shape[-1] + self.net[1].out_features)):
            out[r0:r1] = self.net(flat[r0:r1])
        return out.view(x.shape)
