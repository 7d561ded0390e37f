"""The run manager: queueing, stopping, failures, and state read back from the folders."""
import functools
import json
import os
import subprocess
import threading

import pytest

import app_helpers
from moss_lab.files import read_jsonl, write_json
from moss_lab.run_folder import read_metrics
from moss_lab.runs import QueueFullError, RunError, RunManager, validate_name


# the shared poll, with the patience these tests need
wait_for = functools.partial(app_helpers.wait_for, timeout=20.0, every=0.01)


def counting_job(steps=3, gate=None):
    """A job that reports `steps` metric rows, waiting on `gate` before each one."""
    def job(run_dir, config, on_metrics, should_stop):
        for i in range(steps):
            if gate is not None:
                gate.wait()
            if should_stop():
                return {"steps": i}
            on_metrics({"step": i, "reward/score": float(i) * config["scale"]})
        return {"steps": steps}
    return job


@pytest.fixture
def manager(tmp_path):
    return RunManager(tmp_path / "runs", per_device=1, queue_limit=2)


def test_run_writes_its_folder_and_finishes(manager):
    run_dir = manager.submit("demo", "toy", {"scale": 2.0}, counting_job(), writes_metrics=False)
    wait_for(lambda: manager.get("demo").state == "finished")
    info = manager.get("demo")
    assert json.loads((run_dir / "config.json").read_text()) == {
        "kind": "toy", "device": "cpu", "scale": 2.0}
    assert [r["reward/score"] for r in read_metrics(run_dir)] == [0.0, 2.0, 4.0]
    assert info.final == {"steps": 3} and info.reason is None


def test_read_jsonl_skips_a_half_written_line(tmp_path):
    # a run appends rows while the app reads them: the last line may be cut mid-write
    path = tmp_path / "samples.jsonl"
    path.write_text('{"iteration": 1}\n{"iteration": 2}\n{"iterat')
    assert read_jsonl(path) == [{"iteration": 1}, {"iteration": 2}]
    assert read_jsonl(tmp_path / "missing.jsonl") == []


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", "", " ", ".hidden", "a\\b", "x" * 65])
def test_bad_run_names_are_refused(manager, name):
    with pytest.raises(RunError):
        manager.submit(name, "toy", {"scale": 1.0}, counting_job())
    assert list(manager.root.iterdir()) == []


def test_names_that_are_fine():
    assert validate_name(" ppo-beta_0.05 ") == "ppo-beta_0.05"


def test_duplicate_name_is_refused(manager):
    manager.submit("same", "toy", {"scale": 1.0}, counting_job())
    with pytest.raises(RunError, match="exists"):
        manager.submit("same", "toy", {"scale": 1.0}, counting_job())


def test_one_run_per_device_and_a_bounded_queue(manager):
    gate = threading.Event()
    manager.submit("r1", "toy", {"scale": 1.0}, counting_job(gate=gate))
    wait_for(lambda: manager.get("r1").state == "running")
    manager.submit("r2", "toy", {"scale": 1.0}, counting_job(gate=gate))
    manager.submit("r3", "toy", {"scale": 1.0}, counting_job(gate=gate))
    assert [manager.get(n).state for n in ("r1", "r2", "r3")] == ["running", "queued", "queued"]
    with pytest.raises(QueueFullError, match="full"):
        manager.submit("r4", "toy", {"scale": 1.0}, counting_job())
    assert not (manager.root / "r4").exists()
    gate.set()
    wait_for(lambda: all(manager.get(n).state == "finished" for n in ("r1", "r2", "r3")))


def test_stop_is_seen_by_the_job(manager):
    gate = threading.Event()
    manager.submit("long", "toy", {"scale": 1.0}, counting_job(steps=1000, gate=gate))
    manager.submit("waiting", "toy", {"scale": 1.0}, counting_job(gate=gate))
    wait_for(lambda: manager.get("long").state == "running")
    assert manager.stop("waiting") and manager.get("waiting").state == "stopped"
    assert manager.stop("long")
    gate.set()
    wait_for(lambda: manager.get("long").state == "stopped")
    assert manager.get("long").final == {"steps": 0}
    wait_for(lambda: manager.get("waiting").state == "stopped")
    assert not manager.stop("long")  # not active any more


def test_a_failing_job_reports_why(manager):
    def broken(run_dir, config, on_metrics, should_stop):
        raise ValueError("learning rate must be positive")

    manager.submit("bad", "toy", {}, broken)
    wait_for(lambda: manager.get("bad").state == "failed")
    assert manager.get("bad").reason == "ValueError: learning rate must be positive"
    assert "Traceback" in json.loads((manager.root / "bad" / "status.json").read_text())["traceback"]


