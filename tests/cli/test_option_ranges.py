"""Every numeric option has a range checked when the arguments are parsed (exit 2, one line,
before a model is loaded or a file touched); an empty --out is refused."""

import pytest

from af2struct.cli import build_parser
from af2struct.predict.options import options_from_arguments

BAD = [
    ("predict", ["--num-recycles", "-1"]), ("predict", ["--num-recycles", "1000000"]),
    ("predict", ["--seed", "4294967296"]), ("predict", ["--seed", "-1"]), ("predict", ["--msa-iterations", "0"]),
    ("predict", ["--msa-iterations", "-3"]), ("predict", ["--msa-cpus", "-5"]), ("predict", ["--max-templates", "-1"]),
    ("predict", ["--template-max-identity", "0"]), ("predict", ["--relax-stiffness", "inf"]),
    ("predict", ["--relax-threads", "-3"]), ("predict", ["--relax-max-iterations", "-1"]),
    ("relax", ["--max-iterations", "-1"]), ("relax", ["--threads", "-3"]), ("relax", ["--stiffness", "inf"]),
    ("relax", ["--stiffness", "nan"]), ("relax", ["--seed", "4294967296"]), ("relax", ["--jobs", "0"]),
    ("evaluate", ["--jobs", "-2"]),
]
REQUIRED = {"predict": ["--sequence", "ACDE", "--out", "o"], "relax": ["x.pdb", "--out", "o"],
            "evaluate": ["--pred", "p", "--native", "n", "--out", "o"]}


@pytest.mark.parametrize("command,args", BAD, ids=[" ".join([c] + a) for c, a in BAD])
def test_out_of_range_numbers_are_refused_when_parsed(command, args, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([command, *REQUIRED[command], *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert args[0] in err and ("out of range" in err or "finite" in err)
    assert list(tmp_path.iterdir()) == []  # nothing touched


@pytest.mark.parametrize("command", ["predict", "relax", "evaluate"])
def test_empty_out_is_refused(command, capsys):
    args = [a if a != "o" else "" for a in REQUIRED[command]]
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, *args])
    assert "current folder" in capsys.readouterr().err


def test_in_range_values_parse():
    a = build_parser().parse_args(["predict", *REQUIRED["predict"], "--seed", "4294967295", "--num-recycles", "3",
                                   "--relax-stiffness", "0"])
    opts = options_from_arguments(a)
    assert opts.model.seed == 2**32 - 1 and opts.model.num_recycles == 3 and opts.relax.config.stiffness == 0.0


def test_an_unknown_device_is_refused_before_anything_runs(tmp_path):
    from af2struct.cli.predict import main as predict_main

    assert predict_main(["--sequence", "ACDE", "--out", str(tmp_path / "o"), "--device", "meta", "--quiet"]) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args", [["--steps", "-1"], ["--lr", "0"], ["--crop-size", "4"], ["--seed", "-1"],
                                  ["--valid-fraction", "1.5"], ["--threads", "0"], ["--w-pae", "nan"]])
def test_train_numbers_are_checked_when_parsed(args, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["train", "--backbone-db", "x.npz", "--out", "o", *args])
    assert exc.value.code == 2 and args[0] in capsys.readouterr().err
