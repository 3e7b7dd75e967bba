"""CASP-style evaluation (numpy only; never imports torch or the model)."""

from af2struct.eval.metrics import (
    ModelScores,
    gdt,
    lddt,
    match_residues,
    rmsd,
    score_model,
    tm_score,
)

__all__ = ["ModelScores", "gdt", "lddt", "match_residues", "rmsd", "score_model", "tm_score"]
