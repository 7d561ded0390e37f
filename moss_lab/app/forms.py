"""Form fields built from a config dataclass (PPOConfig, RewardConfig).

A field's default comes from a config instance, its kind of input from its type, its
choices from a `Literal[...]` type, and its help from the field's docstring
(moss_lab.configs.field_help, the text `--help` shows too), so a form never restates them.
A number's minimum, maximum and step come from the config's BOUNDS
(moss_lab.configs.field_bounds); `parse` reads form values as the field types and checks
them with the config's own check (moss_lab.configs.check_value), so a value typed in the
browser, sent over the API or given on the command line gets the same message.
"""
from __future__ import annotations

import functools
import math
import types
import typing

import gradio as gr

from moss_lab.configs import check_value, field_bounds, field_help


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


class BoundedNumber(gr.Number):
    """A gr.Number (the same widget in the browser, with its minimum, maximum and step)
    whose value reaches the handler unchecked: gr.Number's own check would refuse an
    out-of-range value with a message that does not name the field, and text such as
    'nan' sent over the API with a bare "Error". The handler checks it (`parse`,
    `read_number`) and names the field and its range."""
    is_template = True  # the frontend draws it as a gr.Number

    def preprocess(self, payload):
        return payload


def step_for(value, kind: type) -> float:
    """An arrow-key step that fits the value: 1 for whole numbers, else a tenth of the
    value's leading digit (3e-4 -> 1e-5, 0.05 -> 0.001, 1.0 -> 0.1), 0.01 for 0 or None."""
    if kind is int:
        return 1
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value == 0:
        return 0.01
    return 10.0 ** (math.floor(math.log10(abs(value))) - 1)


def read_number(value, name: str, lo: float, hi: float, whole: bool = True):
    """A form number outside a config (e.g. Compare's max tokens): (value, None) or
    (None, a message naming the field and the range)."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None, f"{name} must be a number in [{lo}, {hi}], got {value!r}"
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"{name} must be a number in [{lo}, {hi}], got {value!r}"
    if not math.isfinite(value) or not lo <= value <= hi or (whole and value != int(value)):
        kind = "a whole number" if whole else "a number"
        shown = int(value) if math.isfinite(value) and value == int(value) else value
        return None, f"{name} must be {kind} in [{lo}, {hi}], got {shown}"
    return (int(value) if whole else float(value)), None


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
        bound = field_bounds(cls, name)
        return BoundedNumber(value, precision=0 if kind is int else None, minimum=bound.lo,
                             maximum=bound.hi, step=step_for(value, kind), **kwargs)
    return gr.Textbox("" if value is None else str(value), **kwargs)


def is_whole(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value == int(value)


def parse(cls, values: dict) -> tuple[dict, list[str]]:
    """Form values as the fields' types, and what could not be read or is out of the
    field's bounds, field by field, in the config's words (text such as 'nan' or '1e9'
    sent over the API is read as a number first)."""
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
        elif kind in (int, float):
            number = value
            if isinstance(value, str):
                try:
                    number = float(value.strip())
                except ValueError:
                    pass
            problem = check_value(cls, name, number)
            if problem:
                problems.append(problem)
            else:
                out[name] = int(number) if kind is int else float(number)
        else:
            out[name] = str(value).strip()
    return out, problems


# --- tuple fields (best-of-n's ladder of n) as comma-separated whole numbers -------------
def is_tuple_field(cls, name: str) -> bool:
    return typing.get_origin(field_type(cls, name)[0]) is tuple


def any_input(cls, config, name: str, label: str | None = None, **kwargs):
    """field_input, and a text box of comma-separated numbers for a tuple field."""
    if not is_tuple_field(cls, name):
        return field_input(cls, config, name, label, **kwargs)
    return gr.Textbox(", ".join(map(str, getattr(config, name))), label=label or name,
                      info=field_help(cls, name) or None, **kwargs)


def parse_any(cls, values: dict) -> tuple[dict, list[str]]:
    """parse, reading a tuple field as whole numbers separated by commas or spaces."""
    tuples = {k: v for k, v in values.items() if is_tuple_field(cls, k)}
    out, problems = parse(cls, {k: v for k, v in values.items() if k not in tuples})
    for name, text in tuples.items():
        parts = str(text or "").replace(",", " ").split()
        if parts and all(p.lstrip("-").isdigit() for p in parts):
            out[name] = tuple(int(p) for p in parts)
        else:
            problems.append(f"{name} must be whole numbers separated by commas, got {text!r}")
    return out, problems
