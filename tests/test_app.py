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
                                             ("ok-name", -1, r"lr must be in \(0, 1\]"),
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
    with pytest.raises(Exception, match=r"lr must be in \(0, 1\]"):
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


# --- the other methods in the Train tab: DPO, GRPO, RLOO, best-of-n ----------------------------
TINY_EVAL = {"max_new_tokens": 8, "eval_prompts": 8, "eval_every": 1, "n_samples": 2}


def method_args(choice, name, **fields):
    """A method's form (name, main fields, then the others) filled from its config."""
    from moss_lab.app.tab_methods import METHODS

    m = METHODS[choice]
    values = {f: getattr(m.config(), f) for f in m.main + m.more()} | fields
    return [name, *[", ".join(map(str, v)) if isinstance(v, tuple) else v
                    for v in values.values()]]


def test_method_forms_are_built_from_their_configs():
    from moss_lab.app.tab_methods import CHOICES, METHODS
    from moss_lab.configs import field_help

    assert CHOICES == ["PPO", "DPO", "GRPO", "RLOO", "best-of-n"]
    for m in METHODS.values():
        fields = m.main + m.more()
        assert len(fields) == len(set(fields)) and "device" not in fields
        assert all(field_help(m.config, f) for f in fields)  # every input has its help


def test_grpo_run_streams_metrics_and_stops(app):
    from moss_lab.app import tab_methods

    client, _, home = app
    args = method_args("GRPO", "grpo-live", reward="gold", steps=300, prompts_per_step=2,
                       group_size=2, **TINY_EVAL)
    client.predict(*args, api_name="/grpo_launch")
    status = wait_status(client, "grpo-live", lambda s: len(s["metrics"]) >= 2)
    assert status["kind"] == "grpo" and status["state"] == "running"
    assert [r["step"] for r in status["metrics"][:2]] == [0, 1]
    assert {"reward/score", "reward/gold", "objective/kl", "response/length"} <= set(
        status["metrics"][-1])
    # the tab's curves: x is the step
    text, *plots, table, seen = tab_methods.tick("grpo-live", None)
    assert "grpo-live" in text and "of 300" in text and seen[0] == "grpo-live"
    assert list(plots[0]["x"][:2]) == [0, 1] and len(table) >= 1
    client.predict("grpo-live", api_name="/stop_run")
    status = wait_status(client, "grpo-live", lambda s: s["state"] == "stopped")
    assert 2 <= len(status["metrics"]) < 301 and status["reason"].startswith("stopped")
    assert (home / "runs" / "grpo-live" / "policy" / "config.json").is_file()
    points = client.predict(["grpo-live"], ["reward/gold"], 0, api_name="/overlay_points")
    assert [p["x"] for p in points][:2] == [0, 1]  # the Runs tab overlays it by step
    # its policy can be compared and trained further, like a PPO run's
    from moss_lab.app import tab_ppo

    assert ("GRPO run grpo-live", str(home / "runs" / "grpo-live" / "policy")) in \
        tab_ppo.policy_choices()


@pytest.mark.parametrize("choice, fields, match", [
    ("GRPO", {"group_size": 1}, "group_size must be >= 2"),
    ("RLOO", {"lr": -1}, "lr must be"),  # the config (or its bounds) names the field
    ("GRPO", {"reward": "/no/such/model"}, "reward '/no/such/model' not found"),
    ("best-of-n", {"ns": "1, 4, many"}, "ns must be whole numbers"),
    ("best-of-n", {"pool": 2}, "pool must be >= the largest n"),
    ("DPO", {"data": "/no/labels.jsonl"}, "not found"),
])
def test_a_bad_method_value_gives_the_config_message(app, choice, fields, match):
    from moss_lab.app.tab_methods import METHODS

    client, _, home = app
    api = METHODS[choice].kind.replace("-", "_")
    with pytest.raises(Exception, match=match) as err:
        client.predict(*method_args(choice, "bad-method", **fields), api_name=f"/{api}_launch")
    assert "Traceback" not in str(err.value) and str(err.value).count("Not launched") == 1
    assert not (home / "runs" / "bad-method").exists()


