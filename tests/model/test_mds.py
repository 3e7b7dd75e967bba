"""MDS and the alphafold2-pytorch README's utilities on real CASP14 Calpha traces (tests/fixtures/casp14_monomers_ca.npz:
the 27 monomeric CASP14 targets of <= 400 residues)."""

import numpy as np
import pytest
import torch

from af2struct.geometry.superposition import superpose
from af2struct.model.mds import distances_to_bins, handedness
from af2struct.utils import MDScaling, center_distogram_torch


@pytest.fixture(scope="module")
def traces(data_dir):
    data = np.load(data_dir / "casp14_monomers_ca.npz")
    return {k: torch.tensor(data[k]) for k in data.files}


def _rmsd(x, ref):
    return superpose(x.numpy().astype(np.float64), ref.numpy().astype(np.float64))[1]


@pytest.mark.slow
def test_every_target_exact_and_binned(traces):
    assert len(traces) == 27
    worst_exact = worst_binned = 0.0
    for name, ca in traces.items():
        d = torch.cdist(ca[None], ca[None])
        coords, hist = MDScaling(d, iters=200, fix_mirror=1)
        assert coords.shape == (1, 3, len(ca))
        # exact distances are met at the start: no step may stir float32 noise into them
        assert float(hist[0, -1]) <= float(hist[0, 0]), f"{name}: stress rose {hist[0, 0]} -> {hist[0, -1]}"
        worst_exact = max(worst_exact, _rmsd(coords[0].T, ca))
        logits = torch.nn.functional.one_hot(distances_to_bins(d), 37).float() * 10
        dist, w = center_distogram_torch(logits)
        coords, _ = MDScaling(dist, weights=w, iters=200, fix_mirror=1)
        x = coords[0].T
        r, r_mirror = _rmsd(x, ca), _rmsd(x * torch.tensor([1.0, 1.0, -1.0]), ca)
        assert r < r_mirror, f"{name}: wrong hand"
        worst_binned = max(worst_binned, r)
    assert worst_exact < 0.1
    assert worst_binned < 1.0


def test_center_distogram_far_bin(traces):
    ca = traces["T1082"]
    d = torch.cdist(ca[None], ca[None])
    logits = torch.nn.functional.one_hot(distances_to_bins(d), 37).float() * 10
    dist, w = center_distogram_torch(logits)
    far = d[0] >= 20
    assert torch.all(dist[0][far] == 20.0) and torch.all(w[0][far] < 0.1)
    near = (d[0] < 19.5) & (d[0] > 2.5)
    assert (dist[0][near] - d[0][near]).abs().max() <= 0.3  # about half a bin
    assert torch.all(w[0][near] > 0.5)


def test_handedness_from_ca_alone(traces):
    for name, ca in traces.items():
        assert float(handedness(ca[None])) > 0, name
        assert float(handedness(ca[None] * torch.tensor([1.0, 1.0, -1.0]))) < 0, name


def test_elongated_chain():
    """A 200-residue ideal helix, 300 A long (the original's SVD start failed on elongated chains),
    and a 200-residue extended zigzag (650 A) in float64."""
    t = torch.arange(200, dtype=torch.float32)
    helix = torch.stack([2.3 * torch.cos(t * 1.745), 2.3 * torch.sin(t * 1.745), 1.5 * t], -1)
    coords, _ = MDScaling(torch.cdist(helix[None], helix[None]), iters=100, fix_mirror=1)
    assert _rmsd(coords[0].T, helix) < 0.01
    zigzag = torch.stack([3.3 * t, 1.0 * (t % 2), torch.zeros_like(t)], -1).double()
    coords, _ = MDScaling(torch.cdist(zigzag[None], zigzag[None]), iters=100, fix_mirror=0)
    assert torch.isfinite(coords).all() and _rmsd(coords[0].T, zigzag) < 0.01


def test_mds_is_differentiable(traces):
    ca = traces["T1073"]
    d = torch.cdist(ca[None], ca[None])
    logits = (torch.nn.functional.one_hot(distances_to_bins(d), 37).float() * 5).requires_grad_(True)
    dist, w = center_distogram_torch(logits)
    coords, _ = MDScaling(dist, weights=w, iters=20)
    coords.pow(2).sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_the_stress_gradient_in_closed_form_is_autograds():
    """MDS's L-BFGS stage uses _stress_and_grad's own gradient, far pairs (lower bounds) included."""
    from af2struct.model.mds import _stress_and_grad

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 40, 3, generator=gen, dtype=torch.float64) * 10
    dist = torch.cdist(torch.randn(2, 40, 3, generator=gen, dtype=torch.float64) * 10, x.detach()).clamp(max=20.0)
    dist = (dist + dist.transpose(-1, -2)) / 2
    w = torch.rand(2, 40, 40, generator=gen, dtype=torch.float64)
    w = (w + w.transpose(-1, -2)) / 2 * (1 - torch.eye(40, dtype=torch.float64))
    far = (dist - 20.0).abs() < 1e-4
    assert far.any()
    xa = x.clone().requires_grad_(True)
    _stress_and_grad(xa, dist, w, far)[0].sum().backward()
    torch.testing.assert_close(_stress_and_grad(x, dist, w, far)[1], xa.grad)
