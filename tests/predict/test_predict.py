import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from af2struct import load_structure
from af2struct.model.checkpoint import save_checkpoint
from af2struct.model.config import preset
from af2struct.model.network import Af2StructModel
from af2struct.predict.pipeline import DEFAULT_WEIGHTS
from tests.cli_run import cli, empty_home_env, script

ROOT = Path(__file__).resolve().parents[2]
SEQ_1PSM = "EAYKKAKQASQDAEQAAKDAENASKEAEEAAKEAVNLK"


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    model = Af2StructModel(preset("tiny"))
    return save_checkpoint(path, model, model.config)


def run(*args):
    """``af2struct predict args... --quiet`` in this process (tests/cli_run.py)."""
    return cli("predict", *args)


def summary(out):
    return {r["name"]: r for r in csv.DictReader(open(out / "summary.csv"))}


@pytest.mark.slow
def test_default_weights_end_to_end_with_relax(tmp_path, data_dir):
    assert DEFAULT_WEIGHTS.exists(), "the shipped checkpoint must be in the repository"
    out = tmp_path / "out"
    home = tmp_path / "home"  # the Quickstart command line, as a user runs it, with an empty home folder
    r = script("predict", "--sequence", SEQ_1PSM, "--name", "1psm", "--out", out, "--native",
               data_dir / "openfold_1psm_A.pdb.gz", env=empty_home_env(home))
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(home.rglob("*")) == []  # plots, relax and scores write nothing into the home folder
    assert "fontManager" not in r.stderr  # matplotlib's font cache: built once, quietly, outside the output
    d = out / "1psm"
    for f in ("unrelaxed.pdb", "relaxed.pdb", "distogram.npz", "confidence.json", "pLDDT.png", "distogram.png",
              "pae.json", "pae.png", "timings.json", "result.json"):
        assert (d / f).exists(), f
    conf = json.loads((d / "confidence.json").read_text())
    relaxed = load_structure(d / "relaxed.pdb")
    assert relaxed.sequence == SEQ_1PSM
    assert np.allclose(relaxed.residue_b_factors, conf["plddt"], atol=0.01)  # pLDDT in the B-factor column
    row = summary(out)["1psm"]
    assert row["status"] in ("ok", "violations") and float(row["t_relax"]) > 0 and row["lddt_ca"] != ""
    # one verdict: relax of the same unrelaxed model gives the same atoms, status and exit code, and says it
    rr = cli("relax", d / "unrelaxed.pdb", "--out", tmp_path / "rel")
    again = json.loads((tmp_path / "rel" / "relax_report.json").read_text())[0]
    assert again["status"] == row["status"] and rr.returncode == r.returncode == 0
    # the target's own warning line, and the closing line, name violations exactly when some are left
    # (either way: this machine's relax decides which branch runs; test_closing_line covers both)
    assert (row["status"] == "violations") == ("violations left" in r.stderr) == ("violations left" in rr.stderr)
    assert np.allclose(load_structure(tmp_path / "rel" / "unrelaxed_relaxed.pdb").atom_positions,
                       relaxed.atom_positions, atol=1e-3)
    # the scores --native computed are printed, and the files say what they hold
    assert "lDDT-CA" in r.stdout and "1psm" in r.stdout and f"{float(row['lddt_ca']):.3f}" in r.stdout
    head = (d / "relaxed.pdb").read_text().splitlines()[:6]
    assert any("B-factor column: per-residue pLDDT" in x for x in head)
    assert any("weights: shipped default.pt (sha256" in x for x in head)
    assert any("relaxed: openmm" in x for x in head)
    assert any("not relaxed" in x for x in (d / "unrelaxed.pdb").read_text().splitlines()[:6])
    from Bio.PDB import PDBParser  # the field's other reader takes the annotated file as it is

    bio = PDBParser(QUIET=True).get_structure("m", str(d / "relaxed.pdb"))
    assert len(list(bio.get_residues())) == 38
    assert abs(next(bio.get_atoms()).get_bfactor() - conf["plddt"][0]) < 0.01
    npz = np.load(d / "distogram.npz")
    assert npz["probabilities"].shape == (38, 38, 37) and npz["bin_edges"].shape == (37,)


