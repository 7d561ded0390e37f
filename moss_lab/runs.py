"""The run manager: training runs queued and executed in the background.

Each run lives in its own folder under `moss_lab.paths.runs_dir()`:

    <runs>/<name>/                 a run of the single user (its id is "<name>")
    <runs>/users/<login>/<name>/   a run of a logged-in user in class mode (id "<login>/<name>")

    config.json     what was asked for (kind + the library config)
    status.json     state: queued | running | stopped | failed | finished | interrupted,
                    with a reason for failed/interrupted, the app's pid, times, and the
                    run's final figures
    stop.json       present once Stop was pressed (the job, thread or process, polls it)
    metrics.jsonl   one JSON object per iteration (written by the library, or here)
    notes.json      the user's notes and tags ({"notes": str, "tags": [str]}), optional
    progress.json   what the run is doing now, before and between its points (a phase:
                    "building the toy reward model", step 120 of 399, 12 s), see moss_lab.progress
    samples.jsonl, checkpoint/ ...  whatever the job writes

The folders are the state: the app reads them, so a page reload or an app restart shows
the same thing. A run left "running" or "queued" by an app process that is gone is shown
as interrupted.

A job is a callable `job(run_dir, config, on_metrics, should_stop) -> dict | None`; it
calls `should_stop()` every iteration and returns early when it is True. The slow
preparations before the first iteration (building a toy model, generating pairs, critic
pre-training) call `phase(what, done, total)` instead: it writes progress.json and raises
StopRequested when Stop was pressed, so Stop reaches every phase.

Where jobs run: in threads of this process by default, or, with `processes=True` (the
app), each in a child process started from a forkserver that has torch and the PPO code
imported already. A child has its own interpreter lock, so a training run no longer waits
behind the app's request handlers (and they no longer wait behind it). The child dies
with the app, so a killed app leaves no training behind, only runs shown "interrupted".
A job goes to a child when it pickles by reference (a module-level function of an
importable module: ppo_job, reward_job, ...); any other job runs in a thread. A script
that uses processes=True needs the `if __name__ == "__main__":` guard (multiprocessing
imports the main script again in the forkserver).

The queue is one FIFO: at most `per_device` runs at a time on each device, at most
`max_running` at once in all (class mode), at most `max_per_owner` queued or running runs
per owner, and at most `queue_limit` runs waiting.
"""
from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import pickle
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
OWNER_RE = re.compile(r"\w[\w.-]{0,63}")  # no "/", "\\", space or leading "."
USERS = "users"          # <runs>/users/<login>/<run>: so "users" is no top-level run name
STOP_FILE = "stop.json"  # written by stop(); polled by the job's should_stop
# imported once in the forkserver, so that a run's child process starts in ~0.1 s, not 6 s
PRELOAD = ["torch", "moss_lab.ppo", "moss_lab.runs"]

Job = Callable[[Path, dict, Callable[[dict], None], Callable[[], bool]], "dict | None"]

# Runs executing for this process, by folder, across all managers (a test may hold several).
_LIVE: set[str] = set()


class RunError(ValueError):
    """A run that cannot be created or found (the message says why)."""


class QueueFullError(RunError):
    """Too many runs are waiting already."""


class RunLimitError(RunError):
    """The owner has as many runs queued or running as one may."""


def validate_name(name: str) -> str:
    """A run name is a folder name: letters, digits, '.', '_', '-'; no '/' and no '..'."""
    name = (name or "").strip()
    if not name:
        raise RunError("give the run a name")
    if "/" in name or "\\" in name or ".." in name or not NAME_RE.match(name):
        raise RunError(f"invalid run name {name!r}: use 1-64 letters, digits, '.', '_' or "
                       "'-', starting with a letter or digit (no '/', no '..')")
    return name


def validate_owner(owner: str) -> str:
    """An owner (a login name) becomes a folder name: the rule of a run name, except that
    letters may be any language's (as moss_lab.accounts allows: "José")."""
    owner = (owner or "").strip()
    if not OWNER_RE.fullmatch(owner):
        raise RunError(f"invalid owner {owner!r}: a login name that is a folder name "
                       "(letters, digits, '.', '_', '-') is needed to keep runs")
    return owner


def run_id(owner: str | None, name: str) -> str:
    """"ada/ppo-1" for ada's run, "ppo-1" for a run of single-user mode."""
    return f"{owner}/{name}" if owner else name


