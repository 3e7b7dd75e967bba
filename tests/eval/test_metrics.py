import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from af2struct import load_structure
from af2struct.eval.metrics import CorrespondenceError, lddt, score_model


def _moved(p, rng, noise=0.0, rot_seed=3, hinge=0.0):
    r = Rotation.random(random_state=rot_seed).as_matrix()
    pos = p.atom_positions.astype(np.float64) @ r.T + np.array([5.0, -20.0, 13.0])
    pos += rng.normal(0, noise, pos.shape)
    pos[len(p) // 2:] += hinge * rng.normal(size=3) / np.sqrt(3)
    return p.replace(atom_positions=pos.astype(np.float32))


@pytest.fixture(scope="module")
def natives(real_structures):
    return [load_structure(f) for f in real_structures]


def test_identity(natives):
    for nat in natives:
        s = score_model(nat, nat)
        assert s.lddt_ca == 1.0 and s.lddt == 1.0
        assert s.gdt_ts == 100.0 and s.gdt_ha == 100.0
        assert s.tm_score == pytest.approx(1.0, abs=1e-9)
        assert s.rmsd_ca == pytest.approx(0.0, abs=1e-3) and s.rmsd_all == pytest.approx(0.0, abs=1e-3)


def test_symmetric_atom_names_do_not_count_as_errors(natives):
    """A model that names Asp OD1/OD2, Glu OE1/OE2 and Phe/Tyr ring atoms the other way round
    is the native: all-atom lDDT 1 and RMSD 0, as before the swap; a real error still counts."""
    from af2struct.common import residue_constants as rc
    from af2struct.eval.metrics import resolve_symmetric_atoms

    nat = natives[0]
    pos = nat.atom_positions.copy()
    swapped = 0
    for i, aa in enumerate(nat.aatype):
        resname = rc.restype_1to3.get(rc.restypes_with_x[aa])
        for a, b in rc.residue_atom_renaming_swaps.get(resname, {}).items():
            ia, ib = rc.atom_order[a], rc.atom_order[b]
            if nat.atom_mask[i, ia] and nat.atom_mask[i, ib]:
                pos[i, [ia, ib]] = pos[i, [ib, ia]]
                swapped += 1
                first = (i, ia)
    assert swapped >= 5
    model = nat.replace(atom_positions=pos)
    raw_err = np.abs(model.atom_positions - nat.atom_positions).max()
    assert raw_err > 1.5  # the swapped names are far apart
    s = score_model(model, nat)
    assert s.lddt == pytest.approx(1.0) and s.rmsd_all == pytest.approx(0.0, abs=1e-3)
    fixed = resolve_symmetric_atoms(pos, nat.atom_mask, nat.atom_positions, nat.atom_mask, nat.aatype)
    assert np.allclose(fixed, nat.atom_positions, atol=1e-5)
    # a displaced (not renamed) symmetric atom is still an error
    moved = pos.copy()
    moved[first] += np.array([2.0, 0.0, 0.0], np.float32)
    assert score_model(nat.replace(atom_positions=moved), nat).lddt < 1.0


def test_rigid_motion_invariance(natives):
    rng = np.random.default_rng(0)
    nat = natives[2]
    noisy = _moved(nat, rng, noise=1.0, rot_seed=1)
    s1 = score_model(noisy, nat)
    s2 = score_model(_moved(noisy, np.random.default_rng(1), rot_seed=7), nat)
    for k in ("lddt_ca", "lddt", "gdt_ts", "gdt_ha", "tm_score", "rmsd_ca", "rmsd_all"):
        assert getattr(s1, k) == pytest.approx(getattr(s2, k), abs=1e-3), k


@pytest.mark.slow
def test_tm_score_agrees_with_tmalign(natives):
    import tmtools

    rng = np.random.default_rng(42)
    checked = 0
    for nat in natives:
        for noise, hinge in [(0.5, 0.0), (1.0, 3.0), (1.5, 0.0), (2.0, 5.0)]:
            model = _moved(nat, rng, noise=noise, hinge=hinge)
            x, y = model.ca_positions.astype(float), nat.ca_positions.astype(float)
            res = tmtools.tm_align(x, y, nat.sequence, nat.sequence)
            ours = score_model(model, nat).tm_score
            # our search over superpositions is never worse than TM-align's superposition
            # evaluated on the residue-number correspondence
            d = np.linalg.norm(x @ res.u.T + res.t - y, axis=-1)
            d0 = 1.24 * np.cbrt(len(nat) - 15) - 1.8
            assert ours >= (1 / (1 + (d / d0) ** 2)).sum() / len(nat) - 1e-3
            # same alignment (TM-align paired every residue with itself): same score
            identity = res.seqxA == res.seqyA and "-" not in res.seqxA
            if res.tm_norm_chain2 > 0.5 and identity:
                assert ours == pytest.approx(res.tm_norm_chain2, abs=0.01)
                checked += 1
    assert checked >= 10


def _lddt_reference(pred, true, radius=15.0):
    """The published definition written out pair by pair (CA-only, all atoms observed)."""
    n = len(true)
    per = []
    total_num = total_den = 0.0
    for i in range(n):
        num = den = 0.0
        for j in range(n):
            if i == j:
                continue
            dt = np.linalg.norm(true[i] - true[j])
            if dt >= radius:
                continue
            dp = np.linalg.norm(pred[i] - pred[j])
            num += np.mean([abs(dp - dt) < t for t in (0.5, 1, 2, 4)])
            den += 1
        per.append(num / den if den else np.nan)
        total_num += num
        total_den += den
    return total_num / total_den, np.array(per)


def test_lddt_hand_made():
    true = np.array([[0, 0, 0], [3.8, 0, 0], [7.6, 0, 0], [11.4, 0, 0], [30, 0, 0]], float)
    pred = true.copy()
    pred[1] += [0.7, 0, 0]  # errors of 0.7 / 0.7 / 0.7 to neighbours
    pred[3] += [0, 3.0, 0]
    g, per = lddt(pred, true, np.ones(5, bool))
    g_ref, per_ref = _lddt_reference(pred, true)
    assert g == pytest.approx(g_ref) and np.allclose(per, per_ref, equal_nan=True)
    assert np.isnan(per[4])  # nothing within 15 A of the far point
    # first residue: pairs (0,1) error 0.7 -> 3/4; (0,2) exact -> 1; (0,3) error ~0.39 -> 1
    assert per[0] == pytest.approx((0.75 + 1 + 1) / 3)


def test_lddt_matches_reference_on_real(natives):
    rng = np.random.default_rng(5)
    nat = natives[0]
    true = nat.ca_positions.astype(float)
    pred = true + rng.normal(0, 1.0, true.shape)
    g, per = lddt(pred, true, np.ones(len(true), bool))
    g_ref, per_ref = _lddt_reference(pred, true)
    assert g == pytest.approx(g_ref) and np.allclose(per, per_ref)


def test_gdt_half_displaced(natives):
    nat = natives[1]
    pos = nat.atom_positions.copy()
    n = len(nat)
    pos[n // 2:] += np.array([20.0, 0, 0], np.float32)  # second half far away
    s = score_model(nat.replace(atom_positions=pos), nat)
    frac = (n - n // 2) / n
    assert s.gdt_ts == pytest.approx(100 * frac, abs=1.0)
    assert s.lddt_ca < 1.0 and frac - 0.01 <= s.tm_score <= frac + 0.05  # far half adds ~0.02


def test_missing_residues_not_reproduced(natives):
    nat = natives[2]
    model = nat.select(np.arange(10, len(nat)))
    s = score_model(model, nat)
    assert s.n_residues == len(nat) and s.n_matched == len(nat) - 10
    assert s.gdt_ts == pytest.approx(100 * (len(nat) - 10) / len(nat), abs=0.01)
    assert s.lddt_ca < 1.0 and len(s.unmatched_native) == 10


def test_sequence_mismatch_and_align(natives):
    nat = natives[2]
    aat = nat.aatype.copy()
    aat[5] = (aat[5] + 1) % 20
    with pytest.raises(CorrespondenceError, match=r"differ at the same number"):
        score_model(nat.replace(aatype=aat), nat, align=False)
    # by default the sequences are aligned where the numbering does not correspond: the mutated residue is left out
    assert score_model(nat.replace(aatype=aat), nat).n_matched == len(nat) - 1
    shifted = nat.replace(residue_index=nat.residue_index + 100)  # renumbered model
    with pytest.raises(CorrespondenceError, match=r"share no residue number.*--align"):
        score_model(shifted, nat, align=False)  # never a silent 0
    for align in (True, None):
        s = score_model(shifted, nat, align=align)
        assert s.n_matched == len(nat) and s.gdt_ts == 100.0
    other = natives[0]  # another protein at the same numbers is not aligned into a score
    with pytest.raises(CorrespondenceError, match="different proteins"):
        score_model(other.replace(residue_index=np.arange(len(other)) + int(nat.residue_index[0])), nat)


def _batched_kabsch(x: np.ndarray, y: np.ndarray, w: np.ndarray):
    """Rotations ``[S, 3, 3]`` and translations ``[S, 3]`` superposing ``x [L, 3]`` onto ``y``
    under each weight row ``w [S, L]`` (rows must have positive sums)."""
    w = w / w.sum(-1, keepdims=True)
    xc = w @ x
    yc = w @ y
    h = np.einsum("sl,li,lj->sij", w, x, y) - xc[:, :, None] * yc[:, None, :]
    u, _, vt = np.linalg.svd(h)
    v = np.swapaxes(vt, -1, -2)
    ut = np.swapaxes(u, -1, -2)
    d = np.sign(np.linalg.det(v @ ut))
    d[d == 0] = 1.0
    diag = np.zeros((len(w), 3, 3))
    diag[:, 0, 0] = 1
    diag[:, 1, 1] = 1
    diag[:, 2, 2] = d
    r = v @ diag @ ut
    t = yc - np.einsum("sj,sij->si", xc, r)
    return r, t


def _dense_gdt_reference(x, y, cutoffs, margins=(0.0, 1.0), lengths=(3, 5, 8, 12, 27), n_iter=20):
    """An independent dense GDT search: windows of several lengths at every start, then per
    cutoff iterate superposing on the residues within cutoff + margin (refinement beyond the
    cutoff); the best count within each cutoff over everything met."""
    n = len(x)
    seeds = []
    for length in [k for k in lengths if k < n] + [n]:
        for s in range(n - length + 1):
            m = np.zeros(n, bool)
            m[s:s + length] = True
            seeds.append(m)
    seeds = np.array(seeds)
    out = []
    for c in cutoffs:
        best = 0
        for margin in margins:
            sel = seeds
            for _ in range(n_iter):
                r, t = _batched_kabsch(x, y, sel.astype(np.float64))
                d = np.linalg.norm(np.einsum("sij,lj->sli", r, x) + t[:, None] - y[None], axis=-1)
                best = max(best, int((d < c).sum(-1).max()))
                new = d < c + margin
                few = new.sum(-1) < 3
                if few.any():
                    idx = np.argsort(d[few], axis=-1)[:, :3]
                    rows = np.zeros_like(new[few])
                    np.put_along_axis(rows, idx, True, axis=-1)
                    new[few] = rows
                if np.array_equal(new, sel):
                    break
                sel = new
        out.append(100.0 * best / n)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("noise", [1.0, 2.0, 3.0, 4.0])
def test_gdt_is_never_below_a_dense_search(natives, noise):
    """GDT is a maximum over superpositions: on natives with 1-4 A of noise per Calpha, no
    superposition a dense independent search finds scores higher than what score_model reports."""
    from af2struct.eval.metrics import GDT_HA_CUTOFFS, GDT_TS_CUTOFFS

    for nat in natives[2:]:  # CASP14 T1082 (75 residues) and T1031 (95)
        y = nat.ca_positions.astype(np.float64)
        rng = np.random.default_rng(int(noise * 10))
        x = y + rng.normal(0, noise / np.sqrt(3), y.shape)
        pos = nat.atom_positions.copy()
        pos[:, 1] = x
        s = score_model(nat.replace(atom_positions=pos.astype(np.float32)), nat)
        ref_ts = float(np.mean(_dense_gdt_reference(x, y, GDT_TS_CUTOFFS)))
        ref_ha = float(np.mean(_dense_gdt_reference(x, y, GDT_HA_CUTOFFS)))
        assert s.gdt_ts >= ref_ts - 1e-9 and s.gdt_ha >= ref_ha - 1e-9, (nat.sequence[:5], s.gdt_ts, ref_ts,
                                                                            s.gdt_ha, ref_ha)


def test_unrelated_or_calpha_only_models_say_so(data_dir, caplog):
    import math

    import pytest

    from af2struct import load_structure
    from af2struct.eval.metrics import CorrespondenceError, score_model

    t1082 = load_structure(data_dir / "T1082.pdb")
    t1031 = load_structure(data_dir / "T1031.pdb")
    s = score_model(t1031, t1082, align=True)  # another protein: identity low, and a warning
    assert s.sequence_identity < 0.5 and "sequences differ" in caplog.text
    assert score_model(t1082, t1082).sequence_identity == 1.0
    poly_his = t1082.replace(aatype=np.full(len(t1082), 8, np.int32))  # T1082 has no His
    with pytest.raises(CorrespondenceError, match="no residue of the model matches"):
        score_model(poly_his, t1082, align=True)
    ca_only = t1082.replace(atom_mask=t1082.atom_mask * (np.arange(37) == 1))
    s = score_model(ca_only, t1082)
    assert math.isnan(s.rmsd_all) and s.rmsd_ca < 1e-6 and s.lddt_ca == 1.0
