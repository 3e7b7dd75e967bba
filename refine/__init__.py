"""Physics refinement of protein structures: OpenMM Amber relax or PyRosetta FastRelax.

    from refine import AmberRelaxation, relax, RelaxConfig
    result = AmberRelaxation(RelaxConfig()).process(protein)   # OpenMM, amber99sb, AlphaFold's protocol
    result = relax(protein)                                     # the same (or PyRosetta by config.backend)
    result.protein, result.final_energy, result.rmsd_heavy

Depends on af2struct's Protein, constants and IO; never on torch or the model.
"""

from __future__ import annotations

from typing import Optional

from af2struct.common.protein import Protein
from refine.openmm_backend import AmberRelaxation
from refine.rosetta_backend import relax_rosetta
from refine.types import RelaxConfig, RelaxError, RelaxResult

__all__ = ["AmberRelaxation", "relax", "RelaxConfig", "RelaxError", "RelaxResult"]


def relax(protein: Protein, config: Optional[RelaxConfig] = None) -> RelaxResult:
    """Relax ``protein`` with the backend named in ``config`` (default OpenMM: shorthand for
    ``AmberRelaxation(config).process(protein)``)."""
    config = config or RelaxConfig()
    if config.backend == "openmm":
        return AmberRelaxation(config).process(protein)
    if config.backend == "rosetta":
        return relax_rosetta(protein, config)
    raise RelaxError(f"unknown backend {config.backend!r}")
