"""Template databases built from real entries (tests/fixtures/pdb_mirror, the wwPDB layout):
whole chains across their gaps, ids only from what a file states, one copy of each chain, dates
checked as dates, a bad database named when it is opened."""

import gzip
import shutil

import gemmi
import numpy as np
import pytest

from af2struct.data.template_chains import read_template_chains, valid_date
from af2struct.data.template_db import TemplateBuildError, build_template_db
from af2struct.data.template_search import TemplateDB, search_templates
from af2struct.data.templates import (
    TemplateError,
    TemplateHit,
    filter_hits,
    hit_verdict,
    is_duplicate,
    template_features,
)

MMCIF = "pub/pdb/data/structures/divided/mmCIF"


@pytest.fixture(scope="module")
def mirror(data_dir):
    return data_dir / "pdb_mirror"


@pytest.fixture(scope="module")
def mirror_db(mirror, tmp_path_factory):
    out = tmp_path_factory.mktemp("tdb") / "mirror.npz"
    report = build_template_db([str(mirror / "pub")], out, progress=False)  # the divided layout's subfolders
    return TemplateDB(out), report


def test_a_chain_is_one_template_whole_across_its_missing_residues(mirror, mirror_db):
    chains, _ = read_template_chains(mirror / MMCIF / "u8" / "3u8v.cif.gz")
    a = next(c for c in chains if c.chain == "A")
    seqres = gemmi.cif.read(str(mirror / MMCIF / "u8" / "3u8v.cif.gz")).sole_block()
    assert len(a) == len(seqres.find_values("_entity_poly_seq.mon_id")) // 1 == 93  # one entity
    assert a.observed.sum() == 83 and a.accession and a.name == "3U8V_A" and a.release_date == "2011-11-09"
    # positions placed by label_seq_id: the observed residue at SEQRES position k sits at k - 1
    st = gemmi.read_structure(str(mirror / MMCIF / "u8" / "3u8v.cif.gz"))
    for res in st[0]["A"].get_polymer():
        assert a.observed[res.label_seq - 1]
        np.testing.assert_allclose(a.backbone[res.label_seq - 1, 1], res["CA"][0].pos.tolist(), atol=1e-4)
    assert np.nonzero(~a.observed)[0].tolist() == [44, 45, 46, 47, 48, 88, 89, 90, 91, 92]  # a loop and a tail
    db, report = mirror_db
    i = db.names.index("3U8V_A")
    assert db.lengths[i] == 93 and db.observed_mask(i).sum() == 83 and db.sequence(i) == a.sequence
    assert sorted(n for n in db.names if n.startswith("2Q2K")) == ["2Q2K_A", "2Q2K_B"]  # DNA chains are not templates
    assert report.files == 6 and report.undated == 0 and not [p for p, _ in report.skipped if " chain " not in p]


def test_gap_features_mask_what_was_not_observed(mirror_db):
    db, _ = mirror_db
    i = db.names.index("3U8V_A")
    seq = db.sequence(i)
    hit = TemplateHit(db.names[i], i, 1e-30, 1.0, 1, len(seq), 1, len(seq), seq, seq)
    f = template_features([hit], db, len(seq))
    seen = db.observed_mask(i)
    assert np.array_equal(f["template_backbone_mask"][0] > 0, seen)
    assert (f["template_backbone"][0][~seen] == 0).all()
    tm = f["template_torsion_mask"][0]
    assert tm[~seen].sum() == 0  # no torsion at an unobserved residue
    assert tm[43, 1] == tm[43, 2] == tm[49, 0] == 0  # nor across the missing loop 44-48 (psi, omega; phi)
    assert tm[42, 1] == tm[50, 0] == 1 and tm[seen].mean() > 0.9


def test_ids_come_from_what_the_file_states(data_dir, tmp_path):
    text = gzip.open(data_dir / "biotite_1aki_A.pdb.gz", "rt").read()
    (tmp_path / "2024_run.pdb").write_text(text)  # no HEADER: named by the file, never "PDB 2024"
    (tmp_path / "x.pdb").write_text("HEADER    HYDROLASE                               19-MAY-91   1AKI              \n"
                                    + text)
    (c,), _ = read_template_chains(tmp_path / "2024_run.pdb")
    assert (c.entry, c.accession, c.name, c.release_date) == ("2024_run", False, "2024_run_A", "")
    (h,), _ = read_template_chains(tmp_path / "x.pdb")
    assert (h.entry, h.accession, h.release_date) == ("1AKI", True, "1991-05-19")


def test_the_same_chain_in_four_files_is_one_template(data_dir, tmp_path):
    text = gzip.open(data_dir / "biotite_1aki_A.pdb.gz", "rt").read()
    header = "HEADER    HYDROLASE                               19-MAY-91   1AKI              \n"
    src = tmp_path / "in"
    src.mkdir()
    st = gemmi.read_pdb_string(header + text)
    st.setup_entities()
    doc = st.make_mmcif_document()
    doc[0].set_mmcif_category("_pdbx_audit_revision_history", {"ordinal": ["1"], "revision_date": ["1998-04-08"]})
    doc.write_file(str(src / "1aki.cif"))
    with gzip.open(src / "1AKI.pdb.gz", "wt") as fh:
        fh.write(header + text)
    with gzip.open(src / "pdb1aki.ent.gz", "wt") as fh:
        fh.write(text)  # undated, no id
    (src / "1aki_A.pdb").write_text(text)
    report = build_template_db([str(src)], tmp_path / "db.npz", progress=False)
    db = TemplateDB(tmp_path / "db.npz")
    assert db.names == ["1AKI_A"] and report.duplicates == 3
    assert db.release_dates == ["1998-04-08"]  # the dated copy is kept: an undated one cannot pass a cut-off


