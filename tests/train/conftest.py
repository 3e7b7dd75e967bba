"""Fixtures shared by the training tests."""

import pytest

from af2struct.data.dataset import proteins_from_folder
from af2struct.data.features import collate, crop_example, make_example


@pytest.fixture(scope="module")
def real_batch(data_dir):
    """Two real chains (1PSM, CASP14 T1082), first 32 residues each, collated."""
    prots = proteins_from_folder(data_dir, names=["openfold_1psm_A", "T1082"])
    return collate([crop_example(make_example(p), 0, 32) for p in prots.values()])
