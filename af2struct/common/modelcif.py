"""Predicted models as ModelCIF (the mmCIF extension the AlphaFold database serves).

On top of the mmCIF of :func:`af2struct.common.io.to_mmcif_string` (entry named after the target,
entities with their sequences, numeric ``label_seq_id``): the software and its version, the model
list, and pLDDT as a quality metric, per residue (``_ma_qa_metric_local``) and for the whole model
(``_ma_qa_metric_global``).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from af2struct.common.io import _to_gemmi
from af2struct.common.protein import Protein
from af2struct.version import __version__


def to_modelcif_string(protein: Protein, name: str, plddt: Optional[Sequence[float]] = None,
                       description: str = "", model_details: str = "") -> str:
    """ModelCIF text of a predicted ``protein``; ``plddt [L]`` (0-100) defaults to its B-factors."""
    st = _to_gemmi(protein, name)
    doc = st.make_mmcif_document()
    block = doc[0]
    plddt = np.asarray(protein.residue_b_factors if plddt is None else plddt, np.float64)
    if plddt.shape != (len(protein),):
        raise ValueError(f"plddt has shape {plddt.shape} for {len(protein)} residues")
    version = __version__

    def cat(category: str, rows: Dict[str, List]) -> None:
        block.set_mmcif_category(category, {k: [str(v) for v in vals] for k, vals in rows.items()})

    cat("_struct", {"entry_id": [name], "title": [f"af2struct model of {description or name}"],
                    "pdbx_model_details": [model_details or "predicted with af2struct"]})
    cat("_software", {"pdbx_ordinal": [1], "name": ["af2struct"], "version": [version],
                      "classification": ["model building"], "type": ["package"],
                      "description": ["PyTorch re-implementation of the AlphaFold2 idea"]})
    cat("_ma_software_group", {"ordinal_id": [1], "group_id": [1], "software_id": [1]})
    cat("_ma_data", {"id": [1], "name": ["Model"], "content_type": ["model coordinates"]})
    cat("_ma_model_list", {"ordinal_id": [1], "model_id": [1], "model_group_id": [1],
                           "model_name": ["Top ranked model"], "model_group_name": [f"af2struct {version}"],
                           "data_id": [1], "model_type": ["Ab initio model"]})
    cat("_ma_qa_metric", {"id": [1, 2], "name": ["pLDDT", "pLDDT"], "description": [
        "Predicted accuracy according to the CA-only lDDT in [0,100]"] * 2, "type": ["pLDDT", "pLDDT"],
        "mode": ["global", "local"], "software_group_id": [1, 1]})
    cat("_ma_qa_metric_global", {"ordinal_id": [1], "model_id": [1], "metric_id": [1],
                                 "metric_value": [f"{float(plddt.mean()):.2f}"]})
    asym, seq_id, comp = [], [], []
    for ch in st[0]:
        for res in ch:
            asym.append(res.subchain)
            seq_id.append(res.label_seq)
            comp.append(res.name)
    cat("_ma_qa_metric_local", {"ordinal_id": list(range(1, len(plddt) + 1)), "model_id": [1] * len(plddt),
                                "label_asym_id": asym, "label_seq_id": seq_id, "label_comp_id": comp,
                                "metric_id": [2] * len(plddt), "metric_value": [f"{v:.2f}" for v in plddt]})
    if "_entity_poly_seq." not in doc.as_string():
        ent_id, num, mon = [], [], []
        for ent in st.entities:
            for k, res in enumerate(ent.full_sequence, 1):
                ent_id.append(ent.name)
                num.append(k)
                mon.append(res)
        cat("_entity_poly_seq", {"entity_id": ent_id, "num": num, "mon_id": mon, "hetero": ["n"] * len(num)})
    return doc.as_string()

