"""The run manager in class mode (issue #14): runs with owners, per-user folders and ids,
per-owner and class-wide limits, the queue position, and runs in child processes."""
import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import app_helpers
from moss_lab.runs import RunError, RunLimitError, RunManager, tick_job


# the shared poll, with the patience these tests need
wait_for = functools.partial(app_helpers.wait_for, timeout=30.0, every=0.02)


def gated_job(gate, started=None):
    """A thread-mode job that waits on `gate` (and says when it started)."""
    def job(run_dir, config, on_metrics, should_stop):
        if started is not None:
            started.append(run_dir.name)
        while not gate.wait(0.01):
            if should_stop():
                return {"stopped": True}
        return {"done": True}
    return job


@pytest.fixture
def manager(tmp_path):
    return RunManager(tmp_path / "runs", per_device=1, queue_limit=8)


# --- owners, folders and ids ------------------------------------------------------------
def test_owned_runs_live_in_per_user_folders_and_have_ids(manager):
    manager.submit("x", "toy", {}, tick_job)
    ada = manager.submit("x", "toy", {}, tick_job, owner="ada")   # the same name: fine
    manager.submit("y", "toy", {}, tick_job, owner="bob")
    assert ada == manager.root / "users" / "ada" / "x"
    wait_for(lambda: not any(r.active for r in manager.list()))
    info = manager.get("ada/x")
    assert (info.id, info.owner, info.name, info.path) == ("ada/x", "ada", "x", ada)
    assert info.state == "finished" and info.final == {"steps": 3, "pid": os.getpid()}
    top = manager.get("x")
    assert (top.id, top.owner) == ("x", None)
    assert sorted(r.id for r in manager.list()) == ["ada/x", "bob/y", "x"]
    assert [r.id for r in manager.list(owner="ada")] == ["ada/x"]
    assert manager.list(owner="carl") == []
    assert json.loads((ada / "status.json").read_text())["owner"] == "ada"


def test_ids_work_everywhere_a_name_did(manager, tmp_path):
    gate = threading.Event()
    manager.submit("r", "toy", {}, gated_job(gate), owner="ada")
    wait_for(lambda: manager.get("ada/r").state == "running")
    with pytest.raises(RunError, match="stop it before deleting"):
        manager.delete("ada/r")
    assert manager.stop("ada/r")
    wait_for(lambda: manager.get("ada/r").state == "stopped")
    assert manager.set_notes("ada/r", "mine", "a, b").tags == ["a", "b"]
    assert manager.metrics("ada/r") == []
    assert manager.metrics_csv("ada/r", tmp_path / "r.csv").exists()
    with pytest.raises(RunError, match="no run 'bob/r'"):
        manager.get("bob/r")
    with pytest.raises(RunError, match="no run 'r'"):  # a user's run is no top-level run
        manager.get("r")
    manager.delete("ada/r")
    assert not (manager.root / "users" / "ada" / "r").exists()


def test_owners_are_login_names_in_any_language(manager):
    """moss_lab.accounts allows letters of any language: such a student can run too."""
    manager.submit("r", "toy", {}, tick_job, owner="José")
    wait_for(lambda: manager.get("José/r").state == "finished")
    assert manager.list(owner="José")[0].path == manager.root / "users" / "José" / "r"


@pytest.mark.parametrize("owner", ["../x", "a/b", "..", ".hidden", "x" * 65, "a b", "a\\b",
                                   "<b>", "-x"])
def test_bad_owners_are_refused(manager, owner):
    with pytest.raises(RunError, match="owner"):
        manager.submit("r", "toy", {}, tick_job, owner=owner)
    assert list(manager.root.rglob("*")) == []


@pytest.mark.parametrize("rid", ["users", "../r", "ada/../r", "a/b/c", "/r", "ada/"])
def test_bad_ids_are_refused(manager, rid):
    with pytest.raises(RunError):
        manager.get(rid)


def test_users_is_a_reserved_top_level_name(manager):
    with pytest.raises(RunError, match="reserved"):
        manager.submit("users", "toy", {}, tick_job)
    manager.submit("users", "toy", {}, tick_job, owner="ada")  # inside a user's folder: fine
    wait_for(lambda: manager.get("ada/users").state == "finished")


