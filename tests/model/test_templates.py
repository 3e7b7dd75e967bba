"""Template modules: alphafold2-pytorch's 0.4 template call, invariance, and "no template = as before"."""

import dataclasses

import numpy as np
import pytest
import torch

from af2struct import Alphafold2
from af2struct.data.features import collate, make_example
from af2struct.data.template_search import TemplateDB
from af2struct.data.templates import read_hits_table, template_features
from af2struct.model.checkpoint import config_from_checkpoint
from af2struct.model.config import HeadsConfig
from af2struct.model.heads import PAE_CONTEXT_FEATURES, pae_context_features
from af2struct.model.potential import distogram_nll, refine_on_distogram
from af2struct.model.templates import pseudo_beta, template_pair_inputs, template_trace
from af2struct.predict.pipeline import load_default_model


def test_seed_template_call_runs_and_templates_change_the_distogram():
    # alphafold2-pytorch 0.4: Alphafold2(..., templates_dim, templates_embed_layers, templates_angles_feats_dim)
    model = Alphafold2(dim=32, depth=1, heads=2, dim_head=16, templates_dim=32, templates_embed_layers=2,
                       templates_angles_feats_dim=55).eval()
    seq = torch.randint(0, 21, (1, 16))
    msa = torch.randint(0, 21, (1, 5, 16))
    mask = torch.ones_like(seq).bool()
    msa_mask = torch.ones_like(msa).bool()
    feats = torch.randn(1, 2, 16, 16, 32)
    tmask = torch.ones(1, 2, 16).bool()
    angles = torch.randn(1, 2, 16, 55)
    with torch.no_grad():
        d1 = model(seq, msa, mask=mask, msa_mask=msa_mask, templates_feats=feats, templates_mask=tmask,
                   templates_angles=angles)
        d2 = model(seq, msa, mask=mask, msa_mask=msa_mask, templates_feats=feats * 2, templates_mask=tmask,
                   templates_angles=angles)
        d0 = model(seq, msa, mask=mask, msa_mask=msa_mask)
    assert d1.shape == (1, 16, 16, 37)
    assert (d1 - d2).abs().max() > 1e-4 and (d1 - d0).abs().max() > 1e-4
    # masking every template removes their pair update
    with torch.no_grad():
        dm = model(seq, msa, mask=mask, msa_mask=msa_mask, templates_feats=feats, templates_mask=tmask & False)
    torch.testing.assert_close(dm, d0, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def sample(data_dir):
    db = TemplateDB(data_dir / "templates_sample.npz")
    hits = read_hits_table(data_dir / "templates_sample_hits.tsv")
    return db, hits


def _batch(db, hits, chain=0, rotate=None):
    feats = template_features(hits[chain], db, int(db.lengths[chain]))
    if rotate is not None:
        r, t = rotate
        feats["template_backbone"] = (feats["template_backbone"] @ r.T + t).astype(np.float32)
    ex = make_example(db.protein(chain))
    ex.update(feats)
    return collate([ex])


def test_template_features_are_invariant_to_moving_the_template(sample, tiny):
    db, hits = sample
    cfg = dataclasses.replace(tiny, templates=dataclasses.replace(tiny.templates, enabled=True, zero_init=False,
                                                                  angle_feat_dim=31))
    model = Alphafold2(config=cfg).eval()
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    q = q * np.sign(np.linalg.det(q))  # a rotation
    with torch.no_grad():
        a = model(batch=_batch(db, hits))
        b = model(batch=_batch(db, hits, rotate=(q, np.array([30.0, -12.0, 5.0]))))
        none = model(batch=collate([make_example(db.protein(0))]))
    torch.testing.assert_close(a, b, atol=2e-4, rtol=0)
    assert (a - none).abs().max() > 1e-3


def test_pseudo_beta_is_ideal_and_calpha_for_glycine(sample):
    db, _ = sample
    bb = torch.tensor(db.backbone(0)[:, :3])
    cb = pseudo_beta(bb, torch.zeros(len(bb), dtype=torch.long))  # as alanine
    d = (cb - bb[:, 1]).norm(dim=-1)
    torch.testing.assert_close(d, torch.full_like(d, 1.52), atol=0.15, rtol=0)  # ideal geometry on a real backbone
    assert abs(float(d.mean()) - 1.52) < 0.03
    gly = pseudo_beta(bb, torch.full((len(bb),), 7))  # G
    torch.testing.assert_close(gly, bb[:, 1])


def test_shipped_model_without_templates_is_the_model_without_template_modules(sample):
    db, hits = sample
    model, payload = load_default_model()
    assert model.template_trunk is not None  # the shipped checkpoint reads templates
    plain = Alphafold2(config=dataclasses.replace(model.config, templates=dataclasses.replace(
        model.config.templates, enabled=False, own_trunk=False))).eval()
    plain.load_state_dict({k: v for k, v in payload["model"].items()
                           if not k.startswith(("trunk.template.", "templated."))})
    ex = make_example(db.protein(0))
    with torch.no_grad():
        a = plain(batch=collate([ex]), return_all=True)
        b = model(batch=collate([ex]), return_all=True)
        # no template found (T = 0) is the same as no template features at all
        ex0 = dict(ex, **template_features([], db, len(ex["aatype"])))
        c = model(batch=collate([ex0]), return_all=True)
        with_t = model(batch=_batch(db, hits), return_all=True)
    for k in ("distogram", "pair", "single"):
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0)
        torch.testing.assert_close(a[k], c[k], atol=0, rtol=0)
    assert (with_t["distogram"] - a["distogram"]).abs().max() > 0.1  # trained: the template is read


