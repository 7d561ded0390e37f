"""The folder every training run writes, whatever the method (reward model, PPO, ...).

    <run_dir>/config.json     the run's configuration
    <run_dir>/metrics.jsonl   one JSON object per step or iteration (names as in the field:
                              reward/score, reward/gold, objective/kl, ...)
    <run_dir>/samples.jsonl   a few responses now and then (prompt, response, score, gold)
    <run_dir>/result.json     how it ended: status, reason, final metrics
    <run_dir>/<model>/        the trained model, saved with save_pretrained

The CLI, the app's run manager, the Runs tab and the labs read every run alike because
every trainer writes through this one class. `RunFolder(None)` writes nothing, so a
trainer called from a notebook without a folder runs the same code.
"""
from __future__ import annotations

import time
from pathlib import Path

from . import files
from .paths import runs_dir


def new_run_name(kind: str, root: str | Path | None = None) -> str:
    """A fresh run name, `<kind>-YYYYmmdd-HHMMSS` (with -2, -3... if that folder exists)."""
    root = Path(root) if root is not None else runs_dir()
    base = f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    name, n = base, 1
    while (root / name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


class RunFolder:
    """Writes a run's folder; every method does nothing when the path is None."""

    def __init__(self, path: str | Path | None, config: dict | None = None):
        self.path = Path(path) if path is not None else None
        if self.path is None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        if config is not None:
            files.write_json(self.path / "config.json", config)
        for name in ("metrics.jsonl", "samples.jsonl"):  # a rerun into the folder starts afresh
            (self.path / name).write_text("")

    def log(self, row: dict) -> None:
        """One metrics row (a step or an iteration) to metrics.jsonl."""
        if self.path is not None:
            files.append_jsonl(self.path / "metrics.jsonl", row)

    def samples(self, rows: list[dict]) -> None:
        """A few responses to samples.jsonl."""
        if self.path is not None:
            for row in rows:
                files.append_jsonl(self.path / "samples.jsonl", row)

    def save_model(self, model, tokenizer, name: str) -> Path | None:
        """save_pretrained the model and tokenizer to <run_dir>/<name>, atomically."""
        if self.path is None:
            return None
        with files.building(self.path / name) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        return self.path / name

    def write(self, name: str, obj) -> None:
        """Any other JSON file of the run (result.json, ...), atomically."""
        if self.path is not None:
            files.write_json(self.path / name, obj)


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The rows of a run's metrics.jsonl (tolerant of a run still writing)."""
    return files.read_jsonl(Path(run_dir) / "metrics.jsonl")
