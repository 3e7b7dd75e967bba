"""The MSA and pair transition (AlphaFold2 supplement Algorithms 9 and 15)."""

from __future__ import annotations

from torch import nn


class Transition(nn.Module):
    """Two-layer transition ``[..., C] -> [..., C]`` (AlphaFold2 supplement Algorithms 9 and 15:
    MSA and pair transition; LayerNorm, widen by ``factor``, ReLU, project back; zero-initialised
    output so a new block starts as the identity)."""

    def __init__(self, dim: int, factor: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * factor), nn.ReLU(),
                                 nn.Linear(dim * factor, dim))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x):
        return self.net(x)
