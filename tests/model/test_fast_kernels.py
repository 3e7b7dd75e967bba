"""The training-speed kernels compute what the plain formulas compute: outputs and gradients.

References here are written out directly (softmax attention with bias and mask, the outer
product mean as AlphaFold writes it), independent of the code under test.
"""

import pytest
import torch

from af2struct import Alphafold2
from af2struct.model.attention import NEG_INF, _BiasedAttention, attend
from af2struct.model.outer_product_mean import OuterProductMean


def reference_attention(q, k, v, bias, mask):
    s = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5 + bias
    if mask is not None:
        s = s + (~mask) * NEG_INF
    return torch.softmax(s, -1) @ v


def outputs_and_gradients(fn, tensors):
    """``fn()``'s output and the gradients of ``tensors`` under a fixed non-uniform weighting."""
    for t in tensors:
        t.grad = None
    out = fn()
    (out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum().backward()
    return out.detach(), [t.grad.clone() for t in tensors]


def assert_same(fast, reference, tensors, atol=1e-5, grad_atol=1e-5):
    """``fast()`` and ``reference()`` agree in output and in the gradients of ``tensors``."""
    out_fast, g_fast = outputs_and_gradients(fast, tensors)
    out_ref, g_ref = outputs_and_gradients(reference, tensors)
    torch.testing.assert_close(out_fast, out_ref, atol=atol, rtol=atol)
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, atol=grad_atol, rtol=grad_atol)
    return out_fast


def _inputs(dtype, masked_row=True):
    b, n, h, lq, lk, d = 2, 3, 4, 5, 6, 8
    q = torch.randn(b, n, h, lq, d, dtype=dtype, requires_grad=True)
    k = torch.randn(b, n, h, lk, d, dtype=dtype, requires_grad=True)
    v = torch.randn(b, n, h, lk, d, dtype=dtype, requires_grad=True)
    bias = torch.randn(b, 1, h, lq, lk, dtype=dtype, requires_grad=True)  # shared across n (pair bias)
    mask = torch.rand(b, n, 1, 1, lk) > 0.3
    if masked_row:
        mask[0, 0] = False  # every key of one row masked (padding): finite, ignored output
    return q, k, v, bias, mask


@pytest.mark.slow
@pytest.mark.parametrize("recompute", [False, True])
def test_biased_attention_gradcheck(recompute):
    q, k, v, bias, mask = _inputs(torch.float64)
    assert torch.autograd.gradcheck(lambda *t: _BiasedAttention.apply(*t, mask, recompute), (q, k, v, bias))


@pytest.mark.parametrize("recompute", [False, True])
@pytest.mark.parametrize("with_mask", [True, False])
def test_attend_matches_reference_outputs_and_gradients(with_mask, recompute):
    q, k, v, bias, mask = _inputs(torch.float32)
    mask = mask if with_mask else None
    out = assert_same(lambda: attend(q, k, v, bias, mask, recompute=recompute),
                      lambda: reference_attention(q, k, v, bias, mask), [q, k, v, bias])
    assert torch.isfinite(out).all()


def _saved_bytes(fn) -> int:
    """Bytes of the tensors autograd keeps for backward while ``fn()`` runs (each storage once)."""
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def test_triangle_attention_recomputes_probabilities_beyond_its_budget():
    """Over ``attn_saved_probs_mib`` the module keeps no ``[B, L, H, L, L]`` probabilities for
    backward (memory O(L^2)), with the same outputs and gradients as when it keeps them."""
    from af2struct.model.config import TrunkConfig
    from af2struct.model.triangle_attention import TriangleAttention

    torch.manual_seed(0)
    length, heads = 24, 4
    m = TriangleAttention(TrunkConfig(dim=16, pair_heads=heads, pair_dim_head=8), starting=False)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.3)
    z = torch.randn(1, length, length, 16, requires_grad=True)
    mask = torch.ones(1, length, length, dtype=torch.bool)
    mask[:, 20:], mask[:, :, 20:] = False, False

    def run(budget_bytes):
        m.saved_probs_max = budget_bytes
        return m(z, mask)

    probs = heads * length**3 * 4  # [B, L, H, L, L] float32
    pair_sized = heads * length**2 * 4  # what recompute keeps instead: O(L^2) (statistics, bias, mask)
    out = assert_same(lambda: run(0), lambda: run(probs), [z, *m.parameters()])
    assert _saved_bytes(lambda: run(probs)) - _saved_bytes(lambda: run(probs - 1)) >= probs - 4 * pair_sized
    assert torch.isfinite(out).all()


def test_attend_without_grad_uses_sdpa_and_agrees():
    q, k, v, bias, mask = _inputs(torch.float32)
    with torch.no_grad():
        out = attend(q, k, v, bias, mask, chunk=2)
        ref = reference_attention(q, k, v, bias, mask)
        # the row with every key masked (padding) is finite; its value is float noise at 1e4
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out[1:], ref[1:], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out[0, 1:], ref[0, 1:], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(attend(q, k, v, None, mask), reference_attention(q, k, v, 0.0, mask),
                                   atol=1e-5, rtol=1e-5)


def reference_outer_product_mean(m: OuterProductMean, a, a_mask):
    x = m.norm(a)
    msk = a_mask.to(x.dtype)[..., None]
    left, right = m.left(x) * msk, m.right(x) * msk
    outer = torch.einsum("bnic,bnjd->bijcd", left, right)
    norm = torch.einsum("bni,bnj->bij", msk[..., 0], msk[..., 0]).clamp(min=1.0)[..., None, None]
    return m.out((outer / norm).flatten(-2))


