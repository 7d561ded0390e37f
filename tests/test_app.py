"""The app, driven through its API with gradio_client against a launched server.

The module gets its own data home (labels and runs) before the app opens its store; the
base models are shared with the other tests through a symlink, so nothing is rebuilt.
"""
import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
from app_helpers import fake_run, free_port, isolated_home

gradio_client = pytest.importorskip("gradio_client")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning",
                                        "ignore:.*no_silent_downcasting:Warning",
                                        "ignore:The copy keyword:Warning")



@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """(client, url, home): the app launched on a free port with its own data home."""
    import gradio as gr

    from moss_lab.app import context, launch

    home = isolated_home(tmp_path_factory.mktemp("app-home"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOSS_LAB_HOME", str(home))
        context.reset_lab()
        _, url, _ = launch(port=free_port(), prevent_thread_lock=True)
        client = gradio_client.Client(url, verbose=False)
        yield client, url, home
        client.close()
        gr.close_all()
        context.reset_lab()


def stored_votes(home: Path):
    with sqlite3.connect(home / "labels.sqlite") as db:
        return db.execute("SELECT annotator, choice, shown_left FROM votes ORDER BY id").fetchall()


def ppo_args(name, iterations=3, lr=3e-4, batch=8, seed=0, **fields):
    """Short PPO runs on the oracle reward (no reward model to build): seconds on a laptop.
    The form's fields are PPOConfig's; the critic starts from the policy (no reward model)."""
    from moss_lab.app.tab_ppo import FORM, MORE, switches_of
    from moss_lab.ppo import PPOConfig

    config = PPOConfig(iterations=iterations, batch_size=batch, minibatch_size=batch,
                       max_new_tokens=8, critic_init="policy", critic_pretrain_steps=0,
                       reward_clip=None, value_clip=None, seed=seed, **fields)
    values = {f: getattr(config, f) for f in [*FORM, *MORE]} | {"lr": lr}  # lr may be bad
    return [name, "toy-fast", "toy", "gold", "cpu", switches_of(config), *values.values()]


def wait_status(client, name, predicate, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        status = client.predict(name, api_name="/run_status")
        if predicate(status):
            return status
        time.sleep(0.2)
    raise AssertionError(f"run {name} did not get there in time: {status['state']}")


# --- labels -------------------------------------------------------------------------------
def test_vote_is_a_row_in_sqlite(app):
    client, _, home = app
    prompt, left, right, progress, _ = client.predict("ada", api_name="/start")
    assert prompt.startswith("**Prompt:**") and left and right and left != right
    client.predict("ada", api_name="/vote_left")
    client.predict("ada", api_name="/vote_tie")
    rows = stored_votes(home)
    assert [(a, c if c == "tie" else "A/B") for a, c, _ in rows] == [("ada", "A/B"), ("ada", "tie")]
    assert rows[0][2] in ("A", "B")  # the side response A was shown on is recorded
    *_, progress = client.predict("ada", api_name="/undo")
    assert "**1** by you" in progress and len(stored_votes(home)) == 1


def test_vote_without_a_name_is_refused(app):
    client, _, home = app
    before = stored_votes(home)
    with pytest.raises(Exception, match="annotator name"):
        client.predict("   ", api_name="/vote_left")
    assert stored_votes(home) == before


def test_export_is_valid_jsonl(app):
    from moss_lab.preferences import read_jsonl

    client, _, _ = app
    client.predict("bob", api_name="/start")
    client.predict("bob", api_name="/vote_right")
    path, message = client.predict(False, api_name="/export_jsonl")
    prefs = read_jsonl(path)
    assert len(prefs) >= 2 and message.startswith(f"Exported {len(prefs)} pairs")
    assert all(p.prompt.startswith("Human:") and p.chosen != p.rejected for p in prefs)


def test_import_validates_the_whole_file(app, tmp_path):
    client, _, home = app
    before = len(stored_votes(home))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p"}\n')
    with pytest.raises(Exception, match="line 2"):
        client.predict(gradio_client.handle_file(str(bad)), "auto", "ada", api_name="/import_labels")
    assert len(stored_votes(home)) == before
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    message, _ = client.predict(gradio_client.handle_file(str(good)), "auto", "teacher",
                                api_name="/import_labels")
    assert message.startswith("Imported 1 ") and len(stored_votes(home)) == before + 1


def test_oversized_import_is_refused(app, tmp_path, monkeypatch):
    from moss_lab import labels

    client, _, home = app
    monkeypatch.setattr(labels, "MAX_IMPORT_BYTES", 64)  # the server runs in this process
    big = tmp_path / "big.jsonl"
    big.write_text(json.dumps({"prompt": "p", "chosen": "a" * 100, "rejected": "b"}) + "\n")
    before = len(stored_votes(home))
    with pytest.raises(Exception, match="limit"):
        client.predict(gradio_client.handle_file(str(big)), "auto", "ada", api_name="/import_labels")
    assert len(stored_votes(home)) == before


# --- PPO runs -------------------------------------------------------------------------------
@pytest.mark.parametrize("name, lr, match", [("../evil", 3e-4, "invalid run name"),
                                             ("ok-name", -1, "lr must be > 0"),
                                             ("ok-name", None, "lr needs a value")])
def test_bad_launch_is_refused_and_nothing_created(app, name, lr, match):
    client, _, home = app
    with pytest.raises(Exception, match=match):
        client.predict(*ppo_args(name, lr=lr), api_name="/ppo_launch")
    assert not (home / "runs" / "ok-name").exists() and not (home / "evil").exists()


def test_ppo_form_is_filled_from_the_config():
    """Defaults and switches come from PPOConfig, not from a copy kept by the tab."""
    from moss_lab.app.tab_ppo import FORM, MORE, SWITCHES, preset_values
    from moss_lab.ppo import PPOConfig

    default = PPOConfig()
    policy, reward, *values, switches = preset_values("toy-fast")
    assert (policy, reward) == (default.policy, default.reward)
    assert values == [getattr(default, f) for f in [*FORM, *MORE]]
    assert "seed" in FORM and "prompts" in FORM
    assert set(SWITCHES) >= {"reward_norm", "advantage_norm", "token_level_kl"}
    assert switches == [s for s in SWITCHES if getattr(default, s)]


def test_ppo_run_streams_metrics_then_finishes(app):
    client, _, home = app
    client.predict(*ppo_args("short", iterations=3), api_name="/ppo_launch")
    status = wait_status(client, "short", lambda s: len(s["metrics"]) >= 1)
    assert status["state"] in ("running", "finished")
    status = wait_status(client, "short", lambda s: s["state"] == "finished")
    assert [r["iteration"] for r in status["metrics"]] == [1, 2, 3]
    assert all(k in status["metrics"][-1] for k in ("reward/score", "reward/gold", "objective/kl"))
    assert (home / "runs" / "short" / "policy" / "config.json").is_file()
    table = client.predict([], ["reward/score"], 0, None, None, None, api_name="/runs_table")[0]
    assert "short" in json.dumps(table)


def test_stop_and_a_full_queue(app):
    from moss_lab.app.context import get_lab

    client, _, home = app
    client.predict(*ppo_args("long", iterations=500), api_name="/ppo_launch")
    wait_status(client, "long", lambda s: s["state"] == "running")
    limit = get_lab().runs.queue_limit
    for i in range(limit):  # they wait behind "long": one run per device
        client.predict(*ppo_args(f"waiting-{i}", seed=i), api_name="/ppo_launch")
    with pytest.raises(Exception, match="queue is full"):
        client.predict(*ppo_args("one-too-many", seed=99), api_name="/ppo_launch")
    assert not (home / "runs" / "one-too-many").exists()
    for i in range(limit):
        client.predict(f"waiting-{i}", api_name="/stop_run")
    client.predict("long", api_name="/stop_run")
    status = wait_status(client, "long", lambda s: s["state"] == "stopped")
    assert len(status["metrics"]) < 500
    assert all(client.predict(f"waiting-{i}", api_name="/run_status")["state"] == "stopped"
               for i in range(limit))


# --- reward model ----------------------------------------------------------------------------
def test_reward_model_trains_on_stored_labels_and_scores_by_hand(app):
    client, _, home = app
    # name, simulated pairs, noise, epochs, lr, batch size, include ties
    with pytest.raises(Exception, match="learning rate"):
        client.predict("rm-bad", 0, 1.0, 1, -1, 16, False, api_name="/rm_launch")
    client.predict("rm-short", 48, 1.0, 1, 1e-3, 16, False, api_name="/rm_launch")
    status = wait_status(client, "rm-short", lambda s: s["state"] in ("finished", "failed"))
    assert status["state"] == "finished", status["reason"]
    assert status["kind"] == "reward" and any("loss" in row for row in status["metrics"])
    config = json.loads((home / "runs" / "rm-short" / "config.json").read_text())
    stored_pairs = sum(c in ("A", "B") for _, c, _ in stored_votes(home))
    assert config["n_train"] + config["n_eval"] == 48 + stored_pairs  # labels + simulated
    text = client.predict(str(home / "runs" / "rm-short" / "model"), "tell me about cats .",
                          "cats purr when they are happy .", api_name="/rm_score")
    assert text.startswith("Reward-model score:") and "gold score" in text


def test_compare_two_policies_blind_and_named(app):
    client, _, _ = app
    one, two, note = client.predict("tell me about cats .", "toy", "toy", False, 12,
                                    api_name="/compare")
    assert one["label"].startswith("toy base model · gold") and isinstance(two["value"], str)
    assert note == ""
    one, _, note = client.predict("tell me about cats .", "toy", "toy", True, 12,
                                  api_name="/compare")
    assert one["label"] == "Response 1" and "Which one is better" in note  # names hidden
    with pytest.raises(Exception, match="Could not load policy"):
        client.predict("tell me about cats .", "toy", "/no/such/folder", False, 12,
                       api_name="/compare")


def test_live_plots_have_number_axes_even_before_the_first_point():
    """A run's plots start empty; an empty untyped frame reached the browser as text
    ("nominal") axes, which stayed after the numbers arrived (one tick per value)."""
    import gradio as gr

    from moss_lab.app.context import metric_frame
    from moss_lab.app.tab_runs import overlay_frame

    plot = gr.LinePlot(x="x", y="value")
    for rows in ([], [{"iteration": 1, "reward/score": 0.5}, {"iteration": 2, "reward/score": 1}]):
        types = plot.postprocess(metric_frame(rows, "reward/score")).datatypes
        assert types == {"x": "quantitative", "value": "quantitative"}, rows
    empty_overlay = gr.LinePlot(x="x", y="value", color="run").postprocess(
        overlay_frame(None, "reward/score"))
    assert empty_overlay.datatypes == {"x": "quantitative", "value": "quantitative",
                                       "run": "nominal"}


# --- the Runs tab ------------------------------------------------------------------------------
def test_overlay_any_number_of_runs_of_any_kind(app):
    client, _, home = app
    for i, name in enumerate(("ov-a", "ov-b", "ov-c")):
        fake_run(home, name, rows=[{"iteration": t, "reward/score": t + i, "reward/gold": -t}
                                   for t in (1, 2, 3)])
    fake_run(home, "ov-rm", kind="reward", rows=[{"step": s, "loss": 1 / s} for s in (1, 2)])
    points = client.predict(["ov-a", "ov-b", "ov-c"], ["reward/score"], 0, api_name="/overlay_points")
    assert {p["run"] for p in points} == {"ov-a", "ov-b", "ov-c"} and len(points) == 9
    assert [p["value"] for p in points if p["run"] == "ov-c"] == [3, 4, 5]
    # reward and gold on one chart: one series per run and metric
    points = client.predict(["ov-a", "ov-b"], ["reward/score", "reward/gold"], 0,
                            api_name="/overlay_points")
    assert {p["run"] for p in points} == {f"ov-{r} · reward/{m}" for r in "ab"
                                          for m in ("score", "gold")}
    # a reward-model run on its own x axis (step), with a PPO run
    points = client.predict(["ov-rm", "ov-a"], ["loss"], 0, api_name="/overlay_points")
    assert [(p["x"], p["run"]) for p in points] == [(1, "ov-rm"), (2, "ov-rm")]
    smoothed = client.predict(["ov-a"], ["reward/score"], 0.5, api_name="/overlay_points")
    values = [p["value"] for p in smoothed]
    assert values[0] == 1 and 1 < values[1] < 2 and 2 < values[2] < 3  # averaged


def test_the_overlay_plot_redraws_for_new_series():
    """The browser's LinePlot keeps the colour domain of its first frame unless color_map or
    colors_in_legend change: each new set of series must come with its own."""
    from moss_lab.app.tab_runs import overlay_style

    one = overlay_style(["ov-a"], ["reward/score"])
    three = overlay_style(["ov-a", "ov-b", "ov-c"], ["reward/score"])
    assert one.colors_in_legend == ["ov-a"]
    assert three.colors_in_legend == ["ov-a", "ov-b", "ov-c"]
    assert len(set(three.color_map.values())) == 3 and set(three.color_map) == {"ov-a", "ov-b", "ov-c"}


def test_config_diff_notes_csv_and_delete(app):
    client, _, home = app
    fake_run(home, "cfg-a", config={"kl_coef": 0.05, "lr": 3e-4, "seed": 0})
    fake_run(home, "cfg-b", config={"kl_coef": 0.1, "lr": 3e-4, "seed": 1},
             rows=[{"iteration": 1, "reward/score": 0.5}])
    diff = client.predict("cfg-a", "cfg-b", api_name="/run_config_diff")
    assert diff["headers"] == ["field", "cfg-a", "cfg-b"]
    assert diff["data"] == [["kl_coef", "0.05", "0.1"], ["seed", "0", "1"]]
    tags = client.predict("cfg-b", "beta 0.1: gold went up", "kl, sweep", api_name="/run_notes")
    assert tags == "kl, sweep"
    assert json.loads((home / "runs" / "cfg-b" / "notes.json").read_text()) == {
        "notes": "beta 0.1: gold went up", "tags": ["kl", "sweep"]}
    csv = Path(client.predict("cfg-b", api_name="/export_csv"))
    assert csv.read_text().splitlines() == ["iteration,reward/score", "1,0.5"]
    from moss_lab.app.context import get_lab
    from moss_lab.runs import _LIVE

    fake_run(home, "cfg-running")  # a run going in this process: it may not be deleted
    status = home / "runs" / "cfg-running" / "status.json"
    status.write_text(json.dumps({"state": "running", "kind": "ppo", "pid": os.getpid()}))
    _LIVE.add(str(home / "runs" / "cfg-running"))
    try:
        assert get_lab().runs.get("cfg-running").state == "running"
        with pytest.raises(Exception, match="stop it before deleting"):
            client.predict("cfg-running", api_name="/delete_run")
    finally:
        _LIVE.discard(str(home / "runs" / "cfg-running"))
    client.predict("cfg-a", api_name="/delete_run")
    assert not (home / "runs" / "cfg-a").exists()


def test_a_double_launch_is_refused(app):
    client, _, home = app
    client.predict(*ppo_args("twice-1", seed=7), api_name="/ppo_launch")
    with pytest.raises(Exception, match="launched .* ago as 'twice-1'"):
        client.predict(*ppo_args("twice-2", seed=7), api_name="/ppo_launch")
    assert not (home / "runs" / "twice-2").exists()
    client.predict("twice-1", api_name="/stop_run")
    wait_status(client, "twice-1", lambda s: s["state"] in ("stopped", "finished"))


def test_a_run_stopped_before_its_first_iteration(app):
    """It is marked stopped, says why, and its untouched policy is not offered anywhere."""
    from moss_lab.app import tab_ppo, tab_runs, watch

    client, _, home = app
    fake_run(home, "no-iteration", policy=True, state="stopped")
    assert all("no-iteration" not in value for _, value in tab_ppo.policy_choices())
    with pytest.raises(Exception, match="no trained policy"):
        tab_runs.checkpoint_of("no-iteration")
    client.predict(*ppo_args("stop-early", iterations=50, seed=11), api_name="/ppo_launch")
    client.predict("stop-early", api_name="/stop_run")
    status = wait_status(client, "stop-early", lambda s: s["state"] == "stopped")
    assert status["reason"].startswith("stopped")
    assert "**Why:** stopped" in watch.status_line("stop-early")
    listed = any("stop-early" in value for _, value in tab_ppo.policy_choices())
    assert listed == bool(status["metrics"])


def test_lists_of_models_refresh_when_a_run_ends():
    from moss_lab.app.watch import finished_now

    assert finished_now(["r", "running", 3, False], ["r", "finished", 4, False])
    assert finished_now(None, ["r", "stopped", 0, False])  # a page opened on an ended run
    assert not finished_now(["r", "finished", 4, False], ["r", "finished", 4, False])
    assert not finished_now(["r", "running", 3, False], ["r", "running", 4, False])


def test_gpu_preset_only_where_there_is_a_gpu(app, monkeypatch):
    from moss_lab.app import tab_ppo
    from moss_lab.ppo import PRESETS

    client, _, home = app
    monkeypatch.setattr(tab_ppo, "gpu_available", lambda: False)
    assert tab_ppo.preset_names() == [n for n in PRESETS if PRESETS[n].device != "cuda"]
    args = ppo_args("gpu-here")
    args[1] = "gpu-small"
    with pytest.raises(Exception, match="gpu-small is not in the list of choices"):
        client.predict(*args, api_name="/ppo_launch")  # the dropdown does not offer it
    with pytest.raises(Exception, match="needs a CUDA GPU"):
        tab_ppo.launch(*args)  # and the form refuses it
    assert not (home / "runs" / "gpu-here").exists()
    monkeypatch.setattr(tab_ppo, "gpu_available", lambda: True)
    assert "gpu-small" in tab_ppo.preset_names()
    # the preset fills critic_pretrain_steps as a number, and asks for a prompts file
    policy, reward, *values, switches = tab_ppo.preset_values("gpu-small")
    fields = dict(zip([*tab_ppo.FORM, *tab_ppo.MORE], values))
    assert fields["critic_pretrain_steps"] == 5 and fields["prompts"] == ""


def test_launch_forms_have_a_seed(app):
    client, _, home = app
    client.predict("rm-seeded", 0, 1.0, 1, 1e-3, 16, False, 5, api_name="/rm_launch")
    config = json.loads((home / "runs" / "rm-seeded" / "config.json").read_text())
    # the run manager writes the job's config; once training starts, the reward-model
    # library rewrites config.json with its RewardConfig (both carry the seed)
    assert config.get("reward", config)["seed"] == 5
    client.predict("rm-seeded", api_name="/stop_run")
    wait_status(client, "rm-seeded", lambda s: s["state"] in ("stopped", "failed", "finished"))
