"""The PAE's ensemble term: the spread of structures sampled on the distogram around a model."""

import dataclasses

import numpy as np
import pytest
import torch

from af2struct.data.template_search import TemplateDB
from af2struct.model.config import StructureConfig
from af2struct.model.mds import distogram_centers
from af2struct.model.pae_ensemble import aligned_spread, with_spread

D_MIN, D_MAX, BINS = 2.0, 20.0, 37


def _logits(ca: torch.Tensor, sigma: float, unsure: slice = slice(0, 0)) -> torch.Tensor:
    """``[L, L, BINS]`` logits of a Gaussian (``sigma`` A) about each true Calpha distance (the far
    bin's centre for a pair beyond it); every pair with a residue in ``unsure`` flat: the
    distogram knows nothing of where those residues are."""
    centres = torch.cat([distogram_centers(BINS, D_MIN, D_MAX), torch.tensor([D_MAX + 1.5])])
    d = (ca[:, None] - ca[None]).norm(dim=-1).clamp(max=D_MAX + 1.5)
    logits = -((centres - d[..., None]) ** 2) / (2 * sigma ** 2)
    logits[unsure] = 0.0
    logits[:, unsure] = 0.0
    return logits


@pytest.fixture(scope="module")
def native_ca(data_dir):
    db = TemplateDB(data_dir / "templates_sample.npz")
    return torch.tensor(db.protein(0).atom_positions[:, 1], dtype=torch.float32)  # 1A32_A, 85 residues


def test_spread_is_largest_where_the_distogram_is_unsure(native_ca):
    n = len(native_ca)
    core, unsure = slice(0, n - 12), slice(n - 12, n)  # nothing known of the C-terminal residues
    cfg = StructureConfig()
    spread = aligned_spread(_logits(native_ca, 0.75, unsure), native_ca, cfg, D_MIN, D_MAX)
    assert spread.shape == (n, n) and bool((spread >= 0).all())
    in_core = float(spread[core, core].mean())
    # the frames of the unsure residues turn freely: the whole chain moves in them
    assert float(spread[unsure, core].mean()) > 1.4 * in_core
    # and they move in the core's frames
    assert float(spread[core, unsure].mean()) > 1.05 * in_core
    # a surer distogram, a smaller spread
    blurred = aligned_spread(_logits(native_ca, 1.5, unsure), native_ca, cfg, D_MIN, D_MAX)
    assert float(blurred[core, core].mean()) > 1.2 * in_core
    again = aligned_spread(_logits(native_ca, 0.75, unsure), native_ca, cfg, D_MIN, D_MAX)
    torch.testing.assert_close(spread, again, atol=0, rtol=0)  # seeded: the same PAE every run


def test_spread_is_zero_without_samples_or_residues(native_ca):
    logits = _logits(native_ca, 0.75)
    off = dataclasses.replace(StructureConfig(), pae_spread_steps=0)
    assert float(aligned_spread(logits, native_ca, off, D_MIN, D_MAX).abs().max()) == 0.0
    assert float(aligned_spread(logits[:3, :3], native_ca[:3], StructureConfig(), D_MIN, D_MAX).abs().max()) == 0.0


def test_with_spread_adds_in_quadrature():
    pae = torch.tensor([[3.0, 0.0], [31.75, 5.0]])
    spread = torch.tensor([[4.0, 2.0], [0.0, 12.0]])
    torch.testing.assert_close(with_spread(pae, spread), torch.tensor([[5.0, 2.0], [31.75, 13.0]]))
    assert np.isfinite(with_spread(torch.zeros(3), torch.zeros(3)).numpy()).all()
