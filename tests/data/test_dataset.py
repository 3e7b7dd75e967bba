import numpy as np
import torch

from af2struct import load_structure
from af2struct.data.dataset import LengthBatchSampler, ProteinDataset, make_loader, proteins_from_folder
from af2struct.data.features import collate, make_example
from af2struct.data.msa import read_msa


def test_example_with_msa(data_dir):
    p = load_structure(data_dir / "openfold_1psm_A.pdb.gz")
    msa = read_msa(data_dir / "1psm_A.a3m")
    ex = make_example(p, msa, max_msa_rows=5)
    assert ex["msa"].shape == (5, 38) and (ex["msa"][0] == ex["aatype"]).all()
    single = make_example(p)
    assert single["msa"].shape == (1, 38)


def test_dataset_crops_and_batches(data_dir):
    prots = proteins_from_folder(data_dir)
    assert {"biotite_1aki_A", "openfold_1psm_A", "T1082", "T1031", "messy_1aki"} <= set(prots)
    ds = ProteinDataset(prots, crop_size=64, seed=3)
    assert all(len(ds[i]["aatype"]) <= 64 for i in range(len(ds)))
    a = ds[1]["all_atom_positions"]
    assert np.array_equal(a, ds[1]["all_atom_positions"])  # deterministic per (seed, epoch, i)
    ds.set_epoch(1)
    loader = make_loader(ds, batch_size=2)
    batches = list(loader)
    assert sum(b["aatype"].shape[0] for b in batches) == len(ds)
    for b in batches:
        L = b["aatype"].shape[1]
        assert b["all_atom_positions"].shape[1:] == (L, 37, 3)
        assert b["msa"].dtype == torch.int64
        # padding is masked
        for row, m in zip(b["aatype"], b["seq_mask"]):
            assert m.sum() > 0


def test_collate_padding():
    a = {"aatype": np.array([1, 2, 3]), "seq_mask": np.ones(3, np.float32), "msa": np.ones((1, 3), np.int64)}
    b = {"aatype": np.array([4]), "seq_mask": np.ones(1, np.float32), "msa": np.ones((2, 1), np.int64)}
    out = collate([a, b])
    assert out["aatype"].shape == (2, 3) and out["seq_mask"][1].tolist() == [1, 0, 0]
    assert out["msa"].shape == (2, 2, 3) and out["msa"][1, 0, 2] == 21  # gap-padded


def test_length_sampler():
    s = LengthBatchSampler([10, 200, 15, 190, 12], batch_size=2, max_residues=400, seed=0)
    batches = list(s)
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]
    for b in batches:
        assert max([10, 200, 15, 190, 12][i] for i in b) * len(b) <= 400
