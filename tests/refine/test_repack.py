"""The repel policy's pieces on a real structure: rotamer rescue of trapped side chains
(refine.repack) and the escalation ladder for clashes that persist."""

import numpy as np
import pytest

from af2struct import load_structure
from af2struct.common import residue_constants as rc
from af2struct.geometry.angles import dihedral
from af2struct.geometry.stereo import find_clashes
from refine import RelaxConfig, relax
from refine.cleanup import fix_with_pdbfixer
from refine.openmm_system import heavy_protein as _heavy_protein
from refine.repack import rescue_rotamers, set_chi, trapped_residues


@pytest.fixture(scope="module")
def t1082(real_structures):
    """CASP14 T1082 (75 residues) with hydrogens, as relax sees it."""
    from openmm import unit

    nat = load_structure(real_structures[2])
    top, pos = fix_with_pdbfixer(nat)
    return nat, top, np.asarray(pos.value_in_unit(unit.nanometer))


def _overlap_of(top, nat):
    def score(pos, residue):
        found = find_clashes(_heavy_protein(top, pos, nat), 0.4)
        return sum(c.overlap for c in found if residue in (c.residue_a, c.residue_b))
    return score


_WORST = {}


def _worst_rotamer(top, nat, pos, i):
    """Residue ``i`` turned to the chi1/chi2 grid point that clashes most (a trapped side chain);
    searched once per residue of the module's structure (a copy is returned)."""
    cached = _WORST.get(i)
    if cached is None or cached[0] is not top:  # another module's structure: search again
        cached = _WORST[i] = (top, *_search_worst_rotamer(top, nat, pos, i))
    _, worst, worst_score = cached
    return worst.copy(), worst_score


def _search_worst_rotamer(top, nat, pos, i):
    residue = list(top.residues())[i]
    chis = rc.chi_angles_atoms[residue.name][:2]
    score = _overlap_of(top, nat)
    worst, worst_score = None, -1.0
    for c1 in range(-180, 180, 15):
        for c2 in range(-180, 180, 30):
            trial = pos.copy()
            set_chi(trial, residue, chis, np.radians([c1, c2]))
            s = score(trial, i)
            if s > worst_score:
                worst, worst_score = trial, s
    return worst, worst_score


def test_set_chi_sets_angles_and_keeps_geometry(t1082):
    nat, top, pos = t1082
    i = next(k for k, r in enumerate(top.residues()) if r.name == "TRP")
    residue = list(top.residues())[i]
    chis = rc.chi_angles_atoms["TRP"]
    idx = {a.name: a.index for a in residue.atoms()}
    members = [a.index for a in residue.atoms()]
    before = np.linalg.norm(pos[members][:, None] - pos[members][None], axis=-1)
    new = pos.copy()
    set_chi(new, residue, chis, np.radians([-170.0, 75.0]))
    got = [np.degrees(dihedral(*(new[idx[a]] for a in quad))) for quad in chis]
    assert np.allclose(got, [-170.0, 75.0], atol=1e-3)
    bonded = [(b[0].index, b[1].index) for b in residue.internal_bonds()]
    d_new = np.linalg.norm(new[members][:, None] - new[members][None], axis=-1)
    pos_of = {m: k for k, m in enumerate(members)}
    for a, b in bonded:  # bond lengths (hydrogens too) unchanged
        assert abs(d_new[pos_of[a], pos_of[b]] - before[pos_of[a], pos_of[b]]) < 1e-6
    other = np.setdiff1d(np.arange(len(pos)), members)
    assert np.array_equal(new[other], pos[other])  # nothing outside the residue moves
    assert np.allclose(new[[idx["N"], idx["CA"], idx["C"], idx["CB"]]], pos[[idx["N"], idx["CA"], idx["C"], idx["CB"]]])


