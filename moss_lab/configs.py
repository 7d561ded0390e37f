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
import math
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
               default: T | None = None, bool_values: bool = False,
               description: str | None = None) -> T:
    """Build a `cls` (a dataclass) from command-line `args` with tyro.

    Every field is a `--field-name` flag whose help is its docstring; the fields of a nested
    dataclass (a command's `config`) are flags too, without a prefix. Bools are
    `--flag/--no-flag` pairs, or `--flag True|False` with `bool_values`. Absent flags keep
    the values of `default` (else the field defaults). A bad value exits (code 2) with a
    message naming the flag, as does a ValueError raised by the dataclass's __post_init__.
    """
    markers = [tyro.conf.OmitArgPrefixes] + ([tyro.conf.FlagConversionOff] if bool_values else [])
    given = {} if default is None else {"default": default}
    return tyro.cli(cls, args=list(args), prog=prog, config=markers, registry=REGISTRY,
                    description=description, **given)


# ---------------------------------------------------------------------------------------
# Bounds: every numeric field of a config names the range it accepts, in one place (the
# class's BOUNDS), and one check serves the dataclass (its __post_init__: the library,
# the CLI through tyro, the app's run manager), the app's forms (minimum/maximum/step of
# a gr.Number, and the same message for a bad value typed or sent over the API).
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Bound:
    """A closed or half-open range [lo, hi] / (lo, hi]; None: unbounded on that side."""
    lo: float | None
    hi: float | None
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, value: float) -> bool:
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        if self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi):
            return False
        return True

    def __str__(self) -> str:
        lo = "-inf" if self.lo is None else _number(self.lo)
        hi = "inf" if self.hi is None else _number(self.hi)
        return f"{'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"


def between(lo: float | None, hi: float | None, *, lo_open: bool = False,
            hi_open: bool = False) -> Bound:
    """between(1, 100_000): [1, 100000]; between(0, 1, lo_open=True): (0, 1]."""
    return Bound(lo, hi, lo_open, hi_open)


def _number(x: float) -> str:
    """1000000000, 0.0003, 1e-06: integers in full, other numbers as repr does."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x)


def _kind(cls, name: str) -> tuple[type | None, bool]:
    """(int, float or None for a field that is not a number, None allowed?)."""
    import types
    import typing

    hint = typing.get_type_hints(cls)[name]
    args = typing.get_args(hint)
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args
    if optional:
        hint = next(a for a in args if a is not type(None))
    return (hint if hint in (int, float) else None), optional


def numeric_fields(cls) -> list[str]:
    """The int and float fields of a config dataclass (bools are not numbers here)."""
    return [f.name for f in dataclasses.fields(cls) if _kind(cls, f.name)[0] is not None]


UNBOUNDED = Bound(None, None)


def field_bounds(cls, name: str) -> Bound:
    """The range a numeric field accepts (a form's minimum and maximum: .lo, .hi): from the
    class's BOUNDS; a class without them (yet) gets no range, only the finite check."""
    return getattr(cls, "BOUNDS", {}).get(name, UNBOUNDED)


def check_value(cls, name: str, value) -> str | None:
    """Why `value` cannot be `cls`'s field `name` (a message naming the field and its
    range), or None when it can. NaN and infinity are refused for every number."""
    kind, optional = _kind(cls, name)
    if kind is None:
        return None
    if value is None:
        return None if optional else f"{name} needs a value"
    bound = field_bounds(cls, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{name} must be a number in {bound}, got {value!r}"
    if not math.isfinite(value):
        return f"{name} must be a finite number in {bound}, got {value}"
    if kind is int and value != int(value):
        return f"{name} must be a whole number in {bound}, got {value}"
    if value not in bound:
        return f"{name} must be in {bound}, got {_number(value)}"
    return None


def check_bounds(config) -> list[str]:
    """The messages of every numeric field of `config` out of its bounds (a config's
    __post_init__ raises them as one ValueError)."""
    cls = type(config)
    return [message for name in numeric_fields(cls)
            if (message := check_value(cls, name, getattr(config, name))) is not None]


def context_window(model) -> int | None:
    """How many tokens (prompt + response) a causal LM can read: its n_positions or
    max_position_embeddings; None when its config says neither."""
    config = getattr(model, "config", None)
    for key in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_new_tokens(model, prompt_tokens: int, max_new_tokens: int,
                     name: str = "max_new_tokens") -> None:
    """Raise ValueError (naming `name`) when a prompt of `prompt_tokens` tokens plus
    `max_new_tokens` new ones do not fit in the model's context window."""
    window = context_window(model)
    if window is not None and prompt_tokens + max_new_tokens > window:
        room = max(window - prompt_tokens, 0)
        raise ValueError(f"{name} must be at most {room} for this model, got {max_new_tokens} "
                         f"(its context window is {window} tokens and the prompt takes "
                         f"{prompt_tokens})")
