"""Every preparation phase reports its progress (progress.json, the status line) and Stop
reaches it: base-model build, pair generation, toy reward-model build, critic pre-training.
"""
import functools
import hashlib
import threading
import time

import pytest

import app_helpers
from moss_lab import progress as progress_module
from moss_lab import runs
from moss_lab.files import read_json
from moss_lab.progress import PhaseFile, StopRequested, phase, phase_text, reporting
from moss_lab.runs import RunManager

STOP_LATENCY_S = 5.0  # the goal; measured under load from other jobs on 2 cores


# the shared poll, with the patience these tests need
wait_for = functools.partial(app_helpers.wait_for, timeout=120.0, every=0.02)


def progress(run_dir) -> dict:
    return read_json(run_dir / "progress.json", {}) or {}


def stop_during(manager, name, run_dir, phase_has: str, min_done: int = 0) -> float:
    """Wait until the run reports a phase containing `phase_has` (done >= min_done), press
    Stop, and return the seconds until the run is stopped."""
    wait_for(lambda: phase_has in progress(run_dir).get("phase", "")
             and (progress(run_dir).get("done") or 0) >= min_done)
    start = time.monotonic()
    assert manager.stop(name)
    wait_for(lambda: manager.get(name).state not in runs.ACTIVE, timeout=60)
    latency = time.monotonic() - start
    print(f"\n{name}: stopped {latency:.2f} s after Stop during {progress(run_dir)['phase']!r}")
    return latency


