"""Stage pae: the PAE head (with the written structure's context) refitted on whole chains."""

import json
from pathlib import Path

import pytest
import torch

from af2struct.data.dataset import proteins_from_folder
from af2struct.data.features import collate, make_example
from af2struct.model.checkpoint import load_checkpoint, save_checkpoint
from af2struct.model.config import preset
from af2struct.model.heads import PAE_CONTEXT_FEATURES
from af2struct.model.network import Af2StructModel
from af2struct.train import pae_fit
from af2struct.train.loop import TrainConfig, train

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = str(ROOT / "tests" / "fixtures")
CONTEXT = ("heads.pae_context=true",)


@pytest.fixture(scope="module")
def old_checkpoint(tmp_path_factory):
    """A tiny model whose PAE head reads the pair only (as checkpoints before the context)."""
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", Af2StructModel(preset("tiny")), preset("tiny"))


def _cfg(out, init, **kw):
    base = dict(data=FIXTURES, valid_data=FIXTURES, out=str(out), stage="pae", init_from=str(init),
                plddt_chains=3, max_valid=2, steps=100, eval_every=25, crop_size=48, warmup=2, lr=3e-3,
                progress=False, model_overrides=CONTEXT)
    base.update(kw)
    return TrainConfig(**base)


def _model(checkpoint, overrides=CONTEXT):
    payload = load_checkpoint(checkpoint)
    config = preset("tiny").with_overrides(list(overrides))
    model = Af2StructModel(config)
    model.load_state_dict(payload["model"], strict=False)
    return model.eval()


def test_cached_rows_give_the_heads_own_logits(old_checkpoint):
    """What the fit trains on is exactly what the head computes at inference, row for row; the
    zero-initialised context leaves an older head's PAE as it was."""
    model = _model(old_checkpoint)
    protein = proteins_from_folder(FIXTURES, names=["T1031"])["T1031"]
    ex = make_example(protein)
    rec = pae_fit.pae_inputs(model, ex, rows=5)
    with torch.no_grad():
        batch = collate([ex])
        out = model.structure(model(batch=batch, return_all=True), batch["seq_mask"] > 0)
        plain = _model(old_checkpoint, ())(batch=batch, return_all=True)["pae_logits"]
    n = len(protein)
    assert rec["zn"].shape[:2] == (5, n) and rec["feats"].shape == (5, n, PAE_CONTEXT_FEATURES)
    assert out["pae_context"].shape == (1, n, n, PAE_CONTEXT_FEATURES)
    assert torch.allclose(out["pae_logits"], plain, atol=1e-5)
    rows = [i for i in range(n) if torch.equal(out["pae_context"][0, i].half(), rec["feats"][0])][:1]
    assert rows, "the first cached row is one of the chain's rows"
    assert torch.allclose(pae_fit._logits(model, rec)[0], out["pae_logits"][0, rows[0]], atol=2e-2)
    assert rec["target"].shape == (5, n) and float(rec["target"].min()) >= 0 and rec["mask"].any()


def test_fit_trains_only_the_pae_head_and_lowers_the_validation_loss(tmp_path, old_checkpoint):
    best = train(_cfg(tmp_path / "run", old_checkpoint))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and best["step"] > 0
    # validation chains are the training chains here: fitting them must lower their loss
    assert best["valid_pae"] < rows[0]["valid_pae"] - 0.3
    assert -1 <= best["valid_pae_r_within"] <= 1
    before = load_checkpoint(old_checkpoint)["model"]
    after = load_checkpoint(tmp_path / "run" / "best.pt")
    assert after["config"]["heads"]["pae_context"] is True
    added = {k for k in after["model"] if k not in before}
    assert added and all(k.startswith("pae_head.context.") for k in added)
    changed = {k for k in before if not torch.equal(before[k], after["model"][k])}
    assert all(k.startswith("pae_head.") for k in changed)
    assert after["train_state"]["stage"] == "pae"


def test_stage_needs_the_context_network(tmp_path, old_checkpoint):
    with pytest.raises(ValueError, match="pae_context"):
        train(_cfg(tmp_path / "run", old_checkpoint, model_overrides=()))
