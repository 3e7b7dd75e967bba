"""Physics refinement of protein structures: OpenMM Amber relax or PyRosetta FastRelax.

    from refine import relax, RelaxConfig
    result = relax(protein, RelaxConfig())          # OpenMM, amber99sb, vacuum, AlphaFold's protocol
    result.protein, result.final_energy, result.rmsd_heavy

Depends on af2struct's Protein, constants and IO; never on torch or the model.
"""

from __future__ import annotations

from typing import Optional

from af2struct.common.protein import Protein
from refine.openmm_backend import relax_openmm
from refine.rosetta_backend import relax_rosetta
from refine.types import RelaxConfig, RelaxError, RelaxResult

__all__ = ["relax", "RelaxConfig", "RelaxError", "RelaxResult"]


def relax(protein: Protein, config: Optional[RelaxConfig] = None) -> RelaxResult:
    """Relax ``protein`` with the backend named in ``config`` (default OpenMM)."""
    config = config or RelaxConfig()
    if config.backend == "openmm":
        return relax_openmm(protein, config)
    if config.backend == "rosetta":
        return relax_rosetta(protein, config)
    raise RelaxError(f"unknown backend {config.backend!r}")
