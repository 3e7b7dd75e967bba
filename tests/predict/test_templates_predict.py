"""predict --templates: search, the templates used in templates.json, REMARKs and ModelCIF, resume."""

import csv
import json
import shutil

import numpy as np
import pytest

from af2struct.cli.predict import main as predict_main
from af2struct.data.backbone_db import BackboneDB
from af2struct.model.checkpoint import save_checkpoint
from af2struct.model.config import preset
from af2struct.model.network import Af2StructModel


@pytest.mark.slow
def test_predict_with_templates(tmp_path, template_weights, data_dir):
    db_path = tmp_path / "library.npz"
    shutil.copyfile(data_dir / "templates_sample.npz", db_path)
    seq = BackboneDB(db_path).sequence(0)  # 1A32_A, in the library itself; its homologue 4IYL_A
    out = tmp_path / "out"
    args = ["--sequence", seq, "--name", "q", "--out", str(out), "--weights", str(template_weights),
            "--templates", str(db_path), "--relax", "none", "--format", "cif", "--no-plots", "--quiet"]
    assert predict_main(args) == 0
    report = json.loads((out / "q" / "templates.json").read_text())
    assert report["used"] == ["4IYL_A"]
    by_name = {h["name"]: h for h in report["hits"]}
    assert by_name["1A32_A"]["used"] is False and by_name["1A32_A"]["identity"] == 1.0  # itself: never used
    assert "the target itself" in by_name["1A32_A"]["reason"]  # every hit not used says why
    assert 0.4 < by_name["4IYL_A"]["identity"] < 0.6 and by_name["4IYL_A"]["coverage"] > 0.9
    assert by_name["4IYL_A"]["reason"] is None and by_name["4IYL_A"]["pdb_id"] == "4IYL"
    assert report["source"] == f"database {db_path}"
    remarks = (out / "q" / "unrelaxed.pdb").read_text()
    assert "templates: PDB 4IYL chain A (E " in remarks
    row = next(csv.DictReader(open(out / "summary.csv")))
    assert row["n_templates"] == "1" and float(row["t_templates"]) > 0
    import modelcif.reader

    with open(out / "q" / "unrelaxed.cif") as fh:
        system, = modelcif.reader.read(fh)
    assert [t.references[0].accession for t in system.templates] == ["4IYL"]
    assert len(system.alignments) == 1
    assert json.loads((out / "q" / "result.json").read_text())["n_templates"] == 1
    first = (out / "q" / "unrelaxed.pdb").read_bytes()
    # --max-templates 0: no template is used, so a different model (and a redo, not a skip)
    assert predict_main(args + ["--max-templates", "0"]) == 0
    assert "templates: none used" in (out / "q" / "unrelaxed.pdb").read_text()
    assert (out / "q" / "unrelaxed.pdb").read_bytes() != first
    # the database changes at the same path: the target is redone (the fingerprint covers it)
    assert predict_main(args) == 0
    mtime = (out / "q" / "result.json").stat().st_mtime_ns
    assert predict_main(args) == 0 and (out / "q" / "result.json").stat().st_mtime_ns == mtime  # skipped
    d = dict(np.load(db_path))
    d["chain_center"] = d["chain_center"] + 1.0
    np.savez_compressed(db_path, **d)
    assert predict_main(args) == 0 and (out / "q" / "result.json").stat().st_mtime_ns != mtime


def test_templates_need_weights_with_template_modules_and_valid_options(tmp_path, data_dir, caplog):
    tiny = Af2StructModel(preset("tiny"))
    w = save_checkpoint(tmp_path / "plain.pt", tiny, tiny.config)
    seq = BackboneDB(data_dir / "templates_sample.npz").sequence(0)
    base = ["--sequence", seq, "--name", "q", "--out", str(tmp_path / "o"), "--relax", "none", "--no-plots",
            "--quiet", "--templates", str(data_dir / "templates_sample.npz")]
    assert predict_main(base + ["--weights", str(w)]) == 3
    row = (tmp_path / "o" / "summary.csv").read_text()
    assert "no template modules" in row
    assert predict_main(base + ["--max-template-date", "2018/01/01"]) == 1
    assert predict_main(base + ["--max-template-date", "2021-02-30"]) == 1  # not a date
    caplog.clear()
    # the pdb2018 library records no release dates: a cut-off cannot be applied, and the run says so
    assert predict_main(base + ["--weights", str(w), "--max-template-date", "2001-01-01"]) == 1
    assert "records no release dates" in caplog.text
    caplog.clear()
    # template options without --templates would do nothing: refused
    assert predict_main(base[:-2] + ["--max-template-date", "2001-01-01"]) == 1
    assert "without --templates has no effect" in caplog.text
    assert predict_main([*base[:-1], str(tmp_path)]) == 1  # a folder
    assert "is a folder, not a template database" in caplog.text
    with pytest.raises(SystemExit) as exc:  # out of range: refused when parsed
        predict_main(base + ["--template-max-identity", "0"])
    assert exc.value.code == 2
    assert predict_main([*base[:-1], str(tmp_path / "missing.npz")]) == 1


