"""Command-line options for every :class:`RelaxConfig` field, generated from the dataclass (its
docstring gives the help), so ``relax`` and ``predict --relax-*`` offer the same settings and a
new field is never missing from either."""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Any, Dict, Iterable

from af2struct.common.argtypes import SEED_MAX, float_in, int_in
from refine.types import BACKENDS, FORCEFIELDS, PLATFORMS, SOLVENTS, VIOLATION_POLICIES, RelaxConfig

# every number has a range, checked when the arguments are parsed (counts of rounds, attempts and
# threads from 1; iterations from 0 = no cap; physical quantities finite and >= 0 or > 0)
_TYPES = {"max_iterations": int_in(0), "max_outer_iterations": int_in(1), "max_attempts": int_in(1),
          "threads": int_in(1, 1024), "rosetta_rounds": int_in(1), "seed": int_in(0, SEED_MAX),
          "tolerance": float_in(0, lo_open=True), "repel_stiffness": float_in(0, lo_open=True),
          "repel_stiffness_max": float_in(0, lo_open=True), "nonbonded_cutoff": float_in(0, lo_open=True),
          "soften_factor": float_in(0, 1)}
_CHOICES = {"backend": BACKENDS, "forcefield": FORCEFIELDS, "solvent": SOLVENTS, "platform": PLATFORMS,
            "violation_policy": VIOLATION_POLICIES}


def field_help(cls=RelaxConfig) -> Dict[str, str]:
    """``{field: text}`` from the ``Attributes:`` section of ``cls``'s docstring."""
    doc = (cls.__doc__ or "").split("Attributes:", 1)[-1]
    out: Dict[str, str] = {}
    names: list = []
    for line in doc.splitlines():
        m = re.match(r"^ {8}([a-z_][a-z0-9_, ]*): (.*)$", line)
        if m:
            names = [n.strip() for n in m.group(1).split(",")]
            for n in names:
                out[n] = m.group(2).strip()
        elif line.startswith(" " * 12) and names:
            for n in names:
                out[n] += " " + line.strip()
    return {k: v.replace("``", "") for k, v in out.items()}


def add_relax_arguments(parser: argparse._ActionsContainer, prefix: str = "", skip: Iterable[str] = ()) -> None:
    """One ``--{prefix}{field}`` option per :class:`RelaxConfig` field (default shown in help)."""
    helps = field_help()
    default = RelaxConfig()
    for f in dataclasses.fields(RelaxConfig):
        if f.name in skip:
            continue
        flag = "--" + prefix + f.name.replace("_", "-")
        value = getattr(default, f.name)
        text = helps.get(f.name, f.name.replace("_", " ")).replace("%", "%%")
        if isinstance(value, bool):
            parser.add_argument(flag, action="store_true", dest=prefix.replace("-", "_") + f.name, help=text)
            continue
        kind = _TYPES.get(f.name) or (float_in(0) if isinstance(value, float) else int_in(0)
                                      if isinstance(value, int) else type(value))
        shown = text if "(default" in text else text + " (default: %(default)s)"  # said once
        kw: Dict[str, Any] = {"type": kind, "default": value, "help": shown,
                              "dest": prefix.replace("-", "_") + f.name}
        if f.name in _CHOICES:
            kw["choices"] = _CHOICES[f.name]
        parser.add_argument(flag, **kw)


def relax_config_from_args(args: argparse.Namespace, prefix: str = "", **overrides) -> RelaxConfig:
    """The :class:`RelaxConfig` of options added by :func:`add_relax_arguments`."""
    dest = prefix.replace("-", "_")
    values = {f.name: getattr(args, dest + f.name) for f in dataclasses.fields(RelaxConfig)
              if hasattr(args, dest + f.name)}
    values.update(overrides)
    return RelaxConfig(**values)
