"""bf16 autocast in training: where it is used, and that it keeps the step's numbers."""

import dataclasses
import sys
from pathlib import Path

import pytest
import torch

from af2struct.model.config import preset
from af2struct.model.network import Af2StructModel
from af2struct.train.loop import TrainConfig, forward_losses, forward_outputs
from af2struct.train.precision import native_bf16, use_bf16_autocast


@pytest.mark.skipif(not sys.platform.startswith("linux") or not Path("/proc/cpuinfo").exists(),
                    reason="CPU flags read from /proc/cpuinfo")
def test_native_bf16_follows_the_cpu_flags():
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags |= set(line.split(":", 1)[1].split())
    native = bool(flags & {"avx512_bf16", "amx_bf16"})
    assert native_bf16(torch.device("cpu")) == native
    assert use_bf16_autocast(True, torch.device("cpu")) == native
    assert not use_bf16_autocast(False, torch.device("cpu"))
    assert not native_bf16(torch.device("meta"))


def _loss_and_grad(model, batch, cfg, amp: bool):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        terms = forward_losses(model, batch, cfg)
    terms["loss"].backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return float(terms["loss"].detach()), grads


# the default preset as shipped, and with triangle attention recomputing its probabilities in backward
@pytest.mark.parametrize("trunk", [{}, {"triangle_attn": True, "attn_saved_probs_mib": 0}])
def test_bf16_step_matches_float32(real_batch, trunk):
    """A distogram step under CPU bf16 autocast (emulated where the CPU lacks bf16): the same
    loss to 1e-3 and gradients pointing the same way (cosine > 0.999)."""
    cfg = preset("default")
    cfg = dataclasses.replace(cfg, trunk=dataclasses.replace(cfg.trunk, **trunk))
    torch.manual_seed(0)
    model = Af2StructModel(cfg)
    train_cfg = TrainConfig(data="-", out="-", stage="distogram")
    loss32, grad32 = _loss_and_grad(model, real_batch, train_cfg, amp=False)
    loss16, grad16 = _loss_and_grad(model, real_batch, train_cfg, amp=True)
    assert not torch.equal(grad32, grad16)  # autocast did change the arithmetic
    assert abs(loss16 - loss32) < 1e-3 * loss32
    assert float(torch.nn.functional.cosine_similarity(grad32, grad16, dim=0)) > 0.999


def test_structure_module_runs_float32_under_autocast(real_batch):
    """Same trunk outputs in, the same structure out, with or without bf16 autocast around it;
    bf16 trunk outputs are cast up before MDS."""
    torch.manual_seed(0)
    model = Af2StructModel(preset("tiny")).eval()
    mask = real_batch["seq_mask"] > 0
    with torch.no_grad():
        trunk = forward_outputs(model, real_batch, TrainConfig(data="-", out="-", stage="distogram"))
        plain = model.structure(dict(trunk), mask, mds_iters=5, lbfgs_iters=10)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            cast = model.structure(dict(trunk), mask, mds_iters=5, lbfgs_iters=10)
            from_bf16 = model.structure({k: v.bfloat16() if v.is_floating_point() else v for k, v in trunk.items()},
                                        mask, mds_iters=5, lbfgs_iters=10)
    for key in ("ca_mds", "ca", "backbone", "plddt_logits"):
        assert cast[key].dtype == torch.float32 and torch.equal(cast[key], plain[key]), key
        assert from_bf16[key].dtype == torch.float32 and torch.isfinite(from_bf16[key]).all(), key
