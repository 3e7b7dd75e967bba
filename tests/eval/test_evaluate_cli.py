import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from af2struct import load_structure, save_structure

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_batch_with_bad_inputs(tmp_path, data_dir):
    natives = tmp_path / "natives"
    natives.mkdir()
    preds = tmp_path / "preds"
    (preds / "T1031").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for t in ("T1082", "T1031"):
        nat = load_structure(data_dir / f"{t}.pdb")
        save_structure(nat, natives / f"{t}.pdb")
        for k, s in enumerate((0.3, 1.0), 1):
            m = nat.replace(atom_positions=nat.atom_positions + rng.normal(0, s, nat.atom_positions.shape).astype(np.float32))
            path = preds / "T1031" / f"model_{k}.pdb" if t == "T1031" else preds / f"{t}_model_{k}.pdb"
            save_structure(m, path)
    (preds / "T1082_model_3.pdb").write_text("")  # empty
    nan_model = (preds / "T1082_model_1.pdb").read_text().replace("  1.00", "  1.00", 1)
    lines = nan_model.splitlines()
    i = next(k for k, l in enumerate(lines) if l.startswith("ATOM"))
    lines[i] = lines[i][:30] + "     nan" + lines[i][38:]
    (preds / "T1082_model_4.pdb").write_text("\n".join(lines) + "\n")
    (preds / "T1082_model_5.pdb").write_text(
        "HETATM    1  O   HOH A   1      10.000  10.000  10.000  1.00 30.00           O\nEND\n")
    wrong = load_structure(data_dir / "T1031.pdb")
    save_structure(wrong.replace(residue_index=wrong.residue_index - wrong.residue_index[0] + 23),
                   preds / "T1082_model_6.pdb")  # another protein at T1082's numbers
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(ROOT / "scripts/evaluate.py"), "--pred", str(preds), "--native",
                        str(natives), "--out", str(out), "--jobs", "2", "--quiet"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr
    rows = list(csv.DictReader(open(out / "scores.csv")))
    status = {(x["target"], x["model"]): x["status"] for x in rows}
    assert status[("T1082", "T1082_model_1")] == "ok" and status[("T1031", "model_2")] == "ok"
    for bad in ("T1082_model_3", "T1082_model_4", "T1082_model_5", "T1082_model_6"):
        assert status[("T1082", bad)] == "error", bad
    errors = {x["model"]: x["error"] for x in rows if x["status"] == "error"}
    assert "empty file" in errors["T1082_model_3"]
    assert "non-finite" in errors["T1082_model_4"]
    assert "no protein residues" in errors["T1082_model_5"]
    assert "differ at the same number" in errors["T1082_model_6"]
    data = json.loads((out / "scores.json").read_text())
    assert data["summary"]["n_scored"] == 4 and len(data["summary"]["failures"]) == 4
    md = (out / "summary.md").read_text()
    assert "first model" in md and "Failures" in md and "T1082_model_3" in md
    assert (out / "distributions.png").stat().st_size > 0
    assert (out / "per_residue_lddt" / "T1031.png").exists()
    first = float(next(x for x in rows if x["model"] == "T1082_model_1")["gdt_ts"])
    assert first > 90


