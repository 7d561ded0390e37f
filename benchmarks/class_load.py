"""Class load: N logged-in students voting at once, optionally with a PPO run and a kill -9.

    .venv/bin/python benchmarks/class_load.py --labelers 20 --votes 100 [--kill-at 0.5]
        [--train] [--think-ms 0] [--port P] [--timeout 600] [--keep]
        [--profile] [--py-spy BIN] [--server-env NAME=VALUE] [--single-user]

What it does (issue #14, point 6):
  1. a throwaway data home (its models/ is a symlink to the normal one: nothing is built),
     a users file with student01..NN and one instructor (moss_lab.accounts), then
     `moss-lab app --users FILE` as a subprocess on 127.0.0.1 (loopback only);
  2. --train: the instructor launches a toy PPO run over the API (the Train tab's
     /ppo_launch) and a short solo phase times its iterations before the class starts;
  3. N student threads, each its own login and Gradio session over plain HTTP (httpx and
     Gradio's queue protocol: /login, /gradio_api/queue/join, /gradio_api/queue/data), log
     in (login_ms), wait for each other, fetch a pair (/start) and vote --votes times (left,
     right or tie at random); the latency of each vote call and what was on screen when the
     server acknowledged it are kept;
  4. --kill-at F: once F of all votes are acknowledged the server gets SIGKILL, is started
     again on the same home and port (restart_s: until it answers), and the students log in
     again and go on (a vote in flight at the kill is not acknowledged, and may or may not
     be stored: both are fine);
  5. at the end the labels SQLite file is read directly: every acknowledged vote must be
     stored with the choice made (lost), nobody twice on one pair (duplicates), PRAGMA
     integrity_check, and how many people judged each pair (pairs_judged_by; k=2 wanted).

The last line printed is one JSON object. --think-ms 0 (the default) is a saturation test:
every student votes again the moment the last vote returns, so the latency is about
labelers / votes_per_s; a person needs a second or more per pair (--think-ms 1000).
Plain HTTP rather than gradio_client: measured here, 2.7 ms of client CPU per vote against
60 ms, and no threads per student (gradio_client starts 7); the server sees the same calls.

Where the server's time goes: server_cpu_ms_per_vote (the app process's CPU over the load,
its training threads included); --profile runs the app inside this file (`--serve`) with
timers on the label store's methods, the pair pool and the Label tab's functions
(server_profile: calls, mean/p95 ms, biggest total first); --py-spy BIN samples every
thread of the app during the load (server_py_spy: the share of busy samples per part).
"""
from __future__ import annotations

import argparse
import functools
import glob
import json
import os
import random
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PASSWORD = "class-load-" + secrets.token_hex(6)  # one throwaway password for everyone
INSTRUCTOR = "teacher"
DISPLAYS = ("left", "right", "tie")  # the votes a student casts, at random
VOTE_API = {d: f"vote_{d}" for d in ("left", "right", "tie", "both_bad", "skip")}
SCREEN_IDS = ("label-prompt", "label-left", "label-right")  # elem_ids of what is shown
RUN_NAME = "class-load-ppo"


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


# --- the server ---------------------------------------------------------------------------
class Server:
    """`moss-lab app` in its own process group on 127.0.0.1, started and SIGKILLed at will."""

    def __init__(self, home: Path, port: int, users: Path | None, profile: bool,
                 env: dict | None = None):
        self.home, self.port, self.users, self.profile = home, port, users, profile
        self.env = env or {}
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.log = open(home / "server.log", "ab")

    def start(self, timeout: float = 180.0) -> float:
        """Start the app and wait until it answers HTTP; the seconds that took."""
        args = ["app", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.users is not None:
            args += ["--users", str(self.users)]
        cmd = ([sys.executable, __file__, "--serve", *args] if self.profile
               else [sys.executable, "-m", "moss_lab.cli", *args])
        env = {**os.environ, "MOSS_LAB_HOME": str(self.home), "HF_HUB_OFFLINE": "1",
               "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", **self.env}
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        import httpx

        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited with {self.proc.returncode}; see "
                                   f"{self.home / 'server.log'}")
            try:
                if httpx.get(self.url + "/", timeout=2).status_code < 500:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"the app did not answer within {timeout:.0f} s")

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the app process has used so far (its own threads,
        not a training child's)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> int:
        """SIGKILL the app process only (as `kill -9 PID` would); its process group id, to
        see whether anything it started (a training child) outlives it."""
        pgid = self.proc.pid
        self.proc.kill()
        self.killed_at = time.perf_counter()
        self.proc.wait()
        return pgid

    def stop(self) -> None:
        """End the app and everything it started (the end of the benchmark)."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()


def group_members(pgid: int) -> list[str]:
    """The command lines (shortened) of the live processes of a process group."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rpartition(")")[2].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                cmd = Path(stat).with_name("cmdline").read_bytes().replace(b"\0", b" ")
                found.append(cmd.decode(errors="replace").strip()[:120])
        except (OSError, IndexError, ValueError):
            continue  # it ended meanwhile
    return found


