"""The run manager: training runs queued and executed in background threads.

Each run lives in its own folder under `moss_lab.paths.runs_dir()`:

    config.json     what was asked for (kind + the library config)
    status.json     state: queued | running | stopped | failed | finished | interrupted,
                    with a reason for failed/interrupted, the owning pid, times, and the
                    run's final figures
    metrics.jsonl   one JSON object per iteration (written by the library, or here)
    notes.json      the user's notes and tags ({"notes": str, "tags": [str]}), optional
    progress.json   what the run is doing now, before and between its points (a phase:
                    "building the toy reward model", step 120 of 399, 12 s), see moss_lab.progress
    samples.jsonl, checkpoint/ ...  whatever the job writes

The folders are the state: the app reads them, so a page reload or an app restart shows
the same thing. A run left "running" or "queued" by a process that is gone is shown as
interrupted.

A job is a callable `job(run_dir, config, on_metrics, should_stop) -> dict | None`; it
calls `should_stop()` every iteration and returns early when it is True. The slow
preparations before the first iteration (building a toy model, generating pairs, critic
pre-training) call `phase(what, done, total)` instead: it writes progress.json and raises
StopRequested when Stop was pressed, so Stop reaches every phase. Jobs run in
threads of this process (so the app can stream their metrics); at most
`per_device` runs at a time on each device, and at most `queue_limit` runs waiting.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .files import append_jsonl, read_json, write_json
from .paths import runs_dir
from .progress import PhaseFile, StopRequested, phase, reporting, simulated_pairs
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
    notes: str = ""
    tags: list[str] = field(default_factory=list)
    stop_requested: bool = False

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


class RunManager:
    """Queue runs, run them in worker threads, read their state back from the folders."""

    def __init__(self, root: str | Path | None = None, per_device: int = 1,
                 queue_limit: int = 4, repeat_window: float = 0.0):
        """repeat_window: refuse a run whose kind and config equal those of a run submitted
        less than this many seconds ago and still active (a double click on Launch)."""
        self.root = Path(root) if root is not None else runs_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self.per_device, self.queue_limit = per_device, queue_limit
        self.repeat_window = repeat_window
        self._lock = threading.Lock()
        self._status_lock = threading.Lock()
        self._slots: dict[str, threading.Semaphore] = {}
        self._stops: dict[str, threading.Event] = {}
        self._recent: dict[str, tuple[float, str]] = {}  # kind+config -> (time, run name)
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
        key = json.dumps([kind, device, config], sort_keys=True, default=str)
        with self._lock:
            self._refuse_repeat(key)
            if self._waiting >= self.queue_limit:
                raise QueueFullError(f"the run queue is full ({self.queue_limit} runs "
                                     "waiting); wait for one to finish or stop one")
            try:
                run_dir.mkdir()
            except FileExistsError:
                raise RunError(f"a run named {name!r} exists already; pick another name")
            self._waiting += 1
            self._recent[key] = (time.monotonic(), name)
            stop = self._stops[name] = threading.Event()
            # one slot per physical device: "cuda" and "cuda:0" are the same GPU
            slot_key = "cuda:0" if device in ("cuda", "gpu") else (device or "cpu")
            slot = self._slots.setdefault(slot_key, threading.Semaphore(self.per_device))
            _LIVE.add(str(run_dir))
        write_json(run_dir / "config.json", {"kind": kind, "device": device, **config})
        self._set_status(run_dir, "queued", kind=kind, created_at=time.time())
        threading.Thread(target=self._work, name=f"run-{name}", daemon=True,
                         args=(run_dir, kind, config, job, slot, stop, writes_metrics)).start()
        return run_dir

    def _refuse_repeat(self, key: str) -> None:
        """RunError when the same run was submitted moments ago and is still active."""
        now = time.monotonic()
        self._recent = {k: v for k, v in self._recent.items()
                        if now - v[0] < self.repeat_window}
        if key in self._recent:
            when, other = self._recent[key]
            state = read_json(self.root / other / "status.json", {}).get("state")
            if state in ACTIVE:
                raise RunError(f"the same run was launched {now - when:.1f} s ago as {other!r} "
                               "and is still going (a double click?); change a setting, "
                               "e.g. the seed, to run it again")

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
                    with reporting(PhaseFile(run_dir), stop.is_set):
                        final = job(run_dir, config, on_metrics, stop.is_set) or {}
                except StopRequested as err:  # Stop during a phase: nothing was saved
                    self._set_status(run_dir, "stopped", reason=str(err), ended_at=time.time())
                    return
                except Exception as err:
                    self._set_status(run_dir, "failed", reason=f"{type(err).__name__}: {err}",
                                     traceback=traceback.format_exc(), ended_at=time.time())
                    return
                result = read_json(run_dir / "result.json", {})
                stopped = stop.is_set() or result.get("status") == "stopped"
                if stopped:
                    self._set_status(run_dir, "stopped", final=final, ended_at=time.time(),
                                     reason=result.get("reason") or "stopped by request")
                else:
                    self._set_status(run_dir, "finished", final=final, ended_at=time.time())
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
        else:  # the job sees it at its next check; the page says "stopping" meanwhile
            with self._status_lock:
                status = read_json(info.path / "status.json", {})
                if status.get("state") in ACTIVE:
                    write_json(info.path / "status.json", {**status, "stop_requested_at": time.time()})
        return True

    def _set_status(self, run_dir: Path, state: str, **fields) -> None:
        with self._status_lock:  # the worker and a Stop click may write at the same moment
            status = read_json(run_dir / "status.json", {})
            status.update(fields, state=state, pid=os.getpid(), updated_at=time.time())
            if state not in ("failed", "interrupted", "stopped") and "reason" not in fields:
                status.pop("reason", None)
            write_json(run_dir / "status.json", status)

    def delete(self, name: str) -> None:
        """Remove a run's folder; refused while the run is queued or running."""
        info = self.get(name)
        if info.active:
            raise RunError(f"run {name!r} is {info.state}: stop it before deleting it")
        shutil.rmtree(info.path)
        self._stops.pop(name, None)

    def set_notes(self, name: str, notes: str = "", tags: list[str] | str = ()) -> RunInfo:
        """Keep the user's notes and tags in <run>/notes.json (tags: a list or 'a, b')."""
        info = self.get(name)
        if isinstance(tags, str):
            tags = tags.split(",")
        tags = list(dict.fromkeys(t.strip() for t in tags if t and t.strip()))
        write_json(info.path / "notes.json", {"notes": (notes or "").strip(), "tags": tags})
        return self.get(name)

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
        if state == "stopped" and not reason:
            reason = read_json(run_dir / "result.json", {}).get("reason") or "stopped by request"
        kind = status.get("kind") or config.get("kind", "?")  # a library may rewrite config.json
        notes = read_json(run_dir / "notes.json", {})
        return RunInfo(run_dir.name, run_dir, kind, state, reason,
                       config, status.get("created_at"), final,
                       notes=notes.get("notes", ""), tags=list(notes.get("tags", [])),
                       stop_requested=state in ACTIVE and "stop_requested_at" in status)

    @staticmethod
    def _owned(run_dir: Path, pid: int | None) -> bool:
        """Is an active run still owned by a live process?"""
        if pid == os.getpid():
            return str(run_dir) in _LIVE
        return pid_alive(pid)

    def metrics(self, name: str) -> list[dict]:
        return read_metrics(self.get(name).path)

    def metrics_csv(self, name: str, path: str | Path) -> Path:
        """A run's metrics.jsonl as a CSV file (one column per metric, rows in order)."""
        import csv

        rows = self.metrics(name)
        columns = list(dict.fromkeys(k for row in rows for k in row))
        path = Path(path)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
        return path



