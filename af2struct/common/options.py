"""Command-line options generated from a dataclass: one option per field, its help from the
``Attributes:`` section of the class docstring, its flag, type, choices and the like from the
field's metadata (:func:`meta`), its default from the field. The settings and their command
line then cannot drift apart (``predict``'s option groups, every :class:`refine.types.RelaxConfig`
field for ``relax`` and ``predict --relax-*``).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Any, Callable, Dict, Iterable, Optional


def meta(*, flag: Optional[str] = None, type: Optional[Callable] = None, choices=None, metavar: Optional[str] = None,
         nargs=None, result: bool = True, cli: bool = True, invert: bool = False, action: Optional[str] = None,
         required: bool = False, group: Optional[str] = None) -> Dict[str, Any]:
    """A field's metadata: ``flag`` (default ``--field-name``), argparse ``type``, ``choices``,
    ``metavar``, ``nargs``, ``action`` (``"append"``: a repeatable option, a tuple field),
    ``required``; ``result``: whether the field changes what a run produces (a rerun with
    another value redoes the work; False: device, workers, paths to caches, progress); ``cli``:
    offered on the command line; ``invert``: a boolean that defaults to True, offered as a flag
    that turns it off (``plots`` -> ``--no-plots``; give ``flag``); ``group``: the option group
    it is listed under."""
    return {"flag": flag, "type": type, "choices": choices, "metavar": metavar, "nargs": nargs, "result": result,
            "cli": cli, "invert": invert, "action": action, "required": required, "group": group}


def changes_result(f: dataclasses.Field) -> bool:
    """Whether field ``f`` changes a run's result (:func:`meta`'s ``result``; True when unsaid)."""
    return f.metadata.get("result", True)


def field_help(cls) -> Dict[str, str]:
    """``{field: text}`` from the ``Attributes:`` section of ``cls``'s docstring (a field line
    ``name: text`` or ``a, b: text`` indented 8 spaces, continued by lines indented 12)."""
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


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def add_dataclass_arguments(parser: argparse._ActionsContainer, cls, *, prefix: str = "",
                            dest_prefix: Optional[str] = None, skip: Iterable[str] = (),
                            types: Optional[Dict[str, Callable]] = None,
                            choices: Optional[Dict[str, Iterable]] = None) -> None:
    """One option per field of ``cls`` (dataclass), ``--{prefix}{field}`` unless its metadata
    names a flag; the value lands in ``args.<dest>`` with dest ``{dest_prefix}{field}``
    (default: the prefix, dashes as underscores). ``types``/``choices`` add to what the
    metadata says (``RelaxConfig`` keeps its types beside the class)."""
    helps = field_help(cls)
    dest_prefix = prefix.replace("-", "_") if dest_prefix is None else dest_prefix
    groups: Dict[str, argparse._ActionsContainer] = {}
    for f in dataclasses.fields(cls):
        m = f.metadata
        if f.name in skip or not m.get("cli", True):
            continue
        where = parser
        if m.get("group"):
            if m["group"] not in groups:
                groups[m["group"]] = parser.add_argument_group(m["group"])
            where = groups[m["group"]]
        flag = m.get("flag") or "--" + prefix + f.name.replace("_", "-")
        value = _default(f)
        text = helps.get(f.name, f.name.replace("_", " ")).replace("%", "%%")
        kw: Dict[str, Any] = {"dest": dest_prefix + f.name, "help": text}
        if isinstance(value, bool):
            kw.update(action="store_false" if m.get("invert") else "store_true", default=value)
            where.add_argument(flag, **kw)
            continue
        if m.get("action") == "append":  # repeatable: collected in a list, the field gets a tuple
            kw.update(action="append", default=[], metavar=m.get("metavar"))
            where.add_argument(flag, **kw)
            continue
        if m.get("required"):
            kw["required"] = True
        kind = m.get("type") or (types or {}).get(f.name)
        if kind is None and value is not None and not isinstance(value, (str, tuple)):
            kind = type(value)
        if kind is not None:
            kw["type"] = kind
        options = m.get("choices") or (choices or {}).get(f.name)
        if options is not None:
            kw["choices"] = tuple(options)
        for key in ("metavar", "nargs"):
            if m.get(key) is not None:
                kw[key] = m[key]
        if "metavar" not in kw and "choices" not in kw:  # named by its flag, not by where it is kept
            kw["metavar"] = flag.lstrip("-").upper().replace("-", "_")
        kw["default"] = value
        if value is not None and value != () and "(default" not in text:
            kw["help"] = text + " (default: %(default)s)"
        where.add_argument(flag, **kw)


def from_arguments(cls, args: argparse.Namespace, *, prefix: str = "", dest_prefix: Optional[str] = None,
                   **overrides):
    """An instance of ``cls`` from the options :func:`add_dataclass_arguments` added (fields not
    on the command line keep their defaults; ``overrides`` win)."""
    dest = prefix.replace("-", "_") if dest_prefix is None else dest_prefix
    values = {f.name: getattr(args, dest + f.name) for f in dataclasses.fields(cls) if hasattr(args, dest + f.name)}
    for f in dataclasses.fields(cls):
        if f.name in values and isinstance(values[f.name], list):  # nargs or a repeatable option
            values[f.name] = tuple(values[f.name])
    values.update(overrides)
    return cls(**values)