def test_the_same_config_from_two_owners_is_no_double_click(tmp_path):
    manager = RunManager(tmp_path / "runs", repeat_window=5.0, per_device=2)
    gate = threading.Event()
    manager.submit("a", "toy", {"seed": 0}, gated_job(gate), owner="ada")
    manager.submit("b", "toy", {"seed": 0}, gated_job(gate), owner="bob")
    with pytest.raises(RunError, match="launched .* as 'ada/a'"):
        manager.submit("a2", "toy", {"seed": 0}, gated_job(gate), owner="ada")
    gate.set()


# --- limits and the queue -----------------------------------------------------------------
def test_one_run_per_student_at_a_time(manager):
    manager.max_per_owner = 1
    gate = threading.Event()
    manager.submit("a1", "toy", {}, gated_job(gate), owner="ada")
    with pytest.raises(RunLimitError) as refused:
        manager.submit("a2", "toy", {}, gated_job(gate), owner="ada")
    assert str(refused.value) == ("you have 1 run queued or running (the limit is 1): "
                                  "wait for it or stop it")
    assert not (manager.root / "users" / "ada" / "a2").exists()
    manager.submit("b1", "toy", {}, gated_job(gate), owner="bob")  # queued: counts too
    with pytest.raises(RunLimitError):
        manager.submit("b2", "toy", {}, gated_job(gate), owner="bob")
    manager.submit("t1", "toy", {}, gated_job(gate), owner="prof", limited=False)
    manager.submit("t2", "toy", {}, gated_job(gate), owner="prof", limited=False)
    manager.submit("mine", "toy", {}, gated_job(gate))  # single-user runs: no limit
    assert manager.stop("bob/b1")  # stopped while queued
    manager.submit("b2", "toy", {}, gated_job(gate), owner="bob")  # its place is free
    manager.max_per_owner = 2
    manager.submit("a2", "toy", {}, gated_job(gate), owner="ada")
    with pytest.raises(RunLimitError, match="you have 2 runs .* wait for one to finish"):
        manager.submit("a3", "toy", {}, gated_job(gate), owner="ada")
    gate.set()
    wait_for(lambda: not any(r.active for r in manager.list()))
    manager.max_per_owner = 1
    manager.submit("a3", "toy", {}, tick_job, owner="ada")  # ended runs do not count


def test_a_class_wide_maximum_a_fifo_queue_and_its_positions(tmp_path):
    manager = RunManager(tmp_path / "runs", per_device=2, queue_limit=8, max_running=1)
    gate, started = threading.Event(), []
    manager.submit("a", "toy", {}, gated_job(gate, started), owner="ada")
    wait_for(lambda: manager.get("ada/a").state == "running")
    manager.submit("b", "toy", {}, gated_job(gate, started), owner="bob", device="cuda")
    manager.submit("c", "toy", {}, gated_job(gate, started), owner="carl")
    manager.submit("d", "toy", {}, gated_job(gate, started), owner="dora")
    assert [manager.get(i).state for i in ("ada/a", "bob/b", "carl/c", "dora/d")] == [
        "running", "queued", "queued", "queued"]
    assert [manager.queue_position(i) for i in ("ada/a", "bob/b", "carl/c", "dora/d")] == [
        None, 1, 2, 3]
    assert manager.stop("bob/b") and manager.get("bob/b").state == "stopped"
    assert (manager.queue_position("carl/c"), manager.queue_position("dora/d")) == (1, 2)
    manager.max_running = 2  # the instructor allows one more: the next one starts at once
    wait_for(lambda: manager.get("carl/c").state == "running")
    assert manager.queue_position("dora/d") == 1 and manager.get("dora/d").state == "queued"
    gate.set()
    wait_for(lambda: manager.get("dora/d").state == "finished")
    assert started == ["a", "c", "d"]  # first come, first served; b was stopped


def test_a_busy_device_does_not_hold_up_another(tmp_path):
    manager = RunManager(tmp_path / "runs", per_device=1, queue_limit=8)
    gate = threading.Event()
    manager.submit("cpu1", "toy", {}, gated_job(gate))
    manager.submit("cpu2", "toy", {}, gated_job(gate))
    manager.submit("gpu1", "toy", {}, gated_job(gate), device="cuda")
    wait_for(lambda: manager.get("gpu1").state == "running")
    assert manager.get("cpu2").state == "queued" and manager.queue_position("cpu2") == 1
    gate.set()
    wait_for(lambda: manager.get("cpu2").state == "finished")


