"""The Ray backend on a local Ray with 2 workers: same outputs, errors and resume as the local loop."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_run import cli

pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[2]
SEQ_1PSM = "EAYKKAKQASQDAEQAAKDAENASKEAEEAAKEAVNLK"


def run(*args):
    r = subprocess.run([sys.executable, str(ROOT / "scripts/predict.py"), *map(str, args), "--quiet"],
                       capture_output=True, text=True, timeout=900)
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    return r


@pytest.mark.slow
def test_local_ray_two_workers_relax_msa_search_and_resume(tmp_path, data_dir):
    fasta = tmp_path / "t.fasta"
    fasta.write_text(f">psm\n{SEQ_1PSM}\n>half\n{SEQ_1PSM[:24]}\n>bad\nEAYKKAKQAS1DAEQ\n")
    out = tmp_path / "out"
    before = set(ray_temp_dirs())  # another program's leftovers are not this run's
    r = run(fasta, "--out", out, "--workers", 2, "--msa-db", data_dir / "psm_homologs_db.fasta", "--no-plots",
            "--msa-cpus", 1, "--templates", data_dir / "templates_sample.npz")
    assert r.returncode == 3, r.stderr[-3000:]  # one target failed, the others finished
    rows = {row["name"]: row for row in csv.DictReader(open(out / "summary.csv"))}
    assert rows["bad"]["status"] == "error" and "unknown residue" in rows["bad"]["error"]
    for name, n in (("psm", 38), ("half", 24)):
        row = rows[name]
        assert row["status"] == "ok" and int(row["length"]) == n and int(row["msa_depth"]) > 1
        assert float(row["t_relax"]) > 0 and float(row["t_trunk"]) > 0
        d = out / name
        for f in ("unrelaxed.pdb", "relaxed.pdb", "distogram.npz", "confidence.json", "timings.json"):
            assert (d / f).exists(), f
        assert (d / "msa.a3m").exists()  # the searched alignment goes with the model
        assert json.loads((d / "templates.json").read_text())["used"] == []  # searched on a worker: no homologue
    assert not list(out.glob(".*.partial"))
    done = json.loads((out / "psm" / "result.json").read_text())
    # a rerun (here without Ray: the folder is the same either way) keeps finished targets (same
    # result.json) and only retries the failed one
    r2 = cli("predict", fasta, "--out", out, "--msa-db", data_dir / "psm_homologs_db.fasta", "--no-plots",
             "--msa-cpus", 1, "--templates", data_dir / "templates_sample.npz")
    assert r2.returncode == 3
    assert "2 of 3 targets already finished" in r2.stderr
    assert json.loads((out / "psm" / "result.json").read_text()) == done
    assert set(ray_temp_dirs()) <= before  # the local Ray's session folders are removed with it
    assert not (Path.home() / ".ray").exists()  # nothing in the home folder (the tests' HOME is a temporary one)


def ray_temp_dirs():
    import tempfile

    return list(Path(tempfile.gettempdir()).glob("af2struct-ray-*"))


# what the command says about a Ray it cannot use: in this process (tests/cli_run.py), no Ray started
def test_ray_needs_two_local_workers(tmp_path):
    r = cli("predict", "--sequence", SEQ_1PSM, "--out", tmp_path / "o", "--workers", 1)
    assert r.returncode == 1 and "at least 2" in r.stderr and "Traceback" not in r.stderr


def test_ray_address_and_workers_are_exclusive(tmp_path):
    r = cli("predict", "--sequence", SEQ_1PSM, "--out", tmp_path / "o", "--workers", 2, "--ray-address", "auto")
    assert r.returncode == 1 and "not both" in r.stderr


def test_unreachable_ray_address_is_one_quick_line(tmp_path):
    import time

    t0 = time.time()
    r = cli("predict", "--sequence", SEQ_1PSM, "--out", tmp_path / "o", "--ray-address", "127.0.0.1:1")
    assert r.returncode == 1 and "no Ray cluster answers there" in r.stderr and time.time() - t0 < 60
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr  # one line