def test_dpo_trains_on_the_apps_own_labels(app, tmp_path):
    from moss_lab import preferences
    from moss_lab.app.context import get_lab
    from moss_lab.app.tab_methods import data_choices
    from moss_lab.preferences import Preference
    from moss_lab.toyworld import format_prompt

    client, _, home = app
    store = str(get_lab().store.path)
    assert ("your labels (Label tab)", store) in data_choices()
    usable = len(get_lab().store.preferences())
    with pytest.raises(Exception, match="too few preference pairs for DPO"):
        client.predict(*method_args("DPO", "dpo-labels", data=store, min_pairs=usable + 1),
                       api_name="/dpo_launch")
    prompts = [format_prompt(f"tell me about {t} .") for t in ("bees", "tea", "cats", "rain")]
    votes = tmp_path / "votes.jsonl"
    preferences.write_jsonl([Preference(prompts[i % 4], f"happy to help . {i}", "go away .")
                             for i in range(8)], votes)
    client.predict(gradio_client.handle_file(str(votes)), "auto", "teacher",
                   api_name="/import_labels")
    client.predict(*method_args("DPO", "dpo-labels", data=store, min_pairs=8, batch_size=8,
                                **TINY_EVAL), api_name="/dpo_launch")
    status = wait_status(client, "dpo-labels", lambda s: s["state"] in ("finished", "failed"))
    assert status["state"] == "finished", status["reason"]
    assert status["kind"] == "dpo" and status["metrics"][0]["step"] == 0
    config = json.loads((home / "runs" / "dpo-labels" / "config.json").read_text())
    assert config["data"] == store and config["n_pairs"] == usable + 8


def test_best_of_n_in_the_app(app):
    client, _, _ = app
    client.predict(*method_args("best-of-n", "bon-app", reward="gold", ns=(1, 2, 4), pool=4,
                                eval_prompts=8, max_new_tokens=8), api_name="/best_of_n_launch")
    status = wait_status(client, "bon-app", lambda s: s["state"] in ("finished", "failed"))
    assert status["state"] == "finished", status["reason"]
    assert [(r["step"], r["n"]) for r in status["metrics"]] == [(1, 1), (2, 2), (3, 4)]


# --- bounds: every bad value over the API is a message naming the field, and stores nothing --
def test_out_of_bounds_values_over_the_api_are_messages_and_store_nothing(app, tmp_path):
    from moss_lab.app.tab_ppo import FORM, MORE

    client, _, home = app
    runs_before = sorted(p.name for p in (home / "runs").iterdir()) if (home / "runs").exists() else []
    at = {f: 6 + i for i, f in enumerate([*FORM, *MORE])}  # launch's form values start at 6
    for field, value, words in [("lr", "nan", r"lr must be a finite number in \(0, 1\], got nan"),
                                ("lr", "inf", r"lr must be a finite number in \(0, 1\], got inf"),
                                ("kl_coef", "nan", r"kl_coef must be a finite number in \[0, 100\]"),
                                ("max_new_tokens", "inf", r"max_new_tokens must be a finite"),
                                ("iterations", 10**9,
                                 r"iterations must be in \[0, 100000\], got 1000000000")]:
        args = ppo_args("bounded")
        args[at[field]] = value
        with pytest.raises(Exception, match=words):
            client.predict(*args, api_name="/ppo_launch")
    for epochs, lr, words in [(10**9, 1e-3, r"epochs must be in \[1, 1000\], got 1000000000"),
                              (1, "inf", r"lr must be a finite number in \(0, 1\], got inf")]:
        with pytest.raises(Exception, match=words):
            client.predict("rm-bounded", 0, 1.0, epochs, lr, 16, False, api_name="/rm_launch")
    with pytest.raises(Exception, match=r"simulated pairs must be a whole number in \[0, 20000\]"):
        client.predict("rm-bounded", "nan", 1.0, 1, 1e-3, 16, False, api_name="/rm_launch")
    runs_after = sorted(p.name for p in (home / "runs").iterdir()) if (home / "runs").exists() else []
    assert runs_after == runs_before

    # Compare: max tokens -5, 0, nan are messages (0 used to become 40 silently); past the
    # shared machine's bound (moss_lab.limits: 1024) and the toy policy's context window
    # (128 positions) too, not an IndexError
    for bad, words in [(-5, r"max new tokens must be a whole number in \[1, 1024\], got -5"),
                       (0, r"max new tokens must be a whole number in \[1, 1024\], got 0"),
                       ("nan", "max new tokens must be a whole number"),
                       (10**9, r"in \[1, 1024\], got 1000000000"),
                       (1000, "max new tokens must be at most .* context window is 128")]:
        with pytest.raises(Exception, match=words):
            client.predict("tell me about cats .", "toy", "toy", False, bad, api_name="/compare")

    # Label: a 5 MB annotator name is refused, not cut and not stored
    votes_before = stored_votes(home)
    with pytest.raises(Exception, match="annotator name is too long"):
        client.predict("x" * 5_000_000, api_name="/start")
    with pytest.raises(Exception, match="annotator name is too long"):
        client.predict("y" * 65, api_name="/vote_left")
    # an import of deeply nested JSON: a clear message, nothing stored
    deep = tmp_path / "deep.jsonl"
    deep.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(Exception, match="nested too deeply"):
        client.predict(gradio_client.handle_file(str(deep)), "auto", "ada", api_name="/import_labels")
    nested = tmp_path / "nested.jsonl"
    nested.write_text('{"prompt": ' + "[" * 50_000 + "]" * 50_000 + ', "chosen": "a", "rejected": "b"}\n')
    with pytest.raises(Exception, match="nested too deeply"):
        client.predict(gradio_client.handle_file(str(nested)), "auto", "ada", api_name="/import_labels")
    assert stored_votes(home) == votes_before


