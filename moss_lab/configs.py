"""What every config dataclass (PPOConfig, RewardConfig, ...) shares: its field docs.

The docstring under each field is the one source of a field's help: the command line
(`moss-lab <command> --help`, built by tyro from the same docstrings) and the app's form
tooltips both read it, so they never disagree.
"""
from __future__ import annotations

import dataclasses
import functools

# tyro reads field docstrings for --help; the app asks the same reader, so the text is
# identical. (A private module of tyro: pinned to tyro 1.x in pyproject.toml.)
from tyro._docstrings import get_field_docstring


@functools.cache
def field_docs(cls) -> dict[str, str]:
    """{field name: its docstring, on one line} for a config dataclass."""
    return {f.name: " ".join((get_field_docstring(cls, f.name, ()) or "").split())
            for f in dataclasses.fields(cls)}


def field_help(cls, name: str) -> str:
    """The docstring of one field of a config dataclass ("" if it has none)."""
    return field_docs(cls).get(name, "")