def test_no_relax_and_cif(tmp_path, tiny_weights):
    out = tmp_path / "o"
    r = run("--sequence", SEQ_1PSM[:20], "--name", "x", "--out", out, "--relax", "none", "--format", "cif",
            "--weights", tiny_weights, "--no-plots")
    assert r.returncode == 0, r.stderr
    assert (out / "x" / "unrelaxed.cif").exists() and not (out / "x" / "relaxed.pdb").exists()
    assert load_structure(out / "x" / "unrelaxed.cif").sequence == SEQ_1PSM[:20]
    # ModelCIF: entry named after the target, entity sequence, numeric label_seq_id, pLDDT as QA
    # metrics (global and per residue), the software and its version; gemmi and Biopython read it
    import gemmi
    from Bio.PDB import MMCIFParser
    from Bio.PDB.MMCIF2Dict import MMCIF2Dict

    cif = out / "x" / "unrelaxed.cif"
    block = gemmi.cif.read(str(cif)).sole_block()
    assert block.find_value("_entry.id") == "x" and block.find_value("_software.name") == "af2struct"
    assert gemmi.cif.as_string(block.find_value("_entity_poly.pdbx_seq_one_letter_code")).replace("\n", "") \
        == SEQ_1PSM[:20]
    assert list(block.find_values("_atom_site.label_seq_id"))[0] == "1"
    plddt = json.loads((out / "x" / "confidence.json").read_text())["plddt"]
    local = [float(v) for v in block.find_values("_ma_qa_metric_local.metric_value")]
    assert np.allclose(local, plddt, atol=0.01)
    assert float(block.find_value("_ma_qa_metric_global.metric_value")) == pytest.approx(np.mean(plddt), abs=0.01)
    st = gemmi.read_structure(str(cif))
    assert gemmi.one_letter_code([r.name for r in st[0][0]]) == SEQ_1PSM[:20]
    bio = MMCIFParser(QUIET=True).get_structure("x", str(cif))
    assert len(list(bio.get_residues())) == 20
    assert MMCIF2Dict(str(cif))["_ma_qa_metric_local.metric_value"][0] == f"{plddt[0]:.2f}"
    # PAE in the AlphaFold database's layout: one record, an L x L matrix (row: aligned residue)
    pae = json.loads((out / "x" / "pae.json").read_text())
    assert isinstance(pae, list) and len(pae) == 1 and pae[0]["max_predicted_aligned_error"] == 31.75
    matrix = np.array(pae[0]["predicted_aligned_error"])
    assert matrix.shape == (20, 20) and 0 < matrix.min() and matrix.max() <= 31.75
    assert json.loads((out / "x" / "confidence.json").read_text())["mean_pae"] == pytest.approx(matrix.mean(), abs=0.01)


def test_batch_resume_and_per_target_failures(tmp_path, tiny_weights):
    fasta = tmp_path / "in.fasta"
    fasta.write_text(f">good\n{SEQ_1PSM[:25]}\n>bad_letters\nACDE11\n>too_long\n{'A' * 60}\n>other\n{SEQ_1PSM[5:30]}\n")
    out = tmp_path / "o"
    args = (fasta, "--out", out, "--relax", "none", "--weights", tiny_weights, "--no-plots", "--max-length", "50")
    r = run(*args)
    assert r.returncode == 3
    s = summary(out)
    assert s["good"]["status"] == "ok" and s["other"]["status"] == "ok"
    assert "'1' at 5" in s["bad_letters"]["error"] and "exceed the maximum length 50" in s["too_long"]["error"]
    assert not (out / "bad_letters").exists()  # nothing partial left for a failed target
    # an interrupted run leaves a partial folder and no result: it is redone, finished ones are not
    mtime = (out / "good" / "result.json").stat().st_mtime_ns
    (out / "other" / "result.json").unlink()
    (out / ".other.af2struct-tmp-x.partial").mkdir()
    r = run(*args)
    assert (out / "good" / "result.json").stat().st_mtime_ns == mtime
    assert (out / "other" / "result.json").exists() and not (out / ".other.af2struct-tmp-x.partial").exists()
    assert list(summary(out)) == ["bad_letters", "good", "other", "too_long"]  # run order: shortest first


