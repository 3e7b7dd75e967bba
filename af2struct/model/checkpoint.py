"""Checkpoints: model weights + config + training state, saved atomically, loaded with
``torch.load(weights_only=True)`` (no arbitrary code runs when a checkpoint is read)."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from af2struct.common.files import atomic_write_bytes
from af2struct.model.config import ModelConfig
from af2struct.model.network import Af2StructModel
from af2struct.version import __version__

FORMAT = "af2struct-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A missing, corrupt or incompatible checkpoint."""


def save_checkpoint(path: Union[str, Path], model, config: ModelConfig, train_state: Optional[Dict[str, Any]] = None,
                    optimizer=None, metrics: Optional[Dict[str, float]] = None) -> Path:
    """Write ``path`` atomically (weights, config dict, optional optimizer and training state)."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "af2struct_version": __version__,
        "config": config.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "train_state": train_state or {},
        "metrics": metrics or {},
    }
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    return write_checkpoint(path, payload)


def write_checkpoint(path: Union[str, Path], payload: Dict[str, Any]) -> Path:
    """Write a checkpoint ``payload`` (:func:`save_checkpoint`'s layout) to ``path`` atomically."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def load_checkpoint(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``) and check its format."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or unsafe content
        raise CheckpointError(f"{path}: not a readable af2struct checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an af2struct checkpoint")
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload['version']} is newer than this af2struct")
    return payload


def config_from_checkpoint(payload: Dict[str, Any]) -> ModelConfig:
    """The model config a checkpoint was written with. Heads added later default to off for
    checkpoints written before them: no ``heads.pae_bins`` means no PAE head (``pae_bins=0``), no
    ``heads.plddt_context`` a pLDDT head on the sequence row only, no
    ``heads.plddt_expected_lddt`` a context head without the expected-lDDT features."""
    d = dict(payload["config"])
    if isinstance(d.get("heads"), dict):
        d["heads"] = {"pae_bins": 0, "plddt_context": False, "plddt_expected_lddt": False, **d["heads"]}
    return ModelConfig.from_dict(d)


def load_model(path: Union[str, Path], device: Union[str, torch.device] = "cpu"):
    """The model stored in a checkpoint, in eval mode, with its config."""
    payload = load_checkpoint(path)
    for key in ("config", "model"):
        if not isinstance(payload.get(key), dict):
            raise CheckpointError(f"{path}: checkpoint has no model {key} (not a model checkpoint?)")
    try:
        config = config_from_checkpoint(payload)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: bad config in checkpoint ({str(exc)[:300]})") from None
    model = Af2StructModel(config)
    state = payload["model"]
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the model ({len(missing)} missing, e.g. {missing[:2]}; "
                              f"{len(unexpected)} unexpected, e.g. {unexpected[:2]})")
    for k, v in state.items():
        if not isinstance(v, torch.Tensor) or v.shape != own[k].shape:
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise CheckpointError(f"{path}: weight {k} has shape {got}, the model's config needs "
                                  f"{tuple(own[k].shape)}")
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(f"{path}: weight {k} holds NaN or infinite values (a diverged training run?)")
    model.load_state_dict(state)
    return model.to(device).eval(), payload


def with_templated_trunk(base: Dict[str, Any], templated: Dict[str, Any]) -> Dict[str, Any]:
    """A checkpoint payload (``templates.own_trunk``) whose model folds inputs without a
    template with ``base``'s trunk and distogram head and inputs with one with ``templated``'s;
    every other weight (heads, SE(3)) and the rest of the config are ``base``'s. Both payloads
    are :func:`load_checkpoint`'s; their trunks and template modules must be configured alike."""
    cfg_b, cfg_t = config_from_checkpoint(base), config_from_checkpoint(templated)
    if cfg_b.trunk != cfg_t.trunk or cfg_b.heads.distogram_bins != cfg_t.heads.distogram_bins:
        raise CheckpointError("the two checkpoints' trunks are configured differently: they cannot share heads")
    tpl_t = dataclasses.replace(cfg_t.templates, own_trunk=False)
    if not tpl_t.enabled or tpl_t != dataclasses.replace(cfg_b.templates, own_trunk=False):
        raise CheckpointError("the templated checkpoint needs the base's template modules (templates.enabled, "
                              "same template config)")
    config = cfg_b.replace(templates={"own_trunk": True})
    state = {k: v for k, v in base["model"].items()
             if not k.startswith(("templated.", "trunk.template."))}
    src = templated["model"]
    prefix = "templated." if cfg_t.templates.own_trunk else ""
    for part in ("trunk.", "distogram_head."):
        state.update({"templated." + k[len(prefix):]: v for k, v in src.items() if k.startswith(prefix + part)})
    train_state = dict(base.get("train_state") or {})
    train_state["templated"] = {"train_state": {k: v for k, v in (templated.get("train_state") or {}).items()
                                                if isinstance(v, (int, float, str))},
                                "metrics": dict(templated.get("metrics") or {})}
    return {"format": FORMAT, "version": VERSION, "af2struct_version": __version__, "config": config.to_dict(),
            "model": state, "train_state": train_state, "metrics": dict(base.get("metrics") or {})}