def test_dates_are_calendar_dates():
    assert valid_date("2021-05-14") == "2021-05-14" and valid_date("19-NOV-97") == "1997-11-19"
    assert valid_date("01-JAN-05") == "2005-01-01"
    for bad in ("2021-02-30", "2021-13-45", "0000-00-00", "2021-5-14", "yesterday", ""):
        assert valid_date(bad) == "", bad


def _rewrite(src, dst, **arrays):
    with np.load(src) as d:
        out = {k: d[k] for k in d.files}
    out.update(arrays)
    np.savez(dst, **out)
    return dst


def test_a_bad_database_is_named_when_opened(mirror_db, tmp_path):
    db, _ = mirror_db
    n = len(db)
    with pytest.raises(TemplateError, match=r"2021-02-30.*not a YYYY-MM-DD"):
        TemplateDB(_rewrite(db.path, tmp_path / "a.npz", release_dates=np.array(["2021-02-30"] * n)))
    with pytest.raises(TemplateError, match=r"1 release dates for \d+ chains"):
        TemplateDB(_rewrite(db.path, tmp_path / "b.npz", release_dates=np.array(["2001-01-01"])))
    seq = np.array(bytearray(b"a" * int(db.lengths.sum())), np.uint8)
    with pytest.raises(TemplateError, match=r"b\.npz|c\.npz.*upper-case"):
        TemplateDB(_rewrite(db.path, tmp_path / "c.npz", sequence=seq))
    with pytest.raises(TemplateError, match="is a folder, not a template database"):
        TemplateDB(tmp_path)


def test_the_target_itself_is_never_its_template(mirror_db):
    db, _ = mirror_db
    i = db.names.index("3U8V_A")
    seq = db.sequence(i)
    # the target with a gap: one hit (whole chain), dropped
    hit = search_templates(seq, db, method="phmmer")[0]
    assert hit.name in ("3U8V_A", "3U8V_B") and is_duplicate(hit, seq)
    # a one-mutation copy at full coverage is the target too
    mutant = seq[:40] + ("A" if seq[40] != "A" else "G") + seq[41:]
    hit = TemplateHit(db.names[i], i, 1e-30, 92 / 93, 1, 93, 1, 93, mutant, seq)
    assert is_duplicate(hit, mutant)
    assert "target itself" in hit_verdict(hit, mutant)
    # 4I6P is the same protein as 3ZEE (another entry, a different tag): the target too
    q = db.sequence(db.names.index("3ZEE_A"))
    assert all(is_duplicate(h, q) for h in search_templates(q, db, method="phmmer"))
    # a homologue at 80 % identity is not
    q80 = _mutated(q)
    hits = filter_hits(search_templates(q80, db, method="phmmer"), q80)
    assert {h.name for h in hits} == {"3ZEE_A", "4I6P_A", "4I6P_B"}


def _mutated(seq, every=5):
    """Every ``every``-th residue changed (a homologue at about 80 % identity)."""
    return "".join(("A" if c != "A" else "G") if k % every == 2 else c for k, c in enumerate(seq))


def test_a_date_cut_off_drops_later_and_undated_templates(mirror_db):
    db, _ = mirror_db
    q = _mutated(db.sequence(db.names.index("3ZEE_A")))
    hits = [h for h in search_templates(q, db, method="phmmer") if h.name.startswith("4I6P")]
    assert hits and db.release_dates[hits[0].index] == "2013-07-17"
    assert filter_hits(hits, q, max_date="2013-07-17", release_dates=db.release_dates) == hits
    assert filter_hits(hits, q, max_date="2013-07-16", release_dates=db.release_dates) == []
    undated = [""] * len(db)
    assert filter_hits(hits, q, max_date="2030-01-01", release_dates=undated) == []
    assert hit_verdict(hits[0], q, max_date="2030-01-01", release_date="") == "no known release date (cut-off 2030-01-01)"


def test_build_refuses_a_folder_as_its_output_and_searches_subfolders(mirror, tmp_path):
    with pytest.raises(TemplateBuildError, match="is a folder"):
        build_template_db([str(mirror)], tmp_path, progress=False)
    with pytest.raises(TemplateBuildError, match="no PDB/mmCIF files"):
        (tmp_path / "none").mkdir()
        build_template_db([str(tmp_path / "none")], tmp_path / "x.npz", progress=False)
    one = tmp_path / "one" / "mmCIF" / "ze"
    one.mkdir(parents=True)
    shutil.copyfile(mirror / MMCIF / "ze" / "3zee.cif.gz", one / "3zee.cif.gz")
    build_template_db([str(tmp_path / "one")], tmp_path / "one.npz", progress=False)
    assert TemplateDB(tmp_path / "one.npz").names == ["3ZEE_A"]