# --- a logged-in Gradio session over plain HTTP ---------------------------------------------
class ServerGone(Exception):
    """No answer (connection refused or reset): the server is down or restarting."""


class AppError(Exception):
    """The app answered with an error (gr.Error): the call did nothing."""


class Session:
    """One browser's worth of state: a login cookie and a Gradio session hash. The app's
    per-session gr.State lives on the server under the hash, as for a browser tab."""

    def __init__(self, url: str, name: str | None, password: str | None, config: dict | None,
                 timeout: float = 120.0):
        import httpx

        self.name = name
        self.http = httpx.Client(base_url=url, timeout=timeout)
        self.hash = uuid.uuid4().hex[:11]
        try:
            if name is not None:
                r = self.http.post("/login", data={"username": name, "password": password})
                if r.status_code != 200:
                    raise AppError(f"login of {name} refused: {r.status_code} {r.text[:200]}")
            self.config = config or self.http.get("/config").raise_for_status().json()
        except httpx.TransportError as err:
            self.http.close()
            raise ServerGone(str(err)) from err
        self.components = {c["id"]: c for c in self.config["components"]}
        self.deps = {d["api_name"]: d for d in self.config["dependencies"] if d.get("api_name")}

    def close(self) -> None:
        self.http.close()

    def elem(self, component_id: int) -> str | None:
        return self.components[component_id].get("props", {}).get("elem_id")

    def inputs(self, api_name: str, values: dict) -> list:
        """The data list of a call: `values` by elem_id (or "annotator"/"state" roles),
        the component's own default value for the rest, None for a gr.State."""
        data = []
        for cid in self.deps[api_name]["inputs"]:
            comp = self.components[cid]
            elem = comp.get("props", {}).get("elem_id")
            if elem in values:
                data.append(values[elem])
            elif comp.get("type") == "state":
                data.append(None)
            else:
                data.append(comp.get("props", {}).get("value"))
        return data

    def call(self, api_name: str, data: list | None = None, values: dict | None = None) -> dict:
        """Run one event as the browser does (join the queue, read this session's stream);
        its outputs by elem_id (or by position "#i" where a component has none)."""
        import httpx

        dep = self.deps[api_name]
        data = self.inputs(api_name, values or {}) if data is None else data
        body = {"data": data, "fn_index": dep["id"], "session_hash": self.hash,
                "trigger_id": (dep.get("targets") or [[None]])[0][0], "event_data": None}
        try:
            r = self.http.post("/gradio_api/queue/join", json=body)
            if r.status_code != 200:
                raise AppError(f"{api_name}: join refused {r.status_code} {r.text[:200]}")
            event = r.json()["event_id"]
            with self.http.stream("GET", "/gradio_api/queue/data",
                                  params={"session_hash": self.hash}) as stream:
                for line in stream.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    msg = json.loads(line[5:])
                    if msg.get("msg") == "unexpected_error":
                        raise ServerGone(msg.get("message", "unexpected error"))
                    if msg.get("msg") == "process_completed" and msg.get("event_id") == event:
                        output = msg.get("output") or {}
                        if not msg.get("success"):
                            raise AppError(f"{api_name}: {output.get('error') or output}")
                        return self._named(dep, output.get("data") or [])
        except (httpx.TransportError, httpx.RemoteProtocolError) as err:
            raise ServerGone(f"{api_name}: {type(err).__name__}: {err}") from err
        raise ServerGone(f"{api_name}: the stream ended without a result")

    def _named(self, dep: dict, values: list) -> dict:
        out = {}
        for i, (cid, value) in enumerate(zip(dep["outputs"], values)):
            out[self.elem(cid) or f"#{i}"] = value
        return out


