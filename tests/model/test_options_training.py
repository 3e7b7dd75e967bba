"""A few training steps with each seed option on real structures (1PSM with its real MSA)."""

import pytest
import torch

from af2struct import Alphafold2, load_structure
from af2struct.data.features import collate, make_example
from af2struct.data.msa import read_msa
from af2struct.model.config import preset
from af2struct.train.losses import distogram_loss

OPTIONS = {
    "reversible": dict(reversible=True),
    "sparse_self_attn": dict(sparse_self_attn=(True, False), sparse_block_size=8, sparse_num_global=2),
    "cross_attn_compress_ratio": dict(cross_attn_compress_ratio=3),
    "inter_msa_self_attn_off": dict(inter_msa_self_attn=False),
}


@pytest.fixture(scope="module")
def batch(data_dir):
    p = load_structure(data_dir / "openfold_1psm_A.pdb.gz")
    return collate([make_example(p, read_msa(data_dir / "1psm_A.a3m"), max_msa_rows=8)])


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_option_trains(name, batch):
    torch.manual_seed(0)
    model = Alphafold2(config=preset("tiny"), **OPTIONS[name])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    seq, msa = batch["aatype"], batch["msa"]
    if name == "cross_attn_compress_ratio":
        msa = msa[:, :, :30]  # an MSA of another length goes through the (compressed) cross attention
    losses = []
    for _ in range(8):
        opt.zero_grad()
        logits = model(seq, msa, residue_index=batch["residue_index"])
        loss = distogram_loss(logits, batch["all_atom_positions"], batch["all_atom_mask"])
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