# ---------------------------------------------------------------------------------------
# The jobs the app launches: thin wrappers over the libraries
# ---------------------------------------------------------------------------------------
def ppo_job(run_dir: Path, config: dict, on_metrics, should_stop) -> dict:
    """A PPO run: `config` holds PPOConfig fields (moss_lab.ppo.train_ppo writes the folder)."""
    from .ppo import PPOConfig, train_ppo

    fields = {k: v for k, v in config.items() if k not in ("kind",)}
    phase("loading the policy, its reference, the critic and the reward model")
    result = train_ppo(PPOConfig.from_dict(fields), run_dir=run_dir, on_metrics=on_metrics,
                       should_stop=should_stop)
    if result.status in ("nan", "oom"):  # NaN guard or out of memory: a failure, with why
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

    phase("reading the labels")
    store = LabelStore(config.get("labels_db"))
    try:
        pairs = store.preferences(include_ties=config.get("include_ties", False))
    finally:
        store.close()
    n_labels = len(pairs)
    rm_config = RewardConfig(**config.get("reward", {}))  # a bad value: ValueError naming it
    n_sim = int(config.get("simulated", 0))
    if n_sim > 0:
        from .models import load_policy
        from .toyworld import SimulatedAnnotator

        phase(f"loading the base model {rm_config.base!r} to sample pairs")
        model, tokenizer = load_policy(rm_config.base, device="cpu")
        annotator = SimulatedAnnotator(noise=float(config.get("noise", SimulatedAnnotator.noise)),
                                       seed=rm_config.seed)
        pairs += simulated_pairs(model, tokenizer, n_sim, annotator, seed=rm_config.seed)
    if len(pairs) < 2:
        raise ValueError(f"only {len(pairs)} usable pair(s): label some pairs (A or B "
                         "better) or add simulated pairs")
    phase("loading the base model and starting training")
    _, _, final = train_reward_model(pairs, rm_config, run_dir=run_dir,
                                     on_metrics=on_metrics, should_stop=should_stop)
    # where the pairs came from, for the Reward model tab's summary
    return {**final, "n_labels": n_labels, "n_simulated": len(pairs) - n_labels}