def screen_of(outputs: dict):
    """(prompt, left, right) as shown; None when the outputs hold no pair."""
    values = [outputs.get(e) for e in SCREEN_IDS]
    values = [v.get("value") if isinstance(v, dict) else v for v in values]  # gr.update
    if not values[1] and not values[2]:
        return None
    return tuple("" if v == "(empty)" else (v or "") for v in values)


# --- the simulated class ----------------------------------------------------------------------
class Shared:
    """What the students and the coordinator share: counts, the kill trigger, server up."""

    def __init__(self, total: int, kill_at: float | None):
        self.lock = threading.Lock()
        self.acked = 0
        self.total = total
        self.kill_after = None if kill_at is None else max(1, int(kill_at * total))
        self.kill_now = threading.Event()
        self.kill = lambda: None  # SIGKILLs the server (set by main)
        self.killed_after: int | None = None  # acknowledged votes at the kill
        self.up = threading.Event()
        self.up.set()
        self.done = threading.Event()  # the deadline passed
        self.url = ""
        self.config: dict | None = None
        self.ready: threading.Barrier | None = None  # everyone logged in: the votes start

    def ack(self) -> None:
        with self.lock:
            self.acked += 1
            if self.kill_after is not None and self.acked >= self.kill_after \
                    and not self.kill_now.is_set():
                # right here, so that the kill comes after exactly this many votes
                self.up.clear()
                self.kill()
                self.killed_after = self.acked
                self.kill_now.set()


class Student(threading.Thread):
    def __init__(self, name: str, password: str | None, votes: int, think_s: float,
                 shared: Shared, seed: int):
        super().__init__(daemon=True, name=name)
        self.name, self.password, self.votes, self.think_s = name, password, votes, think_s
        self.shared, self.rng = shared, random.Random(seed)
        self.latency_ms: list[float] = []
        self.acked: list[dict] = []  # what was on screen, the vote, when
        self.errors: list[str] = []
        self.reconnects = 0
        self.login_ms: float | None = None
        self.session: Session | None = None

    def values(self) -> dict:
        """The name box: what single-user mode votes under (class mode ignores it)."""
        return {"annotator": self.name}

    def connect(self) -> tuple:
        """A fresh login and session, and the pair it shows."""
        if self.session is not None:
            self.session.close()
        self.session = Session(self.shared.url, None if self.password is None else self.name,
                               self.password, self.shared.config)
        screen = screen_of(self.session.call("start", values=self.values()))
        if screen is None:
            raise AppError("start showed no pair")
        return screen

    def run(self) -> None:
        t0 = time.perf_counter()
        screen, refused = None, 0
        while screen is None and not self.shared.done.is_set():
            try:
                screen = self.connect()
            except (ServerGone, AppError) as err:
                self.errors.append(f"connect: {err}"[:300])
                refused += isinstance(err, AppError)
                if refused >= 10:  # the app keeps saying no: nothing to measure
                    self.shared.ready.abort()
                    return
                time.sleep(0.2)
        self.login_ms = (time.perf_counter() - t0) * 1000
        try:  # the class logs in first (a login costs a password hash), then votes
            self.shared.ready.wait(timeout=120)
        except threading.BrokenBarrierError:
            pass
        while len(self.acked) < self.votes and not self.shared.done.is_set():
            if screen is None:
                self.shared.up.wait()
                try:
                    screen = self.connect()
                except (ServerGone, AppError) as err:
                    self.errors.append(f"connect: {err}"[:300])
                    time.sleep(0.2)
                    continue
            display = self.rng.choice(DISPLAYS)
            t0 = time.perf_counter()
            try:
                out = self.session.call(VOTE_API[display], values=self.values())
            except ServerGone as err:
                self.errors.append(f"vote: {err}"[:300])
                screen, self.reconnects = None, self.reconnects + 1
                continue
            except AppError as err:  # refused: start over with a fresh session and pair
                self.errors.append(f"vote: {err}"[:300])
                screen = None
                time.sleep(0.1)
                continue
            self.latency_ms.append((time.perf_counter() - t0) * 1000)
            self.acked.append({"annotator": self.name, "prompt": screen[0], "left": screen[1],
                               "right": screen[2], "display": display, "at": time.time()})
            self.shared.ack()
            screen = screen_of(out)  # the next pair (None: fetch one)
            if self.think_s:
                time.sleep(self.think_s)
        if self.session is not None:
            self.session.close()


