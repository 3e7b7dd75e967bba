"""Command-line options for every :class:`RelaxConfig` field, generated from the dataclass
(:mod:`af2struct.common.options`: its docstring gives the help), so ``relax`` and ``predict
--relax-*`` offer the same settings and a new field is never missing from either."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Dict, Iterable

from af2struct.common.argtypes import SEED_MAX, float_in, int_in
from af2struct.common.options import add_dataclass_arguments, from_arguments
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


def _types() -> Dict[str, Any]:
    """Every numeric field's checked type: the ranges above, else >= 0."""
    out: Dict[str, Any] = {}
    for f in dataclasses.fields(RelaxConfig):
        value = f.default
        if f.name in _TYPES:
            out[f.name] = _TYPES[f.name]
        elif isinstance(value, float):
            out[f.name] = float_in(0)
        elif isinstance(value, int) and not isinstance(value, bool):
            out[f.name] = int_in(0)
    return out


def add_relax_arguments(parser: argparse._ActionsContainer, prefix: str = "", skip: Iterable[str] = ()) -> None:
    """One ``--{prefix}{field}`` option per :class:`RelaxConfig` field (default shown in help)."""
    add_dataclass_arguments(parser, RelaxConfig, prefix=prefix, skip=skip, types=_types(), choices=_CHOICES)


def relax_config_from_args(args: argparse.Namespace, prefix: str = "", **overrides) -> RelaxConfig:
    """The :class:`RelaxConfig` of options added by :func:`add_relax_arguments`."""
    return from_arguments(RelaxConfig, args, prefix=prefix, **overrides)
