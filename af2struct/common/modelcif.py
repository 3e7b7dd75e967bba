"""Predicted models as ModelCIF (the mmCIF extension the AlphaFold database serves).

On top of the mmCIF of :func:`af2struct.common.io.to_mmcif_string` (entry named after the target,
entities with their sequences, numeric ``label_seq_id``): the software and its version, the model
list, and pLDDT as a quality metric, per residue (``_ma_qa_metric_local``) and for the whole model
(``_ma_qa_metric_global``); with templates, ModelCIF's template categories (``_ma_template_*``,
``_ma_target_template_poly_mapping``, the alignment in ``_ma_alignment*``) and the model type
"Homology model".
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence

import gemmi
import numpy as np

from af2struct.common.io import _to_gemmi
from af2struct.common.protein import Protein
from af2struct.version import __version__

UNIPROT_HEADER = re.compile(r"^(sp|tr)\|([A-Z0-9]+(?:-\d+)?)\|(\S+)")


def to_modelcif_string(protein: Protein, name: str, plddt: Optional[Sequence[float]] = None,
                       description: str = "", model_details: str = "",
                       templates: Optional[Sequence[Dict]] = None) -> str:
    """ModelCIF text of a predicted ``protein``; ``plddt [L]`` (0-100) defaults to its B-factors.
    ``templates``: the templates used, each a dict with ``pdb_id`` (``None`` for a template whose
    file stated no PDB accession: a customised template), ``name`` (the accession or the file's
    name), ``chain``, ``sequence`` (the template chain), ``template_begin``/``template_end``
    (positions in that sequence aligned),
    ``target_begin``/``target_end`` (1-based target positions), ``identity``, ``evalue``,
    ``query_aln``/``template_aln``."""
    st = _to_gemmi(protein, name)
    doc = st.make_mmcif_document()
    block = doc[0]
    plddt = np.asarray(protein.residue_b_factors if plddt is None else plddt, np.float64)
    if plddt.shape != (len(protein),):
        raise ValueError(f"plddt has shape {plddt.shape} for {len(protein)} residues")
    version = __version__

    def cat(category: str, rows: Dict[str, List]) -> None:
        # None and False stay as gemmi writes them: "?" (unknown) and "." (not applicable)
        block.set_mmcif_category(category, {k: [v if v is None or v is False else str(v) for v in vals]
                                            for k, vals in rows.items()})

    cat("_struct", {"entry_id": [name], "title": [f"af2struct model of {description or name}"],
                    "pdbx_model_details": [model_details or "predicted with af2struct"]})
    cat("_software", {"pdbx_ordinal": [1], "name": ["af2struct"], "version": [version],
                      "classification": ["model building"], "type": ["package"],
                      "description": ["PyTorch re-implementation of the AlphaFold2 idea"]})
    cat("_ma_software_group", {"ordinal_id": [1], "group_id": [1], "software_id": [1]})
    templates = list(templates or [])
    n_t = len(templates)
    cat("_audit_conform", {"dict_name": ["mmcif_ma.dic"], "dict_version": ["1.4.5"],
                           "dict_location": ["https://raw.githubusercontent.com/ihmwg/ModelCIF/master/dist/mmcif_ma.dic"]})
    # data: 1 the model, 2 the target sequence, 3.. the templates
    cat("_ma_data", {"id": list(range(1, n_t + 3)),
                     "name": ["Model", "Target sequence"]
                     + [f"{t.get('name') or t['pdb_id']}_{t['chain']}" for t in templates],
                     "content_type": ["model coordinates", "target"] + ["template structure"] * n_t})
    _target_categories(cat, st, description)
    cat("_ma_model_list", {"ordinal_id": [1], "model_id": [1], "model_group_id": [1],
                           "model_name": ["Top ranked model"], "model_group_name": [f"af2struct {version}"],
                           "data_id": [1], "model_type": ["Homology model" if n_t else "Ab initio model"]})
    if n_t:
        _template_categories(cat, st, templates)
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



def _target_categories(cat, st, description: str) -> None:
    """The target's entities: where the sequence comes from (UniProt when the FASTA header names
    an entry, ``>sp|P69905|HBA_HUMAN ...``, else unknown: ``.`` as AlphaFold writes it, never
    "designed") and their instances in the model."""
    entities = [ent.name for ent in st.entities if ent.entity_type == gemmi.EntityType.Polymer] or ["1"]
    uniprot = UNIPROT_HEADER.match(description or "")
    cat("_ma_target_entity", {"entity_id": entities, "data_id": [2] * len(entities),
                              "origin": ["reference database" if uniprot else False] * len(entities)})
    if uniprot:
        cat("_ma_target_ref_db_details", {  # which part of the entry the sequence is: not known here
            "target_entity_id": entities, "db_name": ["UNP"] * len(entities),
            "db_code": [uniprot.group(3)] * len(entities), "db_accession": [uniprot.group(2)] * len(entities)})
    asyms = [(res.subchain, ent) for ent in entities for ch in st[0] for res in ch[:1]
             if st.get_entity_of(ch.get_subchain(res.subchain))
             and st.get_entity_of(ch.get_subchain(res.subchain)).name == ent]
    if asyms:
        cat("_ma_target_entity_instance", {"asym_id": [a for a, _ in asyms], "entity_id": [e for _, e in asyms],
                                           "details": ["Model subunit " + a for a, _ in asyms]})


def _template_categories(cat, st, templates: Sequence[Dict]) -> None:
    """ModelCIF's template description: where each template comes from (the PDB), its sequence,
    the segment used, how it maps onto the target, and the alignment."""
    ids = list(range(1, len(templates) + 1))
    target_asym = st[0][0][0].subchain if len(st[0]) else "A"
    in_pdb = [t for t in ids if templates[t - 1].get("pdb_id")]
    custom = [t for t in ids if not templates[t - 1].get("pdb_id")]
    cat("_ma_template_details", {
        "ordinal_id": ids, "template_id": ids,
        "template_origin": ["reference database" if t in in_pdb else "customized" for t in ids],
        "template_entity_type": ["polymer"] * len(ids), "template_trans_matrix_id": [1] * len(ids),
        "template_data_id": [i + 2 for i in ids], "target_asym_id": [target_asym] * len(ids),
        "template_label_asym_id": [t["chain"] for t in templates], "template_label_entity_id": [1] * len(ids),
        "template_model_num": [1] * len(ids), "template_auth_asym_id": [t["chain"] for t in templates]})
    if in_pdb:
        cat("_ma_template_ref_db_details", {
            "template_id": in_pdb, "db_name": ["PDB"] * len(in_pdb),
            "db_accession_code": [templates[t - 1]["pdb_id"] for t in in_pdb]})
    if custom:
        cat("_ma_template_customized", {
            "template_id": custom, "details": [f"from the file {templates[t - 1].get('name')}" for t in custom]})
    cat("_ma_template_poly", {"template_id": ids, "seq_one_letter_code": [t["sequence"] for t in templates],
                              "seq_one_letter_code_can": [t["sequence"] for t in templates]})
    cat("_ma_template_poly_segment", {"id": ids, "template_id": ids,
                                      "residue_number_begin": [t["template_begin"] for t in templates],
                                      "residue_number_end": [t["template_end"] for t in templates]})
    rot = {f"rot_matrix[{i}][{j}]": [1.0 if i == j else 0.0] for i in (1, 2, 3) for j in (1, 2, 3)}
    cat("_ma_template_trans_matrix", {"id": [1], **rot, **{f"tr_vector[{i}]": [0.0] for i in (1, 2, 3)}})
    cat("_ma_target_template_poly_mapping", {
        "id": ids, "template_segment_id": ids, "target_asym_id": [target_asym] * len(ids),
        "target_seq_id_begin": [t["target_begin"] for t in templates],
        "target_seq_id_end": [t["target_end"] for t in templates]})
    cat("_ma_alignment_info", {"alignment_id": ids, "data_id": [i + 2 for i in ids],
                               "software_group_id": [1] * len(ids), "alignment_length":
                                   [len(t["query_aln"]) for t in templates],
                               "alignment_type": ["target-template pairwise alignment"] * len(ids),
                               "alignment_mode": ["local"] * len(ids)})
    cat("_ma_alignment_details", {
        "ordinal_id": ids, "alignment_id": ids, "template_segment_id": ids, "target_asym_id": [target_asym] * len(ids),
        "score_type": ["Other"] * len(ids), "score_value": [f"{t['evalue']:.3g}" for t in templates],
        "percent_sequence_identity": [f"{100 * t['identity']:.1f}" for t in templates],
        "sequence_identity_denominator": ["Number of aligned residue pairs (not including the gaps)"] * len(ids)})
    cat("_ma_alignment", {
        "ordinal_id": list(range(1, 2 * len(ids) + 1)), "alignment_id": [i for i in ids for _ in (0, 1)],
        "target_template_flag": ["1", "2"] * len(ids),
        "sequence": [x for t in templates for x in (t["query_aln"], t["template_aln"])]})
