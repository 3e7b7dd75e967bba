import re

import numpy as np
import pytest
import torch

from af2struct import Alphafold2
from af2struct.model.config import ModelConfig, preset


def test_shapes_and_padding_mask(tiny):
    model = Alphafold2(config=tiny).eval()
    seq = torch.randint(0, 20, (2, 24))
    mask = torch.ones_like(seq, dtype=torch.bool)
    mask[1, 18:] = False
    with torch.no_grad():
        out = model(seq, mask=mask, return_all=True)
        assert out["distogram"].shape == (2, 24, 24, 37)
        assert out["pae_logits"].shape == (2, 24, 24, 64) and out["chi"].shape == (2, 24, 4, 2)
        assert "plddt_logits" not in out  # with the structure (heads.plddt_context)
        # padding does not change the real residues' outputs
        alone = model(seq[1:, :18], return_all=True)
    assert torch.allclose(out["distogram"][1, :18, :18], alone["distogram"][0], atol=1e-4)


def test_structure_outputs(tiny):
    model = Alphafold2(config=tiny).eval()
    seq = torch.randint(0, 20, (1, 20))
    with torch.no_grad():
        out = model.structure(model(seq, return_all=True), torch.ones_like(seq, dtype=torch.bool))
    assert out["ca"].shape == (1, 20, 3) and out["backbone"].shape == (1, 20, 3, 3)
    assert out["plddt_logits"].shape == (1, 20, 50)
    n_ca = (out["backbone"][0, :, 0] - out["backbone"][0, :, 1]).norm(dim=-1)
    assert torch.allclose(n_ca, torch.full_like(n_ca, 1.458), atol=1e-3)


def test_predict_hands_back_every_output_decoded(tiny):
    """One inference call: pLDDT on 0-100, PAE in Angstrom up to the head's largest value, the
    distogram with its bin edges, coordinates; the same numbers the heads' decoders give."""
    import numpy as np

    from af2struct.common.protein import Protein
    from af2struct.common.residue_constants import SequenceError
    from af2struct.data.features import collate, make_example
    from af2struct.model.heads import pae_from_logits

    torch.manual_seed(0)
    model = Alphafold2(config=tiny).eval()
    batch = collate([make_example(Protein.from_sequence("MKTAYIAKQRQISFVKSHFS"), None, 8, np.random.default_rng(0))])
    timings = {}
    out = model.predict(batch, timings=timings)
    assert set(timings) == {"trunk", "structure"}
    assert out["plddt"].shape == (1, 20) and 0 <= float(out["plddt"].min()) and float(out["plddt"].max()) <= 100
    assert out["pae"].shape == (1, 20, 20) and float(out["max_pae"]) == 31.75
    assert 0 <= float(out["pae"].min()) and float(out["pae"].max()) <= 31.75
    assert out["distogram"].shape == (1, 20, 20, 37) and out["bin_edges"].shape == (37,)
    assert float(out["bin_edges"][0]) == 2.0 and float(out["bin_edges"][-1]) == 20.0
    assert out["backbone"].shape == (1, 20, 3, 3) and out["ca"].shape == out["ca_mds"].shape == (1, 20, 3)
    with torch.no_grad():
        trunk = model(batch=batch, return_all=True)
    assert torch.allclose(out["pae"], pae_from_logits(trunk["pae_logits"], tiny.heads.pae_max))
    short = Alphafold2(config=tiny, max_seq_len=16).eval()
    with pytest.raises(SequenceError, match="20 residues exceeds the model's max_seq_len=16"):
        short.predict(batch)


def test_max_seq_len_is_enforced(tiny):
    model = Alphafold2(config=tiny, max_seq_len=16)
    with pytest.raises(ValueError, match="exceeds max_seq_len=16"):
        model(torch.randint(0, 20, (1, 17)))


def test_config_unknown_keys():
    with pytest.raises(ValueError, match="unknown key"):
        ModelConfig.from_dict({"trunk": {"dimm": 3}})
    with pytest.raises(TypeError, match="unknown argument"):
        Alphafold2(config=preset("tiny"), not_an_option=1)
    cfg = ModelConfig.from_dict(preset("tiny").to_dict())
    assert cfg == preset("tiny")


def test_config_overrides():
    cfg = preset("default").with_overrides(["trunk.depth=6", "trunk.triangle_attn=true", "structure.mds_iters=50",
                                           "trunk.pair_dim=null", "heads.pae_max=25"])
    assert (cfg.trunk.depth, cfg.trunk.triangle_attn, cfg.structure.mds_iters) == (6, True, 50)
    assert cfg.trunk.z_dim == cfg.trunk.dim and cfg.heads.pae_max == 25
    assert cfg.trunk.dim_head == preset("default").trunk.dim_head  # the rest is the preset's
    sparse = preset("tiny").with_overrides(["trunk.sparse_self_attn=[true, false]"]).trunk.sparse_self_attn
    assert sparse == (True, False)
    for bad, why in [("trunk.dimm=3", "unknown key 'dimm'"), ("body.depth=3", "SECTION one of"),
                     ("trunk.depth", "SECTION.KEY=VALUE"), ("trunk.depth=six", "not a JSON value"),
                     ("trunk.depth=6.5", "expected a value like 4"), ("trunk.triangle_attn=1", "like False"),
                     ("trunk.sparse_self_attn=[true]", "1 entries for depth 4")]:
        with pytest.raises(ValueError, match=re.escape(why)):
            preset("default").with_overrides([bad])


