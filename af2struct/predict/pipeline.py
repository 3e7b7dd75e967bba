"""One target: sequence (+MSA) -> model -> all-atom Protein with pLDDT, distogram, timings."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np
import torch

from af2struct.common.protein import Protein
from af2struct.data.features import collate, make_example, to_numpy
from af2struct.data.msa import Msa
from af2struct.geometry.decode import decode_structure
from af2struct.model.checkpoint import CheckpointError, load_model

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
    # [L, L] predicted aligned error, A (row: frame residue); None without a PAE head. With templates
    # it also reads the ensemble's spread (Af2StructModel.pae_with_spread) and can exceed max_pae
    pae: Optional[np.ndarray] = None
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
    """One target, straight down the line: features -> :meth:`Af2StructModel.predict
    <af2struct.model.network.Af2StructModel.predict>` (every head decoded by the model) -> numpy ->
    all-atom :class:`Protein` (:func:`~af2struct.geometry.decode.decode_structure`). Raises
    ``SequenceError``/``MsaError`` for bad input.

    With templates the PAE adds the spread of the structures the distogram allows around the
    written model (:meth:`~af2struct.model.network.Af2StructModel.pae_with_spread`).

    ``clean_backbone``: regularize the predicted Calpha trace (3.802 A virtual bonds, no
    overlapping Calphas) and rebuild the backbone from ideal peptide units on it
    (:mod:`af2struct.geometry.ca_trace`), so the model is physically sound before relax.
    """
    t0 = time.perf_counter()
    query = Protein.from_sequence(sequence)  # residue types checked here (SequenceError)
    if msa is not None:
        msa.check_query(sequence)
    torch.manual_seed(seed)
    ex = make_example(query, msa, max_msa_rows, np.random.default_rng(seed))
    if templates is not None:
        ex.update(templates)
    batch = {k: v.to(device) for k, v in collate([ex]).items()}
    timings = {"features": time.perf_counter() - t0}
    out = {k: to_numpy(v) for k, v in model.predict(batch, num_recycles, timings).items()}
    t2 = time.perf_counter()
    protein = decode_structure(query.aatype, out["backbone"][0], out["chi"][0], out["plddt"][0], clean=clean_backbone)
    pae = out["pae"][0] if "pae" in out else None
    if pae is not None and bool(out["templated"][0]):  # the spread around the model as written
        pae = to_numpy(model.pae_with_spread(torch.from_numpy(pae), torch.from_numpy(out["distogram"][0]),
                                             torch.tensor(protein.ca_positions), torch.from_numpy(out["plddt"][0])))
    timings["structure"] += time.perf_counter() - t2  # the all-atom model is the structure stage's last step
    return Prediction(
        protein=protein, plddt=out["plddt"][0], distogram_logits=out["distogram"][0], bin_edges=out["bin_edges"],
        ca_mds=out["ca_mds"][0], ca_se3=out["ca"][0],
        timings=timings,
        pae=pae,
        max_pae=float(out["max_pae"]) if "max_pae" in out else None,
    )
