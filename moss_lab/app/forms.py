"""Form fields built from a config dataclass (PPOConfig, RewardConfig).

A field's default comes from a config instance, its kind of input from its type, its
choices from a `Literal[...]` type, and its help from the field's docstring
(moss_lab.configs.field_help, the text `--help` shows too), so a form never restates them.
The config checks the values itself: `parse` only turns form values into the field types.
"""
from __future__ import annotations

import functools
import math
import types
import typing

import gradio as gr

from moss_lab.configs import field_help


@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def field_type(cls, name: str) -> tuple[type, bool, list | None]:
    """(type, None allowed?, choices or None) of one field."""
    hint = _hints(cls)[name]
    args = typing.get_args(hint)
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args
    if optional:
        hint = next(a for a in args if a is not type(None))
    if typing.get_origin(hint) is typing.Literal:
        return str, optional, list(typing.get_args(hint))
    return hint, optional, None


def bool_fields(cls) -> list[str]:
    """The on/off fields of a config, in their order."""
    return [name for name in _hints(cls) if field_type(cls, name)[0] is bool]


def field_input(cls, config, name: str, label: str | None = None, **kwargs):
    """A Gradio input for one field, holding its value in `config`, with its help as info."""
    kind, optional, choices = field_type(cls, name)
    value = getattr(config, name)
    label = (label or name) + (" (empty: None)" if optional else "")
    kwargs.update(label=label, info=field_help(cls, name) or None)
    if kind is bool:
        return gr.Checkbox(value, **kwargs)
    if choices:
        return gr.Dropdown(list(choices), value=value, allow_custom_value=True, **kwargs)
    if kind in (int, float):
        return gr.Number(value, precision=0 if kind is int else None, **kwargs)
    return gr.Textbox("" if value is None else str(value), **kwargs)


def is_whole(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value == int(value)


def parse(cls, values: dict) -> tuple[dict, list[str]]:
    """Form values as the fields' types, and what could not be read (field by field)."""
    out, problems = {}, []
    for name, value in values.items():
        kind, optional, _ = field_type(cls, name)
        if value is None or value == "":
            if optional:
                out[name] = None
            else:
                problems.append(f"{name} needs a value")
        elif kind is bool:
            out[name] = bool(value)
        elif kind is int:
            if not is_whole(value):
                problems.append(f"{name} must be a whole number, got {value}")
            else:
                out[name] = int(value)
        elif kind is float:
            out[name] = float(value)
        else:
            out[name] = str(value).strip()
    return out, problems
