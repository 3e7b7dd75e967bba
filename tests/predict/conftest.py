import dataclasses

import pytest

from af2struct.model.checkpoint import save_checkpoint
from af2struct.model.config import preset
from af2struct.model.network import Af2StructModel


@pytest.fixture(scope="session")
def template_weights(tmp_path_factory):
    """A tiny model with template modules (untrained): fast runs of the template path."""
    cfg = preset("tiny")
    cfg = dataclasses.replace(cfg, templates=dataclasses.replace(cfg.templates, enabled=True, zero_init=False))
    model = Af2StructModel(cfg)
    return save_checkpoint(tmp_path_factory.mktemp("w") / "tiny_templates.pt", model, model.config)
