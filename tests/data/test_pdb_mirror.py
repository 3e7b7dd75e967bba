"""The PDB on demand against a real HTTP server on 127.0.0.1 (tests/pdb_server.py) serving the
miniature wwPDB mirror of tests/fixtures/pdb_mirror: downloads cached and reused without the
network, faults skipped or named, nothing broken ever kept, one download for concurrent runs."""

import multiprocessing as mp
import socket

import pytest

from af2struct.data.pdb_mirror import SEQRES, BadDownload, EntryMissing, MirrorError, PdbMirror, entry_path
from af2struct.data.seqres_db import SeqresDB
from tests.pdb_server import serve


@pytest.fixture(scope="module")
def mirror_root(data_dir):
    return data_dir / "pdb_mirror"


def _no_leftovers(cache):
    return [p.name for p in cache.rglob("*") if p.is_file() and "af2struct-tmp" in p.name]


def test_download_once_then_use_the_cache_with_the_server_gone(mirror_root, tmp_path):
    cache = tmp_path / "cache"
    with serve(mirror_root) as (url, counts):
        m = PdbMirror(url, cache, progress=False)
        path = m.entry("3U8V")
        assert path == cache / entry_path("3u8v") and path.read_bytes() == (mirror_root / entry_path("3u8v")).read_bytes()
        assert m.entry("3u8v") == path and counts["3u8v.cif.gz"] == 1  # the second time from the cache
        seqres = m.seqres()
    # the server is gone: everything cached still works, offline too
    for offline in (False, True):
        again = PdbMirror(url, cache, offline=offline, progress=False)
        assert again.entry("3U8V") == path and again.seqres() == seqres
    assert not _no_leftovers(cache)


@pytest.mark.slow
def test_a_404_and_a_truncated_file_are_never_kept(mirror_root, tmp_path):
    cache = tmp_path / "cache"
    with serve(mirror_root, faults={"4i6p.cif.gz": "truncate", "3zee.cif.gz": "404"}) as (url, counts):
        m = PdbMirror(url, cache, retries=2, progress=False)
        with pytest.raises(EntryMissing, match=r"3zee\.cif\.gz: not on the mirror \(HTTP 404\)"):
            m.entry("3ZEE")
        assert counts["3zee.cif.gz"] == 1  # a 404 is not retried
        with pytest.raises(BadDownload, match="truncated"):
            m.entry("4I6P")
        assert counts["4i6p.cif.gz"] == 2  # retried, then given up
    assert not (cache / entry_path("3zee")).exists() and not (cache / entry_path("4i6p")).exists()
    assert not _no_leftovers(cache)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_mirror_and_offline_name_what_is_missing(tmp_path):
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    cache = tmp_path / "cache"
    with pytest.raises(MirrorError, match=rf"cannot reach {url}/pub/pdb/derived_data/pdb_seqres.txt"):
        PdbMirror(url, cache, retries=2, timeout=5, progress=False).seqres()
    with pytest.raises(MirrorError, match=r"--offline: .*pdb_seqres.txt is not cached"):
        PdbMirror(url, cache, offline=True).seqres()
    assert not [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    with pytest.raises(MirrorError, match="no such folder"):
        PdbMirror(str(tmp_path / "nowhere"))


def _fetch(url, cache, q):
    q.put(str(PdbMirror(url, cache, progress=False).entry("1PSM")))


def test_two_runs_sharing_one_empty_cache_download_once(mirror_root, tmp_path):
    cache = tmp_path / "cache"
    with serve(mirror_root, delay=0.5) as (url, counts):
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        procs = [ctx.Process(target=_fetch, args=(url, cache, q)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        got = {q.get(timeout=5) for _ in procs}
        assert all(p.exitcode == 0 for p in procs)
        assert counts["1psm.cif.gz"] == 1 and got == {str(cache / entry_path("1psm"))}
    assert not _no_leftovers(cache)


def test_a_local_mirror_is_read_in_place(mirror_root, tmp_path):
    m = PdbMirror(str(mirror_root), tmp_path / "cache")
    assert m.entry("1psm") == mirror_root / entry_path("1psm") and m.seqres() == mirror_root / SEQRES
    with pytest.raises(EntryMissing, match="not in the local mirror"):
        m.entry("9ZZZ")
    assert not (tmp_path / "cache").exists()


def test_seqres_keeps_proteins_and_collapses_identical_chains(mirror_root, tmp_path):
    db = SeqresDB(mirror_root / SEQRES, index_dir=tmp_path)
    chains = {n: db.chains(i) for i, n in enumerate(db.names)}
    assert chains["3U8V_A"] == ["3U8V_A", "3U8V_B"] and chains["4I6P_A"] == ["4I6P_A", "4I6P_B"]
    assert not any(n.startswith("2Q2K_") and n not in ("2Q2K_A",) for n in db.names)  # DNA chains are not proteins
    assert sum(len(c) for c in chains.values()) == 9 and len(db) == 6
    again = SeqresDB(mirror_root / SEQRES, index_dir=tmp_path)  # from the index kept in the cache
    assert again.names == db.names and again.sequence(0) == db.sequence(0)
    assert (tmp_path / ".pdb_seqres.txt.index.npz").is_file()


def test_templates_update_refreshes_pdb_seqres(mirror_root, tmp_path):
    import shutil

    from tests.cli_run import cli

    root = tmp_path / "served"
    shutil.copytree(mirror_root, root)
    cache = tmp_path / "cache"
    with serve(root) as (url, counts):
        assert cli("templates", "update", "--pdb-mirror", url, "--template-cache", cache).returncode == 0
        first = SeqresDB(cache / SEQRES)
        with open(root / SEQRES, "a") as fh:  # the PDB releases a new entry
            fh.write(">9zzz_A mol:protein length:12  NEW\nMKTAYIAKQRQI\n")
        r = cli("templates", "update", "--pdb-mirror", url, "--template-cache", cache)
        assert r.returncode == 0 and counts["pdb_seqres.txt"] == 2
    again = SeqresDB(cache / SEQRES)
    assert "9ZZZ_A" in again.names and again.content_key() != first.content_key()
    r = cli("templates", "update", "--pdb-mirror", str(mirror_root))
    assert r.returncode == 1 and "read in place" in r.stderr
