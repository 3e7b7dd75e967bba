"""Each trunk option does what it claims: reversible, sparse, compressed, column attention, chunking."""

import torch

from af2struct import Alphafold2
from af2struct.model.attention import NEG_INF, attend, block_sparse_attention
from af2struct.model.config import TrunkConfig
from af2struct.model.evoformer import EvoformerBlock
from tests.model.conftest import saved_bytes


def _train_step_bytes(model, seq, msa=None):
    def run():
        return model(seq, msa).float().pow(2).mean()

    nbytes, loss = saved_bytes(run)
    loss.backward()
    return nbytes


def test_reversible_memory_does_not_grow_with_depth(tiny):
    seq = torch.randint(0, 20, (1, 32))
    plain = {d: _train_step_bytes(Alphafold2(config=tiny, depth=d), seq) for d in (2, 8)}
    rev = {d: _train_step_bytes(Alphafold2(config=tiny, depth=d, reversible=True), seq) for d in (2, 8)}
    assert plain[8] > 3 * plain[2]  # plain trunk stores activations of every block
    assert rev[8] < 1.1 * rev[2]  # reversible: trunk activations are not stored
    assert rev[8] < plain[8] / 3


def test_reversible_gradients_match_autograd(tiny):
    torch.manual_seed(1)
    model = Alphafold2(config=tiny, depth=3, reversible=True).double()
    seq = torch.randint(0, 20, (1, 12))
    msa = torch.randint(0, 21, (1, 3, 12))

    def grads(store):
        model.trunk.stack.store_activations = store
        model.zero_grad()
        model(seq, msa).pow(2).mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    ref, rev = grads(True), grads(False)
    assert ref.keys() == rev.keys() and len(ref) > 20
    for n in ref:
        assert torch.allclose(ref[n], rev[n], atol=1e-9, rtol=1e-6), n


def test_block_sparse_matches_dense_with_its_pattern():
    torch.manual_seed(0)
    b, h, n, d, blk, g = 2, 3, 37, 4, 8, 3
    q, k, v = (torch.randn(b, h, n, d) for _ in range(3))
    bias = torch.randn(b, h, n, n)
    km = torch.rand(b, n) > 0.2
    km[:, 0] = True
    out = block_sparse_attention(q, k, v, bias, km, blk, g)
    i, j = torch.arange(n)[:, None], torch.arange(n)[None]
    allowed = ((i // blk - j // blk).abs() <= 1) | (j < g) | (i < g)
    ref_bias = bias + torch.where(allowed, 0.0, NEG_INF) + ((~km).float() * NEG_INF)[:, None, None, :]
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=ref_bias)
    assert torch.allclose(out, ref, atol=1e-5)


def test_sparse_self_attention_saves_memory(tiny):
    cfg = tiny.replace(trunk={"triangle_mult": False, "triangle_attn": False, "sparse_block_size": 8,
                              "sparse_num_global": 2, "dim": 16, "attn_chunk_size": 1024})
    dense = Alphafold2(config=cfg)
    sparse = Alphafold2(config=cfg, sparse_self_attn=(True, True))
    assert sparse.trunk.stack.blocks[0].row.sparse and not dense.trunk.stack.blocks[0].row.sparse
    mixed = Alphafold2(config=cfg, sparse_self_attn=(True, False))
    assert [b.row.sparse for b in mixed.trunk.stack.blocks] == [True, False]
    # the attention itself: scores are [L, 3 * block + g] instead of [L, L]
    q, k, v = (torch.randn(1, 2, 1024, 8, requires_grad=True) for _ in range(3))
    bd, dense_out = saved_bytes(lambda: attend(q, k, v, torch.zeros(1, 1, 1024, 1024)))
    bs, _ = saved_bytes(lambda: block_sparse_attention(q, k, v, None, None, 16, 4))
    assert bs < bd / 2  # and the gap grows linearly with L


def test_compressed_cross_attention_saves_memory(tiny):
    cfg = tiny.trunk
    seq = torch.randn(1, 64, cfg.dim)
    ctx = torch.randn(1, 8 * 64, cfg.dim)
    mask = torch.ones(1, 8 * 64, dtype=torch.bool)
    full = EvoformerBlock(TrunkConfig(**{**cfg.__dict__, "cross_attn_compress_ratio": 1}), 0, True).seq_to_msa
    comp = EvoformerBlock(TrunkConfig(**{**cfg.__dict__, "cross_attn_compress_ratio": 4}), 0, True).seq_to_msa
    bf, _ = saved_bytes(lambda: full(seq.requires_grad_(), ctx, mask).sum())
    bc, _ = saved_bytes(lambda: comp(seq.requires_grad_(), ctx, mask).sum())
    assert bc < bf


def test_inter_msa_self_attn_off_keeps_rows_independent(tiny):
    torch.manual_seed(0)
    for inter in (True, False):
        cfg = TrunkConfig(**{**tiny.trunk.__dict__, "inter_msa_self_attn": inter})
        blk = EvoformerBlock(cfg, 0, has_unaligned=False)
        for p in blk.parameters():  # non-zero output layers so every path contributes
            torch.nn.init.normal_(p, std=0.2)
        a = torch.randn(1, 4, 10, cfg.dim)
        z = torch.randn(1, 10, 10, cfg.z_dim)
        masks = (torch.ones(1, 4, 10, dtype=torch.bool), None, torch.ones(1, 10, 10, dtype=torch.bool))
        d1 = blk.msa_update((a, None, z), masks)[0]
        a2 = a.clone()
        a2[:, 2] += torch.randn_like(a2[:, 2])  # (a constant shift would vanish in LayerNorm)
        d2 = blk.msa_update((a2, None, z), masks)[0]
        changed = not torch.allclose(d1[:, 1], d2[:, 1], atol=1e-6)
        assert changed == inter


def test_chunked_attention_is_exact():
    q, k, v = (torch.randn(2, 3, 50, 8) for _ in range(3))
    bias = torch.randn(2, 3, 50, 50)
    full = attend(q, k, v, bias)
    assert torch.allclose(attend(q, k, v, bias, chunk=7), full, atol=1e-6)


def test_chunking_bounds_attention_memory(tiny):
    seq = torch.randint(0, 20, (1, 96))
    cfg = tiny.replace(trunk={"triangle_mult": False, "triangle_attn": True})
    with torch.no_grad():
        big = Alphafold2(config=cfg.replace(trunk={"attn_chunk_size": 96}))
        small = Alphafold2(config=cfg.replace(trunk={"attn_chunk_size": 8}))
        small.load_state_dict(big.state_dict())
        assert torch.allclose(big(seq), small(seq), atol=1e-4)