def test_unaligned_msa_and_compression(tiny):
    """Sequence (L=32) and MSA of another length (Lu=20): cross attention, compressed keys."""
    for ratio in (1, 3):
        model = Alphafold2(config=tiny, cross_attn_compress_ratio=ratio)
        seq = torch.randint(0, 21, (1, 32))
        msa = torch.randint(0, 21, (1, 3, 20))
        logits = model(seq, msa, mask=torch.ones_like(seq).bool(), msa_mask=torch.ones_like(msa).bool())
        assert logits.shape == (1, 32, 32, 37)
        logits.sum().backward()
    blk = model.trunk.stack.blocks[0]
    x = torch.randn(1, 60, tiny.trunk.dim)
    kv, m = blk.seq_to_msa.compress(x, torch.ones(1, 60, dtype=torch.bool))
    assert kv.shape[1] == 20 and m.shape == (1, 20)


def test_aligned_msa_changes_prediction(tiny):
    model = Alphafold2(config=tiny).eval()
    for p in model.parameters():  # output layers start at zero (AlphaFold init): wake them up
        torch.nn.init.normal_(p, std=0.1)
    seq = torch.randint(0, 20, (1, 16))
    msa = torch.randint(0, 21, (1, 4, 16))
    with torch.no_grad():
        a = model(seq)
        b = model(seq, msa)
    assert a.shape == b.shape and not torch.allclose(a, b)


def test_plddt_context_sees_the_structure_and_starts_as_the_sequence_head(tiny):
    """The context pLDDT head's new inputs start at zero (a head trained on the sequence row
    alone starts where it was) and, once trained, read the structure's agreement with the
    distogram: a structure that contradicts it changes the pLDDT."""
    from af2struct.model.heads import structure_agreement

    torch.manual_seed(0)
    model = Alphafold2(config=tiny).eval()
    seq = torch.randint(0, 20, (1, 20))
    mask = torch.ones_like(seq, dtype=torch.bool)
    with torch.no_grad():
        out = model.structure(model(seq, return_all=True), mask)
        head = model.plddt_head
        torch.testing.assert_close(out["plddt_logits"], head.net(out["single"]))
        for p in list(head.pair.parameters()) + list(head.agree.parameters()) + list(head.agree_expected.parameters()):
            torch.nn.init.normal_(p, std=0.3)
        agree = structure_agreement(out["distogram"], out["ca"], mask, model.config.heads)
        scrambled = structure_agreement(out["distogram"], out["ca"][:, torch.randperm(20)], mask, model.config.heads)
        assert agree.shape == (1, 20, 13) and not torch.allclose(agree, scrambled)
        a = head(out["single"], out["pair"], mask, agree)
        b = head(out["single"], out["pair"], mask, scrambled)
    assert not torch.allclose(a, b)


def test_expected_lddt_of_a_structure_under_its_own_distogram(data_dir):
    """A distogram that puts each real Calpha distance in its bin gives the real structure an
    expected lDDT near 1 and a shuffled one far less; P(D < x) is 0 below the first bin, rises
    through the bins, and stops at 1 - P(far) beyond the last."""
    from af2struct import load_structure
    from af2struct.model.heads import _cdf, structure_agreement
    from af2struct.model.mds import distances_to_bins

    cfg = preset("default").heads
    ca = torch.tensor(load_structure(data_dir / "T1031.pdb").ca_positions, dtype=torch.float32)[None]
    n = ca.shape[1]
    bins = distances_to_bins(torch.cdist(ca, ca), cfg.distogram_bins, cfg.distogram_min, cfg.distogram_max)
    logits = 20.0 * torch.nn.functional.one_hot(bins, cfg.distogram_bins).float()
    mask = torch.ones(1, n)
    own = structure_agreement(logits, ca, mask, cfg)[0]
    other = structure_agreement(logits, ca[:, torch.randperm(n, generator=torch.Generator().manual_seed(0))], mask, cfg)[0]
    assert own.shape == (n, 13)
    assert own[:, 6].mean() > 0.9 and other[:, 6].mean() < 0.3  # expected lDDT
    assert own[:, 8].mean() > 0.9  # its non-local part
    assert own[:, 10].mean() < 0.05 < other[:, 10].mean()  # |d - E[D]| / 10 A
    p = torch.softmax(torch.randn(1, 1, 1, cfg.distogram_bins), -1)
    xs = torch.linspace(0.0, 30.0, 61)
    cdf = torch.stack([_cdf(p, torch.full((1, 1, 1), float(x)), cfg)[0, 0, 0] for x in xs])
    assert cdf[0] == 0 and (cdf[1:] >= cdf[:-1] - 1e-6).all()
    torch.testing.assert_close(cdf[-1], 1 - p[0, 0, 0, -1])


