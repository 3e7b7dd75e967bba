"""Which precision a training step runs in.

Training autocasts to bfloat16 where the hardware multiplies bf16 natively: a CUDA GPU that
supports it, or an x86 CPU with AVX512-BF16 or AMX. On a CPU without them PyTorch emulates bf16
and a step runs several times slower than in float32, so there training stays float32. Whatever
the step runs in, the structure module (MDS, SE(3) refinement, the pLDDT head on the structure)
runs in float32 (:meth:`af2struct.model.network.Af2StructModel.structure`), as do the losses, the
parameters and the optimiser.
"""

from __future__ import annotations

import torch

_CPU_BF16_PROBES = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 matrix products natively (and bf16 autocast pays)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        # torch.cpu's probes are private API: a torch without them counts as no native bf16
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in _CPU_BF16_PROBES)
    return False


def use_bf16_autocast(requested: bool, device: torch.device) -> bool:
    """bf16 autocast for a training step: ``requested`` (``TrainConfig.amp``) and native on ``device``."""
    return requested and native_bf16(device)
