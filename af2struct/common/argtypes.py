"""Numeric command-line values checked when the arguments are parsed: a range, and finite.

``int_in(lo, hi)`` and ``float_in(lo, hi)`` are argparse ``type=`` callables; a value outside
its range (or ``inf``/``nan``) stops the command at once with argparse's usual one-line error,
before any model is loaded or any file is touched.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Callable, Optional

SEED_MAX = 2**32 - 1  # numpy's and PyTorch's seeds are 32-bit here


def int_in(lo: Optional[int] = None, hi: Optional[int] = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{value} is out of range ({_range(lo, hi)})")
        return value

    parse.__name__ = "integer"
    return parse


def float_in(lo: Optional[float] = None, hi: Optional[float] = None, lo_open: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if (lo is not None and (value < lo or (lo_open and value == lo))) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{value:g} is out of range ({_range(lo, hi, lo_open)})")
        return value

    parse.__name__ = "number"
    return parse


def _range(lo, hi, lo_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return f"{lo} {'<' if lo_open else '<='} x <= {hi}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo}"
    return f"<= {hi}"


def out_folder(text: str) -> Path:
    """An output folder argument: an empty string is refused (it would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty --out would write into the current folder; name a folder")
    return Path(text)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default once: not when the help already says it, nor ``None``."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "(default" in text or "%(default)" in text or action.default in (None, argparse.SUPPRESS) \
                or isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            return text
        return super()._get_help_string(action)
