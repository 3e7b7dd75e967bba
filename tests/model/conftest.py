import pytest
import torch

from af2struct.model.config import preset


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def tiny():
    return preset("tiny")


def saved_bytes(fn):
    """Bytes of tensors autograd saves for the backward pass while running ``fn()``: the
    activation memory of a training step (CPU has no allocator peak counter)."""
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return total[0], out