def test_a_templated_structure_is_the_likelier_of_its_two_starts(sample):
    """With templates the trace is refined twice, from MDS on the templates' trace and from
    that trace itself; the one the distogram finds likelier is kept (never the worse)."""
    db, hits = sample
    model, _ = load_default_model()
    batch = _batch(db, hits)
    mask = batch["seq_mask"] > 0
    templates = {k: v for k, v in batch.items() if k.startswith("template_")}
    sc = model.config.structure
    with torch.no_grad():
        out = model(batch=batch, return_all=True)
        both = model.structure(dict(out), mask, templates=templates)
        model.config = dataclasses.replace(model.config, structure=dataclasses.replace(sc, template_direct_start=False))
        mds_only = model.structure(dict(out), mask, templates=templates)
        model.config = dataclasses.replace(model.config, structure=sc)
    h = model.config.heads

    def nll(ca):
        return float(distogram_nll(ca, out["distogram"], mask, sc.template_potential_far_width, h.distogram_min,
                                   h.distogram_max)[0])

    direct = refine_on_distogram(template_trace(templates)[0], out["distogram"], mask, sc.template_potential_iters,
                                 sc.template_potential_far_width, h.distogram_min, h.distogram_max)
    assert nll(both["ca"]) == pytest.approx(min(nll(mds_only["ca"]), nll(direct)), abs=1e-5)
    assert abs(nll(mds_only["ca"]) - nll(direct)) > 1e-3  # the two starts differ here: the choice is tested


