"""Sampling of training crops: a pure function of (seed, step, slot), balanced by cluster and length."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from af2struct.data.backbone_db import BackboneDB
from af2struct.model.checkpoint import load_checkpoint
from af2struct.train.data import load_training_data
from af2struct.train.loop import TrainConfig, train
from af2struct.train.sampling import TrainingMix, backbone_pool, balanced_weights

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def db(data_dir):
    return BackboneDB(data_dir / "pdb2018_backbone_sample.npz")


def test_balanced_weights_per_cluster_and_length():
    w = balanced_weights(["a", "b", "c", "d"], [200, 200, 200, 64], {"a": "x", "b": "x", "c": "y", "d": "z"}, 128)
    # a and b share a cluster: together as likely as c; d fills half a crop: half as likely as c
    assert w[0] == pytest.approx(w[1]) and w[0] + w[1] == pytest.approx(w[2]) and w[3] == pytest.approx(w[2] / 2)
    assert w.sum() == pytest.approx(1.0)


def test_samples_are_a_function_of_seed_and_step(db):
    mix = TrainingMix([backbone_pool(db, range(len(db)), None, 32)], [1.0], crop_size=32, seed=3)
    a, b = mix.batch(7, 2), mix.batch(7, 2)
    for x, y in zip(a, b):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    other = mix.batch(8, 2)
    assert any(not np.array_equal(x["all_atom_positions"], y["all_atom_positions"]) for x, y in zip(a, other))
    assert all(len(e["aatype"]) == 32 for e in a + other)  # every chain is longer than the crop
    # ranks draw different samples at the same step
    assert not np.array_equal(mix.batch(7, 1, rank=0)[0]["aatype"], mix.batch(7, 1, rank=1)[0]["aatype"])


def _clusters(tmp_path, db):
    # chains 0-2 one cluster, 3-5 another; 1psm (all-atom) joins the first
    rows = [f"{n}\t{'c1' if i < 3 else 'c2'}" for i, n in enumerate(db.names)] + ["openfold_1psm_A\tc1"]
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "clusters.tsv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("name\tcluster\n" + "\n".join(rows) + "\n")
    return path


def _cfg(tmp_path, db, data_dir, **kw):
    base = dict(data=str(data_dir), backbone_db=str(data_dir / "pdb2018_backbone_sample.npz"),
                clusters=str(_clusters(tmp_path, db)), valid_fraction=0.3, out=str(tmp_path / "run"), preset="tiny",
                steps=4, crop_size=24, batch_size=2, eval_every=2, ckpt_every=1, log_every=1, max_valid=4, warmup=2,
                progress=False)
    base.update(kw)
    return TrainConfig(**base)


def test_validation_holds_out_whole_clusters_across_both_kinds(tmp_path, db, data_dir):
    cfg = _cfg(tmp_path, db, data_dir)
    mix, valid = load_training_data(cfg)
    names = {n for p in mix.pools for n in p.names}
    held = set(db.names) - names
    # a whole cluster (3 chains) is held out, and 1psm goes with its cluster
    assert held in ({"1A92_E", "1AGQ_A", "1AHO_A"}, {"1AHS_A", "1B0N_A", "1B33_G"})
    assert ("openfold_1psm_A" in names) == ("1A92_E" in names)
    assert valid and all(len(e["aatype"]) <= 24 for e in valid)


def test_split_seed_alone_chooses_the_validation(tmp_path, db, data_dir):
    """A run continuing another with a new --seed (new samples) keeps the held-out clusters and
    validation crops of --split-seed; only a different split seed changes them."""
    def held_and_crops(**kw):
        mix, valid = load_training_data(_cfg(tmp_path, db, data_dir, **kw))
        return set(db.names) - {n for p in mix.pools for n in p.names}, [e["aatype"].tobytes() for e in valid], mix

    held0, crops0, mix0 = held_and_crops(seed=0)
    held1, crops1, mix1 = held_and_crops(seed=1)
    assert held0 == held1 and crops0 == crops1
    assert mix0.batch(0, 2)[0]["aatype"].tobytes() != mix1.batch(0, 2)[0]["aatype"].tobytes() or \
        mix0.batch(1, 2)[0]["aatype"].tobytes() != mix1.batch(1, 2)[0]["aatype"].tobytes()
    assert any(held_and_crops(split_seed=k)[0] != held0 for k in range(1, 8))


@pytest.mark.slow
def test_training_on_the_backbone_db_resumes_exactly(tmp_path, db, data_dir):
    torch.manual_seed(0)
    full = train(_cfg(tmp_path / "a", db, data_dir))
    torch.manual_seed(0)
    train(_cfg(tmp_path / "b", db, data_dir, steps=3))  # interrupted after 3 steps (between validations)...
    resumed = train(_cfg(tmp_path / "b", db, data_dir, steps=4))  # ...and resumed
    a = load_checkpoint(tmp_path / "a" / "run" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "run" / "last.pt")["model"]
    assert full["step"] == resumed["step"] == 4
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    rows = [json.loads(x) for x in (tmp_path / "b" / "run" / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in rows if "loss" in r]
    assert train_steps == [1, 2, 3, 4]  # no duplicate rows after the resume
    assert "valid_contact_lr_l5" in rows[-1] or any("valid_distogram" in r for r in rows)
    assert (tmp_path / "b" / "run" / "best.pt").exists()