def test_a_number_of_runs_per_device(tmp_path):
    manager = RunManager(tmp_path / "runs", per_device={"cpu": 2, "default": 1}, queue_limit=8)
    gate = threading.Event()
    for name, device in [("c1", "cpu"), ("c2", "cpu"), ("c3", "cpu"), ("g1", "cuda"),
                         ("g2", "cuda:0")]:
        manager.submit(name, "toy", {}, gated_job(gate), device=device)
    wait_for(lambda: [manager.get(n).state for n in ("c1", "c2", "c3", "g1", "g2")] == [
        "running", "running", "queued", "running", "queued"])
    time.sleep(0.1)  # and no more start
    assert [manager.get(n).state for n in ("c3", "g2")] == ["queued", "queued"]
    gate.set()
    wait_for(lambda: not any(r.active for r in manager.list()))


# --- runs in child processes --------------------------------------------------------------
@pytest.fixture
def processes(tmp_path):
    manager = RunManager(tmp_path / "runs", per_device=2, queue_limit=8, processes=True)
    manager.warm_up()
    return manager


def status_of(manager, rid):
    return json.loads((manager.get(rid).path / "status.json").read_text())


def test_a_run_in_a_child_process_finishes_fails_and_stops(processes):
    processes.submit("ok", "tick", {"steps": 3}, tick_job, writes_metrics=False, owner="ada")
    processes.submit("bad", "tick", {"steps": 3, "fail": "loss is nan", "fail_at": 1},
                     tick_job, owner="ada")
    wait_for(lambda: not processes.get("ada/ok").active, timeout=120)
    info = processes.get("ada/ok")
    child = info.final["pid"]
    assert info.state == "finished" and child != os.getpid()
    assert [r["pid"] for r in processes.metrics("ada/ok")] == [child] * 3
    status = status_of(processes, "ada/ok")
    assert (status["mode"], status["pid"], status["child_pid"]) == ("process", os.getpid(), child)
    wait_for(lambda: not processes.get("ada/bad").active, timeout=60)
    assert processes.get("ada/bad").state == "failed"
    assert processes.get("ada/bad").reason == "RuntimeError: loss is nan"
    assert "Traceback" in status_of(processes, "ada/bad")["traceback"]

    processes.submit("long", "tick", {"steps": 100000, "sleep": 0.01}, tick_job,
                     writes_metrics=False)
    processes.submit("warm", "tick", {"phase_s": 600}, tick_job)
    wait_for(lambda: len(processes.metrics("long")) > 2, timeout=60)
    wait_for(lambda: (processes.get("warm").path / "progress.json").exists(), timeout=60)
    assert processes.stop("long") and processes.stop("warm")
    wait_for(lambda: not processes.get("long").active and not processes.get("warm").active)
    assert processes.get("long").state == "stopped"
    assert processes.get("long").reason == "stopped by request"
    assert 2 < processes.get("long").final["steps"] < 100000
    assert processes.get("warm").state == "stopped"
    assert processes.get("warm").reason == "stopped by request during warming up"


def test_a_job_that_cannot_go_to_a_process_runs_in_a_thread(processes):
    processes.submit("closure", "toy", {}, gated_job(threading.Event(), []))
    wait_for(lambda: processes.get("closure").state == "running")
    assert status_of(processes, "closure")["mode"] == "thread"
    processes.stop("closure")
    wait_for(lambda: processes.get("closure").state == "stopped")


def test_a_child_killed_from_outside_is_a_failure_with_a_reason(processes):
    processes.submit("victim", "tick", {"steps": 100000, "sleep": 0.01}, tick_job)
    wait_for(lambda: "child_pid" in status_of(processes, "victim"), timeout=60)
    os.kill(status_of(processes, "victim")["child_pid"], signal.SIGKILL)
    wait_for(lambda: not processes.get("victim").active)
    info = processes.get("victim")
    assert info.state == "failed"
    assert info.reason == ("the run's process ended unexpectedly (killed by signal 9: "
                           "out of memory?)")


