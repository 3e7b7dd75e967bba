"""Shared foundations: residue constants, the Protein type, structure IO, atomic writes."""
