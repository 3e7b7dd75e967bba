"""SE(3)-equivariant refinement of the Calpha trace with se3-transformer-pytorch.

Residues are nodes (type-0 features from the sequence row), their ``num_neighbors`` nearest
residues are the edges (pair features as edge features), and the network predicts type-1
vectors per residue: a Calpha update (norm bounded by ``se3_max_step``) and the directions of
N and C, from which an ideal N-CA-C backbone is built. Rotating/translating the input trace
rotates/translates the output.

Notes on the library (0.9.0): its basis cache path is read from ``CACHE_PATH`` when the module
is first imported (default: a folder in the home directory, holding pickles). ``import_se3``
sets it to the folder the user named in ``$AF2STRUCT_SE3_CACHE``, or disables the disk cache
(in-memory only); a model config or checkpoint never chooses it. Its
``get_basis(differentiable=True)`` enters ``no_grad`` (the context is inverted), so we keep
``differentiable_coors=False``: the basis is a function of the input geometry only, and
gradients reach the trunk through node and edge features.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Tuple

import torch
from torch import nn

from af2struct.common import residue_constants as rc
from af2struct.model.config import StructureConfig

N_CA = rc.ideal_bond_length[("N", "CA")]
CA_C = rc.ideal_bond_length[("CA", "C")]
N_CA_C = math.radians(rc.ideal_bond_angle_deg[("N", "CA", "C")])


SE3_CACHE_ENV = "AF2STRUCT_SE3_CACHE"


def import_se3():
    """Import ``se3_transformer_pytorch`` with its basis cache in memory, or in the folder the
    user named in ``$AF2STRUCT_SE3_CACHE`` (the library pickles its cache: name only a folder
    you own). Never a path from a model config or checkpoint."""
    if "se3_transformer_pytorch" not in sys.modules:
        cache_dir = os.environ.get(SE3_CACHE_ENV)
        if cache_dir:
            os.makedirs(cache_dir, exist_ok=True)
            os.environ["CACHE_PATH"] = str(cache_dir)
            os.environ.pop("CLEAR_CACHE", None)
        else:
            os.environ["CLEAR_CACHE"] = "1"
    import se3_transformer_pytorch  # lazy: it reads CACHE_PATH/CLEAR_CACHE once, when first imported

    return se3_transformer_pytorch


def ideal_backbone(ca: torch.Tensor, v_n: torch.Tensor, v_c: torch.Tensor) -> torch.Tensor:
    """``[..., 3]`` CA and direction vectors -> ideal ``[..., 3 (N, CA, C), 3]`` backbone."""
    e1 = v_c / v_c.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    n_perp = v_n - (v_n * e1).sum(-1, keepdim=True) * e1
    e2 = n_perp / n_perp.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    n = ca + N_CA * (math.cos(N_CA_C) * e1 + math.sin(N_CA_C) * e2)
    c = ca + CA_C * e1
    return torch.stack([n, ca, c], dim=-2)


def trace_backbone(ca: torch.Tensor) -> torch.Tensor:
    """``ca [..., L, 3]`` -> ideal ``[..., L, 3 (N, CA, C), 3]`` backbone with the N and C
    directions taken from the neighbours along the trace (a chain end from its one neighbour):
    the backbone of a Calpha trace without SE(3) refinement."""
    prev = torch.cat([ca[..., :1, :], ca[..., :-1, :]], -2)
    nxt = torch.cat([ca[..., 1:, :], ca[..., -1:, :]], -2)
    return ideal_backbone(ca, prev - ca, nxt - ca)


class SE3Refiner(nn.Module):
    def __init__(self, cfg: StructureConfig, single_dim: int, pair_dim: int) -> None:
        super().__init__()
        se3 = import_se3()
        self.cfg = cfg
        self.node_in = nn.Sequential(nn.LayerNorm(single_dim), nn.Linear(single_dim, cfg.se3_dim))
        self.edge_in = nn.Sequential(nn.LayerNorm(pair_dim), nn.Linear(pair_dim, cfg.se3_edge_dim))
        self.net = se3.SE3Transformer(
            dim=cfg.se3_dim, heads=cfg.se3_heads, dim_head=cfg.se3_dim_head, depth=cfg.se3_depth,
            input_degrees=1, num_degrees=cfg.se3_num_degrees, output_degrees=2, dim_out=3,
            reduce_dim_out=False, edge_dim=cfg.se3_edge_dim, num_neighbors=cfg.se3_num_neighbors,
            differentiable_coors=False,
        )
        # the Calpha update starts switched off, so an untrained refiner leaves the MDS trace as is
        self.step_gate = nn.Parameter(torch.zeros(1))

    def forward(self, ca: torch.Tensor, s: torch.Tensor, z: torch.Tensor,
                mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``ca [B, L, 3]`` -> refined ``ca [B, L, 3]`` and backbone ``[B, L, 3, 3]`` (N, CA, C)."""
        n = ca.shape[1]
        if n < 2:  # a lone residue has no neighbour to attend to: an ideal backbone around its CA
            axes = torch.eye(3, dtype=ca.dtype, device=ca.device)
            return ca, ideal_backbone(ca, axes[1].expand_as(ca), axes[0].expand_as(ca))
        feats = self.node_in(s)
        edges = self.edge_in(z)
        k = min(self.cfg.se3_num_neighbors, n - 1)
        self.net.num_neighbors = k  # never more neighbours than residues
        out = self.net(feats, ca, mask=mask.bool(), edges=edges, return_type=1)  # [B, L, 3, 3]
        delta, v_n, v_c = out[:, :, 0], out[:, :, 1], out[:, :, 2]
        norm = delta.norm(dim=-1, keepdim=True)
        delta = delta * (torch.tanh(norm / self.cfg.se3_max_step) * self.cfg.se3_max_step / norm.clamp(min=1e-6))
        new_ca = ca + self.step_gate * delta * mask[..., None]
        return new_ca, ideal_backbone(new_ca, v_n, v_c)