def test_sidechainnet_native(tmp_path, data_dir):
    from af2struct.data.make_dataset import make_dataset

    pkl = tmp_path / "n.pkl"
    make_dataset([str(data_dir / "T1082.pdb")], pkl, split="test", progress=False)
    nat = load_structure(data_dir / "T1082.pdb")
    # SidechainNet entries are numbered 1..L; the model is written with the same numbering
    model = nat.replace(residue_index=np.arange(1, len(nat) + 1, dtype=np.int32))
    save_structure(model, tmp_path / "T1082.pdb")
    cmd = [sys.executable, str(ROOT / "scripts/evaluate.py"), "--pred", str(tmp_path / "T1082.pdb"),
           "--native", str(pkl), "--native-split", "test", "--out", str(tmp_path / "o"), "--no-plots", "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "--trust-pickle" in r.stderr  # a pickle is read only when trusted
    assert not (tmp_path / "o" / "scores.csv").exists()
    r = subprocess.run(cmd + ["--trust-pickle"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    row = next(csv.DictReader(open(tmp_path / "o" / "scores.csv")))
    assert float(row["gdt_ts"]) == 100.0 and float(row["lddt"]) == 1.0


def test_renumbered_model_and_nan_in_names(tmp_path, data_dir):
    """A model renumbered by +1000 shares no residue number with its native: an error that says
    to align, not a 0 scored as ok; with --align it scores as the native. A target named NaNase
    keeps its name in scores.json (NaN scores are null, names untouched)."""
    natives, preds = tmp_path / "natives", tmp_path / "preds"
    natives.mkdir()
    preds.mkdir()
    nat = load_structure(data_dir / "T1082.pdb")
    save_structure(nat, natives / "NaNase.pdb")
    save_structure(nat.replace(residue_index=nat.residue_index + 1000), preds / "NaNase_model_1.pdb")

    def evaluate(*extra):
        out = tmp_path / ("out" + "".join(extra))
        r = subprocess.run([sys.executable, str(ROOT / "scripts/evaluate.py"), "--pred", str(preds), "--native",
                            str(natives), "--out", str(out), "--quiet", "--no-plots", *extra],
                           capture_output=True, text=True, timeout=600)
        assert "Traceback" not in r.stderr, r.stderr[-2000:]
        return json.loads((out / "scores.json").read_text())

    scores = evaluate("--by-number")
    row = scores["models"][0]
    assert row["status"] == "error" and "share no residue number" in row["error"] and "--align" in row["error"]
    assert row["target"] == "NaNase" and "NaNase" in json.dumps(scores) and "nullase" not in json.dumps(scores)
    aligned = evaluate("--align")["models"][0]
    assert aligned["status"] == "ok" and aligned["lddt_ca"] == 1.0 and aligned["target"] == "NaNase"
    # by default, predict's rule: the numbering does not correspond, so the sequences are aligned
    auto = evaluate()["models"][0]
    assert {k: auto[k] for k in ("status", "lddt_ca", "tm_score")} == {k: aligned[k] for k in ("status", "lddt_ca",
                                                                                               "tm_score")}


def test_csv_reports_never_hold_a_formula(tmp_path, data_dir):
    from af2struct.common.files import csv_cell

    assert csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and csv_cell("@SUM(1+1)") == "'@SUM(1+1)"
    assert csv_cell("+1 cmd") == "'+1 cmd" and csv_cell("-0.25") == "-0.25" and csv_cell(3.5) == 3.5
    natives, preds = tmp_path / "n", tmp_path / "p"
    natives.mkdir()
    preds.mkdir()
    (natives / "=HYPERLINK(1).pdb").write_bytes((data_dir / "T1082.pdb").read_bytes())
    (preds / "=HYPERLINK(1).pdb").write_bytes((data_dir / "T1082.pdb").read_bytes())
    r = subprocess.run([sys.executable, str(ROOT / "scripts/evaluate.py"), "--pred", str(preds), "--native",
                        str(natives), "--out", str(tmp_path / "o"), "--no-plots", "--quiet"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "o" / "scores.csv").read_text()
    assert "'=HYPERLINK(1)" in text and ",=HYPERLINK" not in text and not text.splitlines()[1].startswith("=")


def test_a_reused_folder_keeps_only_the_plots_of_the_targets_it_scores(tmp_path, data_dir):
    from af2struct.eval.evaluate import evaluate

    natives, preds = tmp_path / "n", tmp_path / "p"
    for d in (natives, preds):
        d.mkdir()
        for n in ("T1082", "T1031"):
            (d / f"{n}.pdb").write_bytes((data_dir / f"{n}.pdb").read_bytes())
    evaluate(preds, natives, tmp_path / "o", progress=False)
    assert sorted(p.name for p in (tmp_path / "o" / "per_residue_lddt").iterdir()) == ["T1031.png", "T1082.png"]
    (preds / "T1031.pdb").unlink()
    evaluate(preds, natives, tmp_path / "o", progress=False)
    assert sorted(p.name for p in (tmp_path / "o" / "per_residue_lddt").iterdir()) == ["T1082.png"]


def test_a_rerun_scores_only_what_changed_and_a_stopped_run_still_reports(tmp_path, data_dir, monkeypatch):
    """evaluate resumes as predict and relax do (same model files, native and options: not
    scored again; a changed model: scored again, and the log says why), and its reports are
    written however the run stops, the models it did not reach listed as not run."""
    import pytest

    import af2struct.eval.evaluate as ev
    from tests.cli_run import cli

    nat = load_structure(data_dir / "T1082.pdb")
    preds = tmp_path / "preds"
    preds.mkdir()
    rng = np.random.default_rng(0)
    for k in (1, 2):
        noisy = nat.atom_positions + rng.normal(0, 0.5 * k, nat.atom_positions.shape).astype(np.float32)
        save_structure(nat.replace(atom_positions=noisy), preds / f"T1082_model_{k}.pdb")
    args = ["--pred", preds, "--native", data_dir / "T1082.pdb", "--out", tmp_path / "o", "--no-plots"]
    assert cli("evaluate", *args).returncode == 0
    first = (tmp_path / "o" / "scores.csv").read_text()
    r = cli("evaluate", *args)
    assert r.returncode == 0 and "2 of 2 models already finished" in r.stderr
    assert (tmp_path / "o" / "scores.csv").read_text() == first
    save_structure(nat, preds / "T1082_model_2.pdb")
    r = cli("evaluate", *args)
    assert "T1082__T1082_model_2: redone: its input or options changed" in r.stderr
    rows = {row["model"]: row for row in csv.DictReader(open(tmp_path / "o" / "scores.csv"))}
    assert float(rows["T1082_model_2"]["gdt_ts"]) == 100.0 and rows["T1082_model_1"]["gdt_ts"] in first

    real = ev.run_items

    def stopped(fn, jobs_args, jobs=1):  # the first model scored, then Ctrl-C
        for item in real(fn, jobs_args[:1], jobs):
            yield item
        raise KeyboardInterrupt

    monkeypatch.setattr(ev, "run_items", stopped)
    with pytest.raises(KeyboardInterrupt):
        ev.evaluate(preds, data_dir / "T1082.pdb", tmp_path / "o", plots=False, progress=False, force=True)
    status = {row["model"]: row["status"] for row in csv.DictReader(open(tmp_path / "o" / "scores.csv"))}
    assert status == {"T1082_model_1": "ok", "T1082_model_2": "not run"}


def test_killed_mid_run_then_rerun_gives_the_uninterrupted_reports(tmp_path, data_dir):
    """kill -9 (no ``finally`` runs) after the second of three models: the rerun keeps the two
    recorded models, scores the third, and writes the reports an uninterrupted run writes."""
    nat = load_structure(data_dir / "T1082.pdb")
    preds = tmp_path / "preds"
    preds.mkdir()
    rng = np.random.default_rng(1)
    for k in (1, 2, 3):
        noisy = nat.atom_positions + rng.normal(0, 0.4 * k, nat.atom_positions.shape).astype(np.float32)
        save_structure(nat.replace(atom_positions=noisy), preds / f"T1082_model_{k}.pdb")
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    code = f"""
import os, signal
import af2struct.eval.evaluate as ev
real, seen = ev.score_job, []
def score_then_die(job, align=False):
    if len(seen) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    seen.append(job)
    return real(job, align)
ev.score_job = score_then_die
ev.evaluate({str(preds)!r}, {str(data_dir / "T1082.pdb")!r}, {str(killed)!r}, plots=False, progress=False)
"""
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == -9, p.stderr
    assert len(list((killed / ".af2struct" / "records").glob("*.json"))) == 2
    from af2struct.eval.evaluate import evaluate
    from tests.cli_run import cli

    evaluate(preds, data_dir / "T1082.pdb", whole, plots=False, progress=False)
    r = cli("evaluate", "--pred", preds, "--native", data_dir / "T1082.pdb", "--out", killed, "--no-plots")
    assert r.returncode == 0 and "2 of 3 models already finished" in r.stderr
    for f in ("scores.csv", "scores.json", "summary.md"):
        assert (killed / f).read_text() == (whole / f).read_text(), f


def test_models_whose_names_differ_only_in_odd_characters_keep_their_own_scores(tmp_path, data_dir):
    """``m 1.pdb`` beside ``m_1.pdb``, ``m.pdb`` beside ``m.cif``: each model its own record and row
    (no row showing another model's scores), also on a rerun."""
    from af2struct.eval.evaluate import evaluate

    nat = load_structure(data_dir / "T1082.pdb")
    models = tmp_path / "preds" / "T1082"
    models.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for name, noise in (("m 1.pdb", 2.0), ("m_1.pdb", 0.0), ("m.pdb", 1.0), ("m.cif", 3.0)):
        pos = nat.atom_positions + rng.normal(0, noise, nat.atom_positions.shape).astype(np.float32) * (noise > 0)
        save_structure(nat.replace(atom_positions=pos), models / name)
    for _ in range(2):  # the rerun reads the records back
        rows = evaluate(tmp_path / "preds", data_dir / "T1082.pdb", tmp_path / "o", plots=False, progress=False)
        by_path = {Path(r["pred_path"]).name: r for r in json.loads((tmp_path / "o" / "scores.json").read_text())["models"]}
        assert rows["n_models"] == 4 and len(by_path) == 4
        assert by_path["m_1.pdb"]["gdt_ts"] == 100.0 and by_path["m 1.pdb"]["gdt_ts"] < 100.0
        assert by_path["m.pdb"]["gdt_ts"] > by_path["m.cif"]["gdt_ts"]


def test_a_prediction_folder_in_two_formats_scores_each_model_once_by_predicts_rule(tmp_path, data_dir):
    """predict --format cif writes relaxed.pdb and relaxed.cif (the same atoms): one model. Its
    models are numbered 1..L, CASP's natives by the target (T1082: 244-315 style numbering):
    evaluate matches them as predict --native does, without --align."""
    from af2struct.eval.evaluate import evaluate

    nat = load_structure(data_dir / "T1082.pdb")
    folder = tmp_path / "preds" / "T1082"
    model = nat.replace(residue_index=np.arange(1, len(nat) + 1, dtype=nat.residue_index.dtype),
                        atom_positions=nat.atom_positions + np.float32(0.3))
    save_structure(model, folder / "relaxed.pdb")
    save_structure(model, folder / "relaxed.cif")
    save_structure(model.replace(atom_positions=model.atom_positions * np.float32(1.05)), folder / "unrelaxed.pdb")
    assert nat.residue_index[0] != 1  # the native's own numbering
    s = evaluate(tmp_path / "preds", data_dir / "T1082.pdb", tmp_path / "o", plots=False, progress=False)
    rows = json.loads((tmp_path / "o" / "scores.json").read_text())["models"]
    assert s["n_models"] == 2 and sorted(Path(r["pred_path"]).name for r in rows) == ["relaxed.pdb", "unrelaxed.pdb"]
    relaxed = next(r for r in rows if r["model"] == "relaxed")
    assert relaxed["status"] == "ok" and relaxed["lddt_ca"] == 1.0