# --- DPO, GRPO, RLOO and best-of-n: the same thin wrapper over moss_lab.methods ------------
def _method_job(train, config_cls, run_dir: Path, config: dict, on_metrics, should_stop) -> dict:
    """Run `train(config_cls(**config), ...)`; the trainer writes the folder (metrics by step)."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(config_cls)}
    phase("loading the policy and the reward model")
    result = train(config_cls(**{k: v for k, v in config.items() if k in known}),
                   run_dir=run_dir, on_metrics=on_metrics, should_stop=should_stop)
    if result.status == "nan":  # the NaN guard ended it: a failure, with its reason
        raise RuntimeError(result.reason)
    final = dict(result.history[-1]) if result.history else {}
    return {**final, "steps": result.steps, "elapsed_s": result.elapsed_s}


def dpo_job(run_dir: Path, config: dict, on_metrics, should_stop) -> dict:
    """A DPO run: `config` holds DPOTrainConfig fields (data "labels" or a label store path:
    the app's votes)."""
    from .methods.train_dpo import DPOTrainConfig, train_dpo

    return _method_job(train_dpo, DPOTrainConfig, run_dir, config, on_metrics, should_stop)


def grpo_job(run_dir: Path, config: dict, on_metrics, should_stop) -> dict:
    """A GRPO run: `config` holds GRPOTrainConfig fields."""
    from .methods.train_grpo import GRPOTrainConfig, train_grpo

    return _method_job(train_grpo, GRPOTrainConfig, run_dir, config, on_metrics, should_stop)


def rloo_job(run_dir: Path, config: dict, on_metrics, should_stop) -> dict:
    """An RLOO run: `config` holds RLOOTrainConfig fields."""
    from .methods.train_rloo import RLOOTrainConfig, train_rloo

    return _method_job(train_rloo, RLOOTrainConfig, run_dir, config, on_metrics, should_stop)


def best_of_n_job(run_dir: Path, config: dict, on_metrics, should_stop) -> dict:
    """A best-of-n "run" (no training, one metrics row per n): BestOfNConfig fields."""
    from .methods.train_best_of_n import BestOfNConfig, train_best_of_n

    return _method_job(train_best_of_n, BestOfNConfig, run_dir, config, on_metrics, should_stop)
