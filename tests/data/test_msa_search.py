"""jackhmmer MSA search (pyhmmer) on a small database: the 11 real UniProt homologs of 1PSM (from
its real A3M) plus three unrelated real chains (CASP14 T1082, T1031 and lysozyme 1AKI)."""

import pytest

from af2struct.data.msa import parse_fasta, read_fasta
from af2struct.data.msa_search import MsaSearchError, jackhmmer_a3m, jackhmmer_msa, search_msa

SEQ_1PSM = "EAYKKAKQASQDAEQAAKDAENASKEAEEAAKEAVNLK"
UNRELATED = {"T1082", "T1031", "biotite_1aki_A"}


@pytest.fixture(scope="module")
def db(data_dir):
    return data_dir / "psm_homologs_db.fasta"


def test_finds_homologs_not_unrelated(db):
    msa = jackhmmer_msa(SEQ_1PSM, db, name="1psm", cpus=1)
    homologs = {n for n, _ in read_fasta(db)} - UNRELATED
    found = set(msa.names[1:])
    assert msa.names[0] == "1psm" and msa.query == SEQ_1PSM
    assert len(found & homologs) >= 8, found  # near-identical Plasmodium MSP3 fragments
    assert not found & UNRELATED
    assert all(len(row) == len(SEQ_1PSM) for row in msa.sequences)  # query columns
    assert msa.deletion_matrix.shape == (len(msa), len(SEQ_1PSM))


def test_a3m_rows_keep_every_hit_residue(db):
    a3m = jackhmmer_a3m(SEQ_1PSM, db, cpus=1)
    db_seqs = dict(read_fasta(db))
    for name, row in parse_fasta(a3m)[1:]:
        ungapped = row.replace("-", "").upper()
        assert ungapped in db_seqs[name]  # insertions kept as lower case, nothing invented


def test_no_hits_gives_query_only(tmp_path):
    db = tmp_path / "db.fasta"
    db.write_text(">lys\nKVFGRCELAAAMKRHGLDNYRGYSLGNWVCAAKFESNFNTQATNRNTDGSTDYGILQINSRWWCNDGRTPGSRNLCNIPCSALLSSDITASVNCAKKIVSDGNGMNAWVAWRNRCKGTDVQAWIRGCRL\n")
    msa = jackhmmer_msa(SEQ_1PSM, db, cpus=1)
    assert len(msa) == 1 and msa.query == SEQ_1PSM


def test_search_is_cached(tmp_path, db):
    out = tmp_path / "msas" / "q.a3m"
    first = search_msa(SEQ_1PSM, db, out, cpus=1)
    assert out.exists()
    out.write_text(out.read_text())  # reused, not searched again: a broken db is never opened
    again = search_msa(SEQ_1PSM, tmp_path / "missing.fasta", out)
    assert again.sequences == first.sequences


@pytest.mark.parametrize("content,match", [(None, "not found"), ("", "empty"), ("PK\x03\x04binary", "FASTA")])
def test_bad_database(tmp_path, content, match):
    path = tmp_path / "db.fasta"
    if content is not None:
        path.write_text(content)
    with pytest.raises(MsaSearchError, match=match):
        jackhmmer_msa(SEQ_1PSM, path)


def test_search_split_over_threads_gives_the_same_msa(db, monkeypatch):
    from af2struct.data import hmmer

    whole = jackhmmer_a3m(SEQ_1PSM, db, cpus=1)
    monkeypatch.setattr(hmmer, "SHARD_MIN", 3)  # 14 sequences: 2 shards on 2 threads
    assert jackhmmer_a3m(SEQ_1PSM, db, cpus=2) == whole
    assert whole.count(">") >= 9