def test_form_numbers_have_bounds_and_steps_that_fit(app):
    from moss_lab.app import forms
    from moss_lab.ppo import PPOConfig
    from moss_lab.reward import RewardConfig

    lr = forms.field_input(PPOConfig, PPOConfig(), "lr", render=False)
    assert (lr.minimum, lr.maximum, lr.step) == (0, 1, pytest.approx(1e-5))  # ArrowUp: 3.1e-4
    iterations = forms.field_input(PPOConfig, PPOConfig(), "iterations", render=False)
    assert (iterations.minimum, iterations.maximum, iterations.step) == (0, 100_000, 1)
    epochs = forms.field_input(RewardConfig, RewardConfig(), "epochs", render=False)
    assert (epochs.minimum, epochs.maximum) == (1, 1000)
    assert forms.step_for(0.05, float) == pytest.approx(1e-3) and forms.step_for(1.0, float) == 0.1
    assert lr.get_block_name() == "number"  # the browser draws the usual number input


def test_reward_tab_says_how_many_pairs_and_warns_below_a_useful_number(app):
    client, _, home = app
    client.predict("cleo", api_name="/start")
    for _ in range(3):
        client.predict("cleo", api_name="/vote_left")
    labels = sum(c in ("A", "B") for _, c, _ in stored_votes(home))
    few = client.predict(0, False, 7, 64, api_name="/rm_plan")
    n_eval = round(labels * 0.1)
    assert f"Training on **{labels - n_eval}** pairs, holding out **{n_eval}**" in few
    assert "Warning: only" in few and "simulated" in few
    enough = client.predict(1000, False, 7, 64, api_name="/rm_plan")
    n_eval = round((labels + 1000) * 0.1)
    assert f"holding out **{n_eval}**" in enough and "Warning" not in enough
    assert f"({labels} of your labels + 1000 simulated)" in enough
    # a finished run: what it trained on and its final figures as text
    report = client.predict("rm-short", api_name="/rm_report")
    assert "training on **" in report and "Final held-out accuracy:" in report
    assert "against the labels (" in report and "pairs with a gold verdict" in report


def test_reward_accuracy_plots_have_a_fixed_axis_and_short_titles():
    import gradio as gr

    from moss_lab.app import tab_reward

    with gr.Blocks() as demo:
        tab_reward.build(demo)
    plots = {b.elem_id: b for b in demo.blocks.values() if isinstance(b, gr.LinePlot)}
    for metric in tab_reward.ACCURACY:
        assert plots[f"rm-plot-{metric.split('/')[-1]}"].y_lim == [0, 1]
    assert all(len(title) <= 24 for title in tab_reward.METRICS.values())