@pytest.mark.parametrize("fasta,msg", [
    ("", "empty FASTA"),
    (">a\nACDE\n>a\nACDF\n", "duplicate target names"),
    ("ACDE\n", "before the first"),
])
def test_bad_run_input(tmp_path, tiny_weights, fasta, msg):
    f = tmp_path / "x.fasta"
    f.write_text(fasta)
    r = run(f, "--out", tmp_path / "o", "--weights", tiny_weights)
    assert r.returncode == 1 and msg in r.stderr


def test_msa_mismatch_and_weights_errors(tmp_path, tiny_weights, data_dir):
    out = tmp_path / "o"
    r = run("--sequence", "ACDEFGHIKL", "--name", "m", "--out", out, "--msa", data_dir / "1psm_A.a3m",
            "--weights", tiny_weights, "--relax", "none")
    assert r.returncode == 3 and "does not match" in summary(out)["m"]["error"]
    r = run("--sequence", SEQ_1PSM, "--out", out, "--msa", data_dir / "1psm_A.a3m", "--weights", tiny_weights,
            "--relax", "none", "--no-plots")
    assert r.returncode == 0  # the real MSA of 1PSM is used
    r = run("--sequence", "ACDE", "--out", tmp_path / "o2", "--weights", tmp_path / "missing.pt")
    assert r.returncode == 1 and "weights not found" in r.stderr
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"\x00" * 100)
    r = run("--sequence", "ACDE", "--out", tmp_path / "o3", "--weights", bad)
    assert r.returncode == 1 and "not a readable" in r.stderr


def test_prediction_backbone_is_physical():
    """The shipped model's unrelaxed output already has ideal peptide bonds, 3.8 A Calpha steps
    and no overlapping Calphas (the trace cleanup before side chains), so relax has little to fix."""
    from af2struct.geometry.stereo import peptide_violations
    from af2struct.predict.pipeline import load_default_model, predict_structure

    model, _ = load_default_model()
    pred = predict_structure(model, "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQ")
    p = pred.protein
    assert peptide_violations(p).count == 0
    ca = p.atom_positions[:, 1]
    steps = np.linalg.norm(ca[1:] - ca[:-1], axis=-1)
    assert np.abs(steps - 3.8).max() < 0.1
    d = np.linalg.norm(ca[:, None] - ca[None], axis=-1)[np.triu_indices(len(ca), 3)]
    assert d.min() > 3.8


