"""Secondary structure (DSSP, through mdtraj) in SidechainNet's ``sec`` alphabet."""

from __future__ import annotations

import os
import tempfile
import warnings

import numpy as np

from af2struct.common import residue_constants as rc
from af2struct.common.io import to_pdb_string
from af2struct.common.protein import Protein

# mdtraj's 8-state DSSP writes ' ' for loop; SidechainNet writes 'L' and pads missing with ' '.
_MDTRAJ_TO_SCN = {"H": "H", "B": "B", "E": "E", "G": "G", "I": "I", "T": "T", "S": "S", " ": "L"}


def dssp(protein: Protein) -> str:
    """8-state DSSP string for ``protein`` (one letter per residue, ``BEGHILST``).

    Residues without a full backbone (N, CA, C, O) get ``" "`` (SidechainNet's pad), as
    DSSP cannot assign them.
    """
    import mdtraj  # lazy: only dataset building needs it (0.25-0.4 s at evaluate's start otherwise)

    bb = [rc.atom_order[a] for a in rc.backbone_atoms]
    complete = protein.atom_mask[:, bb].min(-1) > 0
    if not complete.any():
        return " " * len(protein)
    sub = protein.select(np.nonzero(complete)[0])
    # mdtraj reads from files only; a private temp file keeps this re-entrant.
    fd, tmp = tempfile.mkstemp(suffix=".pdb")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(to_pdb_string(sub))
        with warnings.catch_warnings():  # the dummy CRYST1 record
            warnings.simplefilter("ignore", UserWarning)
            traj = mdtraj.load_pdb(tmp, standard_names=False)
    finally:
        os.unlink(tmp)
    codes = mdtraj.compute_dssp(traj, simplified=False)[0]
    if len(codes) != len(sub):
        raise RuntimeError(f"DSSP returned {len(codes)} codes for {len(sub)} residues")
    out = np.full(len(protein), " ", dtype="<U1")
    out[complete] = [_MDTRAJ_TO_SCN.get(c, " ") for c in codes]
    return "".join(out)