@pytest.mark.parametrize("rows", [1, 3, 40])  # 1 and 3: projection folded first; 40: outer products first
@pytest.mark.parametrize("padded", [False, True])
def test_outer_product_mean_both_contraction_orders(rows, padded):
    m = OuterProductMean(8, 6, hidden=4)
    torch.nn.init.normal_(m.out.weight)
    torch.nn.init.normal_(m.out.bias)
    a = torch.randn(2, rows, 7, 8, requires_grad=True)
    a_mask = torch.ones(2, rows, 7, dtype=torch.bool)
    if padded:
        a_mask[1, :, 5:] = False
        a_mask[0, -1, :] = rows == 1  # a missing MSA row (kept when it is the only one)
    assert_same(lambda: m(a, a_mask if padded else None), lambda: reference_outer_product_mean(m, a, a_mask),
                [a, m.out.weight, m.left.weight], grad_atol=1e-4)


def test_padding_changes_neither_training_outputs_nor_gradients(tiny):
    """Training mode, every block (row/column/triangle attention with pair bias, triangle
    multiplication, outer product mean): a padded batch gives the real residues the outputs and
    the parameters the gradients of the unpadded sequence (the masked path against the unmasked
    one, through the fused backward)."""
    model = Alphafold2(config=tiny).train()
    seq = torch.randint(0, 20, (1, 14))
    msa = torch.randint(0, 20, (1, 3, 14))
    padded_seq = torch.cat([seq, torch.zeros(1, 4, dtype=seq.dtype)], 1)
    padded_msa = torch.cat([msa, torch.full((1, 3, 4), 21)], 2)
    mask = torch.arange(18)[None] < 14
    results = []
    for s, m, kw in ((seq, msa, {}), (padded_seq, padded_msa, {"mask": mask, "msa_mask": mask[:, None].expand(1, 3, 18)})):
        model.zero_grad()
        d = model(s, m, **kw)[0, :14, :14]
        (d * torch.linspace(-1, 1, d.numel()).view(d.shape)).sum().backward()
        results.append((d.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (d0, g0), (d1, g1) = results
    torch.testing.assert_close(d0, d1, atol=1e-4, rtol=1e-4)
    assert g0.keys() == g1.keys()
    for name in g0:
        torch.testing.assert_close(g0[name], g1[name], atol=1e-4, rtol=1e-3, msg=name)


def reference_triangle_multiplication(m, z, pair_mask):
    x = m.norm(z)
    ab = m.proj(x) * torch.sigmoid(m.gate(x)) * pair_mask[..., None]
    a, b = ab.chunk(2, dim=-1)
    t = torch.einsum("bikc,bjkc->bijc" if m.outgoing else "bkic,bkjc->bijc", a, b)
    return m.out(m.norm_out(t)) * torch.sigmoid(m.out_gate(x))


@pytest.mark.parametrize("outgoing", [True, False])
@pytest.mark.parametrize("batch,masked", [(2, True), (1, False), (2, False)])
def test_triangle_multiplication_matches_einsum(outgoing, batch, masked):
    from af2struct.model.triangle_multiplication import TriangleMultiplication

    torch.manual_seed(0)
    m = TriangleMultiplication(6, 5, outgoing)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.5)
    z = torch.randn(batch, 7, 7, 6, requires_grad=True)
    mask = torch.ones(batch, 7, 7, dtype=torch.bool)
    if masked:
        mask[-1, 5:], mask[-1, :, 5:] = False, False
    params = [z, m.proj.weight, m.gate.weight, m.proj.bias, m.gate.bias, m.norm.weight, m.out.weight]
    assert_same(lambda: m(z, mask if masked else None), lambda: reference_triangle_multiplication(m, z, mask),
                params)


@pytest.mark.parametrize("outgoing", [True, False])
@pytest.mark.parametrize("budget", [1, None])  # one row per block / the whole pair in one
def test_triangle_multiplication_without_grad_in_row_blocks(monkeypatch, outgoing, budget):
    """Prediction's path (no autograd, the pointwise work a block of rows at a time, the output
    LayerNorm folded into the projection) gives the reference update, masked rows included."""
    from af2struct.model import triangle_multiplication as tm

    if budget is not None:
        monkeypatch.setattr(tm, "CHUNK_BYTES", budget)
    torch.manual_seed(1)
    m = tm.TriangleMultiplication(6, 5, outgoing)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.5)
    z = torch.randn(2, 9, 9, 6)
    mask = torch.ones(2, 9, 9, dtype=torch.bool)
    mask[1, 6:], mask[1, :, 6:] = False, False
    with torch.no_grad():
        fast = m(z, mask)
    torch.testing.assert_close(fast, reference_triangle_multiplication(m, z, mask).detach(), atol=1e-5, rtol=1e-5)
    assert not torch.equal(fast[0], fast[1])


def test_transition_without_grad_in_row_blocks(monkeypatch):
    from af2struct.model import triangle_multiplication as tm
    from af2struct.model.transition import Transition

    monkeypatch.setattr(tm, "CHUNK_BYTES", 200)  # a few rows per block, the last one short
    torch.manual_seed(2)
    m = Transition(6, 3)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(2, 5, 7, 6)
    with torch.no_grad():
        fast = m(x)
    torch.testing.assert_close(fast, m.net(x), atol=1e-6, rtol=1e-6)
    assert fast.shape == x.shape
