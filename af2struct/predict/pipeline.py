"""One target: sequence (+MSA) -> model -> all-atom Protein with pLDDT, distogram, timings."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np
import torch

from af2struct.common import residue_constants as rc
from af2struct.common.protein import Protein
from af2struct.data.features import collate, make_example, to_numpy
from af2struct.data.msa import Msa
from af2struct.geometry.decode import decode_structure
from af2struct.model.checkpoint import CheckpointError, load_model
from af2struct.model.heads import pae_bin_centers, pae_from_logits, plddt_from_logits
from af2struct.model.mds import distogram_edges

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "default.pt"


class WeightsError(RuntimeError):
    """Missing or unusable model weights."""


@dataclasses.dataclass
class Prediction:
    """What the model predicted for one target."""

    protein: Protein  # all-atom, pLDDT in the B-factors
    plddt: np.ndarray  # [L] 0-100
    distogram_logits: np.ndarray  # [L, L, K]
    bin_edges: np.ndarray  # [K] (bin k < K-1 covers edges[k]..edges[k+1]; the last bin is "far")
    ca_mds: np.ndarray  # [L, 3] the MDS Calpha trace before SE(3) refinement
    ca_se3: np.ndarray  # [L, 3] the SE(3)-refined trace before the backbone cleanup
    timings: Dict[str, float]
    pae: Optional[np.ndarray] = None  # [L, L] predicted aligned error, A (row: frame residue); None without a PAE head
    max_pae: Optional[float] = None  # the largest value the PAE head can report (31.75 A)

    @property
    def distogram_probs(self) -> np.ndarray:
        x = self.distogram_logits - self.distogram_logits.max(-1, keepdims=True)
        e = np.exp(x)
        return e / e.sum(-1, keepdims=True)


def load_default_model(weights: Optional[Union[str, Path]] = None, device: str = "cpu"):
    """The shipped checkpoint (or ``weights``), loaded safely (``weights_only=True``)."""
    path = Path(weights) if weights else DEFAULT_WEIGHTS
    if not path.exists():
        raise WeightsError(f"model weights not found at {path}" + ("" if weights else
                           " (the shipped checkpoint is missing from this install; pass --weights)"))
    try:
        model, payload = load_model(path, device)
    except CheckpointError as exc:
        raise WeightsError(str(exc)) from None
    return model, payload


def best_device(requested: str = "auto") -> str:
    if requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError("--device cuda requested but no CUDA device is available")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def predict_structure(model, sequence: str, msa: Optional[Msa] = None, num_recycles: Optional[int] = None,
                      seed: int = 0, device: str = "cpu", max_msa_rows: int = 128,
                      clean_backbone: bool = True, templates: Optional[Dict[str, np.ndarray]] = None) -> Prediction:
    """Run the model on one sequence; raises ``SequenceError``/``MsaError`` for bad input.

    ``clean_backbone``: regularize the predicted Calpha trace (3.80 A virtual bonds, no
    overlapping Calphas) and rebuild the backbone from ideal peptide units on it
    (:mod:`af2struct.geometry.ca_trace`), so the model is physically sound before relax.
    """
    t0 = time.perf_counter()
    aatype = rc.sequence_to_aatype(sequence)
    max_len = model.config.trunk.max_seq_len
    if len(aatype) > max_len:
        raise rc.SequenceError(f"sequence of {len(aatype)} residues exceeds the model's max_seq_len={max_len}")
    if msa is not None:
        msa.check_query(sequence)
    torch.manual_seed(seed)
    ex = make_example(Protein.from_sequence(sequence), msa, max_msa_rows, np.random.default_rng(seed))
    if templates is not None and len(templates["template_mask"]):
        if model.trunk.template is None:
            raise WeightsError("these weights have no template modules: predict without --templates, or with "
                               "weights trained with templates (the shipped ones are)")
        ex.update(templates)
    batch = {k: v.to(device) for k, v in collate([ex]).items()}
    t1 = time.perf_counter()
    with torch.no_grad():
        out = model(batch=batch, num_recycles=num_recycles, return_all=True)
        t2 = time.perf_counter()
        templates = {k: v for k, v in batch.items() if k.startswith("template_")} or None
        out = model.structure(out, batch["seq_mask"] > 0, templates=templates)
    t3 = time.perf_counter()
    plddt = to_numpy(plddt_from_logits(out["plddt_logits"]))[0]
    backbone = to_numpy(out["backbone"])[0]
    chi = to_numpy(out["chi"])[0]
    protein = decode_structure(aatype, backbone, chi, plddt, clean=clean_backbone)
    h = model.config.heads
    pae = to_numpy(pae_from_logits(out["pae_logits"], h.pae_max))[0] if "pae_logits" in out else None
    return Prediction(
        protein=protein,
        plddt=plddt,
        distogram_logits=to_numpy(out["distogram"])[0],
        bin_edges=to_numpy(distogram_edges(h.distogram_bins, h.distogram_min, h.distogram_max)),
        ca_mds=to_numpy(out["ca_mds"])[0],
        ca_se3=to_numpy(out["ca"])[0],
        timings={"features": t1 - t0, "trunk": t2 - t1, "structure": t3 - t2 + (time.perf_counter() - t3)},
        pae=pae,
        max_pae=float(pae_bin_centers(h.pae_bins, h.pae_max)[-1]) if pae is not None else None,
    )