# --- PPO during the load (--train) -----------------------------------------------------------
class MetricsWatcher(threading.Thread):
    """Polls the run's metrics.jsonl and stamps each new row with the wall time it appeared."""

    def __init__(self, home: Path, name: str):
        super().__init__(daemon=True)
        self.home, self.name, self.rows, self.stop = home, name, [], False

    def path(self) -> Path | None:
        found = glob.glob(str(self.home / "runs" / "**" / self.name / "metrics.jsonl"),
                          recursive=True)
        return Path(found[0]) if found else None

    def run(self) -> None:
        while not self.stop:
            path = self.path()
            if path is not None:
                lines = path.read_text().splitlines()
                for line in lines[len(self.rows):]:
                    try:
                        self.rows.append((time.time(), json.loads(line)))
                    except json.JSONDecodeError:
                        break  # a line being written: next time
            time.sleep(0.2)

    def step_s(self, start: float, end: float, skip_first: bool = True) -> dict:
        """Seconds per iteration of the rows that appeared in [start, end]."""
        steps = [r["time/step_s"] for t, r in self.rows[1 if skip_first else 0:]
                 if start <= t <= end and "time/step_s" in r]
        return {"iterations": len(steps),
                "s_per_iter": round(sum(steps) / len(steps), 3) if steps else None}


def launch_ppo(teacher: Session, iterations: int) -> str:
    teacher.call("ppo_launch", values={"ppo-name": RUN_NAME, "ppo-iterations": iterations})
    return RUN_NAME


def run_state(teacher: Session, owner: str | None) -> str | None:
    """The run's state as the app shows it (/run_status), by id in class mode."""
    for run_id in ([f"{owner}/{RUN_NAME}"] if owner else []) + [RUN_NAME]:
        try:
            return teacher.call("run_status", data=[run_id])["#0"]["state"]
        except (AppError, KeyError, TypeError):
            continue
    return None


def stop_ppo(teacher: Session, owner: str | None) -> None:
    for run_id in ([f"{owner}/{RUN_NAME}"] if owner else []) + [RUN_NAME]:
        try:
            teacher.call("stop_run", data=[run_id])
            return
        except AppError:
            continue


# --- the store, read directly ----------------------------------------------------------------
def check_store(db: Path, acked: list[dict]) -> dict:
    """lost / duplicates / integrity / pair overlap, from the SQLite file itself."""
    from moss_lab.labels import display_to_choice

    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
    votes = [dict(r) for r in con.execute("SELECT * FROM votes")]
    by_who: dict[str, list[dict]] = {}
    for v in votes:
        by_who.setdefault(v["annotator"], []).append(v)

    def shown(v):  # (left, right) as that person saw the pair
        return ((v["response_a"], v["response_b"]) if v["shown_left"] != "B"
                else (v["response_b"], v["response_a"]))

    lost, matched = 0, set()
    for a in acked:
        hit = [v for v in by_who.get(a["annotator"], [])
               if shown(v) == (a["left"], a["right"]) and v["id"] not in matched
               and v["choice"] == display_to_choice(a["display"], v["shown_left"] or "A")]
        if hit:
            matched.add(hit[0]["id"])
        else:
            lost += 1
    duplicates = con.execute("SELECT COUNT(*) FROM (SELECT 1 FROM votes GROUP BY annotator, "
                             "pair_id HAVING COUNT(*) > 1)").fetchone()[0]
    judged = {}
    for (n,) in con.execute("SELECT COUNT(DISTINCT annotator) FROM votes GROUP BY pair_id"):
        key = str(n) if n < 3 else "3+"
        judged[key] = judged.get(key, 0) + 1
    pairs = con.execute("SELECT COUNT(*) FROM pairs").fetchone()[0]
    con.close()
    return {"votes_stored": len(votes), "lost": lost, "duplicates": duplicates,
            "integrity": integrity, "pairs_stored": pairs,
            "pairs_judged_by": dict(sorted(judged.items()))}


# --- the benchmark ------------------------------------------------------------------------------
def make_home(labelers: int, single_user: bool) -> tuple[Path, Path | None, list[str]]:
    from moss_lab.paths import models_dir

    shared_models = models_dir()  # the normal data home's models, shared: nothing rebuilt
    home = Path(tempfile.mkdtemp(prefix="moss-lab-class-load-"))
    (home / "models").symlink_to(shared_models, target_is_directory=True)
    names = [f"student{i:02d}" for i in range(1, labelers + 1)]
    if single_user:
        return home, None, names
    from moss_lab.accounts import add_users

    users = home / "users.toml"
    add_users(users, {INSTRUCTOR: PASSWORD}, "instructor")
    add_users(users, {name: PASSWORD for name in names}, "student")
    return home, users, names


