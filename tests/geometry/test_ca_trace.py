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