def test_pae_context_reads_where_a_template_has_both_residues(sample):
    """The PAE context's template columns: 1 where one template has both residues (else 0), and
    the least distance gap to such a template, 0 for a template that is the structure itself."""
    db, hits = sample
    batch = _batch(db, hits)
    templates = {k: v for k, v in batch.items() if k.startswith("template_")}
    mask = batch["seq_mask"] > 0
    n = mask.shape[1]
    ca = templates["template_backbone"][:, 0, :, 1].clone()
    have = templates["template_backbone_mask"][0, 0].bool()
    ca[0, ~have] = torch.randn(int((~have).sum()), 3, generator=torch.Generator().manual_seed(0)) * 10  # off it
    cfg = HeadsConfig()
    logits = torch.zeros(1, n, n, cfg.distogram_bins)
    feats = pae_context_features(logits, ca, torch.full((1, n), 50.0), None, torch.zeros(1, n, 13), mask, cfg,
                                 templates)
    assert feats.shape == (1, n, n, PAE_CONTEXT_FEATURES)
    pair = have[:, None] & have[None, :]
    assert bool((feats[0, ..., 12][pair] == 1).all()) and bool((feats[0, ..., 13][pair] < 1e-5).all())
    anyone = (templates["template_backbone_mask"][0].bool() & templates["template_mask"][0].bool()[:, None])
    covered = (anyone[:, :, None] & anyone[:, None, :]).any(0)
    assert torch.equal(feats[0, ..., 12].bool(), covered)
    assert bool((feats[0, ..., 13][~covered] == 1).all())
    without = pae_context_features(logits, ca, torch.full((1, n), 50.0), None, torch.zeros(1, n, 13), mask, cfg)
    assert bool((without[..., 12] == 0).all()) and torch.equal(without[..., :12], feats[..., :12])


def test_template_modules_predict_in_row_blocks_as_they_train(sample, tiny, monkeypatch):
    """Prediction's CPU path (no autograd; the pair embedding as one table lookup and the pointwise
    attention a few rows at a time) gives what the training path gives, masked pairs included."""
    from af2struct.model import triangle_multiplication as tm

    db, hits = sample
    cfg = dataclasses.replace(tiny, templates=dataclasses.replace(tiny.templates, enabled=True, zero_init=False))
    torch.manual_seed(0)
    model = Alphafold2(config=cfg).eval()
    for p in model.trunk.template.parameters():
        torch.nn.init.normal_(p, std=0.3)
    batch = _batch(db, hits)
    batch["template_backbone_mask"][:, 0, :5] = False  # a template that misses the first residues
    emb = model.trunk.template
    n = batch["aatype"].shape[-1]
    z = torch.randn(1, n, n, emb.pointwise.norm_z.normalized_shape[0])
    mask = torch.ones(1, n, dtype=torch.bool)
    trained = [x.detach() for x in (emb.pair_embed(batch), emb(z, batch, mask)[0])]
    # the embedding's table lookup is AlphaFold's linear map of the concatenated features
    e = emb.pair_embed
    bins, pb_mask, unit, bb_mask, aatype, ca_bins = template_pair_inputs(e.cfg, batch)
    reference = (e.dgram(bins) * pb_mask[..., None] + e.unit(unit) + e.ca_dgram(ca_bins) * bb_mask[..., None]
                 + e.masks(torch.stack([pb_mask, bb_mask], -1)) + e.aa_i(aatype)[..., :, None, :]
                 + e.aa_j(aatype)[..., None, :, :])
    torch.testing.assert_close(trained[0], reference.detach(), atol=1e-5, rtol=1e-5)
    monkeypatch.setattr(tm, "CHUNK_BYTES", 1)  # one row per block
    with torch.no_grad():
        predicted = (emb.pair_embed(batch), emb(z, batch, mask)[0])
    for a, b in zip(predicted, trained):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert (trained[1]).abs().max() > 1e-2