@pytest.mark.slow
def test_msa_search_with_msa_db(tmp_path, tiny_weights, data_dir):
    """--msa-db: jackhmmer (pyhmmer) finds 1PSM's real homologs; the A3M is kept and reused."""
    out = tmp_path / "o"
    args = ("--sequence", SEQ_1PSM, "--name", "psm", "--out", out, "--relax", "none", "--weights", tiny_weights,
            "--no-plots", "--msa-db", data_dir / "psm_homologs_db.fasta", "--msa-cpus", 1)
    r = run(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    row = summary(out)["psm"]
    assert int(row["msa_depth"]) > 5 and float(row["t_msa"]) >= 0
    a3m = out / "psm" / "msa.a3m"
    assert a3m.read_text().startswith(">psm\n" + SEQ_1PSM)
    cache, = (out / ".af2struct" / "msas").glob("psm.*.a3m")
    before = cache.stat().st_mtime_ns
    r = run(*args)  # a plain rerun skips the finished target
    assert r.returncode == 0 and cache.stat().st_mtime_ns == before
    r = run(*args, "--force")  # --force searches again
    assert r.returncode == 0 and (out / "psm" / "msa.a3m").read_text() == a3m.read_text()
    assert next((out / ".af2struct" / "msas").glob("psm.*.a3m")).stat().st_mtime_ns != before
    # the database replaced at the same path: searched again, the alignment follows it
    db = tmp_path / "db.fasta"
    records = (data_dir / "psm_homologs_db.fasta").read_text().split(">")[1:]
    db.write_text("".join(">" + r for r in records))
    db_args = [a if a != data_dir / "psm_homologs_db.fasta" else db for a in args]
    assert run(*db_args).returncode == 0
    depth = int(summary(out)["psm"]["msa_depth"])
    db.write_text("".join(">" + r for r in records[:3]))
    r = run(*db_args)
    assert r.returncode == 0 and "its input or options changed" in r.stderr
    assert int(summary(out)["psm"]["msa_depth"]) < depth
    bad = tmp_path / "bad.fasta"
    bad.write_text("not a fasta file\n")
    r = run("--sequence", SEQ_1PSM, "--name", "x", "--out", out, "--relax", "none", "--weights", tiny_weights,
            "--no-plots", "--msa-db", bad)
    assert r.returncode == 3 and "x" in summary(out) and "FASTA" in summary(out)["x"]["error"]


def test_fasta_headers_as_the_field_writes_them(tmp_path):
    """UniProt headers, headers with spaces, path-like headers: a safe folder name from the
    identifier (the whole header where identifiers repeat), the full header kept; only true
    duplicates are refused, naming them."""
    from af2struct.predict.targets import InputError, read_targets

    f = tmp_path / "x.fasta"
    f.write_text(">sp|P69905|HBA_HUMAN Hemoglobin subunit alpha OS=Homo sapiens\nMVLSPADKTN\n"
                 ">my protein 1\nACDE\n>my protein 2\nACDF\n>../evil\nACDG\n")
    t = read_targets(str(f))
    assert [x.name for x in t] == ["sp_P69905_HBA_HUMAN", "my_protein_1", "my_protein_2", "evil"]
    assert t[0].description.startswith("sp|P69905|HBA_HUMAN Hemoglobin")
    f.write_text(">a b\nACDE\n>a b\nACDF\n")
    with pytest.raises(InputError, match=r"duplicate target names: 'a_b' from headers \['a b', 'a b'\]"):
        read_targets(str(f))
    # distinct headers that make the same folder name are told apart, as promised
    f.write_text(">..\nACDE\n>.\nACDF\n>x|y\nACDG\n>x_y\nACDH\n>X_Y\nACDI\n")
    names = [x.name for x in read_targets(str(f))]
    assert len(set(n.lower() for n in names)) == 5 and names[2:] == ["x_y", "x_y_2", "X_Y_3"]


def test_one_two_and_unknown_residue_sequences(tmp_path, tiny_weights):
    """1- and 2-residue sequences and X (unknown) fold; U is modelled as C. Relax of a lone
    residue is refused in one clear line (Amber has no template for it); the unrelaxed model stays."""
    f = tmp_path / "x.fasta"
    f.write_text(">one\nM\n>two\nMK\n>unk\nACXDEUG\n")
    out = tmp_path / "o"
    r = run(f, "--out", out, "--weights", tiny_weights, "--relax", "none", "--no-plots")
    assert r.returncode == 0, r.stderr[-2000:]
    s = summary(out)
    assert all(s[n]["status"] == "ok" for n in ("one", "two", "unk"))
    unk = load_structure(out / "unk" / "unrelaxed.pdb")
    assert unk.sequence == "ACXDECG" and len(load_structure(out / "one" / "unrelaxed.pdb")) == 1
    # with the default relax, X and a lone residue cannot be relaxed: the unrelaxed model is still written
    f.write_text(">one\nM\n>unk\nACXDEUG\n")
    out2 = tmp_path / "o2"
    r = run(f, "--out", out2, "--weights", tiny_weights, "--no-plots")
    assert r.returncode == 3, r.stderr[-2000:]
    s = summary(out2)
    for n in ("one", "unk"):
        assert s[n]["status"] == "relax_failed" and "unrelaxed model written" in s[n]["error"]
        assert (out2 / n / "unrelaxed.pdb").exists() and not (out2 / n / "relaxed.pdb").exists()


def test_bad_or_missing_native_costs_only_the_scores(tmp_path, tiny_weights, data_dir):
    """An unreadable native keeps the finished prediction (status ok, the reason in
    native_error); a folder without the target's native says so instead of staying silent."""
    natives = tmp_path / "natives"
    natives.mkdir()
    (natives / "a.pdb").write_text("not a structure\n")
    f = tmp_path / "x.fasta"
    f.write_text(f">a\n{SEQ_1PSM[:20]}\n>b\n{SEQ_1PSM[5:25]}\n")
    out = tmp_path / "o"
    r = run(f, "--out", out, "--weights", tiny_weights, "--relax", "none", "--no-plots", "--native", natives)
    assert r.returncode == 0, r.stderr[-2000:]
    s = summary(out)
    assert s["a"]["status"] == "ok" and "no atoms" in s["a"]["native_error"] and (out / "a" / "unrelaxed.pdb").exists()
    assert s["b"]["status"] == "ok" and s["b"]["lddt_ca"] == ""
    assert "b: no native" in r.stderr and "not scored against the native" in r.stderr


@pytest.mark.slow
def test_resume_compares_input_options_and_files(tmp_path, tiny_weights):
    """A rerun redoes a target whose sequence, options or files changed, and says why; a target
    named like a run file cannot overwrite it; a second run into the folder is refused."""
    from af2struct.common.runner import RunFolder

    fasta = tmp_path / "in.fasta"
    fasta.write_text(f">a\n{SEQ_1PSM[:20]}\n>summary.csv\n{SEQ_1PSM[:22]}\n>c\n{SEQ_1PSM[:24]}\n")
    out = tmp_path / "o"
    args = ["--out", out, "--relax", "none", "--weights", tiny_weights, "--no-plots"]
    assert run(fasta, *args).returncode == 0
    assert (out / "summary.csv_item" / "unrelaxed.pdb").exists() and set(summary(out)) == {"a", "summary.csv", "c"}
    first = (out / "a" / "unrelaxed.pdb").read_text()
    fasta.write_text(f">a\n{SEQ_1PSM[1:20]}\n>summary.csv\n{SEQ_1PSM[:22]}\n>c\n{SEQ_1PSM[:24]}\n")
    (out / "c" / "distogram.npz").unlink()
    r = run(fasta, *args)
    assert "a: redone: its input or options changed" in r.stderr
    assert "c: redone: c/distogram.npz is missing or changed" in r.stderr
    assert "1 of 3 targets already finished" in r.stderr
    assert summary(out)["a"]["length"] == "19" and (out / "c" / "distogram.npz").exists()
    r = run(fasta, *args, "--seed", "7")
    assert "0 of 3" not in r.stderr and r.stderr.count("its input or options changed") == 3
    (out / ".af2struct" / "records" / "c.json").write_text("{")
    r = run(fasta, *args, "--seed", "7")
    assert "c: redone: its record" in r.stderr and "c.json cannot be read" in r.stderr
    r = run(fasta, *args, "--seed", "7", "--force")
    assert r.stderr.count("redone: --force") == 3
    with RunFolder(out):  # another run holds the folder
        r = run(fasta, *args)
    assert r.returncode == 1 and "is in use by another run (pid" in r.stderr
    fasta.write_text(f">a\n{SEQ_1PSM[:20]}\n")
    assert run(fasta, *args).returncode == 0
    assert (out / "a" / "unrelaxed.pdb").read_text() == first  # same input and options, same model


def _kill_when(cmd, ready, timeout: float = 120.0) -> None:
    """Start ``cmd``, ``kill -9`` it as soon as ``ready()`` is true (polled every 10 ms)."""
    import signal
    import time

    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not ready() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    killed_running = p.poll() is None
    if killed_running:
        os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert killed_running, "the run ended before the moment it was to be killed at"


@pytest.mark.slow
def test_kill_at_any_moment_then_rerun_gives_the_uninterrupted_outputs(tmp_path, tiny_weights):
    """kill -9 at two moments (a target recorded, the next one running; a later target's outputs
    half written), then a rerun: every output byte for byte what an uninterrupted run writes, no
    temporary folder left. (A run killed before it wrote anything: tests/common/test_runner.py,
    the lock dies with its process.)"""
    fasta = tmp_path / "in.fasta"
    fasta.write_text("".join(f">t{i}\n{SEQ_1PSM[:18 + 2 * i]}\n" for i in range(4)))
    args = ["--relax", "none", "--weights", tiny_weights, "--no-plots", "--quiet"]
    whole = tmp_path / "whole"
    assert run(fasta, "--out", whole, *args).returncode == 0
    moments = {
        "between": lambda out: (out / ".af2struct" / "records" / "t0.json").exists(),
        # t2's folder half written (a window of some 10-50 ms: if the poll misses it, t2 is just
        # recorded and t3 running, still mid-run)
        "inside": lambda out: any(out.glob(".t2.*.partial")) or (out / ".af2struct" / "records" / "t2.json").exists(),
    }
    for moment, ready in moments.items():
        out = tmp_path / moment
        _kill_when([sys.executable, str(ROOT / "scripts/predict.py"), str(fasta), "--out", str(out), *args],
                   lambda: ready(out))
        assert run(fasta, "--out", out, *args).returncode == 0
        for i in range(4):
            for f in ("unrelaxed.pdb", "confidence.json", "distogram.npz"):
                assert (out / f"t{i}" / f).read_bytes() == (whole / f"t{i}" / f).read_bytes(), (moment, i, f)
        assert not list(out.glob(".*.partial"))


@pytest.mark.slow
def test_two_runs_into_one_folder_then_a_rerun_leave_every_target_complete(tmp_path, tiny_weights):
    fasta = tmp_path / "in.fasta"
    fasta.write_text("".join(f">t{i}\n{SEQ_1PSM[:18 + 2 * i]}\n" for i in range(3)))
    out = tmp_path / "o"
    cmd = [sys.executable, str(ROOT / "scripts/predict.py"), str(fasta), "--out", str(out), "--relax", "none",
           "--weights", str(tiny_weights), "--no-plots", "--quiet"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    # the second either found the folder in use (if the first still held it) or found everything finished
    assert 0 in [rc for rc, _ in results], results
    assert all(rc == 0 or (rc == 1 and "is in use by another run" in err) for rc, err in results), results
    r = run(fasta, "--out", out, "--relax", "none", "--weights", tiny_weights, "--no-plots")
    assert r.returncode == 0 and "3 of 3 targets already finished" in r.stderr
    # nothing left to do starts nothing: not even a Ray cluster that is not there
    r = run(fasta, "--out", out, "--relax", "none", "--weights", tiny_weights, "--no-plots",
            "--ray-address", "127.0.0.1:1")
    assert r.returncode == 0 and "3 of 3 targets already finished" in r.stderr, r.stderr
    for i in range(3):
        assert load_structure(out / f"t{i}" / "unrelaxed.pdb").sequence == SEQ_1PSM[:18 + 2 * i]


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (needs permission to mount; skipped with the reason where there is none)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip() or 'mount failed'})")
    yield mnt
    subprocess.run(["umount", str(mnt)], capture_output=True)


