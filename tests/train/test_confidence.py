"""Stage plddt: the pLDDT head refitted on whole chains from cached inputs."""

import json
from pathlib import Path

import pytest
import torch

from af2struct.common.runner import file_digest
from af2struct.data.dataset import proteins_from_folder
from af2struct.data.features import collate, make_example
from af2struct.model.checkpoint import load_checkpoint, save_checkpoint
from af2struct.model.config import preset
from af2struct.model.network import Af2StructModel
from af2struct.train import confidence
from af2struct.train.loop import TrainConfig, train

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = str(ROOT / "tests" / "fixtures")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = Af2StructModel(preset("tiny"))
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", model, preset("tiny"))


def _cfg(out, init, **kw):
    base = dict(data=FIXTURES, valid_data=FIXTURES, out=str(out), stage="plddt", init_from=str(init),
                plddt_chains=3, max_valid=2, steps=40, eval_every=10, crop_size=48, warmup=2, lr=3e-3,
                progress=False)
    base.update(kw)
    return TrainConfig(**base)


def test_cached_inputs_give_the_heads_own_logits(tiny_checkpoint):
    """What the fit trains on is exactly what the head sees at inference."""
    payload = load_checkpoint(tiny_checkpoint)
    model = Af2StructModel(preset("tiny"))
    model.load_state_dict(payload["model"])
    model.eval()
    protein = proteins_from_folder(FIXTURES, names=["T1031"])["T1031"]
    ex = make_example(protein)
    rec = confidence.plddt_inputs(model, ex)
    torch.manual_seed(1)
    with torch.no_grad():
        batch = collate([ex])
        out = model.structure(model(batch=batch, return_all=True), batch["seq_mask"] > 0)
    assert torch.allclose(confidence._logits(model, rec), out["plddt_logits"][0], atol=1e-5)
    assert rec["target"].shape == (len(protein),) and 0 <= rec["target"].min() and rec["target"].max() <= 1
    assert rec["mask"].all()


def test_fit_changes_only_the_head_and_lowers_the_validation_loss(tmp_path, tiny_checkpoint):
    best = train(_cfg(tmp_path / "run", tiny_checkpoint))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and best["step"] > 0
    # validation chains are the training chains here: fitting them must lower their loss
    assert best["valid_plddt"] < rows[0]["valid_plddt"] - 0.3
    before = load_checkpoint(tiny_checkpoint)["model"]
    after = load_checkpoint(tmp_path / "run" / "best.pt")
    changed = {k for k in before if not torch.equal(before[k], after["model"][k])}
    assert changed and all(k.startswith("plddt_head.") for k in changed)
    assert after["train_state"]["stage"] == "plddt"


def test_rerun_reuses_the_cache_and_repeats_the_fit(tmp_path, tiny_checkpoint, monkeypatch):
    first = train(_cfg(tmp_path / "run", tiny_checkpoint, steps=20))
    head1 = load_checkpoint(tmp_path / "run" / "best.pt")["model"]

    def no_prediction(*args, **kwargs):
        raise AssertionError("a cached chain was predicted again")

    monkeypatch.setattr(confidence, "plddt_inputs", no_prediction)
    second = train(_cfg(tmp_path / "run", tiny_checkpoint, steps=20))
    head2 = load_checkpoint(tmp_path / "run" / "best.pt")["model"]
    assert first == second
    assert all(torch.equal(head1[k], head2[k]) for k in head1)


def test_cache_of_another_checkpoint_is_not_used(tmp_path, tiny_checkpoint):
    train(_cfg(tmp_path / "run", tiny_checkpoint, steps=2))
    torch.manual_seed(5)
    other = save_checkpoint(tmp_path / "other.pt", Af2StructModel(preset("tiny")), preset("tiny"))
    cache = confidence._Cache(tmp_path / "run" / "plddt_inputs.pt", file_digest(other))
    assert cache.data["train"] == [] and cache.data["valid"] == []


def test_stage_needs_a_trained_model():
    with pytest.raises(ValueError, match="init_from"):
        TrainConfig(data=FIXTURES, out="x", stage="plddt")


@pytest.mark.slow
def test_fit_can_add_the_expected_lddt_features_to_an_older_head(tmp_path):
    """Stage plddt with ``heads.plddt_expected_lddt=true`` on a checkpoint without them: the head
    gains the new inputs (starting at zero, so step 0 is the old head) and trains them; the
    rest of the model is untouched."""
    torch.manual_seed(0)
    old_config = preset("tiny").with_overrides(["heads.plddt_expected_lddt=false"])
    old = save_checkpoint(tmp_path / "old.pt", Af2StructModel(old_config), old_config)
    best = train(_cfg(tmp_path / "run", old, model_overrides=("heads.plddt_expected_lddt=true",)))
    assert best["step"] > 0
    before = load_checkpoint(old)["model"]
    after = load_checkpoint(tmp_path / "run" / "best.pt")
    assert after["config"]["heads"]["plddt_expected_lddt"] is True
    added = {k for k in after["model"] if k not in before}
    assert added and all(k.startswith("plddt_head.agree_expected.") for k in added)
    assert after["model"]["plddt_head.agree_expected.2.weight"].abs().sum() > 0
    assert all(torch.equal(before[k], after["model"][k]) for k in before if not k.startswith("plddt_head."))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    plain = train(_cfg(tmp_path / "plain", old, steps=0))  # the old head, scored the same way
    assert rows[0]["valid_plddt"] == pytest.approx(plain["valid_plddt"])
