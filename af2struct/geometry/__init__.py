"""Numpy geometry shared by data, evaluation and refinement: angles, dihedrals, superposition."""

from af2struct.geometry.angles import bond_angle, dihedral
from af2struct.geometry.superposition import kabsch, superpose

__all__ = ["bond_angle", "dihedral", "kabsch", "superpose"]