def split_id(rid: str) -> tuple[str | None, str]:
    """(owner, name) of a run id, both validated; RunError for anything else."""
    owner, _, name = (rid or "").strip().rpartition("/")
    if owner:
        owner = validate_owner(owner)
    name = validate_name(name)
    if not owner and name == USERS:
        raise RunError(f"{USERS!r} is a reserved name (the folder of everyone's runs): "
                       "pick another name")
    return owner or None, name


def pid_alive(pid: int | None) -> bool:
    """Is process `pid` running? A zombie (dead, not yet reaped: a killed app whose parent
    has not waited for it, a container's init that reaps nothing) counts as dead."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: the state letter follows the command name in /proc/<pid>/stat
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


@dataclass
class RunInfo:
    """One run as read from its folder."""

    name: str   # the folder name
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
    owner: str | None = None
    """The login that started it (class mode), None in single-user mode."""
    id: str = ""
    """What the manager's methods take: "<owner>/<name>", or "<name>" without an owner."""

    def __post_init__(self):
        self.id = self.id or run_id(self.owner, self.name)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


@dataclass(eq=False)
class _Entry:
    """A run this manager has queued or is running."""

    id: str
    owner: str | None
    run_dir: Path
    kind: str
    config: dict
    job: Job
    slot: str
    writes_metrics: bool
    stop: threading.Event = field(default_factory=threading.Event)
    process: object = None  # the child process, in process mode (stop(force=True) ends it)


# ---------------------------------------------------------------------------------------
# status.json: written by the app and by a run's child process, so under a file lock
# ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def _status_locked(run_dir: Path):
    """An exclusive lock on the run folder (flock: between threads and processes alike)."""
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_status(run_dir: Path, state: str | None, pid: int, **fields) -> None:
    """Update status.json under its lock; state None changes only `fields`."""
    with _status_locked(run_dir):
        status = read_json(run_dir / "status.json", {})
        status.update(fields, pid=pid, updated_at=time.time())
        if state is not None:
            status["state"] = state
            if state not in ("failed", "interrupted", "stopped") and "reason" not in fields:
                status.pop("reason", None)
        write_json(run_dir / "status.json", status)


def _request_stop(run_dir: Path) -> None:
    """Leave the stop file for the job, and say "stopping" in status.json meanwhile."""
    now = time.time()
    write_json(run_dir / STOP_FILE, {"requested_at": now})
    with _status_locked(run_dir):
        status = read_json(run_dir / "status.json", {})
        if status.get("state") in ACTIVE:
            write_json(run_dir / "status.json", {**status, "stop_requested_at": now})


class _StopFile:
    """should_stop for a job in a child process: has stop.json appeared? (a stat call,
    cheap enough for every token step; True stays True)."""

    def __init__(self, run_dir: Path):
        self.path, self.seen = Path(run_dir) / STOP_FILE, False

    def __call__(self) -> bool:
        self.seen = self.seen or self.path.exists()
        return self.seen


def _execute(run_dir: Path, config: dict, job: Job, should_stop: Callable[[], bool],
             writes_metrics: bool, pid: int) -> None:
    """Run `job` and write how it ended to status.json: the same in a thread and in a
    child process (pid: the app's, which decides whether the run is still owned)."""
    on_metrics = (lambda row: None) if writes_metrics else (
        lambda row: append_jsonl(run_dir / "metrics.jsonl", row))
    try:
        import torch

        torch.set_num_threads(1)  # tiny models; see moss_lab.device
        with reporting(PhaseFile(run_dir), should_stop):
            final = job(run_dir, config, on_metrics, should_stop) or {}
    except StopRequested as err:  # Stop during a phase: nothing was saved
        _write_status(run_dir, "stopped", pid, reason=str(err), ended_at=time.time())
        return
    except Exception as err:
        _write_status(run_dir, "failed", pid, reason=f"{type(err).__name__}: {err}",
                      traceback=traceback.format_exc(), ended_at=time.time())
        return
    result = read_json(run_dir / "result.json", {})
    if should_stop() or result.get("status") == "stopped":
        _write_status(run_dir, "stopped", pid, final=final, ended_at=time.time(),
                      reason=result.get("reason") or "stopped by request")
    else:
        _write_status(run_dir, "finished", pid, final=final, ended_at=time.time())


