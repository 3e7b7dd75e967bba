"""Physics refinement (OpenMM Amber relax, PyRosetta FastRelax)."""