def preload(home: Path, n: int) -> dict:
    """Import n records (prompt/chosen/rejected, by an annotator "imported") into the new
    home's label store before the app starts; the import's own time."""
    from benchmarks.label_store import write_records
    from moss_lab.labels import LabelStore

    folder = home / "preload"
    folder.mkdir()
    store = LabelStore(home / "labels.sqlite")
    t0 = time.perf_counter()
    try:
        for path in write_records(folder, n):
            store.import_file(path, annotator="imported")
        stored = store.progress()["total"]
    finally:
        store.close()
    shutil.rmtree(folder)
    return {"records": n, "votes_stored": stored, "import_s": round(time.perf_counter() - t0, 1)}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--labelers", type=int, default=20)
    p.add_argument("--votes", type=int, default=100, help="votes per labeler")
    p.add_argument("--kill-at", type=float, default=None,
                   help="SIGKILL and restart the server after this share of all votes")
    p.add_argument("--train", action="store_true", help="a toy PPO run trains meanwhile")
    p.add_argument("--think-ms", type=float, default=0.0, help="pause after each vote")
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--timeout", type=float, default=600.0, help="total seconds, at most")
    p.add_argument("--solo-iters", type=int, default=5,
                   help="--train: PPO iterations timed before the class starts")
    p.add_argument("--single-user", action="store_true",
                   help="no accounts (today's mode): names typed in the annotator box")
    p.add_argument("--profile", action="store_true",
                   help="time the server's store calls and Label handlers (profile.json)")
    p.add_argument("--py-spy", default=None, metavar="BIN",
                   help="sample the server with this py-spy during the load (all threads)")
    p.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                   help="an environment variable for the app (to try a setting)")
    p.add_argument("--preload", type=int, default=0, metavar="N",
                   help="import N preference records into the label store first (the "
                        "issue's 'after importing 200k records')")
    p.add_argument("--keep", action="store_true", help="keep the temporary data home")
    args = p.parse_args(argv)
    t_start = time.monotonic()
    deadline = t_start + args.timeout

    home, users, names = make_home(args.labelers, args.single_user)
    if args.preload:
        result_preload = preload(home, args.preload)
    env = dict(item.split("=", 1) for item in args.server_env)
    server = Server(home, args.port or free_port(), users, args.profile, env)
    shared = Shared(args.labelers * args.votes, args.kill_at)
    shared.kill = server.kill
    result: dict = {"labelers": args.labelers, "votes_per_labeler": args.votes,
                    "mode": "single-user" if args.single_user else "class",
                    "train": args.train, "kill_at": args.kill_at, "think_ms": args.think_ms,
                    **({"server_env": env} if env else {}),
                    **({"preload": result_preload} if args.preload else {})}
    teacher, watcher, spy = None, None, None
    owner = None if args.single_user else INSTRUCTOR
    password = None if args.single_user else PASSWORD
    try:
        result["start_s"] = round(server.start(), 2)
        shared.url = server.url
        teacher = Session(server.url, owner, password, None)
        shared.config = teacher.config  # the page layout is the same for everyone
        if args.train:
            watcher = MetricsWatcher(home, launch_ppo(teacher, iterations=5000))
            watcher.start()
            t_solo = time.time()
            while len(watcher.rows) < args.solo_iters + 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            result["ppo_solo"] = watcher.step_s(t_solo, time.time())

        students = [Student(n, password, args.votes, args.think_ms / 1000, shared, seed=i)
                    for i, n in enumerate(names)]
        shared.ready = threading.Barrier(len(students) + 1)
        for s in students:
            s.start()
        try:
            shared.ready.wait(timeout=180)
        except threading.BrokenBarrierError:
            pass
        logins = [s.login_ms for s in students if s.login_ms is not None]
        result["login_ms"] = {"p50": round(percentile(logins, 50) or 0, 1),
                              "max": round(max(logins, default=0), 1)}
        spy = start_spy(args.py_spy, server, home) if args.py_spy else None
        t_load, cpu_load = time.time(), server.cpu_s()
        while any(s.is_alive() for s in students):
            if time.monotonic() > deadline:
                shared.done.set()
                result["timed_out"] = True
                break
            if shared.kill_now.is_set() and "restart_s" not in result:
                pgid = server.proc.pid
                result["killed_after_acked"] = shared.killed_after
                # what the app started (a training child, a forkserver) must end by itself
                t_dead = time.perf_counter()
                while group_members(pgid) and time.perf_counter() - t_dead < 5:
                    time.sleep(0.1)
                result["orphans_after_kill"] = group_members(pgid)  # after 5 s: [] wanted
                result["children_gone_s"] = round(time.perf_counter() - t_dead, 1)
                if result["orphans_after_kill"]:
                    os.killpg(pgid, signal.SIGKILL)
                result["restart_s"] = round(server.start(), 2)
                result["kill_to_answer_s"] = round(time.perf_counter() - server.killed_at, 2)
                shared.config = None  # component ids are stable, but read it again
                teacher.close()
                teacher = Session(server.url, owner, password, None)
                shared.config = teacher.config
                shared.up.set()
            time.sleep(0.05)
        for s in students:
            s.join(timeout=5)
        t_end = time.time()
        if "restart_s" not in result and shared.acked:  # a restart resets the counter
            result["server_cpu_ms_per_vote"] = round(
                1000 * (server.cpu_s() - cpu_load) / max(shared.acked, 1), 1)
        if spy is not None:
            result["server_py_spy"] = stop_spy(spy, home)

        latency = [ms for s in students for ms in s.latency_ms]
        acked = [a for s in students for a in s.acked]
        result["votes_acked"] = len(acked)
        result["latency_ms"] = {k: round(percentile(latency, q), 1) if latency else None
                                for k, q in (("p50", 50), ("p95", 95), ("max", 100))}
        outage = result.get("kill_to_answer_s", 0.0)  # not counted: nobody could vote
        result["votes_per_s"] = round(len(acked) / max(t_end - t_load - outage, 1e-9), 1)
        result["load_s"] = round(t_end - t_load, 1)
        result["errors"] = sum(len(s.errors) for s in students)
        result["reconnects"] = sum(s.reconnects for s in students)
        result["error_samples"] = sorted({e for s in students for e in s.errors})[:5]
        if args.train:
            result["ppo_during_load"] = watcher.step_s(t_load, t_end)
            if args.kill_at is not None:
                result["run_state_after_restart"] = run_state(teacher, owner)
            stop_ppo(teacher, owner)
        teacher.close()
        teacher = None
        if args.profile:
            result["server_profile"] = read_profile(home)
    finally:
        if watcher is not None:
            watcher.stop = True
        if teacher is not None:
            teacher.close()
        server.stop()
    result.update(check_store(home / "labels.sqlite", acked))
    result["machine_load_1min"] = round(os.getloadavg()[0], 2)
    result["wall_s"] = round(time.monotonic() - t_start, 1)
    if args.keep:
        result["home"] = str(home)
    else:
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(result))
    return 0


