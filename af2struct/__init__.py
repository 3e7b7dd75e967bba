"""af2struct: sequence (+MSA) in, refined all-atom structure out, scored the CASP way.

The public doors: :class:`Protein`, :func:`load_structure`, :func:`save_structure`.
Importing ``af2struct`` imports numpy and gemmi only; torch is imported by the model
sub-packages when they are used.
"""

from af2struct.common.io import StructureError, load_structure, save_structure
from af2struct.common.protein import Protein, ProteinError
from af2struct.common.residue_constants import SequenceError

__version__ = "0.1.0"

__all__ = [
    "Protein",
    "ProteinError",
    "SequenceError",
    "StructureError",
    "load_structure",
    "save_structure",
    "__version__",
]