def test_state_survives_a_restart_and_dead_runs_show_as_interrupted(manager, tmp_path):
    manager.submit("done", "toy", {"scale": 1.0}, counting_job())
    wait_for(lambda: manager.get("done").state == "finished")
    # a run left "running" by a process that is gone (pid of a finished child)
    ghost = manager.root / "ghost"
    ghost.mkdir()
    write_json(ghost / "config.json", {"kind": "ppo"})
    child = subprocess.Popen(["true"])
    child.wait()
    pid = child.pid
    write_json(ghost / "status.json", {"state": "running", "pid": pid, "created_at": 1.0})
    # a run "running" in this process but unknown to any manager (the app restarted)
    orphan = manager.root / "orphan"
    orphan.mkdir()
    write_json(orphan / "config.json", {"kind": "ppo"})
    write_json(orphan / "status.json", {"state": "queued", "pid": os.getpid()})

    fresh = RunManager(manager.root)  # what a restarted app sees
    states = {r.name: (r.state, r.reason) for r in fresh.list()}
    assert states["done"] == ("finished", None)
    assert states["ghost"][0] == "interrupted" and "app stopped" in states["ghost"][1]
    assert states["orphan"][0] == "interrupted"
    assert fresh.list()[-1].name == "orphan"  # newest first; no created_at sorts last


def test_unknown_run(manager):
    with pytest.raises(RunError, match="no run"):
        manager.get("missing")


def test_a_double_submission_is_refused_while_the_first_is_going(tmp_path):
    """Two Launch clicks 0.4 s apart started two identical runs; now the second is refused."""
    manager = RunManager(tmp_path / "runs", repeat_window=5.0)
    gate = threading.Event()
    manager.submit("first", "toy", {"scale": 1.0}, counting_job(gate=gate))
    with pytest.raises(RunError, match="launched .* ago as 'first'"):
        manager.submit("second", "toy", {"scale": 1.0}, counting_job(gate=gate))
    assert not (manager.root / "second").exists()
    manager.submit("other-seed", "toy", {"scale": 1.0, "seed": 1}, counting_job(gate=gate))
    gate.set()
    wait_for(lambda: manager.get("first").state == "finished")
    manager.submit("again", "toy", {"scale": 1.0}, counting_job())  # the first has ended


def test_a_stopped_run_says_why_and_shows_stopping_meanwhile(manager):
    gate = threading.Event()

    def job(run_dir, config, on_metrics, should_stop):
        gate.wait()
        if should_stop():  # what train_ppo writes when it stops
            write_json(run_dir / "result.json", {"status": "stopped",
                                                 "reason": "stopped by request before iteration 1"})
            return {"iterations": 0}
        return {"iterations": 1}

    manager.submit("slow-start", "toy", {}, job)
    wait_for(lambda: manager.get("slow-start").state == "running")
    assert manager.stop("slow-start")
    info = manager.get("slow-start")
    assert info.state == "running" and info.stop_requested  # the page says "stopping"
    gate.set()
    wait_for(lambda: manager.get("slow-start").state == "stopped")
    info = manager.get("slow-start")
    assert info.reason == "stopped by request before iteration 1" and not info.stop_requested
    assert RunManager(manager.root).get("slow-start").reason == info.reason  # after a restart


def test_notes_tags_csv_and_delete(manager, tmp_path):
    gate = threading.Event()
    manager.submit("busy", "toy", {"scale": 1.0}, counting_job(gate=gate), writes_metrics=False)
    wait_for(lambda: manager.get("busy").state == "running")
    with pytest.raises(RunError, match="stop it before deleting"):
        manager.delete("busy")
    info = manager.set_notes("busy", " beta 0.1 looks better ", "kl, baseline,, kl")
    assert (info.notes, info.tags) == ("beta 0.1 looks better", ["kl", "baseline"])
    gate.set()
    wait_for(lambda: manager.get("busy").state == "finished")
    path = manager.metrics_csv("busy", tmp_path / "busy.csv")
    assert path.read_text().splitlines() == ["step,reward/score", "0,0.0", "1,1.0", "2,2.0"]
    manager.delete("busy")
    assert not (manager.root / "busy").exists()
    with pytest.raises(RunError, match="no run"):
        manager.get("busy")


@pytest.mark.parametrize("kind", ["dpo", "grpo", "rloo", "best-of-n"])
def test_a_job_per_method(tmp_path, kind):
    """The app's jobs for the methods beside PPO: tiny runs through the run manager."""
    pytest.importorskip("trl")
    from moss_lab import runs

    tiny = {"max_new_tokens": 8, "eval_prompts": 8}
    configs = {"dpo": {**tiny, "eval_every": 1, "pairs": 24, "batch_size": 12, "min_pairs": 16},
               "grpo": {**tiny, "eval_every": 1, "steps": 2, "prompts_per_step": 2,
                        "group_size": 2, "reward": "gold"},
               "rloo": {**tiny, "eval_every": 1, "steps": 2, "prompts_per_step": 2,
                        "group_size": 2, "reward": "gold"},
               "best-of-n": {**tiny, "ns": (1, 2), "pool": 2, "reward": "gold"}}
    job = getattr(runs, kind.replace("-", "_") + "_job")
    manager = RunManager(tmp_path / "runs")
    manager.submit("m", kind, configs[kind], job)
    wait_for(lambda: not manager.get("m").active, timeout=180)
    info = manager.get("m")
    assert info.state == "finished", info.reason
    rows = manager.metrics("m")
    assert [r["step"] for r in rows] == ([1, 2] if kind == "best-of-n" else [0, 1, 2])
    assert {"reward/score", "reward/gold", "objective/kl", "response/length"} <= set(rows[-1])
    assert info.kind == kind and info.final["steps"] == 2
    assert (info.path / "policy").is_dir() == (kind != "best-of-n")
