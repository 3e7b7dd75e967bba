"""The one `af2struct` command: subcommands, help on every option, relax settings shared by
`relax` and `predict --relax-*`."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from af2struct.cli import COMMANDS, build_parser
from refine.cli import relax_config_from_args
from refine.types import RelaxConfig
from tests.cli_run import empty_home_env

ROOT = Path(__file__).resolve().parents[2]


def _subparsers():
    p = build_parser()
    action = next(a for a in p._actions if a.dest == "command")
    return action.choices


@pytest.mark.slow
def test_help_lists_the_subcommands():
    r = subprocess.run([sys.executable, "-m", "af2struct.cli", "--help"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0
    for name in ("predict", "relax", "evaluate", "train", "make-dataset"):
        assert name in r.stdout
    assert set(_subparsers()) == set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_has_help(name):
    sub = _subparsers()[name]
    assert sub.description
    for action in sub._actions:
        if action.dest in ("help",):
            continue
        assert action.help and action.help.strip(), f"{name}: {action.option_strings or action.dest} has no help"


def test_relax_settings_reach_both_commands():
    subs = _subparsers()
    fields = {f.name for f in dataclasses.fields(RelaxConfig)}
    assert fields <= {a.dest for a in subs["relax"]._actions}
    predict_dests = {a.dest for a in subs["predict"]._actions}
    # every relax setting has its predict twin (backend is --relax itself, seed is --seed)
    assert {"relax_" + f for f in fields - {"backend", "seed"}} <= predict_dests
    args = build_parser().parse_args(["predict", "x.fasta", "--out", "o", "--relax-stiffness", "5",
                                      "--relax-violation-policy", "release", "--relax-threads", "2"])
    cfg = relax_config_from_args(args, prefix="relax-")
    assert (cfg.stiffness, cfg.violation_policy, cfg.threads) == (5.0, "release", 2)
    args = build_parser().parse_args(["relax", "m.pdb", "--out", "o", "--soften-factor", "0.5", "--keep-hydrogens"])
    cfg = relax_config_from_args(args)
    assert cfg.soften_factor == 0.5 and cfg.keep_hydrogens and cfg == dataclasses.replace(
        RelaxConfig(), soften_factor=0.5, keep_hydrogens=True)


@pytest.mark.slow
def test_relax_and_evaluate_write_nothing_into_home(tmp_path, data_dir):
    """relax and evaluate with plots: the home folder stays empty (predict with plots, relax and
    scoring: tests/predict/test_predict.py::test_default_weights_end_to_end_with_relax)."""
    root = Path(__file__).resolve().parents[2]
    home = tmp_path / "home"
    env = empty_home_env(home)
    runs = [["relax.py", data_dir / "openfold_1psm_A.pdb.gz", "--out", tmp_path / "r"],
            ["evaluate.py", "--pred", data_dir / "T1082.pdb", "--native", data_dir / "T1082.pdb", "--out", tmp_path / "e"]]
    for script, *args in runs:
        r = subprocess.run([sys.executable, str(root / "scripts" / script), *map(str, args), "--quiet"], env=env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == []


@pytest.mark.slow
def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
    import signal
    import time

    fasta = tmp_path / "t.fasta"
    fasta.write_text("".join(f">t{i}\nEAYKKAKQASQDAEQAAKDAENASKEAEEAAKEAVNLK\n" for i in range(20)))
    # Ctrl-C as at a terminal: SIGINT at its default in the command (a suite started in the
    # background of a non-interactive shell has it ignored, and Python then keeps it ignored)
    p = subprocess.Popen([sys.executable, str(ROOT / "scripts/predict.py"), str(fasta), "--out", str(tmp_path / "o"),
                          "--relax", "none", "--no-plots", "--quiet"], stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    # t0 is finished once its record is written (its folder is published just before: a signal
    # between the two leaves t0 to be redone, "not run" in this run's summary)
    while time.time() < deadline and not (tmp_path / "o" / ".af2struct" / "records" / "t0.json").exists():
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "Traceback" not in err and "interrupted" in err
    rows = (tmp_path / "o" / "summary.csv").read_text()
    assert "t0,38,ok" in rows and "not run" in rows


def test_help_says_each_default_once_and_no_markup():
    import contextlib
    import io

    for argv in (["--help"], ["predict", "--help"], ["evaluate", "--help"], ["relax", "--help"]):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
            build_parser().parse_args(argv)
        text = " ".join(buf.getvalue().split())
        assert "``" not in text and "(default: None)" not in text
    from af2struct.common.argtypes import HelpFormatter

    for name, sub in _subparsers().items():
        fmt = HelpFormatter(name)
        for action in sub._actions:
            shown = (fmt._get_help_string(action) or "").replace("%(default)s", str(action.default))
            assert shown.count("(default") <= 1, f"{name} {action.option_strings}: {shown}"
