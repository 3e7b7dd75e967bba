import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from af2struct.model.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from af2struct.model.config import preset
from af2struct.model.network import Af2StructModel
from af2struct.train.loop import TrainConfig, forward_losses, train

ROOT = Path(__file__).resolve().parents[2]


def test_few_steps_lower_the_loss(real_batch):
    torch.manual_seed(0)
    model = Af2StructModel(preset("tiny"))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    cfg = TrainConfig(data="-", out="-", stage="distogram")
    losses = []
    for _ in range(15):
        opt.zero_grad()
        terms = forward_losses(model, real_batch, cfg)
        terms["loss"].backward()
        opt.step()
        losses.append(float(terms["loss"].detach()))
    assert losses[-1] < 0.8 * losses[0]


def test_full_stage_has_structure_losses(real_batch):
    model = Af2StructModel(preset("tiny"))
    terms = forward_losses(model, real_batch, TrainConfig(data="-", out="-", stage="full"))
    for k in ("distogram", "structure", "plddt", "pae", "chi", "lddt_ca"):
        assert torch.isfinite(terms[k]), k
    terms["loss"].backward()
    se3_grads = [p.grad for n, p in model.named_parameters() if n.startswith("_refiner") and p.grad is not None]
    assert se3_grads and any(g.abs().sum() > 0 for g in se3_grads)
    assert model.pae_head.proj.weight.grad.abs().sum() > 0


def test_checkpoint_round_trip(tmp_path):
    model = Af2StructModel(preset("tiny"))
    path = save_checkpoint(tmp_path / "m.pt", model, model.config, {"step": 3})
    loaded, payload = load_model(path)
    assert payload["train_state"]["step"] == 3 and loaded.config == model.config
    for (n, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), n
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": "af2struct-checkpoint", "x": Evil()}, tmp_path / "evil.pt", pickle_protocol=2)
    with pytest.raises(CheckpointError):  # weights_only=True refuses arbitrary objects
        load_checkpoint(tmp_path / "evil.pt")


def _cfg(tmp_path, **kw):
    base = dict(data=str(ROOT / "tests" / "fixtures"), out=str(tmp_path / "run"), preset="tiny", steps=4, crop_size=32,
                batch_size=2, eval_every=2, ckpt_every=1, log_every=1, max_valid=2, warmup=2, progress=False,
                valid_data=str(ROOT / "tests" / "fixtures"))
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.slow
def test_resume_is_exact(tmp_path):
    torch.manual_seed(0)
    full = train(_cfg(tmp_path / "a"))
    torch.manual_seed(0)
    train(_cfg(tmp_path / "b", steps=2))  # interrupted after 2 steps...
    resumed = train(_cfg(tmp_path / "b", steps=4))  # ...and resumed
    a = load_checkpoint(tmp_path / "a" / "run" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "run" / "last.pt")["model"]
    assert full["step"] == resumed["step"] == 4
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    log = [json.loads(l) for l in (tmp_path / "a" / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("valid_distogram" in r for r in log) and (tmp_path / "a" / "run" / "loss.png").exists()


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "scripts" / "train.py"), "--data", str(ROOT / "tests" / "fixtures"), "--out", str(out),
           "--preset", "tiny", "--steps", "2", "--crop-size", "24", "--batch-size", "1", "--eval-every", "100",
           "--ckpt-every", "1", "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert load_checkpoint(out / "last.pt")["train_state"]["step"] == 2


@pytest.mark.slow
def test_checkpoint_cannot_choose_a_path(tmp_path):
    """A crafted checkpoint naming se3-transformer's basis cache folder (which the library fills
    with pickles and reads back) gets no folder made and nothing read from it: in a fresh process,
    as ``predict.py --weights`` would load it."""
    import os

    model = Af2StructModel(preset("tiny"))
    path = save_checkpoint(tmp_path / "m.pt", model, model.config)
    payload = load_checkpoint(path)
    planted = tmp_path / "planted_cache"
    payload["config"]["structure"]["se3_cache_dir"] = str(planted)
    torch.save(payload, tmp_path / "evil.pt")
    code = ("import os, sys; from af2struct.model.checkpoint import load_model; m, _ = load_model(sys.argv[1]); "
            "print(os.environ.get('CACHE_PATH'), 'se3_cache_dir' in m.config.to_dict()['structure'])")
    env = {k: v for k, v in os.environ.items() if k not in ("AF2STRUCT_SE3_CACHE", "CACHE_PATH")}
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "evil.pt")], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not planted.exists()
    assert r.stdout.split() == ["None", "False"]
    assert "ignored" in r.stderr


