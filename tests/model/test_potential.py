"""The distogram likelihood refinement on a real CASP14 Calpha trace (T1082)."""

import numpy as np
import pytest
import torch

from af2struct.eval.metrics import lddt
from af2struct.model.mds import center_distogram, distances_to_bins, weighted_mds
from af2struct.model.potential import bin_log_density, pair_nll, refine_on_distogram


@pytest.fixture(scope="module")
def native(data_dir):
    return torch.tensor(np.load(data_dir / "casp14_monomers_ca.npz")["T1082"], dtype=torch.float32)


def _two_mode_logits(ca: torch.Tensor, shift: int = 8, p_true: float = 0.6) -> torch.Tensor:
    """``[1, L, L, 37]``: every pair's true bin with probability ``p_true``, a decoy ``shift``
    bins (4 A) further out with the rest: the expected distance is biased, the mode is not."""
    d = torch.cdist(ca[None], ca[None])
    k = distances_to_bins(d)
    p = torch.full(k.shape + (37,), 1e-4)
    p.scatter_(-1, k[..., None], p_true)
    decoy = (k + shift).clamp(max=36)
    p.scatter_add_(-1, decoy[..., None], torch.full(k.shape + (1,), 1 - p_true))
    return torch.log(p / p.sum(-1, keepdim=True))


def _lddt(x, ref):
    return lddt(x.numpy().astype(np.float64), ref.numpy().astype(np.float64), np.ones(len(ref)))[0]


def test_likelihood_finds_the_mode_mds_averages_away(native):
    logits = _two_mode_logits(native)
    dist, w = center_distogram(logits)
    mds, _ = weighted_mds(dist, w, iters=100, fix_mirror=True)
    refined = refine_on_distogram(mds, logits, iters=300)
    before, after = _lddt(mds[0], native), _lddt(refined[0], native)
    assert before < 0.8 and after > 0.95, (before, after)  # measured 0.77 -> 1.00


def test_energy_goes_down_and_runs_repeat(native):
    logits = _two_mode_logits(native)
    start = native[None] + torch.randn(1, len(native), 3, generator=torch.Generator().manual_seed(0)) * 2.0
    n = len(native)
    i, j = torch.triu_indices(n, n, 1)
    centres, logd = bin_log_density(logits[0][i, j], 2.0, 20.0, 100.0)
    a = refine_on_distogram(start, logits, iters=50)
    b = refine_on_distogram(start, logits, iters=50)
    assert torch.equal(a, b)
    assert pair_nll(a[0], i, j, centres, logd) < pair_nll(start[0], i, j, centres, logd)


def test_masked_residues_stay_and_zero_iterations_is_identity(native):
    logits = _two_mode_logits(native)
    start = native[None] + 1.0
    mask = torch.ones(1, len(native), dtype=torch.bool)
    mask[0, -10:] = False
    out = refine_on_distogram(start, logits, mask, iters=20)
    assert torch.equal(out[0, -10:], start[0, -10:]) and not torch.equal(out[0, :-10], start[0, :-10])
    assert torch.equal(refine_on_distogram(start, logits, iters=0), start)


def test_far_bin_is_a_density_over_its_width():
    logits = torch.zeros(37)
    centres, logd = bin_log_density(logits, 2.0, 20.0, far_width=100.0)
    assert torch.allclose(centres[-1], torch.tensor(21.5)) and torch.allclose(centres[0], torch.tensor(2.25))
    # equal probabilities: the far bin's density is 200x lower than a 0.5 A bin's
    assert torch.allclose(logd[0] - logd[-1], torch.log(torch.tensor(200.0)), atol=1e-4)


def test_structure_path_runs_it_only_when_asked():
    from af2struct.model.alphafold2_pytorch import Alphafold2
    from af2struct.model.config import preset

    torch.manual_seed(0)
    model = Alphafold2(config=preset("tiny")).eval()
    seq = torch.randint(0, 20, (1, 24))
    mask = torch.ones(1, 24, dtype=torch.bool)
    with torch.no_grad():
        out = model(seq, mask=mask, return_all=True)
        off = model.structure(out, mask)
        on = model.structure(out, mask, potential_iters=10)
    assert model.config.structure.potential_iters == 0 and torch.equal(off["ca_init"], off["ca_mds"])
    assert torch.equal(on["ca_mds"], off["ca_mds"]) and not torch.allclose(on["ca_init"], on["ca_mds"])
    assert on["ca"].shape == (1, 24, 3) and torch.isfinite(on["ca"]).all()


