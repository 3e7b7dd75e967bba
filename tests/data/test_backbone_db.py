"""The backbone database reader on six real chains copied from pdb2018_backbone."""

import numpy as np
import pytest

from af2struct.common import residue_constants as rc
from af2struct.data.backbone_db import BackboneDB, BackboneDBError


@pytest.fixture(scope="module")
def db(data_dir):
    return BackboneDB(data_dir / "pdb2018_backbone_sample.npz")


def test_chains_are_real_backbones(db):
    assert len(db) == 6 and db.names[0] == "1A92_E" and list(db.lengths) == [50, 53, 64, 70, 68, 67]
    for i in range(len(db)):
        bb = db.backbone(i).astype(np.float64)  # [n, 4, 3] N, CA, C, O
        n_ca = np.linalg.norm(bb[:, 1] - bb[:, 0], axis=-1)
        ca_c = np.linalg.norm(bb[:, 2] - bb[:, 1], axis=-1)
        c_o = np.linalg.norm(bb[:, 3] - bb[:, 2], axis=-1)
        c_n = np.linalg.norm(bb[1:, 0] - bb[:-1, 2], axis=-1)  # records are gap-free
        assert abs(n_ca.mean() - 1.46) < 0.02 and abs(ca_c.mean() - 1.52) < 0.02
        assert abs(c_o.mean() - 1.23) < 0.03 and abs(c_n.mean() - 1.33) < 0.02 and c_n.max() < 2.0
        assert len(db.sequence(i)) == len(bb) == len(db.dssp(i))
        assert set(db.dssp(i)) <= set("HGIEBTSC ")


def test_example_crop_matches_the_chain(db):
    ex = db.example(3, start=10, size=32)
    assert ex["aatype"].shape == (32,) and ex["all_atom_positions"].shape == (32, 37, 3)
    seq = db.sequence(3)[10:42]
    assert "".join(rc.restypes_with_x[a] for a in ex["aatype"]) == seq
    np.testing.assert_allclose(ex["all_atom_positions"][:, [0, 1, 2, 4]], db.backbone(3)[10:42], atol=1e-5)
    backbone = [rc.atom_order[a] for a in ("N", "CA", "C", "O")]
    assert ex["all_atom_mask"][:, backbone].all() and ex["all_atom_mask"].sum() == 32 * 4
    assert not ex["chi_mask"].any()  # no side chains in this data
    assert np.all(np.diff(ex["residue_index"]) == 1) and ex["residue_index"][0] == db.start_resnum[3] + 10
    # a crop running past the end is cut at the end of the chain
    assert len(db.example(0, start=40, size=32)["aatype"]) == 10
    p = db.protein(1)
    assert len(p) == 53 and p.atom_mask.sum() == 53 * 4


def test_bad_files_are_clear_errors(tmp_path, data_dir):
    with pytest.raises(BackboneDBError, match="no such"):
        BackboneDB(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not numpy")
    with pytest.raises(BackboneDBError, match="not a numpy .npz archive"):
        BackboneDB(tmp_path / "junk.npz")
    np.savez(tmp_path / "partial.npz", offsets=np.zeros(1, np.int64))
    with pytest.raises(BackboneDBError, match="missing arrays"):
        BackboneDB(tmp_path / "partial.npz")
    with np.load(data_dir / "pdb2018_backbone_sample.npz") as d:
        arrays = dict(d)
    arrays["lengths"] = arrays["lengths"] + 1000
    np.savez(tmp_path / "overrun.npz", **arrays)
    with pytest.raises(BackboneDBError, match="outside"):
        BackboneDB(tmp_path / "overrun.npz")
    # object arrays need pickle: refused, never unpickled
    arrays = dict(arrays, pdb_ids=np.array([object()] * 6, dtype=object))
    np.savez(tmp_path / "pickled.npz", **arrays)
    with pytest.raises(BackboneDBError):
        BackboneDB(tmp_path / "pickled.npz")


def test_a_database_that_cannot_be_a_backbone_is_refused_naming_the_chain(tmp_path, data_dir):
    d = dict(np.load(data_dir / "pdb2018_backbone_sample.npz"))
    bad = dict(d, chain_center=d["chain_center"].copy())
    bad["chain_center"][2] = np.nan
    np.savez(tmp_path / "nan.npz", **bad)
    with pytest.raises(BackboneDBError, match=r"1AHO_A \(index 2\) has a non-finite centre"):
        BackboneDB(tmp_path / "nan.npz")
    zero = dict(d, coords_centiA=np.zeros_like(d["coords_centiA"]))
    np.savez(tmp_path / "zero.npz", **zero)
    with pytest.raises(BackboneDBError, match=r"N-CA bonds of 0.00 A"):
        BackboneDB(tmp_path / "zero.npz")
    (tmp_path / "text.npz").write_text("just text\n")
    with pytest.raises(BackboneDBError) as exc:
        BackboneDB(tmp_path / "text.npz")
    assert "allow_pickle" not in str(exc.value)
    (tmp_path / "cut.npz").write_bytes((data_dir / "pdb2018_backbone_sample.npz").read_bytes()[:3000])
    with pytest.raises(BackboneDBError, match="truncated or corrupt"):
        BackboneDB(tmp_path / "cut.npz")


def test_train_command_errors_are_one_line(tmp_path, data_dir, caplog):
    from af2struct.cli.train import main as train_main

    (tmp_path / "cut.npz").write_bytes((data_dir / "pdb2018_backbone_sample.npz").read_bytes()[:3000])
    assert train_main(["--backbone-db", str(tmp_path / "cut.npz"), "--out", str(tmp_path / "r"), "--quiet"]) == 1
    (tmp_path / "file").write_text("x")
    args = ["--backbone-db", str(data_dir / "pdb2018_backbone_sample.npz"), "--preset", "tiny", "--steps", "1",
            "--quiet", "--threads", "1"]
    assert train_main(args + ["--out", str(tmp_path / "file")]) == 1
    assert "truncated or corrupt" in caplog.text and "file" in caplog.text
