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


def test_calibrator_features_read_the_pair_and_its_residues(native_ca):
    from af2struct.model.pae_ensemble import CALIBRATOR_FEATURES, calibrator_features

    n = len(native_ca)
    pae = torch.rand(n, n, generator=torch.Generator().manual_seed(0)) * 30
    spread = torch.rand(n, n, generator=torch.Generator().manual_seed(1)) * 10
    plddt = torch.linspace(20, 90, n)
    f = calibrator_features(pae, spread, plddt, native_ca)
    assert f.shape == (n, n, CALIBRATOR_FEATURES)
    torch.testing.assert_close(f[..., 0], pae / 10)
    torch.testing.assert_close(f[..., 1], spread / 10)
    assert float(f[3, 7, 2]) == pytest.approx(float(plddt[3]) / 100) and float(f[3, 7, 3]) == pytest.approx(float(plddt[7]) / 100)
    assert float(f[3, 7, 4]) == pytest.approx(float((native_ca[3] - native_ca[7]).norm()) / 10, rel=1e-5)
    torch.testing.assert_close(f[..., 4], f[..., 4].T)  # the distance; the row means are not symmetric
    assert float(f[5, 5, 5]) == 0.0 and float(f[0, 4, 5]) == pytest.approx(np.log(5) / 3)


def test_fit_learns_the_error_the_features_carry():
    """On pairs whose true error is a known function of the inputs the fitted calibrator reads
    it (seeded; the fit is the one scripts/fit_pae_calibrator.py runs)."""
    from af2struct.train.pae_calibrate import fit, within_chain_r

    gen = torch.Generator().manual_seed(0)
    data = []
    for _ in range(6):
        f = torch.rand(30, 30, 10, generator=gen)
        data.append({"name": "x", "features": f, "error": 10 * (f[..., 0] + 2 * f[..., 1] ** 2)})
    calibrator = fit(data, epochs=40, pairs=900, lr=3e-3, seed=0)
    assert within_chain_r(calibrator, data) > 0.95
    with torch.no_grad():
        err = (calibrator(data[0]["features"]) - data[0]["error"]).abs().mean()
    assert float(err) < 2.0  # A, on errors of 0-30 A


def test_fit_script_writes_a_checkpoint_whose_pae_reads_the_spread_through_its_calibrator(native_ca, tiny, tmp_path,
                                                                                         caplog):
    """``scripts/fit_pae_calibrator.py`` (from a cache of collected chains): the checkpoint it
    writes loads with ``heads.pae_calibrator``, and its templated PAE is the calibrator's reading
    of the head's PAE and the spread; without a cache or a library it stops with a clear error."""
    import importlib.util
    from pathlib import Path

    from af2struct import Alphafold2
    from af2struct.model.checkpoint import load_model, save_checkpoint
    from af2struct.model.pae_ensemble import calibrator_features

    spec = importlib.util.spec_from_file_location(
        "fit_pae_calibrator", Path(__file__).resolve().parents[2] / "scripts" / "fit_pae_calibrator.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    gen = torch.Generator().manual_seed(0)
    cache = tmp_path / "cache.pt"
    torch.save([{"name": "x", "features": torch.rand(12, 12, 10, generator=gen),
                 "error": torch.rand(12, 12, generator=gen) * 20} for _ in range(3)], cache)
    save_checkpoint(tmp_path / "w.pt", Alphafold2(config=tiny), tiny)
    out = tmp_path / "c.pt"
    assert script.main(["--weights", str(tmp_path / "w.pt"), "--cache", str(cache), "--epochs", "2",
                        "--out", str(out)]) == 0
    model, payload = load_model(out)
    assert model.config.heads.pae_calibrator and model.pae_calibrator is not None
    assert payload["train_state"]["pae_calibrator"]["chains"] == 3
    n = len(native_ca)
    pae = torch.rand(n, n, generator=gen) * 20
    logits = _logits(native_ca, 1.0)
    plddt = torch.linspace(30, 90, n)
    h, sc = model.config.heads, model.config.structure
    spread = aligned_spread(logits, native_ca, sc, h.distogram_min, h.distogram_max)
    with torch.no_grad():
        expected = model.pae_calibrator(calibrator_features(pae, spread, plddt, native_ca))
    torch.testing.assert_close(model.pae_with_spread(pae, logits, native_ca, plddt), expected)
    torch.testing.assert_close(model.pae_with_spread(pae, logits, native_ca), with_spread(pae, spread))
    assert script.main(["--weights", str(tmp_path / "w.pt"), "--out", str(tmp_path / "d.pt")]) == 2
    assert "--library is needed" in caplog.text and not (tmp_path / "d.pt").exists()
