import numpy as np
import torch
from scipy.spatial.transform import Rotation

from af2struct import load_structure
from af2struct.common import residue_constants as rc
from af2struct.geometry.angles import chi_angles
from af2struct.geometry.decode import outputs_to_protein
from af2struct.geometry.sidechains import build_atom37
from af2struct.model.se3_refine import SE3Refiner


def test_se3_refinement_is_equivariant(tiny, real_structures):
    torch.manual_seed(0)
    refiner = SE3Refiner(tiny.structure, 16, 16).double().eval()
    for p in refiner.parameters():
        torch.nn.init.normal_(p, std=0.1)
    refiner.step_gate.data.fill_(100.0)  # the Calpha update starts switched off: switch it on, loudly
    ca = torch.tensor(load_structure(real_structures[0]).ca_positions, dtype=torch.float64)[None]
    n = ca.shape[1]
    s = torch.randn(1, n, 16, dtype=torch.float64)
    z = torch.randn(1, n, n, 16, dtype=torch.float64)
    mask = torch.ones(1, n, dtype=torch.bool)
    rot = torch.tensor(Rotation.random(random_state=4).as_matrix())
    shift = torch.tensor([3.0, -7.0, 11.0], dtype=torch.float64)
    with torch.no_grad():
        ca1, bb1 = refiner(ca, s, z, mask)
        ca2, bb2 = refiner(ca @ rot.T + shift, s, z, mask)
    assert (ca1 - ca).norm(dim=-1).max() > 1e-3  # it does move atoms
    assert torch.allclose(ca1 @ rot.T + shift, ca2, atol=1e-6)
    assert torch.allclose(bb1 @ rot.T + shift, bb2, atol=1e-6)


def test_side_chains_from_true_torsions_rebuild_the_native(real_structures):
    for path in real_structures[1:]:
        p = load_structure(path)
        chi, _ = chi_angles(p)
        pos, mask = build_atom37(p.aatype, p.atom_positions[:, :3], chi)
        both = (mask > 0) & (p.atom_mask > 0)
        both[-1] = False  # O of the last residue has no next N
        d = np.linalg.norm(pos - p.atom_positions, axis=-1)[both]
        assert np.sqrt((d ** 2).mean()) < 0.45, path  # ideal vs. observed bond geometry
        o = rc.atom_order["O"]
        d_o = np.linalg.norm(pos[:-1, o] - p.atom_positions[:-1, o], axis=-1)
        assert np.median(d_o) < 0.2  # O from psi with ideal geometry


def test_outputs_to_protein(real_structures):
    p = load_structure(real_structures[2])
    chi, _ = chi_angles(p)
    sincos = np.stack([np.sin(chi), np.cos(chi)], -1)
    q = outputs_to_protein(p.aatype, p.atom_positions[:, :3], sincos, np.full(len(p), 77.0), p.residue_index)
    assert q.sequence == p.sequence and np.allclose(q.residue_b_factors, 77.0)
    assert np.array_equal(q.atom_mask[:, :36] > 0, rc.restype_atom37_mask()[p.aatype][:, :36] > 0)
