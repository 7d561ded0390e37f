"""What a run is doing before its first point, and Stop inside library loops.

The slow preparations of a run (building a toy model, generating pairs, loading models,
critic pre-training) call `phase(what, done, total)`. Inside `reporting(on_phase,
should_stop)` (the run manager, moss_lab/runs.py, sets it up for each run's thread) that
reports the phase (the app shows it while a run has no point yet) and raises
StopRequested when Stop was pressed, so Stop reaches every phase. Outside it, phase()
does nothing: a notebook or the CLI runs the same library code.
"""
from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .files import write_json


class StopRequested(Exception):
    """Raised by phase() when the run's Stop was pressed; the message is the reason
    ("stopped by request during <phase>")."""


_REPORTER = threading.local()  # this thread's (on_phase, should_stop), set by reporting()
PHASE_WRITE_S = 0.5  # at most two progress.json writes a second (a new phase: at once)


@contextlib.contextmanager
def reporting(on_phase: Callable[[dict], None], should_stop: Callable[[], bool]):
    """Within the block, phase() calls made in this thread go to `on_phase(record)` and
    raise StopRequested when `should_stop()` is True. Outside any block phase() does
    nothing, so a notebook or the CLI calls the same library code."""
    before = getattr(_REPORTER, "value", None)
    _REPORTER.value = {"on_phase": on_phase, "should_stop": should_stop,
                       "what": None, "started": 0.0}
    try:
        yield
    finally:
        _REPORTER.value = before


def phase(what: str, done: int | None = None, total: int | None = None,
          unit: str = "step") -> None:
    """Say what the current run is doing (`done` of `total` units, when known); raise
    StopRequested("stopped by request during <what>") when the run's Stop was pressed."""
    reporter = getattr(_REPORTER, "value", None)
    if reporter is None:
        return
    if reporter["should_stop"]():
        raise StopRequested(f"stopped by request during {what}")
    now = time.monotonic()
    if what != reporter["what"]:
        reporter["what"], reporter["started"] = what, now
    reporter["on_phase"]({"phase": what, "done": done, "total": total, "unit": unit,
                          "elapsed_s": round(now - reporter["started"], 1)})


def phase_text(record: dict | None) -> str:
    """A progress record in words: 'building the toy reward model (step 120/399, 12 s)'."""
    if not record or not record.get("phase"):
        return ""
    parts = []
    if record.get("total"):
        parts.append(f"{record.get('unit', 'step')} {record.get('done') or 0}/{record['total']}")
    parts.append(f"{record.get('elapsed_s', 0):.0f} s")
    return f"{record['phase']} ({', '.join(parts)})"


class PhaseFile:
    """on_phase for reporting(): the record goes to <run_dir>/progress.json (atomically),
    at most every PHASE_WRITE_S seconds unless the phase changed or its end was reached."""

    def __init__(self, run_dir: Path):
        self.path, self.last, self.last_what = Path(run_dir) / "progress.json", 0.0, None

    def __call__(self, record: dict) -> None:
        now = time.monotonic()
        new = record["phase"] != self.last_what
        at_end = record.get("total") and record.get("done") == record["total"]
        if new or at_end or now - self.last >= PHASE_WRITE_S:
            write_json(self.path, {**record, "updated_at": time.time()})
            self.last, self.last_what = now, record["phase"]


@contextlib.contextmanager
def phase_per_forward(model, what: str, total: int, unit: str = "step"):
    """phase(what, k, total, unit) on every forward pass of `model` (each token step of a
    generation): progress and Stop inside a loop with no hook of its own (Hugging Face
    generate). k counts forward passes, capped at total."""
    count = 0

    def hook(module, args):
        nonlocal count
        count += 1
        phase(what, min(count, total), total, unit)

    handle = model.register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def simulated_pairs(model, tokenizer, n: int, annotator, seed: int = 0,
                    max_new_tokens: int = 40, what: str | None = None):
    """moss_lab.preferences.toy_pairs (the same pairs), reporting the phase `what`
    ("generating n simulated pairs") in token steps: toy_pairs samples its ~1.1 n prompts
    twice in batches of 512, each up to max_new_tokens steps."""
    from .preferences import toy_pairs

    batches = math.ceil((n + n // 10 + 1) / 512)
    with phase_per_forward(model, what or f"generating {n} simulated pairs",
                           batches * max_new_tokens, unit="token step"):
        return toy_pairs(model, tokenizer, n, annotator, seed=seed,
                         max_new_tokens=max_new_tokens)