def folder_hash(folder) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty data home of its own (the shipped models are copied into it on first use)."""
    monkeypatch.setenv("MOSS_LAB_HOME", str(tmp_path))
    return tmp_path


# --- the mechanism ------------------------------------------------------------------------
def test_phase_outside_a_run_does_nothing_and_inside_reports_and_stops():
    phase("anything", 1, 2)  # no reporter: a no-op (notebooks, the CLI)
    seen, stop = [], threading.Event()
    with reporting(seen.append, stop.is_set):
        phase("building", 3, 10)
        phase("building", 4, 10)
        stop.set()
        with pytest.raises(StopRequested, match="^stopped by request during building$"):
            phase("building", 5, 10)
    phase("after the block", 1, 2)
    assert [(r["phase"], r["done"], r["total"]) for r in seen] == [("building", 3, 10),
                                                                     ("building", 4, 10)]
    record = {"phase": "generating 40 pairs", "done": 3, "total": 9, "unit": "batch",
              "elapsed_s": 12.4}
    assert phase_text(record) == "generating 40 pairs (batch 3/9, 12 s)"
    assert phase_text({"phase": "loading", "elapsed_s": 0.2}) == "loading (0 s)"
    assert phase_text(None) == ""


def test_phase_file_writes_at_most_twice_a_second_but_always_a_new_phase(tmp_path, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    writes = []
    monkeypatch.setattr(progress_module, "write_json", lambda path, obj: writes.append(dict(obj)))
    on_phase = PhaseFile(tmp_path)
    for done in range(1, 6):  # five calls within 0.4 s: only the first is written
        clock[0] = 100.0 + 0.1 * (done - 1)
        on_phase({"phase": "a", "done": done, "total": 10})
    clock[0] = 100.6
    on_phase({"phase": "a", "done": 6, "total": 10})  # 0.6 s after the first: written
    on_phase({"phase": "b", "done": 1, "total": 10})  # a new phase: at once
    on_phase({"phase": "b", "done": 10, "total": 10})  # its end: at once
    assert [(w["phase"], w["done"]) for w in writes] == [("a", 1), ("a", 6), ("b", 1), ("b", 10)]


def test_simulated_pairs_are_toy_pairs_and_report_token_steps(toy_policy):
    from moss_lab.preferences import toy_pairs
    from moss_lab.toyworld import SimulatedAnnotator

    model, tokenizer = toy_policy
    seen = []
    with reporting(seen.append, lambda: False):
        pairs = progress_module.simulated_pairs(model, tokenizer, 30, SimulatedAnnotator(0.5, seed=1),
                                     seed=4, max_new_tokens=12)
    assert pairs == toy_pairs(model, tokenizer, 30, SimulatedAnnotator(0.5, seed=1), seed=4,
                              max_new_tokens=12)
    assert seen and {r["phase"] for r in seen} == {"generating 30 simulated pairs"}
    assert [r["done"] for r in seen] == sorted(r["done"] for r in seen)
    assert all(r["total"] == 12 and r["done"] <= 12 for r in seen)  # one batch of 12 steps
    assert not model._forward_pre_hooks  # the hook is removed


# --- Stop in every phase, through the run manager -------------------------------------------
@pytest.mark.slow
def test_stop_during_a_forced_base_model_build_keeps_the_cached_model(home):
    from moss_lab.models import build_toy_model

    cached = build_toy_model("xs")  # the shipped copy
    before = folder_hash(cached)
    manager = RunManager(home / "runs")
    run_dir = manager.submit("rebuild", "build", {},
                             lambda *a: build_toy_model("xs", force=True, progress=False))
    latency = stop_during(manager, "rebuild", run_dir, "base model", min_done=2)
    info = manager.get("rebuild")
    assert info.state == "stopped", info.reason
    assert info.reason == "stopped by request during building the toy-xs base model"
    assert latency < STOP_LATENCY_S
    assert folder_hash(cached) == before  # the cache is untouched
    assert not [p for p in cached.parent.iterdir() if p.name.startswith(".building")]


@pytest.mark.slow
def test_stop_during_the_toy_reward_model_build_pairs_and_training(home, monkeypatch):
    from moss_lab.ppo import toy

    monkeypatch.setattr(toy, "TOY_RM_EVAL_PAIRS", 100)  # not shipped: trained, in seconds
    manager = RunManager(home / "runs")
    job = lambda *a: toy.toy_reward_model_dir("toy")  # noqa: E731
    # 3000 pairs to stop in: 300 could all be sampled between the test seeing the phase and
    # pressing Stop (the run was then stopped while generating the held-out pairs)
    for name, phase_has, n_pairs in (("in-pairs", "generating 3000 pairs", 3000),
                                     ("in-training", "training", 300)):
        monkeypatch.setattr(toy, "TOY_RM_PAIRS", n_pairs)
        run_dir = manager.submit(name, "build-rm", {}, job)
        latency = stop_during(manager, name, run_dir, phase_has, min_done=2)
        info = manager.get(name)
        assert info.state == "stopped" and phase_has in info.reason, info.reason
        assert info.reason.startswith("stopped by request during building the toy reward model")
        assert latency < STOP_LATENCY_S
    models = home / "models"
    # nothing half-built (the two base models are copies of the shipped ones)
    assert sorted(p.name for p in models.iterdir()) == ["toy-xs-deep-seed0-v1", "toy-xs-seed0-v1"]


@pytest.mark.slow
def test_stop_during_pair_generation_of_a_reward_run(home):
    manager = RunManager(home / "runs")
    config = {"reward": {"epochs": 1}, "labels_db": str(home / "labels.sqlite"),
              "simulated": 4000}
    run_dir = manager.submit("rm", "reward", config, runs.reward_job)
    latency = stop_during(manager, "rm", run_dir, "generating 4000 simulated pairs", min_done=2)
    info = manager.get("rm")
    assert info.state == "stopped" and latency < STOP_LATENCY_S
    assert info.reason == "stopped by request during generating 4000 simulated pairs"
    assert not (run_dir / "model").exists() and not (run_dir / "metrics.jsonl").exists()


@pytest.mark.slow
def test_stop_during_critic_pretraining_saves_no_policy_and_the_status_shows_the_phase(
        home, monkeypatch):
    from moss_lab.app import context, watch

    monkeypatch.setattr(context, "_LAB", None)
    lab = context.get_lab()
    monkeypatch.setattr(lab, "runs", RunManager(home / "runs"))
    config = {"iterations": 3, "critic_pretrain_steps": 500, "batch_size": 8,
              "minibatch_size": 8, "max_new_tokens": 8}
    run_dir = lab.runs.submit("ppo", "ppo", config, runs.ppo_job)
    wait_for(lambda: (progress(run_dir).get("done") or 0) >= 2)
    status = watch.status_line("ppo")
    assert "0 points · critic pre-training (step " in status and "/500, " in status, status
    latency = stop_during(lab.runs, "ppo", run_dir, "critic pre-training", min_done=2)
    info = lab.runs.get("ppo")
    assert info.state == "stopped" and latency < STOP_LATENCY_S
    assert info.reason.startswith("stopped by request during critic pre-training")
    assert not (run_dir / "policy").exists()
    assert "Why:** stopped by request during critic pre-training" in watch.status_line("ppo")
    lab.close()
