"""The run manager: training runs queued and executed in background threads.

Each run lives in its own folder under `moss_lab.paths.runs_dir()`:

    config.json     what was asked for (kind + the library config)
    status.json     state: queued | running | stopped | failed | finished | interrupted,
                    with a reason for failed/interrupted, the owning pid, times, and the
                    run's final figures
    metrics.jsonl   one JSON object per iteration (written by the library, or here)
    samples.jsonl, checkpoint/ ...  whatever the job writes

The folders are the state: the app reads them, so a page reload or an app restart shows
the same thing. A run left "running" or "queued" by a process that is gone is shown as
interrupted.

A job is a callable `job(run_dir, config, on_metrics, should_stop) -> dict | None`; it
calls `should_stop()` every iteration and returns early when it is True. Jobs run in
threads of this process (so the app can stream their metrics); at most
`per_device` runs at a time on each device, and at most `queue_limit` runs waiting.
"""
from __future__ import annotations

import os
import re
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .files import append_jsonl, read_json, write_json
from .paths import runs_dir
from .run_folder import read_metrics

ACTIVE = ("queued", "running")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

Job = Callable[[Path, dict, Callable[[dict], None], Callable[[], bool]], "dict | None"]

# Runs executing in this process, by folder, across all managers (a test may hold several).
_LIVE: set[str] = set()


class RunError(ValueError):
    """A run that cannot be created or found (the message says why)."""


class QueueFullError(RunError):
    """Too many runs are waiting already."""


def validate_name(name: str) -> str:
    """A run name is a folder name: letters, digits, '.', '_', '-'; no '/' and no '..'."""
    name = (name or "").strip()
    if not name:
        raise RunError("give the run a name")
    if "/" in name or "\\" in name or ".." in name or not NAME_RE.match(name):
        raise RunError(f"invalid run name {name!r}: use 1-64 letters, digits, '.', '_' or "
                       "'-', starting with a letter or digit (no '/', no '..')")
    return name


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class RunInfo:
    """One run as read from its folder."""

    name: str
    path: Path
    kind: str
    state: str
    reason: str | None
    config: dict
    created_at: float | None
    final: dict = field(default_factory=dict)


class RunManager:
    """Queue runs, run them in worker threads, read their state back from the folders."""

    def __init__(self, root: str | Path | None = None, per_device: int = 1,
                 queue_limit: int = 4):
        self.root = Path(root) if root is not None else runs_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self.per_device, self.queue_limit = per_device, queue_limit
        self._lock = threading.Lock()
        self._slots: dict[str, threading.Semaphore] = {}
        self._stops: dict[str, threading.Event] = {}
        self._waiting = 0

    # --- submitting and stopping ---------------------------------------------------------
    def submit(self, name: str, kind: str, config: dict, job: Job,
               device: str = "cpu", writes_metrics: bool = True) -> Path:
        """Create the run folder and queue the job; return the folder.

        writes_metrics=False: the job does not write metrics.jsonl itself, so each
        `on_metrics(row)` is appended here.
        """
        name = validate_name(name)
        run_dir = self.root / name
        with self._lock:
            if self._waiting >= self.queue_limit:
                raise QueueFullError(f"the run queue is full ({self.queue_limit} runs "
                                     "waiting); wait for one to finish or stop one")
            try:
                run_dir.mkdir()
            except FileExistsError:
                raise RunError(f"a run named {name!r} exists already; pick another name")
            self._waiting += 1
            stop = self._stops[name] = threading.Event()
            slot = self._slots.setdefault(device, threading.Semaphore(self.per_device))
            _LIVE.add(str(run_dir))
        write_json(run_dir / "config.json", {"kind": kind, "device": device, **config})
        self._set_status(run_dir, "queued", kind=kind, created_at=time.time())
        threading.Thread(target=self._work, name=f"run-{name}", daemon=True,
                         args=(run_dir, kind, config, job, slot, stop, writes_metrics)).start()
        return run_dir

    def _work(self, run_dir, kind, config, job, slot, stop, writes_metrics) -> None:
        try:
            with slot:
                with self._lock:
                    self._waiting -= 1
                if stop.is_set():
                    self._set_status(run_dir, "stopped", reason="stopped before it started")
                    return
                self._set_status(run_dir, "running", started_at=time.time())
                on_metrics = (lambda row: None) if writes_metrics else (
                    lambda row: append_jsonl(run_dir / "metrics.jsonl", row))
                try:
                    import torch

                    torch.set_num_threads(1)  # tiny models; see moss_lab.device
                    final = job(run_dir, config, on_metrics, stop.is_set) or {}
                except Exception as err:
                    self._set_status(run_dir, "failed", reason=f"{type(err).__name__}: {err}",
                                     traceback=traceback.format_exc(), ended_at=time.time())
                    return
                state = "stopped" if stop.is_set() else "finished"
                self._set_status(run_dir, state, final=final, ended_at=time.time())
        finally:
            _LIVE.discard(str(run_dir))

    def stop(self, name: str) -> bool:
        """Ask a run to stop (it checks every iteration). False when it is not active."""
        event = self._stops.get(name)
        info = self.get(name)
        if event is None or info.state not in ACTIVE:
            return False
        event.set()
        if info.state == "queued":  # it never started: say so at once
            self._set_status(info.path, "stopped", reason="stopped before it started")
        return True

    def _set_status(self, run_dir: Path, state: str, **fields) -> None:
        status = read_json(run_dir / "status.json", {})
        status.update(fields, state=state, pid=os.getpid(), updated_at=time.time())
        if state not in ("failed", "interrupted") and "reason" not in fields:
            status.pop("reason", None)
        write_json(run_dir / "status.json", status)

    # --- reading the folders -------------------------------------------------------------
    def get(self, name: str) -> RunInfo:
        name = validate_name(name)
        run_dir = self.root / name
        if not (run_dir / "config.json").is_file():
            raise RunError(f"no run named {name!r} in {self.root}")
        return self._info(run_dir)

    def list(self) -> list[RunInfo]:
        """All runs, newest first."""
        runs = [self._info(d) for d in self.root.iterdir()
                if d.is_dir() and (d / "config.json").is_file()]
        return sorted(runs, key=lambda r: r.created_at or 0, reverse=True)

    def _info(self, run_dir: Path) -> RunInfo:
        config = read_json(run_dir / "config.json", {})
        status = read_json(run_dir / "status.json", {})
        state, reason = status.get("state", "queued"), status.get("reason")
        if state in ACTIVE and not self._owned(run_dir, status.get("pid")):
            state = "interrupted"
            reason = "the app stopped before this run finished"
        final = status.get("final") or {}
        if not final:
            rows = read_metrics(run_dir)
            final = rows[-1] if rows else {}
        kind = status.get("kind") or config.get("kind", "?")  # a library may rewrite config.json
        return RunInfo(run_dir.name, run_dir, kind, state, reason,
                       config, status.get("created_at"), final)

    @staticmethod
    def _owned(run_dir: Path, pid: int | None) -> bool:
        """Is an active run still owned by a live process?"""
        if pid == os.getpid():
            return str(run_dir) in _LIVE
        return pid_alive(pid)

    def metrics(self, name: str) -> list[dict]:
        return read_metrics(self.get(name).path)