def test_bad_checkpoints_are_one_clear_line(tmp_path):
    """A checkpoint without a config, with a weight of the wrong shape, or with NaN weights is
    refused with one short message naming the problem (no tensor dump)."""
    model = Af2StructModel(preset("tiny"))
    payload = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model, model.config))
    cases = {
        "noconfig": ({k: v for k, v in payload.items() if k != "config"}, "no model config"),
        "shape": ({**payload, "model": {**payload["model"], "distogram_head.proj.weight":
                                        torch.zeros(3, 3)}}, "has shape (3, 3)"),
        "nan": ({**payload, "model": {k: (torch.full_like(v, float("nan")) if v.is_floating_point() else v)
                                      for k, v in payload["model"].items()}}, "NaN or infinite"),
    }
    for name, (bad, msg) in cases.items():
        torch.save(bad, tmp_path / f"{name}.pt")
        with pytest.raises(CheckpointError, match=re.escape(msg)) as exc:
            load_model(tmp_path / f"{name}.pt")
        assert len(str(exc.value)) < 400, name


def test_cli_set_changes_the_model_config(tmp_path, caplog):
    """``train --set trunk.depth=1`` trains (and saves) that model; a bad override is one clear
    error line and exit code 1, before any data is read."""
    from af2struct.cli.train import main

    out = tmp_path / "run"
    args = ["--data", str(ROOT / "tests" / "fixtures"), "--out", str(out), "--preset", "tiny", "--steps", "1",
            "--crop-size", "24", "--batch-size", "1", "--eval-every", "100", "--quiet", "--threads", "1"]
    assert main(args + ["--set", "trunk.depth=1", "--set", "trunk.triangle_attn=false"]) == 0
    config = load_checkpoint(out / "last.pt")["config"]["trunk"]
    assert (config["depth"], config["triangle_attn"], config["dim"]) == (1, False, preset("tiny").trunk.dim)
    assert main(args[:3] + [str(tmp_path / "bad")] + args[4:] + ["--set", "trunk.depht=2"]) == 1
    assert "unknown key 'depht'" in caplog.text and not (tmp_path / "bad").exists()


def test_the_train_command_line_is_generated_from_trainconfig(tmp_path):
    """Every TrainConfig field is an option (help from its docstring); repeatable options become
    tuples, --no-* flags turn defaults off, and the parsed options are the config train() gets."""
    import dataclasses

    from af2struct.cli.train import build_parser
    from af2struct.common.options import field_help, from_arguments

    helps = field_help(TrainConfig)
    assert set(helps) == {f.name for f in dataclasses.fields(TrainConfig)}
    args = build_parser().parse_args([
        "--backbone-db", "db.npz", "--out", str(tmp_path), "--set", "trunk.depth=2", "--set", "heads.pae_bins=0",
        "--train-only", "trunk.template.", "--train-only", "heads.", "--no-amp", "--quiet", "--lr", "0.01"])
    cfg = from_arguments(TrainConfig, args)
    assert cfg == TrainConfig(data=None, out=str(tmp_path), backbone_db="db.npz", lr=0.01, amp=False, progress=False,
                              model_overrides=("trunk.depth=2", "heads.pae_bins=0"),
                              train_only=("trunk.template.", "heads."))
