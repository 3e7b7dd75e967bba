"""Backbone frames and the aligned error behind PAE, on a real backbone (1PSM)."""

import math

import numpy as np
import pytest
import torch

from af2struct import Alphafold2, load_structure
from af2struct.model.checkpoint import load_model, save_checkpoint
from af2struct.model.config import preset
from af2struct.model.frames import aligned_error, backbone_frames
from af2struct.model.heads import pae_bin_centers, pae_breaks, pae_from_logits
from af2struct.train.losses import pae_loss


@pytest.fixture(scope="module")
def backbone(data_dir):
    p = load_structure(data_dir / "openfold_1psm_A.pdb.gz")
    ok = p.atom_mask[:, :3].all(-1) > 0
    return torch.tensor(p.atom_positions[ok][:, :3], dtype=torch.float64)  # [L, 3 (N, CA, C), 3]


def _rotation(seed):
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q * torch.sign(torch.det(q))


def test_frames_are_right_handed_and_orthonormal(backbone):
    rot, origin = backbone_frames(backbone)
    eye = torch.eye(3, dtype=torch.float64).expand_as(rot)
    torch.testing.assert_close(rot.transpose(-1, -2) @ rot, eye)
    torch.testing.assert_close(torch.det(rot), torch.ones(len(backbone), dtype=torch.float64))
    torch.testing.assert_close(origin, backbone[:, 1])
    # x axis along C - CA, N in the xy plane on the +y side
    n_local = torch.einsum("lab,la->lb", rot, backbone[:, 0] - backbone[:, 1])
    assert torch.all(n_local[:, 2].abs() < 1e-9) and torch.all(n_local[:, 1] > 0)


def test_aligned_error_is_zero_for_a_moved_copy_and_sees_a_moved_residue(backbone):
    moved = backbone @ _rotation(1).T + torch.tensor([5.0, -3.0, 12.0], dtype=torch.float64)
    assert aligned_error(moved, backbone).abs().max() < 1e-9
    shifted = backbone.clone()
    shifted[7, 1] += torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)  # CA of residue 7 moves 1 A
    err = aligned_error(shifted, backbone)
    others = [i for i in range(len(backbone)) if i != 7]
    torch.testing.assert_close(err[others, 7], torch.ones(len(others), dtype=torch.float64))  # column 7: 1 A
    assert err[others][:, others].abs().max() < 1e-9  # nothing else moved in the other frames
    assert err[7, others].max() > 1.0  # residue 7's own frame turned: far residues move in it


def test_pae_bins_as_alphafold():
    breaks, centers = pae_breaks(64, 31.0), pae_bin_centers(64, 31.0)
    assert len(breaks) == 63 and breaks[1] - breaks[0] == pytest.approx(0.5)
    assert centers[0] == pytest.approx(0.25) and centers[-1] == pytest.approx(31.75)
    logits = torch.full((1, 2, 2, 64), -1e4)
    logits[..., 10] = 0.0
    torch.testing.assert_close(pae_from_logits(logits, 31.0), torch.full((1, 2, 2), 5.25))


def test_pae_loss_is_lowest_for_the_true_error(backbone):
    pos37 = torch.zeros(1, len(backbone), 37, 3, dtype=torch.float32)
    pos37[0, :, :3] = backbone.float()
    mask37 = torch.zeros(1, len(backbone), 37)
    mask37[0, :, :3] = 1
    noisy = backbone.float() + 0.8 * torch.randn(backbone.shape, generator=torch.Generator().manual_seed(0))
    err = aligned_error(noisy.double(), backbone)
    target = (err[..., None] > pae_breaks(64, 31.0, err.device).double()).sum(-1)
    right = torch.nn.functional.one_hot(target, 64).float()[None] * 20
    wrong = torch.nn.functional.one_hot(torch.zeros_like(target), 64).float()[None] * 20
    l_right = pae_loss(right, noisy[None], pos37, mask37, 31.0)
    l_wrong = pae_loss(wrong, noisy[None], pos37, mask37, 31.0)
    assert float(l_right) < 1e-3 < float(l_wrong)
    assert math.isfinite(float(l_wrong))


def test_checkpoints_without_the_pae_and_context_plddt_heads_still_load(tmp_path):
    cfg = preset("tiny")
    old = Alphafold2(config=cfg.replace(heads={"pae_bins": 0, "plddt_context": False}))
    payload_cfg = old.config
    path = save_checkpoint(tmp_path / "old.pt", old, payload_cfg)
    # what a checkpoint written before the PAE head holds: no pae_bins in its config
    ckpt = torch.load(path, weights_only=True)
    for key in ("pae_bins", "pae_max", "plddt_context"):
        del ckpt["config"]["heads"][key]
    torch.save(ckpt, path)
    model, _ = load_model(path)
    assert model.pae_head is None and not model.plddt_head.context
    seq = torch.randint(0, 20, (1, 12))
    out = model({"aatype": seq}, return_all=True)
    assert "pae_logits" not in out and out["plddt_logits"].shape == (1, 12, 50)
    new = Alphafold2(config=cfg)
    model, _ = load_model(save_checkpoint(tmp_path / "new.pt", new, new.config))
    out = model({"aatype": seq}, return_all=True)
    assert out["pae_logits"].shape == (1, 12, 12, 64)
    assert not np.allclose(out["pae_logits"][0, 0, 1].detach().numpy(), out["pae_logits"][0, 1, 0].detach().numpy())