# --- --serve: the app with timers on its hot calls (--profile) ---------------------------------
TIMED_TAB = ("vote", "start", "next_pair", "show", "progress_text", "stats_text", "history",
             "panel", "disagreements_frame", "on_load")


def serve(argv: list[str]) -> int:
    """Run `moss-lab app ARGV` with the LabelStore methods and Label-tab functions timed;
    totals (calls, total ms, max ms, per thread-safe dict) go to <home>/profile.json."""
    from moss_lab import labels
    from moss_lab.app import tab_label

    stats: dict[str, list[float]] = {}
    lock = threading.Lock()

    def timed(name, fn):
        @functools.wraps(fn)  # the signature too: Gradio fills `request: gr.Request` by it
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    stats.setdefault(name, []).append(ms)
        return wrapper

    for name, fn in list(vars(labels.LabelStore).items()):
        if callable(fn) and not name.startswith("_"):  # the public calls (they hold the rest)
            setattr(labels.LabelStore, name, timed(f"store.{name}", fn))
    labels.PairPool.get = timed("pool.get", labels.PairPool.get)
    for name in TIMED_TAB:  # module globals: the handlers look them up at call time
        if callable(getattr(tab_label, name, None)):
            setattr(tab_label, name, timed(f"tab_label.{name}", getattr(tab_label, name)))

    def dump():
        out = Path(os.environ["MOSS_LAB_HOME"]) / "profile.json"
        while True:
            time.sleep(1.0)
            with lock:
                summary = {k: {"calls": len(v), "total_ms": round(sum(v), 1),
                               "mean_ms": round(sum(v) / len(v), 2),
                               "p95_ms": round(percentile(v, 95), 2), "max_ms": round(max(v), 1)}
                           for k, v in stats.items()}
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(summary))
            tmp.replace(out)

    threading.Thread(target=dump, daemon=True).start()
    from moss_lab.cli import main as cli_main

    return cli_main(argv)


