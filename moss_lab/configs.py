"""What every config dataclass (PPOConfig, RewardConfig, ...) shares: its field docs and
how its fields are read from text.

The docstring under each field is the one source of a field's help: the command line
(`moss-lab <command> --help`, built by tyro from the same docstrings) and the app's form
tooltips both read it, so they never disagree. `parse_args` is the one parser of every
moss-lab flag: the CLI and the benchmarks read a field's text the same way.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Sequence, TypeVar

import tyro

# tyro reads field docstrings for --help; the app asks the same reader, so the text is
# identical. (A private module of tyro: pinned to tyro 1.x in pyproject.toml.)
from tyro._docstrings import get_field_docstring
from tyro.constructors import ConstructorRegistry, PrimitiveConstructorSpec

T = TypeVar("T")


@functools.cache
def field_docs(cls) -> dict[str, str]:
    """{field name: its docstring, on one line} for a config dataclass."""
    return {f.name: " ".join((get_field_docstring(cls, f.name, ()) or "").split())
            for f in dataclasses.fields(cls)}


def field_help(cls, name: str) -> str:
    """The docstring of one field of a config dataclass ("" if it has none)."""
    return field_docs(cls).get(name, "")


# tyro spells None "None"; accept "none" too (`--reward-clip none`, as before tyro).
REGISTRY = ConstructorRegistry()


@REGISTRY.primitive_rule
def _none_rule(type_info):
    if type_info.type is not type(None):
        return None
    return PrimitiveConstructorSpec(
        nargs=1, metavar="{None}", choices=("None", "none"), instance_from_str=lambda args: None,
        is_instance=lambda x: x is None, str_from_instance=lambda instance: ["None"])


def parse_args(cls: type[T], args: Sequence[str], *, prog: str | None = None,
               default: T | None = None, bool_values: bool = False) -> T:
    """Build a `cls` (a dataclass) from command-line `args` with tyro.

    Every field is a `--field-name` flag whose help is its docstring; the fields of a nested
    dataclass (a command's `config`) are flags too, without a prefix. Bools are
    `--flag/--no-flag` pairs, or `--flag True|False` with `bool_values`. Absent flags keep
    the values of `default` (else the field defaults). A bad value exits (code 2) with a
    message naming the flag, as does a ValueError raised by the dataclass's __post_init__.
    """
    markers = [tyro.conf.OmitArgPrefixes] + ([tyro.conf.FlagConversionOff] if bool_values else [])
    given = {} if default is None else {"default": default}
    return tyro.cli(cls, args=list(args), prog=prog, config=markers, registry=REGISTRY, **given)
