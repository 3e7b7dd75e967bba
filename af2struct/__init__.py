"""af2struct: sequence (+MSA) in, refined all-atom structure out, scored the CASP way.

The public doors: :class:`Protein`, :func:`load_structure`, :func:`save_structure`.
Importing ``af2struct`` imports numpy and gemmi only; torch is imported by the model
sub-packages when they are used.
"""

from af2struct.common.io import StructureError, load_structure, save_structure
from af2struct.common.protein import Protein, ProteinError
from af2struct.common.residue_constants import SequenceError
from af2struct.version import __version__


def __getattr__(name):
    # the model (and torch) load only when asked for: ``from af2struct import Alphafold2``
    if name == "Alphafold2":
        from af2struct.model.alphafold2_pytorch import Alphafold2  # lazy: torch only for the model

        return Alphafold2
    raise AttributeError(f"module 'af2struct' has no attribute {name!r}")


__all__ = [
    "Alphafold2",
    "Protein",
    "ProteinError",
    "SequenceError",
    "StructureError",
    "load_structure",
    "save_structure",
    "__version__",
]
