"""Templates on small real chains (tests/fixtures/templates_sample.npz: 8 chains of pdb2018_backbone,
three homologous pairs at 35-49 % identity, with their rows of the library's self-search table)."""

import gzip
import shutil
import subprocess
import sys

import gemmi
import numpy as np
import pytest

from af2struct.common import residue_constants as rc
from af2struct.data.msa import Msa
from af2struct.data.template_db import build_template_db
from af2struct.data.template_search import TemplateDB, cached_search, search_templates, usable_hits
from af2struct.data.templates import (
    TemplateError,
    backbone_torsions,
    filter_hits,
    read_hits_table,
    template_copy_ca,
    template_features,
)
from af2struct.train.sampling import TemplateSource, backbone_pool


@pytest.fixture(scope="module")
def db(data_dir):
    return TemplateDB(data_dir / "templates_sample.npz")


@pytest.fixture(scope="module")
def table(data_dir):
    return read_hits_table(data_dir / "templates_sample_hits.tsv")


@pytest.mark.parametrize("method", ["jackhmmer", "phmmer"])
def test_search_finds_the_known_homologue_and_drops_the_query_itself(db, method):
    seq = db.sequence(0)  # 1A32_A; its homologue in the library is 4IYL_A (49 % identity)
    hits = search_templates(seq, db, method=method)
    assert hits[0].name == "1A32_A" and hits[0].identity == 1.0  # the chain itself is in the library
    names = [h.name for h in hits]
    assert "4IYL_A" in names
    used = usable_hits(hits, seq, db)
    assert [h.name for h in used][0] == "4IYL_A" and "1A32_A" not in [h.name for h in used]
    # the alignment's residues are the query's and the template's own, in order
    for h in used:
        assert h.query_aln.replace("-", "") == seq[h.query_from - 1:h.query_to]
        assert h.hit_aln.replace("-", "") == db.sequence(h.index)[h.hit_from - 1:h.hit_to]


def test_jackhmmer_split_over_threads_finds_the_same_hits(db, monkeypatch):
    """The database split into shards searched on three threads, each round's hits merged: the
    hits, E-values and alignments of pyhmmer's own single-threaded jackhmmer."""
    from af2struct.data import hmmer

    seq = db.sequence(2)
    whole = search_templates(seq, db, cpus=1)
    monkeypatch.setattr(hmmer, "SHARD_MIN", 2)
    split = search_templates(seq, db, cpus=3)
    assert len(whole) == 2 and split == whole


def test_search_agrees_with_the_self_search_table(db, table):
    ours = {h.name: h for h in search_templates(db.sequence(2), db, method="phmmer")}
    for ref in table[2]:
        assert ours[ref.name].query_aln == ref.query_aln and ours[ref.name].hit_aln == ref.hit_aln
        assert ours[ref.name].identity == pytest.approx(ref.identity, abs=1e-3)


def _msa_with_hit(db, seq, name):
    """The query and one hit's residues on the query's columns: a two-row MSA."""
    hit = next(h for h in search_templates(seq, db, method="phmmer") if h.name == name)
    q, t = hit.mapping()
    row = ["-"] * len(seq)
    for i, j in zip(q, t):
        row[i] = db.sequence(hit.index)[j]
    return Msa(sequences=(seq, "".join(row)), deletion_matrix=np.zeros((2, len(seq)), np.int32), names=("q", "h"))


def test_hmmsearch_with_an_msa_profile(db):
    seq = db.sequence(2)
    names = [h.name for h in search_templates(seq, db, msa=_msa_with_hit(db, seq, "3CBB_D"))]
    assert "3CBB_D" in names


def test_hmmsearch_split_over_threads_finds_the_same_hits(db, monkeypatch):
    from af2struct.data import hmmer

    seq = db.sequence(2)
    msa = _msa_with_hit(db, seq, "3CBB_D")
    whole = search_templates(seq, db, msa=msa, cpus=1)
    monkeypatch.setattr(hmmer, "SHARD_MIN", 2)
    assert whole and search_templates(seq, db, msa=msa, cpus=3) == whole


