"""The code examples of the original alphafold2-pytorch README, with only the import changed
(``.cuda()`` only where a GPU is present)."""

import pytest
import torch

from af2struct import Alphafold2
from af2struct.utils import MDScaling, center_distogram_torch

dev = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.slow
def test_usage_example():
    model = Alphafold2(
        dim=256,
        depth=2,
        heads=8,
        dim_head=64,
        reversible=False,  # set this to True for fully reversible self / cross attention for the trunk
    ).to(dev)
    seq = torch.randint(0, 21, (1, 128)).to(dev)
    msa = torch.randint(0, 21, (1, 5, 64)).to(dev)
    mask = torch.ones_like(seq).bool().to(dev)
    msa_mask = torch.ones_like(msa).bool().to(dev)
    with torch.no_grad():
        distogram = model(seq, msa, mask=mask, msa_mask=msa_mask)  # (1, 128, 128, 37)
    assert distogram.shape == (1, 128, 128, 37)
    distances, weights = center_distogram_torch(distogram)
    coords_3d, _ = MDScaling(distances, weights=weights, iters=200, fix_mirror=0)
    assert coords_3d.shape == (1, 3, 128) and torch.isfinite(coords_3d).all()


def _small_forward(model, n=32):
    """A forward pass on a short sequence (alphafold2-pytorch's models are 12 blocks of dim 256: ~6 s at 64
    residues on one CPU thread; the examples are about building them)."""
    seq = torch.randint(0, 21, (1, n)).to(dev)
    msa = torch.randint(0, 21, (1, 3, n // 2)).to(dev)
    with torch.no_grad():
        return model(seq, msa, mask=torch.ones_like(seq).bool(), msa_mask=torch.ones_like(msa).bool())


@pytest.mark.slow
def test_sparse_attention_example():
    model = Alphafold2(
        dim=256,
        depth=12,
        heads=8,
        dim_head=64,
        max_seq_len=2048,  # the maximum sequence length, this is required for sparse attention. the input cannot exceed what is set here
        sparse_self_attn=(True, False) * 6,  # interleave sparse and full attention for all 12 layers
    ).to(dev)
    assert [b.row.sparse for b in model.trunk.stack.blocks] == [True, False] * 6
    assert _small_forward(model, 64).shape == (1, 64, 64, 37)  # 4 blocks of 16: attention truly sparse


def test_memory_compressed_attention_example():
    model = Alphafold2(dim=256, depth=12, heads=8, dim_head=64, cross_attn_compress_ratio=3).to(dev)
    assert model.trunk.stack.blocks[0].seq_to_msa.compress.ratio == 3
    assert _small_forward(model).shape == (1, 32, 32, 37)


def test_misc_settings_example():
    model = Alphafold2(
        dim=256,
        depth=12,
        heads=8,
        dim_head=64,
        inter_msa_self_attn=False,  # turns off self-attention across MSA. each MSA will only attend internally
    ).to(dev)
    assert model.trunk.stack.blocks[0].col is None
    assert _small_forward(model).shape == (1, 32, 32, 37)
