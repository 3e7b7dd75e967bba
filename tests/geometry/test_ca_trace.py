"""Calpha trace -> physical backbone, on a real CASP14 chain (T1082)."""

import numpy as np
import pytest

from af2struct import load_structure
from af2struct.common import residue_constants as rc
from af2struct.geometry.ca_trace import CA_CA, CA_CA_MIN, backbone_from_trace, regularize_ca_trace


@pytest.fixture(scope="module")
def native(data_dir):
    return load_structure(data_dir / "T1082.pdb")


def rms(a, b):
    return float(np.sqrt(((a - b) ** 2).sum(-1).mean()))


def test_backbone_from_native_trace_recovers_native_atoms(native):
    bb = native.atom_positions[:, :3]  # N, CA, C
    out, oxygen = backbone_from_trace(bb[:, 1], bb[:, 2] - bb[:, 1], bb[:, 0] - bb[:, 1])
    assert np.allclose(out[:, 1], bb[:, 1])
    assert rms(out[:, 0], bb[:, 0]) < 0.2 and rms(out[:, 2], bb[:, 2]) < 0.25
    assert rms(oxygen, native.atom_positions[:, rc.atom_order["O"]]) < 0.6
    peptide = np.linalg.norm(out[1:, 0] - out[:-1, 2], axis=-1)
    assert np.abs(peptide - 1.329).max() < 0.05  # every peptide bond ideal


def test_regularize_fixes_bonds_and_overlaps_and_stays_close(native):
    ca = native.atom_positions[:, 1]
    rng = np.random.default_rng(0)
    noisy = ca + rng.normal(scale=0.8, size=ca.shape)
    noisy[10] = noisy[30] + 0.5  # two Calphas on top of each other
    reg = regularize_ca_trace(noisy)
    bonds = np.linalg.norm(reg[1:] - reg[:-1], axis=-1)
    assert np.abs(bonds - CA_CA).max() < 0.1
    d = np.linalg.norm(reg[:, None] - reg[None], axis=-1)
    far = np.abs(np.arange(len(ca))[:, None] - np.arange(len(ca))[None]) >= 3
    assert d[far].min() > CA_CA_MIN - 0.15
    assert rms(reg, ca) < rms(noisy, ca)  # closer to the native than the noisy input


def test_regularize_is_rigid_motion_equivariant(native):
    ca = native.atom_positions[:40, 1] + np.random.default_rng(1).normal(scale=0.5, size=(40, 3))
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    a = regularize_ca_trace(ca) @ q.T + 3.0
    b = regularize_ca_trace(ca @ q.T + 3.0)
    assert rms(a, b) < 1e-2


def _phi_psi(bb):
    from af2struct.geometry.angles import dihedral

    phi = dihedral(bb[:-2, 2], bb[1:-1, 0], bb[1:-1, 1], bb[1:-1, 2])
    psi = dihedral(bb[1:-1, 0], bb[1:-1, 1], bb[1:-1, 2], bb[2:, 0])
    return phi, psi


def test_ramachandran_energy_favours_the_basins():
    from af2struct.geometry.ca_trace import ramachandran_energy

    deg = np.radians
    helix, strand = ramachandran_energy(deg(-63.0), deg(-43.0), False), ramachandran_energy(deg(-120.0), deg(130.0), False)
    forbidden = ramachandran_energy(deg(60.0), deg(-120.0), False)
    assert helix < 0.1 and strand < 1.5 and forbidden > 4.0
    # glycine may sit in the mirror basin, other residues may not
    assert ramachandran_energy(deg(63.0), deg(43.0), True) < 1.0 < ramachandran_energy(deg(63.0), deg(43.0), False)


def test_ramachandran_prior_turns_peptide_planes_towards_favoured_torsions(native):
    """A noisy, regularised trace with uninformative C directions: the prior puts fewer non-glycine
    residues at positive phi and more in the favoured basins; the Calphas stay where they are."""
    from af2struct.geometry.ca_trace import ramachandran_energy

    rng = np.random.default_rng(3)
    ca = regularize_ca_trace(native.atom_positions[:, 1] + rng.normal(scale=0.7, size=(len(native), 3)))
    c_dir = rng.normal(size=ca.shape)
    gly = native.aatype == rc.restype_order["G"]
    plain, _ = backbone_from_trace(ca, c_dir, prior=0.1)
    ruled, _ = backbone_from_trace(ca, c_dir, prior=0.1, glycine=gly, rama=0.1)
    assert np.allclose(ruled[:, 1], ca)
    res = ~gly[1:-1]
    (phi0, psi0), (phi1, psi1) = _phi_psi(plain), _phi_psi(ruled)
    assert (phi1[res] > 0).mean() < 0.6 * (phi0[res] > 0).mean()
    assert ramachandran_energy(phi1, psi1, gly[1:-1]).mean() < ramachandran_energy(phi0, psi0, gly[1:-1]).mean() - 0.5