def test_filters_self_pdb_entry_identity_coverage_and_date(db, table):
    seq = db.sequence(0)
    hits = table[0]
    assert [h.name for h in filter_hits(hits, seq)] == ["4IYL_A"]
    assert filter_hits(hits, seq, query_pdb_id="4IYL") == []  # same entry
    assert filter_hits(hits, seq, max_identity=0.4) == []
    assert filter_hits(hits, seq, exclude={1}) == []
    short = filter_hits(hits, seq + "A" * 800)  # aligns < 10 % of a longer query
    assert short == []
    dates = ["2001-01-01", "2015-06-01"] + [""] * 6
    assert filter_hits(hits, seq, max_date="2010-01-01", release_dates=dates) == []
    assert len(filter_hits(hits, seq, max_date="2016-01-01", release_dates=dates)) == 1


def test_features_shapes_masks_and_coordinates(db, table):
    seq = db.sequence(0)
    hit = table[0][0]
    f = template_features([hit, hit], db, len(seq))
    t, n = 2, len(seq)
    assert f["template_aatype"].shape == (t, n) and f["template_backbone"].shape == (t, n, 3, 3)
    assert f["template_torsions"].shape == (t, n, 3, 2) and f["template_mask"].tolist() == [1, 1]
    qi, ti = hit.mapping()
    mask = f["template_backbone_mask"][0]
    assert mask.sum() == len(qi) and set(np.nonzero(mask)[0]) == set(qi)
    assert (f["template_aatype"][0][mask == 0] == rc.gap_index).all()
    np.testing.assert_allclose(f["template_backbone"][0, qi], db.backbone(hit.index)[ti, :3], atol=1e-5)
    sincos = f["template_torsions"][0][f["template_torsion_mask"][0] > 0]
    np.testing.assert_allclose((sincos ** 2).sum(-1), 1.0, atol=1e-5)
    ca, present = template_copy_ca(hit, db, n)
    np.testing.assert_allclose(ca[present], f["template_backbone"][0, present, 1])
    assert template_features([], db, n)["template_mask"].shape == (0,)
    with pytest.raises(TemplateError):
        template_features([hit], db, 10)  # the alignment reaches past a 10-residue query


def test_torsions_of_a_real_chain_are_protein_like(db):
    tors, mask = backbone_torsions(db.backbone(0)[:, :3])
    omega = np.arctan2(tors[mask[:, 2] > 0, 2, 0], tors[mask[:, 2] > 0, 2, 1])
    assert (np.abs(omega) > np.deg2rad(150)).mean() > 0.95  # trans peptides
    assert mask[0, 0] == 0 and mask[-1, 1] == 0 and mask[-1, 2] == 0


def test_training_never_gets_itself_a_held_out_chain_or_its_own_cluster(db, table):
    src = TemplateSource(db, table, exclude=frozenset({3}))
    assert [h.name for h in src.usable(0)] == ["4IYL_A"]
    assert src.usable(2) == []  # its only homologue (3) is held out
    valid = TemplateSource(db, table, clusters={"1A32_A": "c1", "4IYL_A": "c1"})
    assert valid.usable(0) == [] and [h.name for h in valid.usable(4)] == ["1NKP_C"]
    rng = np.random.default_rng(0)
    counts = {len(src.features(0, rng)["template_mask"]) for _ in range(20)}
    assert counts == {0, 1}  # 0 to 4 templates, at most what the chain has
    ones = TemplateSource(db, table, min_templates=1)
    assert {len(ones.features(0, rng)["template_mask"]) for _ in range(10)} == {1}
    pool = backbone_pool(db, range(len(db)), None, 32, templates=ones)
    assert set(pool.names) == {"1A32_A", "4IYL_A", "1A6Y_C", "3CBB_D", "1AM9_H", "1NKP_C"}  # chains with a hit
    ex = pool.make(0, 5, 32, rng)
    assert ex["template_backbone"].shape == (1, 32, 3, 3) and ex["aatype"].shape == (32,)


