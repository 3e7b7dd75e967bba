import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from af2struct import load_structure
from af2struct.common.io import read_structure
from af2struct.data.clusters import split_by_cluster
from af2struct.data.make_dataset import make_dataset
from af2struct.data.sidechainnet import DatasetError, entry_to_protein, iter_proteins, load_dataset

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scn_pickle(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("scn") / "tiny.pkl"
    inputs = [str(data_dir / n) for n in ("openfold_1psm_A.pdb.gz", "biotite_1aki_A.pdb.gz", "T1082.pdb", "T1031.pdb")]
    summary = make_dataset(inputs, out, progress=False)
    assert summary["splits"] == {"train": 4} and not summary["failed"]
    return out


def test_sidechainnet_package_loads_it(scn_pickle):
    import sidechainnet as scn

    d = scn.load(local_scn_path=str(scn_pickle), scn_dataset=False)
    assert len(d["train"]["seq"]) == 4
    ds = scn.load(local_scn_path=str(scn_pickle))  # SCNDataset
    assert len(ds) == 4
    lens = sorted(len(p) for p in ds)
    assert lens == sorted([38, 129, 75, 95])
    for p in ds:
        assert p.angles.shape == (len(p), 12)
        assert len(p.secondary_structure) == len(p)
        assert np.asarray(p.coords).shape == (len(p) * 14, 3)


def test_round_trip_to_protein(scn_pickle, data_dir):
    data = load_dataset(scn_pickle)
    seen = 0
    for _, pid, p in iter_proteins(data):
        name = {"openfold_1psm_A": "openfold_1psm_A.pdb.gz", "biotite_1aki_A": "biotite_1aki_A.pdb.gz"}.get(pid, f"{pid}.pdb")
        ref = load_structure(data_dir / name)
        heavy = ref.atom_mask[:, :36]
        assert p.sequence == ref.sequence
        assert np.array_equal(p.atom_mask[:, :36], heavy)
        assert np.allclose(p.atom_positions[:, :36], ref.atom_positions[:, :36], atol=1e-5)
        seen += 1
    assert seen == 4


def test_angles_and_dssp_agree_with_mdtraj(scn_pickle, data_dir):
    import mdtraj

    data = load_dataset(scn_pickle)
    i = data["train"]["ids"].index("biotite_1aki_A")
    ang = data["train"]["ang"][i]
    traj = mdtraj.load_pdb(str(data_dir / "biotite_1aki_A.pdb.gz"))
    _, phi = mdtraj.compute_phi(traj)
    _, psi = mdtraj.compute_psi(traj)
    assert np.allclose(ang[1:, 0], phi[0], atol=1e-3)
    assert np.allclose(ang[:-1, 1], psi[0], atol=1e-3)
    assert np.isnan(ang[0, 0]) and np.isnan(ang[-1, 1])
    sec = data["train"]["sec"][i]
    assert set(sec) <= set("BEGHILST") and sec.count("H") > 30  # lysozyme is largely helical
    # helical residues have alpha-region phi
    h = np.array([c == "H" for c in sec])
    assert np.nanmedian(np.degrees(ang[h, 0])) == pytest.approx(-63, abs=10)


def test_full_sequence_marks_missing(tmp_path, data_dir):
    out = tmp_path / "casp.pkl"
    make_dataset([str(data_dir / "T1082.pdb")], out, sequences=data_dir / "casp14_T1031_T1082.fasta",
                 split="test", progress=False)
    d = load_dataset(out)["test"]
    rec = read_structure(data_dir / "T1082.pdb")
    assert len(d["seq"][0]) > len(rec.protein)  # full target is longer than what was observed
    assert d["msk"][0].count("+") == len(rec.protein)
    p = entry_to_protein(d, 0)
    assert np.array_equal(p.residue_index, rec.protein.residue_index)


def test_cluster_split_keeps_clusters_together():
    names = [f"c{i}" for i in range(100)]
    clusters = {n: f"k{i // 5}" for i, n in enumerate(names)}
    split = split_by_cluster(names, clusters, 0.1, seed=1)
    n_valid = sum(v != "train" for v in split.values())
    assert 10 <= n_valid <= 15
    for k in set(clusters.values()):
        assert len({split[n] for n in names if clusters[n] == k}) == 1


def test_bad_pickles(tmp_path):
    not_dict = tmp_path / "list.pkl"
    not_dict.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DatasetError, match="not a SidechainNet dataset"):
        load_dataset(not_dict)
    no_split = tmp_path / "nosplit.pkl"
    no_split.write_bytes(pickle.dumps({"foo": {}}))
    with pytest.raises(DatasetError, match="no 'train'"):
        load_dataset(no_split)
    garbage = tmp_path / "garbage.pkl"
    garbage.write_text("definitely not a pickle")
    with pytest.raises(DatasetError, match="not a SidechainNet pickle"):
        load_dataset(garbage)
    bad_crd = tmp_path / "badcrd.pkl"
    bad_crd.write_bytes(pickle.dumps({"train": {"seq": ["AC"], "crd": [np.zeros((5, 3))], "ids": ["x"]}}))
    with pytest.raises(DatasetError, match="does not hold 14"):
        load_dataset(bad_crd)


def _run(*args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "make_dataset.py"), *args],
                          capture_output=True, text=True, timeout=300)


def test_cli_errors_leave_nothing(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.pdb").write_text("not a structure\n")
    out = tmp_path / "x.pkl"
    r = _run(str(tmp_path / "in"), "--out", str(out), "--quiet")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "nothing written" in r.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "in"]
    r = _run(str(tmp_path / "nowhere"), "--out", str(out))
    assert r.returncode != 0 and "no such file or folder" in r.stderr and "Traceback" not in r.stderr


def test_cli_help():
    r = _run("--help")
    assert r.returncode == 0 and "SidechainNet" in r.stdout


def test_reads_sidechainnet_1_0_layout(scn_pickle):
    """SidechainNet 1.0 stores 15 atoms per residue (OXT after O); both layouts read the same."""
    d = load_dataset(scn_pickle)["train"]
    crd14 = np.asarray(d["crd"][0]).reshape(len(d["seq"][0]), 14, 3)
    crd15 = np.concatenate([crd14[:, :4], np.full((len(crd14), 1, 3), np.nan), crd14[:, 4:]], axis=1)
    split15 = {"seq": [d["seq"][0]], "crd": [crd15], "msk": [d["msk"][0]], "ids": ["x"]}
    a, b = entry_to_protein(d, 0), entry_to_protein(split15, 0)
    assert np.array_equal(a.atom_positions, b.atom_positions) and np.array_equal(a.atom_mask, b.atom_mask)


def test_cli_cluster_split(tmp_path, data_dir):
    manifest = tmp_path / "m.tsv"
    manifest.write_text("name\tcluster40\nopenfold_1psm_A\tc1\nbiotite_1aki_A\tc2\nmessy_1aki\tc2\nT1082\tc3\nT1031\tc4\n")
    out = tmp_path / "split.pkl"
    r = _run(str(data_dir), "--out", str(out), "--split-by-cluster", str(manifest), "--valid-fraction", "0.3", "--quiet")
    assert r.returncode == 0, r.stderr
    data = load_dataset(out)
    train, valid = set(data["train"]["ids"]), set(data["valid-clusters"]["ids"])
    assert train | valid == {"openfold_1psm_A", "biotite_1aki_A", "messy_1aki", "T1082", "T1031"}
    assert not train & valid
    assert ({"biotite_1aki_A", "messy_1aki"} <= train) or ({"biotite_1aki_A", "messy_1aki"} <= valid)