def test_a_rerun_on_a_full_disk_keeps_the_finished_result(small_disk, tiny_weights):
    from af2struct.cli.predict import main as predict_main

    out = small_disk / "o"
    args = ["--sequence", SEQ_1PSM, "--name", "psm", "--out", str(out), "--weights", str(tiny_weights),
            "--relax", "none", "--no-plots", "--quiet"]
    assert predict_main(args) == 0
    good = {p.name: p.read_bytes() for p in (out / "psm").iterdir()}
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    (small_disk / "filler").write_bytes(b"\0" * max(0, free - 24 * 1024))  # leave 24 KiB: the new outputs do not fit
    assert predict_main(args + ["--force"]) == 3
    row = summary(out)["psm"]
    assert row["status"] == "error" and "No space left" in row["error"] and "psm.previous" in row["error"]
    assert {p.name: p.read_bytes() for p in (out / "psm.previous").iterdir()} == good  # nothing lost


def test_weights_label_follows_a_file_replaced_at_the_same_path(tmp_path):
    """The weights named in every output (and in the resume fingerprint) are hashed again when the
    file at the same path changes, also within one process (the library, a notebook)."""
    from af2struct.predict.options import weights_label

    w = tmp_path / "w.pt"
    w.write_bytes(b"first")
    first = weights_label(str(w))
    w.write_bytes(b"second checkpoint")
    assert weights_label(str(w)) != first and weights_label(str(w)).startswith("w.pt (sha256 ")