def test_old_checkpoints_keep_their_plddt_head(tiny):
    """A checkpoint written before the expected-lDDT features loads without them."""
    from af2struct.model.checkpoint import config_from_checkpoint

    d = tiny.to_dict()
    del d["heads"]["plddt_expected_lddt"]
    assert config_from_checkpoint({"config": d}).heads.plddt_expected_lddt is False
    assert tiny.heads.plddt_expected_lddt is True
    model = Alphafold2(config=config_from_checkpoint({"config": d}))
    assert not hasattr(model.plddt_head, "agree_expected")


def test_agreement_of_a_padded_chain_is_that_of_the_chain():
    """In a padded batch a chain's 13 features are those it has alone (the terminus feature
    counts from its own last residue, not the padding's)."""
    from af2struct.model.heads import structure_agreement

    cfg = preset("default").heads
    g = torch.Generator().manual_seed(0)
    logits, ca = torch.randn(1, 30, 30, cfg.distogram_bins, generator=g), 8 * torch.randn(1, 30, 3, generator=g)
    alone = structure_agreement(logits[:, :20, :20], ca[:, :20], torch.ones(1, 20), cfg)
    mask = torch.zeros(1, 30)
    mask[:, :20] = 1
    padded = structure_agreement(logits, ca, mask, cfg)
    torch.testing.assert_close(padded[:, :20], alone)
    assert (padded[:, 20:] == 0).all()


def test_template_support_tells_the_plddt_head_what_the_templates_cover():
    """Per residue: the share of 4 template slots aligned there, whether any is, how many
    templates; zeros without templates. The head's new input starts at zero: a checkpoint fitted
    before it predicts as it did, with or without templates."""
    import dataclasses

    from af2struct.model.heads import PLDDTHead, template_support

    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    templates = {"template_mask": torch.tensor([[1.0, 1.0, 0.0]]),  # two real templates, one padding slot
                 "template_backbone_mask": torch.tensor([[[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0],
                                                          [1.0, 1.0, 1.0, 1.0]]])}
    sup = template_support(templates, mask)
    assert sup.shape == (1, 4, 3)
    assert torch.allclose(sup[0, :, 0], torch.tensor([0.5, 0.25, 0.0, 0.0]))
    assert torch.allclose(sup[0, :, 1], torch.tensor([1.0, 1.0, 0.0, 0.0]))
    assert torch.allclose(sup[0, :, 2], torch.tensor([0.5, 0.5, 0.5, 0.0]))
    assert not template_support(None, mask).any()
    empty = {"template_mask": torch.zeros(1, 0), "template_backbone_mask": torch.zeros(1, 0, 4)}
    assert not template_support(empty, mask).any()
    cfg = dataclasses.replace(preset("tiny").heads, plddt_template_support=True)
    head = PLDDTHead(16, cfg, 8)
    s, pair, agree = torch.randn(1, 4, 16), torch.randn(1, 4, 8), torch.randn(1, 4, 13)
    assert torch.equal(head.from_pooled(s, pair, agree, sup), head.from_pooled(s, pair, agree, None))
    torch.nn.init.normal_(head.template[-1].weight)
    assert not torch.equal(head.from_pooled(s, pair, agree, sup), head.from_pooled(s, pair, agree, None))


def test_the_batch_contract_is_what_collate_makes(data_dir):
    """BATCH_FEATURES (+ BATCH_LABELS) names every key of a collated example with templates, with
    the rank and dtype it states, and the network reads no key outside it."""
    import inspect

    import af2struct.model.network as network
    import af2struct.model.templates as model_templates
    import af2struct.model.trunk as trunk
    from af2struct.common.protein import Protein
    from af2struct.data.features import collate, make_example
    from af2struct.data.template_search import TemplateDB, search_templates, usable_hits
    from af2struct.data.templates import template_features

    db = TemplateDB(data_dir / "templates_sample.npz")
    seq = db.sequence(0)
    hits = usable_hits(search_templates(seq, db, method="phmmer"), seq, db, query_pdb_id="1A32")
    ex = make_example(Protein.from_sequence(seq), None, 8, np.random.default_rng(0))
    ex.update(template_features(hits, db, len(seq)))
    batch = collate([ex])
    contract = network.BATCH_FEATURES | network.BATCH_LABELS
    precomputed = {"template_pair_features", "template_residue_mask", "template_angle_features"}
    assert set(batch) == set(contract) - precomputed
    for key, value in batch.items():
        shape, dtype = contract[key][0].rsplit(" ", 1)
        assert value.dim() == shape.count(",") + 1, key
        assert str(value.dtype) == f"torch.{dtype}", key
    read = set()
    for module in (network, trunk, model_templates):
        read |= set(re.findall(r'batch\["([a-z_]+)"\]', inspect.getsource(module)))
    assert read and read <= set(network.BATCH_FEATURES)