def read_profile(home: Path) -> dict:
    """The server's timings (--profile), biggest total first (after a kill: since restart)."""
    time.sleep(1.2)  # the server writes every second
    try:
        data = json.loads((home / "profile.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return dict(sorted(data.items(), key=lambda kv: -kv[1]["total_ms"])[:15])


# --- --py-spy: where the server's CPU goes, all threads (Gradio's included) -------------------
def start_spy(binary: str, server: Server, home: Path) -> subprocess.Popen:
    return subprocess.Popen([binary, "record", "--pid", str(server.proc.pid), "--format", "raw",
                             "--rate", "100", "--nonblocking", "--output",
                             str(home / "py-spy.txt")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_spy(spy: subprocess.Popen, home: Path, top: int = 12) -> dict:
    """Share of the server's busy samples per leaf function and per package, and the
    inclusive share of moss_lab's and Gradio's own frames (a frame counted once per stack)."""
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        spy.kill()
    try:
        lines = (home / "py-spy.txt").read_text().splitlines()
    except OSError:
        return {}
    leaf, package, inclusive, buckets, total = {}, {}, {}, {}, 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n, frames = int(count), stack.split(";")
        if any(frames[-1].startswith(w) for w in WAITING):
            continue  # a thread waiting, not working (py-spy --nonblocking counts some)
        total += n
        bucket = next((b for b, marks in BUCKETS if any(m in stack for m in marks)), "other")
        buckets[bucket] = buckets.get(bucket, 0) + n
        name = frames[-1].split(":")[0] + ")" if ":" in frames[-1] else frames[-1]
        leaf[name] = leaf.get(name, 0) + n
        pkg = _package(frames[-1])
        package[pkg] = package.get(pkg, 0) + n
        for f in {f.split(":")[0] + ")" for f in frames if "moss_lab" in f or "gradio/" in f}:
            inclusive[f] = inclusive.get(f, 0) + n

    def share(d):
        return {k: round(100 * v / total, 1) for k, v in
                sorted(d.items(), key=lambda kv: -kv[1])[:top]}
    return {"busy_samples": total, "where_pct": share(buckets), "leaf_pct": share(leaf),
            "package_pct": share(package), "inclusive_pct": share(inclusive)}


WAITING = ("Condition.wait ", "EpollSelector.select ", "Event.wait ", "Blocks.block_thread ",
           "_worker (concurrent", "sleep ")
BUCKETS = [  # (what, a frame that marks it), first match wins
    ("login: password hash", ("accounts.py",)),
    ("pair generation (PairPool)", ("PairPool._run",)),
    ("training run", ("moss_lab/ppo/", "moss_lab/runs.py")),
    ("gradio queue analytics (pandas)", ("compute_analytics_summary",)),
    ("label store (SQLite)", ("moss_lab/labels.py",)),
    ("label tab handlers (rest)", ("moss_lab/app/tab_label.py",)),
    ("other app handlers", ("moss_lab/app/",)),
    ("gradio queue + events", ("gradio/queueing.py", "gradio/blocks.py", "gradio/utils.py")),
    ("http: uvicorn/starlette/fastapi/gradio routes", ("uvicorn", "starlette", "fastapi",
                                                       "gradio/routes.py", "gradio/route_utils",
                                                       "brotli", "h11", "httptools")),
    ("asyncio event loop", ("asyncio/",)),
]


def _package(frame: str) -> str:
    """The package a frame's file belongs to: 'gradio', 'starlette', 'moss_lab', 'asyncio'..."""
    path = frame.rpartition("(")[2]
    if "site-packages/" in path:
        return path.split("site-packages/")[1].split("/")[0].split(".")[0]
    if "moss_lab/" in path:
        return "moss_lab"
    file = Path(path.split(":")[0])
    if file.parent.name.startswith("python3"):  # a stdlib module: its name
        return file.stem
    return file.parent.name if "/" in path else path


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        sys.exit(serve(sys.argv[2:]))
    sys.exit(main())