def test_trapped_side_chain_is_found_and_turned_free(t1082):
    nat, top, pos = t1082
    i = next(k for k, r in enumerate(top.residues()) if r.name == "PHE")
    trapped_pos, overlap = _worst_rotamer(top, nat, pos, i)
    assert overlap > 2.0
    clashes = find_clashes(_heavy_protein(top, trapped_pos, nat), 0.4)
    assert i in trapped_residues(clashes, nat.aatype, 0.8)
    assert i not in trapped_residues(find_clashes(nat, 0.4), nat.aatype, 0.8)  # the native Phe is free
    new, turned = rescue_rotamers(top, trapped_pos, {i}, _overlap_of(top, nat))
    assert set(turned) == {i}
    assert _overlap_of(top, nat)(new, i) < 0.2 * overlap


@pytest.mark.slow
@pytest.mark.parametrize("rescue_overlap", [0.8, 0.41])
def test_relax_frees_a_side_chain_built_into_its_neighbours(t1082, rescue_overlap):
    """Relax (default repel policy) frees a side chain built into its neighbours: no violation
    left, and everything but that residue stays where it was. At the default threshold the
    minimiser pushes it out; at 0.41 A the clash left after round 1 counts as trapped and the
    rotamer rescue turns it."""
    nat, top, pos = t1082
    i = next(k for k, r in enumerate(top.residues()) if r.name == "PHE")
    trapped_pos, _ = _worst_rotamer(top, nat, pos, i)
    model = _heavy_protein(top, trapped_pos, nat)
    r = relax(model, RelaxConfig(rescue_overlap=rescue_overlap))
    assert r.violations_before > 0 and r.violations_after == 0, r.notes
    if rescue_overlap < 0.5:
        assert any("trapped side chain" in n for n in r.notes), r.notes
    others = np.ones(len(nat), bool)
    others[i] = False
    m = (model.atom_mask > 0) & others[:, None]
    rmsd_rest = np.sqrt(((r.protein.atom_positions[m] - model.atom_positions[m]) ** 2).sum(-1).mean())
    assert rmsd_rest < 0.3


def test_repel_escalates_then_softens_then_releases(t1082):
    """A clash that the minimiser keeps is repelled 10x more stiffly each round up to the cap,
    then its side chains' restraints are softened, then its residues are released."""
    from refine.openmm_backend import _RelaxRun

    nat, top, pos = t1082
    i = next(k for k, r in enumerate(top.residues()) if r.name == "LEU")
    residue = list(top.residues())[i]
    trapped_pos, _ = _worst_rotamer(top, nat, pos, i)
    model = _heavy_protein(top, trapped_pos, nat)
    config = RelaxConfig(rescue_overlap=10.0)  # no rotamer rescue: follow the repulsion ladder
    run = _RelaxRun(nat, config, top, trapped_pos)
    state = run.state
    side = [a.index for a in residue.atoms() if a.name in ("CG", "CD1", "CD2")]
    backbone = [a.index for a in residue.atoms() if a.name in ("N", "CA", "C", "O", "CB")]
    pair_of_i = None
    ks, side_w, bb_w = [], [], []
    found = run.violations(model)
    for _ in range(5):
        run.repel_step(trapped_pos, found)
        pair_of_i = pair_of_i or next(p for p in state.repel
                                      if any(a.index in p for a in residue.atoms()))
        ks.append(state.repel[pair_of_i][1])
        side_w.append(float(state.weight[side].max()))
        bb_w.append(float(state.weight[backbone].max()))
    assert ks == [100.0, 1000.0, 10000.0, 10000.0, 10000.0]
    assert side_w == [1.0, 1.0, 1.0, 0.1, 0.0]
    assert bb_w == [1.0, 1.0, 1.0, 1.0, 0.0]
    assert i in state.side_chains_released and i in state.released
    assert any("released" in n for n in state.notes(nat))


def test_threaded_rings_are_found_where_alphafold_test_structure_has_them(data_dir, real_structures):
    """with_violations_casp14 has Tyr48's and Trp128's rings threaded by other residues' atoms;
    real chains have none."""
    from refine.repack import threaded_rings

    casp = load_structure(data_dir / "af2_relax" / "with_violations_casp14.pdb.gz")
    assert sorted(int(casp.residue_index[i]) for i in threaded_rings(casp)) == [48, 128]
    for path in real_structures:
        assert threaded_rings(load_structure(path)) == set()
