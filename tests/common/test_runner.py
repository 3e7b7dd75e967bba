"""The batch runner: run lock, records with fingerprints, reserved names, isolated workers."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from af2struct.common.runner import RunFolder, RunLockedError, closing_line, failed_count, fingerprint, plan
from af2struct.common.workers import WorkerDied, run_items


def _square_or_die(x):
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer would
    if x == 5:
        raise ValueError("bad item")
    return x * x


def test_a_dead_worker_costs_only_its_item():
    results = dict(run_items(_square_or_die, [(i,) for i in range(8)], jobs=2))
    assert sorted(results) == list(range(8))
    assert isinstance(results[3], WorkerDied) and "signal 9" in str(results[3])
    assert isinstance(results[5], RuntimeError) and "ValueError: bad item" in str(results[5])
    assert {i: results[i] for i in (0, 1, 2, 4, 6, 7)} == {i: i * i for i in (0, 1, 2, 4, 6, 7)}


@pytest.mark.slow
def test_workers_die_with_their_parent(tmp_path):
    pids = tmp_path / "pids"
    script = textwrap.dedent(f"""
        import os, time
        from af2struct.common.workers import run_items
        def slow(i):
            with open({str(pids)!r}, "a") as fh:
                fh.write(f"{{os.getpid()}}\\n")
            time.sleep(60)
        if __name__ == "__main__":
            list(run_items(slow, [(0,), (1,)], jobs=2))
    """)
    (tmp_path / "parent.py").write_text(script)
    parent = subprocess.Popen([sys.executable, str(tmp_path / "parent.py")], cwd=tmp_path)
    deadline = time.time() + 60
    while time.time() < deadline and (not pids.exists() or len(pids.read_text().split()) < 2):
        time.sleep(0.2)
    workers = [int(p) for p in pids.read_text().split()]
    parent.kill()
    parent.wait()
    time.sleep(1.0)
    alive = [p for p in workers if os.path.exists(f"/proc/{p}") and "Z" not in open(f"/proc/{p}/stat").read().split()[2]]
    assert len(workers) == 2 and not alive


def test_one_run_per_folder_and_the_lock_dies_with_its_process(tmp_path):
    with RunFolder(tmp_path / "out"):
        with pytest.raises(RunLockedError, match=f"in use by another run \\(pid {os.getpid()}"):
            RunFolder(tmp_path / "out").__enter__()
    with RunFolder(tmp_path / "out"):  # released on exit
        pass
    # a process killed while holding the lock does not block the next run
    code = f"from af2struct.common.runner import RunFolder; import os; RunFolder({str(tmp_path / 'out')!r}).__enter__(); os.kill(os.getpid(), 9)"
    subprocess.run([sys.executable, "-c", code])
    with RunFolder(tmp_path / "out"):
        pass


def test_records_fingerprints_and_reserved_names(tmp_path):
    with RunFolder(tmp_path, reserved=["summary.csv"]) as f:
        assert f.item_name("summary.csv") == "summary.csv_item" and f.item_name("SUMMARY.CSV") == "SUMMARY.CSV_item"
        assert f.item_name(".af2struct") != ".af2struct" and f.item_name("T1024") == "T1024"
        out = f.item_path("a", ".pdb")
        out.write_text("ATOM")
        f.commit("a", "fp1", {"name": "a", "status": "ok"}, [out])
        f.commit("b", "fp1", {"name": "b", "status": "error", "error": "x"})
        leftover = tmp_path / ".a.af2struct-tmp-123abc.partial"
        leftover.mkdir()
    with RunFolder(tmp_path) as f:
        assert not leftover.exists()  # a killed run's temporary folder is cleared under the lock
        assert f.finished("a", "fp1")[0]["files"] == {"a.pdb": 4}
        assert f.finished("a", "fp2") == (None, "its input or options changed")
        assert f.finished("a", "fp1", force=True) == (None, "--force")
        assert f.finished("b", "fp1") == (None, "it failed before")
        assert f.finished("c", "fp1") == (None, "")
        out.write_text("ATOM  changed")
        assert f.finished("a", "fp1") == (None, "a.pdb is missing or changed")
        (f.records / "a.json").write_text("{not json")
        rec, why = f.finished("a", "fp1")
        assert rec is None and str(f.records / "a.json") in why and "cannot be read" in why
        done, todo = plan(f, [("a", "fp1"), ("b", "fp1"), ("c", "fp1")])
        assert done == {} and todo == ["a", "b", "c"]


def test_fingerprint_is_canonical():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    assert json.loads(json.dumps(fingerprint(None)))


def test_a_run_removes_only_what_it_can_prove_is_its_own(tmp_path):
    out = tmp_path / "out"
    (out / "query").mkdir(parents=True)
    (out / ".af2struct").mkdir()
    users = [out / "query" / "notes.txt", out / ".draft.tmp", out / ".mydata.partial" / "x", out / ".af2struct" / ".cfg.tmp"]
    for f in users:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("mine")
    (out / "query" / "result.json").write_text("user's own file of an output's name")
    leftover = out / ".query.af2struct-tmp-abc.partial"
    leftover.mkdir()
    with RunFolder(out) as folder:
        assert not leftover.exists()  # a killed run's temporary folder: af2struct's own
        tmp = folder.temp_dir("query")
        assert oct(tmp.stat().st_mode & 0o777) == oct(0o777 & ~_umask())  # not mkdtemp's 0700
        (tmp / "result.json").write_text("{}")
        final = folder.publish_dir(tmp, "query")
        folder.commit("query", "fp1", {"status": "ok"}, [final / "result.json"])
    for f in users[1:]:
        assert f.read_text() == "mine"
    assert (out / "query" / "notes.txt").read_text() == "mine"  # carried into the new folder
    assert (out / "query" / "result.json.orig").read_text().startswith("user's")
    # a second replacement removes the recorded output, and still keeps the user's notes
    with RunFolder(out) as folder:
        tmp = folder.temp_dir("query")
        (tmp / "result.json").write_text('{"v": 2}')
        folder.publish_dir(tmp, "query")
    assert (out / "query" / "result.json").read_text() == '{"v": 2}'
    assert (out / "query" / "notes.txt").read_text() == "mine"
    assert not (out / "query" / "result.json.orig.orig").exists()


def test_a_failed_rerun_sets_the_finished_result_apart(tmp_path):
    from af2struct.predict.outputs import fail_target
    from af2struct.predict.targets import Target, TargetInputs

    out = tmp_path / "out"
    with RunFolder(out) as folder:
        tmp = folder.temp_dir("t")
        (tmp / "relaxed.pdb").write_text("good")
        final = folder.publish_dir(tmp, "t")
        folder.commit("t", "fp1", {"status": "ok"}, [final / "relaxed.pdb"])
        inputs = TargetInputs(Target("t", "AAAA"), None, None, None, None, "", "fp2")
        row = fail_target(folder, inputs, OSError(28, "No space left on device")).record
    assert row["status"] == "error" and "t.previous" in row["error"]
    assert (out / "t.previous" / "relaxed.pdb").read_text() == "good" and not (out / "t").exists()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_run_batch_records_as_items_come_and_reports_however_it_stops(tmp_path):
    """The one run loop: finished items kept, the rest executed and recorded one by one, the
    report written at the end also when the executor raises; a rerun does only what is left."""
    from af2struct.common.runner import Batch, Finished, run_batch

    reports, ran = [], []

    def report(folder, records, final):
        reports.append((final, sorted(records)))

    def executor(folder, todo):
        for name in todo:
            if name == "c" and not ran.count("stop"):
                ran.append("stop")
                raise KeyboardInterrupt
            ran.append(name)
            yield Finished(name, {"status": "ok", "name": name})

    batch = Batch(tmp_path / "out", [("a", "1"), ("b", "1"), ("c", "1")], ["report.csv"], report, "test", "item",
                  report_every=0.0)
    with pytest.raises(KeyboardInterrupt):
        run_batch(batch, executor, progress=False)
    assert ran == ["a", "b", "stop"]
    assert reports == [(False, ["a"]), (False, ["a", "b"]), (True, ["a", "b"])]
    records = run_batch(batch, executor, progress=False)  # the rerun: only c
    assert ran[3:] == ["c"] and sorted(records) == ["a", "b", "c"] and reports[-1] == (True, ["a", "b", "c"])
    assert records["c"]["fingerprint"] == "1" and records["a"]["status"] == "ok"
    batch2 = Batch(tmp_path / "out", [("a", "2"), ("b", "1"), ("c", "1")], ["report.csv"], report, "test", "item",
                   report_every=3600.0)
    del reports[:]
    run_batch(batch2, executor, progress=False)  # a's fingerprint changed: a alone is redone
    assert ran[4:] == ["a"]
    assert reports == [(True, ["a", "b", "c"])]  # within report_every of the start: the final report only


def test_closing_line_names_violations_only_when_some_are_left():
    """predict and relax end with this line; whether relax leaves violations depends on the machine
    (the end-to-end tests see one branch), so both branches are checked here."""
    clean = [{"status": "ok"}, {"status": "ok"}]
    assert closing_line(clean, "relaxed clean", "r.csv") == "2 relaxed clean, 0 failed -> r.csv"
    assert "violations" not in closing_line(clean, "relaxed clean", "r.csv") and failed_count(clean) == 0
    mixed = clean + [{"status": "violations"}, {"status": "error"}, {"status": "not run"}]
    assert closing_line(mixed, "relaxed clean", "r.csv") == \
        "2 relaxed clean, 1 with violations left, 2 failed -> r.csv"
    assert failed_count(mixed) == 2


def test_progress_lines_say_what_finished_and_the_time_left():
    from af2struct.common.runner import Batch, progress_line

    b = Batch(out=None, items=[], reserved=[], report=None, what="relax", unit="structure")
    assert progress_line(b, "1abc", {"status": "ok"}, 3, 10, 42.0) == \
        "relax 3/10 structures: 1abc ok; 42 s so far, about 1 min 38 s left"
    assert progress_line(b, "x", {"status": "error"}, 2, 2, 4000.0) == "relax 2/2 structures: x error; 1 h 6 min so far"
    # shortest first: the 3 short targets done were a tenth of the work, so 9x the time is left
    assert progress_line(b, "1abc", {"status": "ok"}, 3, 10, 42.0, share=0.1) == \
        "relax 3/10 structures: 1abc ok; 42 s so far, about 6 min 18 s left"


def test_predict_weighs_the_time_left_by_length(tmp_path, monkeypatch):
    """predict runs the shortest first; its time left is weighted by length^TIME_EXPONENT."""
    from af2struct.predict import batch as predict_batch_module

    seen = {}

    def fake_run_batch(batch, executor, force, progress):
        seen.update(batch.cost)
        return {}

    from af2struct.predict.options import PredictOptions, RelaxOptions
    from af2struct.predict.targets import Target

    targets = [Target("short", "A" * 10), Target("long", "A" * 40)]
    monkeypatch.setattr(predict_batch_module, "run_batch", fake_run_batch)
    predict_batch_module.predict_batch(targets, tmp_path, PredictOptions(relax=RelaxOptions(backend="none")))
    assert seen["long"] / seen["short"] == 4 ** predict_batch_module.TIME_EXPONENT