def test_search_cache_is_reused_only_for_the_same_database(db, data_dir, tmp_path):
    cache = tmp_path / "hits.json"
    first = cached_search(db.sequence(0), db, cache, method="phmmer")
    assert cache.is_file()
    assert [h.name for h in cached_search(db.sequence(0), db, cache, method="phmmer")] == [h.name for h in first]
    other = tmp_path / "other.npz"
    shutil.copyfile(data_dir / "templates_sample.npz", other)
    key_a = db.content_key()
    other_db = TemplateDB(other)
    assert other_db.content_key() != key_a
    saved = cache.read_text()
    cached_search(db.sequence(0), other_db, cache, method="phmmer")
    assert cache.read_text() != saved  # searched again, against the other database


def test_build_from_a_folder_with_a_broken_file(data_dir, tmp_path):
    src = tmp_path / "mirror"
    src.mkdir()
    shutil.copyfile(data_dir / "T1031.pdb", src / "T1031.pdb")
    with gzip.open(data_dir / "biotite_1aki_A.pdb.gz", "rb") as fh:
        st = gemmi.read_pdb_string(fh.read().decode())
    st.setup_entities()
    doc = st.make_mmcif_document()
    doc[0].set_pair("_entry.id", "1AKI")  # the file states its accession
    doc[0].set_mmcif_category("_pdbx_audit_revision_history", {
        "ordinal": ["1", "2"], "revision_date": ["1998-04-08", "2011-07-13"]})
    doc.write_file(str(src / "1aki.cif"))
    (src / "2bad.cif").write_text("data_broken\n_cell.length_a oops\nloop_\n")
    (src / "empty.pdb").write_text("")
    report = build_template_db([str(src)], tmp_path / "db.npz", progress=False)
    assert report.files == 4 and len(report.skipped) == 2
    assert {p.split("/")[-1] for p, _ in report.skipped} == {"2bad.cif", "empty.pdb"}
    tdb = TemplateDB(tmp_path / "db.npz")
    assert sorted(tdb.names) == ["1AKI_A", "T1031_A"]
    assert tdb.accession(tdb.names.index("T1031_A")) is None  # a file name is not a PDB id
    i = tdb.names.index("1AKI_A")
    assert tdb.accession(i) == "1AKI"
    assert tdb.release_dates[i] == "1998-04-08" and tdb.lengths[i] == 129
    assert tdb.sequence(i).startswith("KVFGRCELAAAMKRHGLDNY")
    # coordinates kept to 0.01 A
    ca = tdb.backbone(i)[:, 1]
    ref = np.array([[r["CA"][0].pos.x, r["CA"][0].pos.y, r["CA"][0].pos.z] for r in st[0]["A"]
                    if r.name != "HOH" and r.find_atom("CA", "*")][:129])
    np.testing.assert_allclose(ca, ref, atol=0.006)
    # a search of the built database finds the chain
    assert search_templates(tdb.sequence(i), tdb, method="phmmer")[0].name == "1AKI_A"


def test_profile_search_leaves_the_heap_intact():
    """hmmsearch with an MSA profile, 50 times on 24 columns, in its own process: the way the
    profile's reference line is given must not overrun a buffer (pyhmmer 0.12's ``reference``
    setter did, and glibc aborted the process: "free(): invalid next size")."""
    code = (
        "import numpy as np, pyhmmer\n"
        "from af2struct.data.msa import Msa\n"
        "from af2struct.data.template_search import _ALPHABET, _hmm_from_msa\n"
        "seq = 'EAYKKAKQASQDAEQAAKDAENAS'\n"
        "rows = (seq, seq[:10] + '----' + seq[14:], '-----' + seq[5:])\n"
        "msa = Msa(sequences=rows, deletion_matrix=np.zeros((3, 24), np.int32), names=('a', 'b', 'c'))\n"
        "db = pyhmmer.easel.DigitalSequenceBlock(_ALPHABET, [pyhmmer.easel.TextSequence(name=b't', "
        "sequence=seq).digitize(_ALPHABET)])\n"
        "for _ in range(50):\n"
        "    hmm = _hmm_from_msa(msa, 'q')\n"
        "    assert hmm.M == 24 and len(next(iter(pyhmmer.hmmer.hmmsearch([hmm], db, cpus=1)))) == 1\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