def test_own_trunk_folds_each_example_with_its_trunk(sample, tiny, tmp_path):
    """``templates.own_trunk``: a combined checkpoint folds an input without a template exactly as
    the base model, one with a template exactly as the templated model (heads from the base), each
    example of a mixed batch as it would be alone; trunks configured differently are refused."""
    from af2struct.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, with_templated_trunk

    db, hits = sample
    cfg = dataclasses.replace(tiny, templates=dataclasses.replace(tiny.templates, enabled=True, zero_init=False))
    torch.manual_seed(0)
    base, templated = Alphafold2(config=cfg).eval(), Alphafold2(config=cfg).eval()
    save_checkpoint(tmp_path / "base.pt", base, cfg)
    save_checkpoint(tmp_path / "tpl.pt", templated, cfg)
    combined = with_templated_trunk(load_checkpoint(tmp_path / "base.pt"), load_checkpoint(tmp_path / "tpl.pt"))
    model = Alphafold2(config=config_from_checkpoint(combined)).eval()
    model.load_state_dict(combined["model"])
    assert model.trunk.template is None and model.template_trunk is model.templated["trunk"]
    # the reference for templated inputs: the templated trunk with the base's heads
    reference = Alphafold2(config=cfg).eval()
    reference.load_state_dict({**base.state_dict(), **{k: v for k, v in templated.state_dict().items()
                                                       if k.startswith(("trunk.", "distogram_head."))}})

    chain = 0
    n = int(db.lengths[chain])
    with_t = _batch(db, hits, chain)
    ex = make_example(db.protein(chain))
    without = collate([dict(ex, **template_features([], db, n))])  # no template found
    mixed_batch = {k: torch.cat([v, with_t[k]]) for k, v in _padded_like(without, with_t).items()}
    with torch.no_grad():
        got_t = model(batch=with_t, return_all=True)
        got_0 = model(batch=without, return_all=True)
        ref_t = reference(batch=with_t, return_all=True)
        ref_0 = base(batch=without, return_all=True)
        mixed = model(batch=mixed_batch, return_all=True)
    for k in ("distogram", "pair", "single", "pae_logits"):
        if k not in got_t:
            continue
        torch.testing.assert_close(got_t[k], ref_t[k], atol=0, rtol=0)
        torch.testing.assert_close(got_0[k], ref_0[k], atol=0, rtol=0)
        torch.testing.assert_close(mixed[k][1:], got_t[k], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(mixed[k][:1], got_0[k], atol=1e-5, rtol=1e-5)
    assert (got_t["distogram"] - got_0["distogram"]).abs().max() > 0.1  # the two trunks differ

    other = Alphafold2(config=dataclasses.replace(cfg, trunk=dataclasses.replace(cfg.trunk, depth=cfg.trunk.depth + 1)))
    save_checkpoint(tmp_path / "deeper.pt", other, other.config)
    with pytest.raises(CheckpointError, match="configured differently"):
        with_templated_trunk(load_checkpoint(tmp_path / "base.pt"), load_checkpoint(tmp_path / "deeper.pt"))


def _padded_like(batch, like):
    """``batch`` (one example, no template) with ``like``'s template slots, every one empty."""
    out = dict(batch)
    for k, v in like.items():
        if k.startswith("template_"):
            out[k] = torch.zeros_like(v)
    return out


def test_templated_structure_is_restrained_to_the_top_template(sample):
    """Given the query's residues, the templated structure stage refines on the distogram plus
    restraints to the top template (identity read from the alignment): the structure kept is
    the likelier of the two restrained starts, and it sits closer to the template's distances
    than the unrestrained one."""
    from af2struct.model.potential import DistogramLikelihood, top_template_restraints

    db, hits = sample
    model, _ = load_default_model()
    batch = _batch(db, hits)
    mask = batch["seq_mask"] > 0
    templates = {k: v for k, v in batch.items() if k.startswith("template_")}
    sc, h = model.config.structure, model.config.heads
    assert sc.template_restraint_scale > 0
    with torch.no_grad():
        out = model(batch=batch, return_all=True)
        free = model.structure(dict(out), mask, templates=templates)
        held = model.structure(dict(out), mask, templates=templates, aatype=batch["aatype"])
    (r,) = top_template_restraints(templates, batch["aatype"], sc.template_restraint_scale)
    m = batch["template_backbone_mask"][0, 0] > 0
    identity = float((batch["template_aatype"][0, 0][m] == batch["aatype"][0][m]).float().mean())
    assert r.sigma == pytest.approx(sc.template_restraint_scale * np.exp(1.87 * (1 - identity)))
    lik = DistogramLikelihood(out["distogram"], mask, sc.template_potential_far_width, h.distogram_min,
                              h.distogram_max, [r])
    starts = [lik.refine(held["ca_mds"], sc.template_potential_iters),
              lik.refine(template_trace(templates)[0], sc.template_potential_iters)]
    assert float(lik.nll(held["ca"])) == pytest.approx(min(float(lik.nll(s)) for s in starts), abs=1e-5)

    i, j = torch.triu_indices(len(m), len(m), 1)
    target, weight = r.on_pairs(i, j)

    def off_template(ca):
        return float((((ca[0, i] - ca[0, j]).norm(dim=-1) - target).abs() * (weight > 0)).sum() / (weight > 0).sum())

    assert off_template(held["ca"]) < off_template(free["ca"])


def test_combine_trunks_script_writes_a_loadable_checkpoint_and_refuses_a_missing_one(tiny, tmp_path, caplog):
    """``scripts/combine_trunks.py``: the combined checkpoint loads with ``templates.own_trunk``;
    a missing input is a clear error (exit 2), nothing written."""
    import importlib.util
    from pathlib import Path

    from af2struct.model.checkpoint import load_model, save_checkpoint

    spec = importlib.util.spec_from_file_location(
        "combine_trunks", Path(__file__).resolve().parents[2] / "scripts" / "combine_trunks.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    cfg = dataclasses.replace(tiny, templates=dataclasses.replace(tiny.templates, enabled=True))
    for name in ("a", "b"):
        save_checkpoint(tmp_path / f"{name}.pt", Alphafold2(config=cfg), cfg)
    out = tmp_path / "c.pt"
    assert script.main(["--base", str(tmp_path / "a.pt"), "--templated", str(tmp_path / "b.pt"),
                        "--out", str(out)]) == 0
    model, payload = load_model(out)
    assert model.config.templates.own_trunk and model.templated is not None and "templated" in payload["train_state"]
    missing = tmp_path / "d.pt"
    assert script.main(["--base", str(tmp_path / "nope.pt"), "--templated", str(tmp_path / "b.pt"),
                        "--out", str(missing)]) == 2
    assert not missing.exists() and "no such checkpoint" in caplog.text


def test_templated_pae_adds_the_spread_of_the_distogram_structures(sample):
    """With a template the PAE reads the head's and the spread of the structures sampled on the
    distogram around the written model (af2struct.model.pae_ensemble: through the checkpoint's
    calibrator, else in quadrature); the structure itself, and every output of a prediction
    without a template, stay as they were."""
    from af2struct.model.pae_ensemble import aligned_spread, calibrator_features, with_spread
    from af2struct.predict.pipeline import predict_structure

    db, hits = sample
    model, _ = load_default_model()
    sc, h = model.config.structure, model.config.heads
    assert sc.pae_spread_steps > 0
    seq = db.protein(0).sequence
    feats = template_features(hits[0], db, len(seq))
    full, plain_on = predict_structure(model, seq, templates=feats), predict_structure(model, seq)
    model.config = dataclasses.replace(model.config, structure=dataclasses.replace(sc, pae_spread_steps=0))
    head, plain_off = predict_structure(model, seq, templates=feats), predict_structure(model, seq)
    model.config = dataclasses.replace(model.config, structure=sc)
    np.testing.assert_array_equal(full.protein.atom_positions, head.protein.atom_positions)
    ca = torch.tensor(full.protein.ca_positions).float()
    spread = aligned_spread(torch.from_numpy(full.distogram_logits), ca, sc, h.distogram_min, h.distogram_max)
    if model.pae_calibrator is None:  # in quadrature
        expected = with_spread(torch.from_numpy(head.pae), spread)
    else:  # read by the calibrator, with the written model's pLDDT
        with torch.no_grad():
            expected = model.pae_calibrator(calibrator_features(torch.from_numpy(head.pae), spread,
                                                                torch.from_numpy(full.plddt), ca))
    np.testing.assert_allclose(full.pae, expected.numpy(), rtol=1e-5, atol=1e-5)
    assert float(np.abs(full.pae - head.pae).max()) > 1.0  # the spread is read
    np.testing.assert_array_equal(plain_on.pae, plain_off.pae)
    np.testing.assert_array_equal(plain_on.protein.atom_positions, plain_off.protein.atom_positions)