def test_a_forced_stop_ends_a_run_that_does_not_look(processes):
    processes.submit("deaf", "tick", {"steps": 2, "spin": 600}, tick_job)  # 10 min per step
    wait_for(lambda: "child_pid" in status_of(processes, "deaf"), timeout=60)
    assert processes.stop("deaf")
    time.sleep(0.5)
    assert processes.get("deaf").state == "running"  # it does not check should_stop
    assert processes.stop("deaf", force=True)
    wait_for(lambda: not processes.get("deaf").active)
    info = processes.get("deaf")
    assert info.state == "stopped"
    assert info.reason == "stopped by request (its process was ended, killed by signal 9)"
    assert not alive(status_of(processes, "deaf")["child_pid"])


def alive(pid):
    """A process that exists and is no zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


APP = textwrap.dedent("""
    import sys, time
    from moss_lab.runs import RunManager, tick_job
    manager = RunManager(sys.argv[1], processes=True)
    manager.submit("train", "tick", {"steps": 100000, "sleep": 0.01}, tick_job,
                   writes_metrics=False, owner="ada")
    time.sleep(600)
""")


@pytest.mark.skipif(sys.platform != "linux", reason="checks /proc")
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_when_the_app_ends_its_runs_end_and_show_as_interrupted(tmp_path, how):
    """kill -9 (or Ctrl-C) of the app: no orphan training, and after a restart the run says
    it was interrupted (not "failed": the run did nothing wrong)."""
    root = tmp_path / "runs"
    app = subprocess.Popen([sys.executable, "-c", APP, str(root)])
    status = root / "users" / "ada" / "train" / "status.json"
    try:
        wait_for(lambda: status.exists() and "child_pid" in json.loads(status.read_text()),
                 timeout=120)
        child = json.loads(status.read_text())["child_pid"]
        wait_for(lambda: (root / "users" / "ada" / "train" / "metrics.jsonl").exists())
        assert alive(child)
        app.send_signal(how)
        app.wait(timeout=30)
        wait_for(lambda: not alive(child), timeout=10)
    finally:
        app.kill()
    assert json.loads(status.read_text())["state"] == "running"
    info = RunManager(root).get("ada/train")  # what the restarted app sees
    assert info.state == "interrupted" and "app stopped" in info.reason


def test_a_ppo_run_in_a_child_process(processes):
    """The app's own job, in a child: metrics, samples and the end state as in a thread."""
    from moss_lab.runs import ppo_job

    config = {"iterations": 2, "batch_size": 8, "minibatch_size": 8, "max_new_tokens": 6,
              "critic_pretrain_steps": 0, "save_final": False, "sample_every": 1}
    processes.submit("ppo", "ppo", config, ppo_job, owner="ada")
    wait_for(lambda: not processes.get("ada/ppo").active, timeout=180)
    info = processes.get("ada/ppo")
    assert info.state == "finished", info.reason
    assert status_of(processes, "ada/ppo")["mode"] == "process"
    assert [r["iteration"] for r in processes.metrics("ada/ppo")] == [1, 2]
    assert info.final["iterations"] == 2


def test_where_there_is_no_forkserver_runs_go_to_spawned_processes(tmp_path, monkeypatch):
    """macOS and Windows have no forkserver: the same child process, started by spawn
    (which imports the job's module afresh), finishes a run and stops another."""
    import multiprocessing

    from moss_lab import runs as runs_module

    monkeypatch.setattr(runs_module, "_PROCESS_CONTEXT", multiprocessing.get_context("spawn"))
    manager = RunManager(tmp_path / "runs", processes=True)
    manager.submit("ok", "tick", {"steps": 3}, tick_job, writes_metrics=False)
    wait_for(lambda: not manager.get("ok").active, timeout=120)
    info = manager.get("ok")
    assert info.state == "finished" and info.final["pid"] != os.getpid()
    assert status_of(manager, "ok")["mode"] == "process"
    manager.submit("long", "tick", {"steps": 100000, "sleep": 0.01}, tick_job,
                   writes_metrics=False)
    wait_for(lambda: len(manager.metrics("long")) > 2, timeout=120)
    assert manager.stop("long")
    wait_for(lambda: not manager.get("long").active, timeout=60)
    assert manager.get("long").state == "stopped"
