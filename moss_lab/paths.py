"""Where moss-lab keeps its data: base models, labels, runs.

Everything lives under one data home: $MOSS_LAB_HOME, or ~/.cache/moss-lab by default.
"""
from __future__ import annotations

import os
from pathlib import Path


def data_home() -> Path:
    """The data home folder (created if missing)."""
    home = Path(os.environ.get("MOSS_LAB_HOME") or Path.home() / ".cache" / "moss-lab")
    home.mkdir(parents=True, exist_ok=True)
    return home


def models_dir() -> Path:
    return _sub("models")


def runs_dir() -> Path:
    return _sub("runs")


def labels_db() -> Path:
    """The SQLite file that stores human preference labels."""
    return data_home() / "labels.sqlite"


def _sub(name: str) -> Path:
    path = data_home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path
