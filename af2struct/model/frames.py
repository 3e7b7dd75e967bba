"""Backbone frames and the aligned error that AlphaFold's PAE predicts (torch).

A residue's frame is AlphaFold's ``rigid_from_3_points``: origin at CA, x axis along C - CA,
y axis in the N-CA-C plane (towards N), z = x cross y. The aligned error of residue ``j`` in
the frame of residue ``i`` is the distance between CA_j expressed in frame ``i`` of the
prediction and of the truth: ``e_ij = |R_i^T (x_j - t_i) - R*_i^T (x*_j - t*_i)|``. It is
invariant to a rigid motion of either structure and asymmetric (``e_ij != e_ji``).
"""

from __future__ import annotations

from typing import Tuple

import torch


def backbone_frames(backbone: torch.Tensor, eps: float = 1e-8) -> Tuple[torch.Tensor, torch.Tensor]:
    """``backbone [..., L, 3 (N, CA, C), 3]`` -> rotations ``[..., L, 3, 3]`` (columns: the
    frame's axes in global coordinates) and origins ``[..., L, 3]`` (CA)."""
    n, ca, c = backbone.unbind(-2)
    e1 = c - ca
    e1 = e1 / e1.norm(dim=-1, keepdim=True).clamp(min=eps)
    u2 = n - ca
    e2 = u2 - (u2 * e1).sum(-1, keepdim=True) * e1
    e2 = e2 / e2.norm(dim=-1, keepdim=True).clamp(min=eps)
    e3 = torch.cross(e1, e2, dim=-1)
    return torch.stack([e1, e2, e3], dim=-1), ca


def aligned_error(pred_backbone: torch.Tensor, true_backbone: torch.Tensor) -> torch.Tensor:
    """``[..., L, L]`` aligned error (Angstrom), row ``i`` = the frame, column ``j`` = the
    residue, of ``pred_backbone`` against ``true_backbone`` (both ``[..., L, 3, 3]``)."""

    return (frame_coordinates(pred_backbone) - frame_coordinates(true_backbone)).norm(dim=-1)


def frame_coordinates(backbone: torch.Tensor) -> torch.Tensor:
    """``[..., L(i), L(j), 3]``: CA_j in the frame of residue ``i``, ``R_i^T (x_j - t_i)``, of
    ``backbone [..., L, 3 (N, CA, C), 3]``."""
    rot, origin = backbone_frames(backbone)
    ca = backbone[..., 1, :]
    return torch.einsum("...iab,...ija->...ijb", rot, ca[..., None, :, :] - origin[..., :, None, :])
