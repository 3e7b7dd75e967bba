import warnings

import numpy as np

from af2struct.geometry.angles import bond_angle, dihedral


def test_bond_angle_and_dihedral_values():
    a, b, c = np.array([1.0, 0, 0]), np.zeros(3), np.array([0, 2.0, 0])
    assert np.isclose(bond_angle(a, b, c), np.pi / 2)
    # trans (180 deg) and gauche+ (60 deg) in the IUPAC sign convention
    p = [np.array([1.0, 1, 0]), np.zeros(3), np.array([1.0, 0, 0]), np.array([0.0, -1, 0])]
    assert np.isclose(abs(dihedral(*p)), np.pi)
    d = dihedral(np.array([0.0, 1, 0]), np.zeros(3), np.array([1.0, 0, 0]),
                 np.array([1.0, np.cos(np.pi / 3), np.sin(np.pi / 3)]))
    assert np.isclose(d, np.pi / 3)


def test_bond_angle_undefined_is_nan_without_warning():
    a = np.array([[1.0, 0, 0], [0, 0, 0]])
    b = np.zeros((2, 3))
    c = np.array([[0, 1.0, 0], [0, 1.0, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = bond_angle(a, b, c)
    assert np.isclose(out[0], np.pi / 2) and np.isnan(out[1])
