#!/usr/bin/env python
"""Follow one target through a prediction: which project files its work visits, in order, and how
often control comes back to a file it had already left (the measure of issue #31).

The per-target work is ``predict_target``'s call, down to its return. Its project calls form a
tree; the trace walks it to ``--depth`` levels below and lists the files the work enters, in
order. A file still waiting on the call stack (a coordinator calling its stages in turn) has not
been left; a call that makes no project call of its own (a leaf: ``atomic_write_text``, a path
helper) is a utility used, not a hop of the data, and is not counted. "Returns to a file already
left" counts the calls into a file the work had entered before, that is not on the stack. The
model (``af2struct/model/``) and relax (``refine/``) are stages: entering one counts, their
insides (the trunk's modules, the relax protocol's steps) are not walked.

    python benchmarks/trace_out_path.py [--sequence SEQ] [--relax none|openmm] [--depth 3] [--files]

Prints a Markdown table (results kept in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from af2struct.cli import run_command  # noqa: E402

PROJECT = (str(ROOT / "af2struct"), str(ROOT / "refine"))
SEQ_1PSM = "EAYKKAKQASQDAEQAAKDAENASKEAEEAAKEAVNLK"  # 1PSM (tests/fixtures)


PER_TARGET = ("predict_target", "predict_one")


class Call:
    def __init__(self, file: str, name: str) -> None:
        self.file, self.name, self.children = file, name, []


def trace(argv):
    """Run ``predict`` with a profiler; returns (exit code, the per-target calls' trees)."""
    stack, roots = [], []

    def profile(frame, event, arg):
        if event not in ("call", "return"):
            return
        f = frame.f_code.co_filename
        if not f.startswith(PROJECT):
            return
        if event == "call":
            node = Call(Path(f).relative_to(ROOT).as_posix(), frame.f_code.co_name)
            if stack:
                stack[-1][1].children.append(node)
                stack.append((frame, node))
            elif frame.f_code.co_name in PER_TARGET:
                roots.append(node)
                stack.append((frame, node))
        elif stack and stack[-1][0] is frame:
            stack.pop()

    sys.setprofile(profile)
    try:
        code = run_command("predict", argv)
    finally:
        sys.setprofile(None)
    return code, roots


OPAQUE = ("af2struct/model/", "refine/")  # stages entered as one step: the model, relax


def walk(node: Call, depth: int, stack: list, entered: list, returns: list) -> None:
    """Depth-first over non-leaf calls: each call into another file than its caller's is an
    entry; an entry into a file entered before and not on ``stack`` is a return to it. The
    model and relax are stages entered once each: their insides are not walked."""
    for child in node.children:
        if not child.children or depth == 0:
            continue  # a leaf: a utility used, control does not move
        if child.file != node.file:
            if child.file in entered and child.file not in stack:
                returns.append(f"{node.file}:{node.name} -> {child.file}:{child.name}")
            entered.append(child.file)
        if not child.file.startswith(OPAQUE):
            walk(child, depth - 1, stack + [child.file], entered, returns)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sequence", default=SEQ_1PSM)
    p.add_argument("--relax", default="openmm", choices=("openmm", "none"))
    p.add_argument("--depth", type=int, default=20, help="levels of calls below the per-target call")
    p.add_argument("--files", action="store_true", help="print the file sequence too")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        code, roots = trace(["--sequence", args.sequence, "--name", "t", "--out", str(Path(tmp) / "out"),
                             "--relax", args.relax, "--quiet", "--no-plots"])
    entered, returns = [roots[0].file], []
    walk(roots[0], args.depth, [roots[0].file], entered, returns)
    counts = {f: entered.count(f) for f in dict.fromkeys(entered)}
    top = max(counts, key=counts.get)
    print("| depth | files entered | entries | returns to a file already left | most entered | exit code |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.depth} | {len(counts)} | {len(entered)} | {len(returns)} | {top} ({counts[top]}x) | {code} |")
    if args.files:
        print("\nentered in order: " + " -> ".join(entered))
        print("returns:\n" + "\n".join(f"  {r}" for r in returns))


if __name__ == "__main__":
    main()
