"""PyRosetta FastRelax backend (optional; PyRosetta is licensed and not on public registries).

Written against PyRosetta's documented API: ``pyrosetta.init``, ``pyrosetta.pose_from_pdbstring``
(``pyrosetta.io``), ``pyrosetta.create_score_function``, and
``pyrosetta.rosetta.protocols.relax.FastRelax`` with ``constrain_relax_to_start_coords`` (coordinate
constraints to the starting structure). Imported lazily: nothing else needs PyRosetta.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from af2struct.common.io import load_structure, to_pdb_string
from af2struct.common.protein import Protein
from af2struct.geometry.stereo import find_violations
from refine.cleanup import check_input, input_breaks
from refine.types import RelaxConfig, RelaxError, RelaxResult

INSTALL_HINT = (
    "the 'rosetta' backend needs PyRosetta, which is licensed and not on PyPI: get a license "
    "(free for academic use) at https://www.pyrosetta.org/downloads and install it, e.g. "
    "'pip install pyrosetta-installer && python -c \"import pyrosetta_installer; "
    "pyrosetta_installer.install_pyrosetta()\"'; or use --backend openmm"
)

_initialised = False


def _import_pyrosetta():
    global _initialised
    try:
        import pyrosetta  # lazy: licensed, not on PyPI; only for --backend rosetta
    except ImportError:
        raise RelaxError(INSTALL_HINT) from None
    if not _initialised:
        pyrosetta.init("-mute all -ignore_unrecognized_res true -constant_seed true", silent=True)
        _initialised = True
    return pyrosetta


def relax_rosetta(protein: Protein, config: RelaxConfig) -> RelaxResult:
    """FastRelax (``config.rosetta_scorefxn``, ``config.rosetta_rounds`` rounds) constrained to
    the starting coordinates; energies in Rosetta energy units."""
    pyrosetta = _import_pyrosetta()
    from pyrosetta.rosetta.protocols.relax import FastRelax  # lazy: pyrosetta (above)

    t0 = time.perf_counter()
    notes = check_input(protein)
    hard, long_bond = input_breaks(protein)
    kept_breaks = hard | long_bond  # chain breaks in the input are not violations
    pose = pyrosetta.io.pose_from_pdbstring(to_pdb_string(protein))
    scorefxn = pyrosetta.create_score_function(config.rosetta_scorefxn)
    e0 = float(scorefxn(pose))
    fast = FastRelax(scorefxn, config.rosetta_rounds)
    fast.constrain_relax_to_start_coords(True)
    fast.coord_constrain_sidechains(True)
    fast.ramp_down_constraints(False)
    fast.apply(pose)
    e1 = float(scorefxn(pose))
    fd, tmp = tempfile.mkstemp(suffix=".pdb")
    os.close(fd)
    try:
        pose.dump_pdb(tmp)
        out = load_structure(tmp)
    finally:
        os.unlink(tmp)
    # Rosetta renumbers from 1 unless told otherwise: restore the input's numbering by order.
    if len(out) != len(protein) or out.sequence != protein.sequence:
        raise RelaxError("PyRosetta changed the residues of the structure")
    res_b = protein.residue_b_factors
    b = np.where(out.atom_mask > 0, res_b[:, None], 0.0).astype(np.float32)
    out = out.replace(residue_index=protein.residue_index, chain_id=protein.chain_id,
                      insertion_code=protein.insertion_code, b_factors=b)
    before = find_violations(protein, config.clash_overlap, kept_breaks)
    after = find_violations(out, config.clash_overlap, kept_breaks)
    return RelaxResult.measured(protein, out, before, after, e0, e1, outer_iterations=config.rosetta_rounds,
                                attempts=1, wall_time=time.perf_counter() - t0, backend="rosetta",
                                platform="CPU", energy_unit="REU", notes=notes)