# ---------------------------------------------------------------------------------------
# The jobs the app launches: thin wrappers over the libraries
# ---------------------------------------------------------------------------------------
def ppo_job(run_dir: Path, config: dict, on_metrics, should_stop) -> dict:
    """A PPO run: `config` holds PPOConfig fields (moss_lab.ppo.train_ppo writes the folder)."""
    from .ppo import PPOConfig, train_ppo

    fields = {k: v for k, v in config.items() if k not in ("kind",)}
    result = train_ppo(PPOConfig.from_dict(fields), run_dir=run_dir, on_metrics=on_metrics,
                       should_stop=should_stop)
    if result.status == "nan":  # the NaN guard ended it: a failure, with its reason
        raise RuntimeError(result.reason)
    final = dict(result.history[-1]) if result.history else {}
    return {**final, "iterations": result.iterations, "elapsed_s": result.elapsed_s}


def reward_job(run_dir: Path, config: dict, on_metrics, should_stop) -> dict:
    """A reward-model run on the stored labels, optionally topped up with simulated ones.

    config: {"reward": RewardConfig fields, "labels_db": path or None, "include_ties": bool,
             "simulated": number of extra simulated pairs, "noise": annotator noise}
    """
    from .labels import LabelStore
    from .reward import RewardConfig, train_reward_model

    store = LabelStore(config.get("labels_db"))
    try:
        pairs = store.preferences(include_ties=config.get("include_ties", False))
    finally:
        store.close()
    rm_config = RewardConfig(**config.get("reward", {}))
    n_sim = int(config.get("simulated", 0))
    if n_sim > 0:
        from .models import load_policy
        from .preferences import toy_pairs
        from .toyworld import SimulatedAnnotator

        model, tokenizer = load_policy(rm_config.base, device="cpu")
        annotator = SimulatedAnnotator(noise=float(config.get("noise", SimulatedAnnotator.noise)),
                                       seed=rm_config.seed)
        pairs += toy_pairs(model, tokenizer, n_sim, annotator, seed=rm_config.seed)
    if len(pairs) < 2:
        raise ValueError(f"only {len(pairs)} usable pair(s): label some pairs (A or B "
                         "better) or add simulated pairs")
    _, _, final = train_reward_model(pairs, rm_config, run_dir=run_dir,
                                     on_metrics=on_metrics, should_stop=should_stop)
    return final

