"""The README and docs/ tell the truth about the command line: every command they show parses
with the command's own parser (options, values, ranges), the README's test command is the one
CI runs, the links lead to files that exist, and the README stays a page a user reads (the
reference lives in docs/)."""

import importlib
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SCRIPTS = {"predict", "relax", "evaluate", "train", "make_dataset"}


def _shell_blocks(page: Path):
    return re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S)


def _commands(page: Path):
    """``(command, argv)`` for every af2struct command in the page's bash blocks (continuation
    lines joined, ``&&`` chains split, comments dropped)."""
    for block in _shell_blocks(page):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if len(words) >= 2 and words[0] == "af2struct":
                    yield words[1], words[2:]
                for i, w in enumerate(words):
                    m = re.fullmatch(r"scripts/(\w+)\.py", w)
                    if m and m.group(1) in SCRIPTS and i > 0 and words[i - 1].endswith("python"):
                        yield m.group(1).replace("_", "-"), words[i + 1:]


COMMANDS = [(page.name, cmd, argv) for page in PAGES for cmd, argv in _commands(page)]


def test_the_pages_show_commands():
    assert {cmd for _, cmd, _ in COMMANDS} >= {"predict", "train", "templates"}


@pytest.mark.parametrize("page,command,argv", COMMANDS, ids=[f"{p}:{c}:{i}" for i, (p, c, _) in enumerate(COMMANDS)])
def test_every_command_shown_parses(page, command, argv):
    from af2struct.cli import COMMANDS as MODULES

    parser = importlib.import_module(MODULES[command][0]).build_parser()
    try:
        parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed why
        pytest.fail(f"{page}: `{command} {' '.join(argv)}` does not parse (exit {exc.code})")


def test_the_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_lines = [b.strip() for b in _shell_blocks(ROOT / "README.md") if "pytest" in b]
    assert len(test_lines) == 1 and test_lines[0] in ci
    quickstart = ("pip install -c constraints.txt -e . && .venv/bin/python scripts/predict.py examples/T1082.fasta "
                  "--native tests/fixtures/T1082.pdb --out outputs/quickstart")
    assert quickstart in readme
    assert (ROOT / "examples" / "T1082.fasta").exists()
    # CI runs the Quickstart prediction too (its own output folder) and checks the files the README lists
    assert ("scripts/predict.py examples/T1082.fasta --native tests/fixtures/T1082.pdb --out \"$QUICKSTART_OUT\""
            in ci)
    promised = re.findall(r"`([\w./]+\.(?:pdb|png|json|csv))`", readme.split("Look at `outputs/quickstart/T1082/`")[1]
                          .split("\n\n")[0])
    assert len(promised) >= 8 and all(f.split("/")[-1] in ci for f in promised), promised


def test_links_lead_to_files_and_the_readme_is_a_users_page():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), f"{page.name} links to {target}, which is missing"
    assert len((ROOT / "README.md").read_text().splitlines()) < 250