def test_a_template_with_a_missing_loop_is_one_template(tmp_path, data_dir):
    """3U8V's chains miss a 5-residue loop (and a tail): built as stretches, the homologue became
    four same-named pieces and the model TM 0.33; whole, one template per chain and TM 0.73
    (a 75 %-identity homologue of 3U8V folded with the shipped weights, no relax)."""
    import gemmi

    from af2struct import load_structure
    from af2struct.data.template_db import build_template_db
    from af2struct.eval.metrics import score_model

    entry = data_dir / "pdb_mirror/pub/pdb/data/structures/divided/mmCIF/u8/3u8v.cif.gz"
    build_template_db([str(entry)], tmp_path / "db.npz", progress=False)
    st = gemmi.read_structure(str(entry))
    st.setup_entities()
    seq = gemmi.one_letter_code(st.entities[0].full_sequence)
    homologue = "".join(("A" if c != "A" else "G") if k % 4 == 2 else c for k, c in enumerate(seq))
    out = tmp_path / "out"
    assert predict_main(["--sequence", homologue, "--name", "q", "--out", str(out), "--templates",
                         str(tmp_path / "db.npz"), "--template-search", "phmmer", "--relax", "none", "--no-plots",
                         "--quiet"]) == 0
    report = json.loads((out / "q" / "templates.json").read_text())
    assert report["used"] == ["3U8V_A", "3U8V_B"]
    assert all(h["template_range"] == [1, 93] for h in report["hits"])
    score = score_model(load_structure(out / "q" / "unrelaxed.pdb"), load_structure(entry, chain="A"), align=True)
    assert score.tm_score > 0.6


@pytest.mark.slow
def test_a_redo_from_the_search_cache_writes_the_same_files(tmp_path, template_weights, data_dir):
    """A run resumed after Ctrl-C reads its template search back from the cache: the files must be
    the fresh run's to the byte (the cache once rounded identities: 'identity 0.36' fresh, '0.35'
    from the cache, in the REMARKs)."""
    seq = BackboneDB(data_dir / "templates_sample.npz").sequence(0)
    out = tmp_path / "out"
    args = ["--sequence", seq, "--name", "q", "--out", str(out), "--weights", str(template_weights), "--templates",
            str(data_dir / "templates_sample.npz"), "--relax", "none", "--format", "cif", "--no-plots", "--quiet"]
    assert predict_main(args) == 0
    fresh = {f.name: f.read_bytes() for f in (out / "q").iterdir() if f.name not in ("timings.json", "result.json")}
    assert list((out / ".af2struct" / "templates").glob("q.*.json"))  # the search is cached
    (out / ".af2struct" / "records" / "q.json").unlink()  # as if stopped before the target was written
    shutil.rmtree(out / "q")
    assert predict_main(args) == 0
    again = {f.name: f.read_bytes() for f in (out / "q").iterdir() if f.name not in ("timings.json", "result.json")}
    assert again == fresh


def test_a_long_target_is_never_silent_and_a_log_file_gets_lines_not_bars(tmp_path, template_weights, data_dir):
    """Without --quiet: the database's loading, each stage of the target, its seconds and a line
    per finished target with the time left; stderr is not a terminal here, so no progress bar
    (it printed again at every update and at its close)."""
    from af2struct.predict.templates import _template_db
    from tests.cli_run import cli

    _template_db.cache_clear()  # read in this run, as in a new process
    seq = BackboneDB(data_dir / "templates_sample.npz").sequence(0)
    r = cli("predict", "--sequence", seq, "--name", "q", "--out", tmp_path / "o", "--weights", template_weights,
            "--templates", data_dir / "templates_sample.npz", "--relax", "none", "--no-plots", quiet=False)
    assert r.returncode == 0, r.stderr
    err = r.stderr
    for line in ("reading the template database", f"q ({len(seq)} residues): templates",
                 f"q ({len(seq)} residues): model", "predict 1/1 targets: q ok"):
        assert line in err, line
    assert "%|" not in err and "target/s" not in err


@pytest.mark.slow
def test_a_corrupt_search_cache_is_discarded_and_named(tmp_path, template_weights, data_dir, caplog):
    seq = BackboneDB(data_dir / "templates_sample.npz").sequence(0)
    out = tmp_path / "o"
    args = ["--sequence", seq, "--name", "q", "--out", str(out), "--weights", str(template_weights), "--templates",
            str(data_dir / "templates_sample.npz"), "--relax", "none", "--no-plots", "--quiet"]
    assert predict_main(args) == 0
    first = (out / "q" / "unrelaxed.pdb").read_bytes()
    cache, = (out / ".af2struct" / "templates").glob("q.*.json")
    saved = json.loads(cache.read_text())
    saved["hits"][0]["index"] = 1000000000  # points outside the database
    cache.write_text(json.dumps(saved))
    (out / ".af2struct" / "records" / "q.json").unlink()
    shutil.rmtree(out / "q")
    assert predict_main(args) == 0  # searched again, not an IndexError on every rerun
    assert "unusable template search cache" in caplog.text and cache.name in caplog.text
    assert (out / "q" / "unrelaxed.pdb").read_bytes() == first


def test_a_targets_templates_travel_between_processes_without_their_database(data_dir):
    """Ray's search task returns a target's templates to the driver: they must pickle (a database
    holds a pyhmmer block, which cannot) and report the same as before they travelled."""
    import pickle

    from af2struct.predict.options import TemplateOptions
    from af2struct.predict.templates import target_templates, template_records

    db_path = data_dir / "templates_sample.npz"
    seq = BackboneDB(db_path).sequence(0)  # 1A32_A: its homologue 4IYL_A is used, itself is not
    result = target_templates("q", seq, None, TemplateOptions(source=str(db_path)), None)
    assert [c.hit.name for c in result.used] == ["4IYL_A"]
    travelled = pickle.loads(pickle.dumps(result.detached()))
    assert all(c.db is None for c in travelled.candidates)
    assert travelled.report(len(seq)) == result.report(len(seq))
    assert template_records(travelled.used) == template_records(result.used)
    np.testing.assert_array_equal(travelled.features["template_backbone"], result.features["template_backbone"])