# ---------------------------------------------------------------------------------------
# Process mode: the child's side
# ---------------------------------------------------------------------------------------
_PROCESS_CONTEXT = None
_EXITING = False  # set at the app's exit, before multiprocessing ends the children


def _exiting() -> None:
    global _EXITING
    _EXITING = True


def _context():
    """The multiprocessing context for runs: forkserver (preloaded), spawn elsewhere."""
    global _PROCESS_CONTEXT
    if _PROCESS_CONTEXT is None:
        import multiprocessing

        try:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
        except ValueError:  # no forkserver on this platform
            ctx = multiprocessing.get_context("spawn")
        # registered after multiprocessing's exit handler, so it runs first (last in, first
        # out): the children it ends then are not reported as failed runs
        import multiprocessing.util  # noqa: F401

        atexit.register(_exiting)
        _PROCESS_CONTEXT = ctx
    return _PROCESS_CONTEXT


def _die_with_the_app(app_pid: int) -> None:
    """End this child when the app process ends (a kill -9 too): the kernel's parent-death
    signal where the app is the parent, and a watchdog thread on the app's pid and
    multiprocessing's parent sentinel (a forkserver child's parent is the forkserver)."""
    import ctypes
    import multiprocessing
    import signal
    from multiprocessing.connection import wait

    with contextlib.suppress(Exception):  # Linux only; the watchdog covers the rest
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    parent = multiprocessing.parent_process()
    sentinel = [parent.sentinel] if parent is not None and parent.sentinel else []

    parent_pid = os.getppid()  # the app, or the forkserver

    def watch():
        while True:
            ready = wait(sentinel, timeout=0.5) if sentinel else time.sleep(0.5)
            if ready or not pid_alive(app_pid) or os.getppid() != parent_pid:
                os._exit(70)  # status.json still says "running": shown as interrupted

    threading.Thread(target=watch, name="watch-app", daemon=True).start()


def _child_main(run_dir: Path, config: dict, job: Job, writes_metrics: bool,
                app_pid: int, environ: dict, cwd: str) -> None:
    """The body of a run's child process."""
    import signal

    # Ctrl-C in the app's terminal reaches the whole process group: it is for the app,
    # and the app's end takes this process with it (a run shown "interrupted", as in a thread)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_the_app(app_pid)
    os.environ.clear()  # the app's environment now, not the forkserver's at its start
    os.environ.update(environ)
    os.chdir(cwd)
    _write_status(run_dir, None, app_pid, child_pid=os.getpid())
    _execute(run_dir, config, job, _StopFile(run_dir), writes_metrics, app_pid)


def _picklable(job: Job) -> bool:
    """Can `job` go to a child process? (module-level functions of an importable module
    can; closures and functions of a script or notebook's __main__ cannot)."""
    if getattr(job, "__module__", None) in ("__main__", "__mp_main__"):
        return False
    try:
        pickle.dumps(job)
    except Exception:
        return False
    return True


def tick_job(run_dir: Path, config: dict, on_metrics, should_stop) -> dict:
    """A job that only counts: `steps` metric rows, `sleep` seconds apart; it fails with
    `fail` (a message) or busy-loops `spin` seconds per step. For tests and benchmarks of
    the queue itself (a module-level function, so it runs in a child process too)."""
    if config.get("phase_s"):
        end = time.monotonic() + config["phase_s"]
        while time.monotonic() < end:
            phase("warming up")
            time.sleep(0.01)
    done = 0
    for i in range(int(config.get("steps", 3))):
        if should_stop():
            break
        if config.get("fail") and i == int(config.get("fail_at", 0)):
            raise RuntimeError(config["fail"])
        end = time.monotonic() + float(config.get("spin", 0))
        while time.monotonic() < end:
            pass
        time.sleep(float(config.get("sleep", 0)))
        on_metrics({"step": i, "pid": os.getpid()})
        done = i + 1
    return {"steps": done, "pid": os.getpid()}