@pytest.mark.slow
def test_the_same_input_gives_the_same_trace_with_two_threads(monkeypatch):
    """With two threads the gradient of ``x[i] - x[j]`` over all pairs accumulated in a varying
    order, and the minimiser's path drifted (Angstroms after 100 iterations on this input);
    ``Alphafold2.predict`` runs with torch's deterministic kernels, which fix the order."""
    from af2struct.model.alphafold2_pytorch import Alphafold2
    from af2struct.model.config import preset
    from af2struct.model.network import deterministic_algorithms

    torch.set_num_threads(2)  # restored by conftest
    g = torch.Generator().manual_seed(0)
    n = 200
    logits = torch.randn(1, n, n, 37, generator=g)
    logits = logits + logits.transpose(1, 2)
    ca = torch.randn(1, n, 3, generator=g) * 10
    with deterministic_algorithms():
        runs = [refine_on_distogram(ca, logits, iters=60) for _ in range(3)]
    assert all(torch.equal(runs[0], r) for r in runs[1:])
    assert not torch.are_deterministic_algorithms_enabled()  # the setting is restored
    # predict runs its stages inside it
    model = Alphafold2(config=preset("tiny")).eval()
    seen = []
    real = model.structure
    monkeypatch.setattr(model, "structure", lambda *a, **k: (seen.append(torch.are_deterministic_algorithms_enabled()),
                                                             real(*a, **k))[1])
    from af2struct.common.protein import Protein
    from af2struct.data.features import collate, make_example
    model.predict(collate([make_example(Protein.from_sequence("MKTAYIAKQRQISFVKSHFSRQ"))]))
    assert seen == [True] and not torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize("scale", [8.0, 2.0])  # 2 A: many pairs below the first centre (the wall)
def test_the_closed_form_gradient_is_autograds(scale):
    """The refinement's L-BFGS uses pair_nll_and_grad's own gradient; it must be the energy's."""
    from af2struct.model.potential import pair_nll_and_grad

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(60, 3, generator=gen, dtype=torch.float64) * scale
    i, j = torch.triu_indices(60, 60, 1)
    centres, logd = bin_log_density(torch.randn(len(i), 37, generator=gen, dtype=torch.float64), 2.0, 20.0, 20.0)
    xa = x.clone().requires_grad_(True)
    pair_nll(xa, i, j, centres, logd).backward()
    energy, grad = pair_nll_and_grad(x, i, j, centres, logd)
    assert float(energy) == pytest.approx(float(pair_nll(x, i, j, centres, logd)))
    # the log density and bin centres are float32 (bin_log_density): equal to float32's precision
    torch.testing.assert_close(grad, xa.grad, rtol=1e-5, atol=1e-6)


def test_pair_table_paths_agree():
    """The segment found by arithmetic and read by one packed gather (evenly spaced centres, float32)
    is the one bucketize and two gathers find (any centres, any dtype)."""
    from af2struct.model.potential import PairTable

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(50, 3, generator=gen) * 6.0
    i, j = torch.triu_indices(50, 50, 1)
    centres, logd = bin_log_density(torch.randn(len(i), 37, generator=gen), 2.0, 20.0, 20.0)
    fast = PairTable(i, j, centres, logd)
    general = PairTable(i, j, centres, logd)
    general.uniform, general.packed = False, None
    assert fast.uniform and fast.packed is not None
    for a, b in zip(fast.energy_and_grad(x), general.energy_and_grad(x)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


def test_template_restraints_gradient_sigma_and_pull(native):
    """The template restraints (added to the pair table's energy in the same pass) have autograd's
    gradient; sigma follows Chothia & Lesk (a 25 %-identity template held looser than a 60 % one);
    refining a perturbed trace on a flat distogram with restraints to the native brings it back
    towards the native on the aligned part."""
    from af2struct.model.potential import CHOTHIA_LESK, DistogramLikelihood, PairTable, TemplateRestraints

    n = len(native)
    aligned = torch.zeros(n, dtype=torch.bool)
    aligned[5:n - 5] = True
    r = TemplateRestraints(native, aligned, identity=0.6, scale=0.7)
    assert r.sigma == pytest.approx(0.7 * np.exp(CHOTHIA_LESK * 0.4))
    assert TemplateRestraints(native, aligned, identity=0.25, scale=0.7).sigma > 1.5 * r.sigma
    gen = torch.Generator().manual_seed(0)
    x = native + torch.randn(n, 3, generator=gen) * 2.0
    i, j = torch.triu_indices(n, n, 1)
    target, weight = r.on_pairs(i, j)
    assert int((weight > 0).sum()) == (n - 10) * (n - 11) // 2
    centres, logd = bin_log_density(torch.randn(len(i), 37, generator=gen), 2.0, 20.0, 20.0)
    xa = x.clone().requires_grad_(True)
    d = (xa[i] - xa[j]).norm(dim=-1)
    reference = pair_nll(xa, i, j, centres, logd) + (weight * (d - target).square()).sum() / 2
    reference.backward()
    energy, grad = PairTable(i, j, centres, logd, (target, weight)).energy_and_grad(x)
    assert float(energy) == pytest.approx(float(reference.detach()), rel=1e-5)
    torch.testing.assert_close(grad, xa.grad, rtol=1e-4, atol=1e-4)
    # a flat distogram (no information): the restraints alone decide
    flat = torch.zeros(1, n, n, 37)
    start = (native + torch.randn(n, 3, generator=gen) * 2.0)[None]
    plain = DistogramLikelihood(flat).refine(start, 100)
    held_out = DistogramLikelihood(flat, restraints=[r])
    held = held_out.refine(start, 100)
    core = slice(5, n - 5)
    assert _lddt(held[0, core], native[core]) > _lddt(plain[0, core], native[core]) + 0.2
    assert float(held_out.nll(held)) < float(held_out.nll(start))