def test_shipped_pae_is_smallest_on_its_diagonal(data_dir):
    """Residue i aligned on its own frame has no error (its Calpha is the frame's origin), and the
    shipped PAE head says so: the diagonal of T1082's PAE is below its neighbours' (|i-j| = 1) and
    below 1.5 A, while the map still follows the written model's true aligned error."""
    import torch

    from af2struct.model.frames import aligned_error
    from af2struct.predict.pipeline import load_default_model, predict_structure

    native = load_structure(data_dir / "T1082.pdb")
    model, _ = load_default_model()
    pred = predict_structure(model, native.sequence)
    diag = np.diag(pred.pae)
    neighbours = np.concatenate([np.diag(pred.pae, 1), np.diag(pred.pae, -1)])
    assert diag.mean() < 1.5 and diag.mean() < 0.5 * neighbours.mean(), (diag.mean(), neighbours.mean())
    assert (diag < np.median(pred.pae)).all()
    bb = [0, 1, 2]
    true = aligned_error(torch.tensor(pred.protein.atom_positions[None][:, :, bb]),
                         torch.tensor(native.atom_positions[None][:, :, bb]))[0].numpy()
    assert np.abs(np.diag(true)).max() < 1e-3 and np.corrcoef(pred.pae.ravel(), true.ravel())[0, 1] > 0.4


def test_a_users_summary_is_kept_and_every_target_folder_has_a_row(tmp_path, tiny_weights):
    """A summary.csv af2struct did not write is kept as summary.csv.orig (as a user's relaxed.pdb
    is); after runs of two FASTA files into one folder, summary.csv lists both runs' targets."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "summary.csv").write_text("my own notes\n")
    common = ["--out", out, "--relax", "none", "--weights", tiny_weights, "--no-plots"]
    assert run("--sequence", SEQ_1PSM[:20], "--name", "first", *common).returncode == 0
    assert (out / "summary.csv.orig").read_text() == "my own notes\n"
    assert run("--sequence", SEQ_1PSM[:24], "--name", "second", *common).returncode == 0
    rows = summary(out)
    assert set(rows) == {"first", "second"} and rows["first"]["earlier_run"] == "1" and rows["second"]["earlier_run"] == ""
    assert rows["first"]["status"] == "ok" and not (out / "summary.csv.orig-2").exists()  # our own report: no copy