# ---------------------------------------------------------------------------------------
# The manager
# ---------------------------------------------------------------------------------------
class RunManager:
    """Queue runs, run them (threads or child processes), read their state back from the
    folders."""

    def __init__(self, root: str | Path | None = None, per_device: int | dict = 1,
                 queue_limit: int = 4, repeat_window: float = 0.0,
                 max_per_owner: int | None = None, max_running: int | None = None,
                 processes: bool = False):
        """per_device: runs at once on each device, a number or a dict such as
        {"cpu": 2, "cuda:0": 1, "default": 1}. queue_limit: runs waiting at most.
        repeat_window: refuse a run whose kind and config equal those of a run submitted
        less than this many seconds ago and still active (a double click on Launch).
        max_per_owner: runs one owner may have queued or running (None: no limit; runs
        without an owner are never limited). max_running: runs going at once in all.
        processes: run each picklable job in a child process (see the module docstring).
        All of them may be changed later (the app sets them from ClassSettings)."""
        self.root = Path(root) if root is not None else runs_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self.per_device, self.queue_limit = per_device, queue_limit
        self.repeat_window = repeat_window
        self.max_per_owner = max_per_owner
        self._max_running = max_running
        self.processes = processes
        self._lock = threading.Lock()
        self._queue: list[_Entry] = []          # FIFO of waiting runs
        self._running: dict[str, _Entry] = {}   # by run id
        self._recent: dict[str, tuple[float, str]] = {}  # kind+config -> (time, run id)

    @property
    def max_running(self) -> int | None:
        return self._max_running

    @max_running.setter
    def max_running(self, value: int | None) -> None:
        """A higher limit starts waiting runs at once."""
        with self._lock:
            self._max_running = value
            self._pump()

    def warm_up(self) -> None:
        """Start the forkserver now (it imports torch and the PPO code, a few seconds in
        its own process), so that the first run starts at once. Process mode only."""
        if self.processes:
            ctx = _context()
            if ctx.get_start_method() == "forkserver":
                from multiprocessing import forkserver

                forkserver.ensure_running()

    # --- submitting and stopping ---------------------------------------------------------
    def submit(self, name: str, kind: str, config: dict, job: Job, device: str = "cpu",
               writes_metrics: bool = True, owner: str | None = None,
               limited: bool = True) -> Path:
        """Create the run folder and queue the job; return the folder.

        owner: the login whose run it is (class mode): the folder is
        <root>/users/<owner>/<name> and the run id "<owner>/<name>". limited=False exempts
        the run from max_per_owner (the instructor's runs).
        writes_metrics=False: the job does not write metrics.jsonl itself, so each
        `on_metrics(row)` is appended here.
        """
        name = validate_name(name)
        owner = validate_owner(owner) if owner else None
        rid = run_id(owner, name)
        split_id(rid)  # "users" is reserved at the top level
        run_dir = self._dir(owner, name)
        key = json.dumps([owner, kind, device, config], sort_keys=True, default=str)
        # one slot per physical device: "cuda" and "cuda:0" are the same GPU
        slot = "cuda:0" if device in ("cuda", "gpu") else (device or "cpu")
        with self._lock:
            self._refuse_repeat(key)
            if owner and limited and self.max_per_owner is not None:
                self._refuse_over_limit(owner)
            if len(self._queue) >= self.queue_limit and not self._can_start_now(slot):
                raise QueueFullError(f"the run queue is full ({self.queue_limit} runs "
                                     "waiting); wait for one to finish or stop one")
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            try:
                run_dir.mkdir()
            except FileExistsError:
                raise RunError(f"a run named {name!r} exists already; pick another name")
            self._recent[key] = (time.monotonic(), rid)
            entry = _Entry(rid, owner, run_dir, kind, config, job, slot, writes_metrics)
            _LIVE.add(str(run_dir))
            write_json(run_dir / "config.json", {"kind": kind, "device": device, **config})
            _write_status(run_dir, "queued", os.getpid(), kind=kind, created_at=time.time(),
                          **({"owner": owner} if owner else {}))
            self._queue.append(entry)
            self._pump()
        return run_dir

    def _refuse_repeat(self, key: str) -> None:
        """RunError when the same run was submitted moments ago and is still active."""
        now = time.monotonic()
        self._recent = {k: v for k, v in self._recent.items()
                        if now - v[0] < self.repeat_window}
        if key in self._recent:
            when, other = self._recent[key]
            state = read_json(self._dir(*split_id(other)) / "status.json", {}).get("state")
            if state in ACTIVE:
                raise RunError(f"the same run was launched {now - when:.1f} s ago as {other!r} "
                               "and is still going (a double click?); change a setting, "
                               "e.g. the seed, to run it again")

    def _refuse_over_limit(self, owner: str) -> None:
        mine = sum(e.owner == owner for e in (*self._queue, *self._running.values()))
        if mine >= self.max_per_owner:
            runs = "1 run" if mine == 1 else f"{mine} runs"
            wait = "wait for it or stop it" if mine == 1 else "wait for one to finish or stop one"
            raise RunLimitError(f"you have {runs} queued or running (the limit is "
                                f"{self.max_per_owner}): {wait}")

    def _can_start_now(self, slot: str) -> bool:
        """Would a new run on `slot` start at once? (then it does not count as waiting)"""
        if self._max_running is not None and len(self._running) >= self._max_running:
            return False
        return sum(e.slot == slot for e in self._running.values()) < self._capacity(slot)

    def _capacity(self, slot: str) -> int:
        """Runs at once on one device: per_device, a number or {device: number}."""
        if isinstance(self.per_device, dict):
            return int(self.per_device.get(slot, self.per_device.get("default", 1)))
        return self.per_device

    def _pump(self) -> None:
        """Start the waiting runs that may start, first come first served (lock held); a
        run whose device is busy lets a run for another device go first."""
        for entry in list(self._queue):
            if not self._can_start_now(entry.slot):
                continue
            self._queue.remove(entry)
            self._running[entry.id] = entry
            threading.Thread(target=self._work, args=(entry,), name=f"run-{entry.id}",
                             daemon=True).start()

    def queue_position(self, rid: str) -> int | None:
        """1 when the run is the next to start, 2 after that...; None unless waiting."""
        with self._lock:
            for i, entry in enumerate(self._queue):
                if entry.id == rid:
                    return i + 1
        return None

    def _work(self, entry: _Entry) -> None:
        """A run's worker thread: the job itself (thread mode) or its child process."""
        run_dir, pid = entry.run_dir, os.getpid()
        try:
            if entry.stop.is_set():
                _write_status(run_dir, "stopped", pid, reason="stopped before it started")
                return
            in_child = self.processes and _picklable(entry.job)
            _write_status(run_dir, "running", pid, started_at=time.time(),
                          mode="process" if in_child else "thread")
            if in_child:
                self._run_child(entry)
            else:
                _execute(run_dir, entry.config, entry.job, entry.stop.is_set,
                         entry.writes_metrics, pid)
        except Exception as err:  # the manager's own failure (a child that cannot start)
            _write_status(run_dir, "failed", pid, reason=f"{type(err).__name__}: {err}",
                          traceback=traceback.format_exc(), ended_at=time.time())
        finally:
            with self._lock:
                self._running.pop(entry.id, None)
                _LIVE.discard(str(run_dir))
                self._pump()

    def _run_child(self, entry: _Entry) -> None:
        """Run the job in a child process and wait for it; say why when it died silently."""
        ctx = _context()
        process = ctx.Process(
            target=_child_main, name=f"moss-lab run {entry.id}", daemon=True,
            args=(entry.run_dir, entry.config, entry.job, entry.writes_metrics,
                  os.getpid(), dict(os.environ), os.getcwd()))
        entry.process = process
        # the first child after the app's start waits for the forkserver's imports: say so
        PhaseFile(entry.run_dir)({"phase": "starting the run's process", "done": None,
                                  "total": None, "unit": "step", "elapsed_s": 0.0})
        process.start()
        process.join()
        if _EXITING:  # the app is ending and took its children along: "interrupted"
            return
        status = read_json(entry.run_dir / "status.json", {})
        if status.get("state") in ACTIVE:  # it ended without writing how (killed, crashed)
            code = process.exitcode
            how = (f"killed by signal {-code}" if code is not None and code < 0
                   else f"exit code {code}")
            if entry.stop.is_set():
                _write_status(entry.run_dir, "stopped", os.getpid(), ended_at=time.time(),
                              reason=f"stopped by request (its process was ended, {how})")
            else:
                how += ": out of memory?" if code == -9 else ""
                _write_status(entry.run_dir, "failed", os.getpid(), ended_at=time.time(),
                              reason=f"the run's process ended unexpectedly ({how})")

    def stop(self, rid: str, force: bool = False) -> bool:
        """Ask a run to stop (it checks every iteration). False when it is not active or
        not run by this manager. force=True (process mode): end its process at once, for a
        run that does not stop (nothing more is saved)."""
        info = self.get(rid)
        with self._lock:
            entry = next((e for e in self._queue if e.id == info.id), None)
            if entry is not None:  # it never started: say so at once, and free its place
                self._queue.remove(entry)
                entry.stop.set()
                _write_status(info.path, "stopped", os.getpid(),
                              reason="stopped before it started", ended_at=time.time())
                _LIVE.discard(str(info.path))
                self._pump()
                return True
            entry = self._running.get(info.id)
        if entry is None or info.state not in ACTIVE:
            return False
        entry.stop.set()
        # the job sees it at its next check; the page says "stopping" meanwhile
        _request_stop(info.path)
        if force and entry.process is not None and entry.process.is_alive():
            entry.process.kill()
        return True

    def delete(self, rid: str) -> None:
        """Remove a run's folder; refused while the run is queued or running."""
        info = self.get(rid)
        if info.active:
            raise RunError(f"run {info.id!r} is {info.state}: stop it before deleting it")
        shutil.rmtree(info.path)

    def set_notes(self, rid: str, notes: str = "", tags: list[str] | str = ()) -> RunInfo:
        """Keep the user's notes and tags in <run>/notes.json (tags: a list or 'a, b')."""
        info = self.get(rid)
        if isinstance(tags, str):
            tags = tags.split(",")
        tags = list(dict.fromkeys(t.strip() for t in tags if t and t.strip()))
        write_json(info.path / "notes.json", {"notes": (notes or "").strip(), "tags": tags})
        return self.get(rid)

    # --- reading the folders -------------------------------------------------------------
    def _dir(self, owner: str | None, name: str) -> Path:
        return self.root / USERS / owner / name if owner else self.root / name

    def get(self, rid: str) -> RunInfo:
        """The run with this id ("ada/x" in class mode, "x" otherwise)."""
        owner, name = split_id(rid)
        run_dir = self._dir(owner, name)
        if not (run_dir / "config.json").is_file():
            raise RunError(f"no run {run_id(owner, name)!r}")
        return self._info(run_dir, owner)

    def list(self, owner: str | None = None) -> list[RunInfo]:
        """Runs, newest first: everyone's (the top-level ones and every user's), or only
        those of `owner`."""
        folders: list[tuple[Path, str | None]] = []
        if owner is None:
            folders += [(d, None) for d in _subdirs(self.root) if d.name != USERS]
            owners = [d.name for d in _subdirs(self.root / USERS)]
        else:
            owners = [validate_owner(owner)]
        for who in owners:
            folders += [(d, who) for d in _subdirs(self.root / USERS / who)]
        runs = [self._info(d, who) for d, who in folders if (d / "config.json").is_file()]
        return sorted(runs, key=lambda r: r.created_at or 0, reverse=True)

    def _info(self, run_dir: Path, owner: str | None = None) -> RunInfo:
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
                       stop_requested=state in ACTIVE and "stop_requested_at" in status,
                       owner=owner)

    @staticmethod
    def _owned(run_dir: Path, pid: int | None) -> bool:
        """Is an active run still owned by a live app process? (status.json's pid is the
        app's, in process mode too: a child outliving its app is no owner)"""
        if pid == os.getpid():
            return str(run_dir) in _LIVE
        return pid_alive(pid)

    def metrics(self, rid: str) -> list[dict]:
        return read_metrics(self.get(rid).path)

    def metrics_csv(self, rid: str, path: str | Path) -> Path:
        """A run's metrics.jsonl as a CSV file (one column per metric, rows in order)."""
        import csv

        rows = self.metrics(rid)
        columns = list(dict.fromkeys(k for row in rows for k in row))
        path = Path(path)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
        return path


def _subdirs(folder: Path) -> list[Path]:
    try:
        return [d for d in folder.iterdir() if d.is_dir()]
    except FileNotFoundError:
        return []


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
        # a student's reward model learns from their own labels (the Reward tab sets it)
        pairs = store.preferences(include_ties=config.get("include_ties", False),
                                  annotator=config.get("annotator"))
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
    if result.status in ("nan", "oom"):  # NaN guard or out of memory: a failure, with why
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
