"""The app's tabs in class mode (issue #14): who sees, stops, loads and launches which runs,
the bounds on a launch, and the instructor's Class tab.

In-process and fast: the handlers are called directly with a stand-in request
(`SimpleNamespace(username=...)`, what Gradio's gr.Request offers them), on run folders
written by hand (tests/app_helpers.fake_run) and jobs that only wait for Stop.
"""
import functools
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
from app_helpers import fake_run, isolated_home

import app_helpers
from moss_lab.app import context, tab_class, tab_compare, tab_ppo, tab_reward, tab_runs, watch
from moss_lab.app.session import User
from moss_lab.files import read_json, write_json
from moss_lab.labels import Pair
from moss_lab.toyworld import format_prompt, sample_prompts

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning",
                                        "ignore:.*no_silent_downcasting:Warning",
                                        "ignore:The copy keyword:Warning")
ADA, ALICE, BOB = (SimpleNamespace(username=n) for n in ("ada", "alice", "bob"))


class Accounts:  # what the app asks of moss_lab.accounts.Accounts: names and roles
    roles = {"ada": "instructor", "alice": "student", "bob": "student"}
    names = sorted(roles)

    def user(self, name):
        return User(name, self.roles[name]) if name in self.roles else None


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A class-mode app's data home: ada teaches alice and bob, each with a finished PPO
    run that saved a policy."""
    home = isolated_home(tmp_path)
    monkeypatch.setenv("MOSS_LAB_HOME", str(home))
    context.reset_lab()
    context.use_accounts(Accounts())
    for who in ("ada", "alice", "bob"):
        folder = fake_run(home, f"users/{who}/ppo-{who}", policy=True,
                          rows=[{"iteration": 1, "reward/gold": 1.0},
                                {"iteration": 2, "reward/gold": 2.5}])
        status = read_json(folder / "status.json")  # as the run manager ends a run
        write_json(folder / "status.json", {**status, "final": {"iterations": 2}})
    yield home
    context.reset_lab()


# the shared poll, with the patience these tests need
wait_for = functools.partial(app_helpers.wait_for, timeout=10.0, every=0.05)


def waiting_job(run_dir, config, on_metrics, should_stop):
    """A run that does nothing until Stop."""
    while not should_stop():
        time.sleep(0.02)
    return {}


# --- runs: see, change, stop ---------------------------------------------------------------
def test_a_student_lists_and_changes_only_their_own_runs(home):
    mine = tab_runs.runs_table(watch.viewer(BOB))
    assert mine["run"].tolist() == ["bob/ppo-bob"] and mine["owner"].tolist() == ["bob"]
    everyone = tab_runs.runs_table(watch.viewer(ADA))
    assert sorted(everyone["run"]) == ["ada/ppo-ada", "alice/ppo-alice", "bob/ppo-bob"]
    assert tab_runs.runs_table(watch.viewer(None)).empty  # a page value without a login

    for action in (lambda: tab_runs.details("alice/ppo-alice", BOB),
                   lambda: tab_runs.delete_run("alice/ppo-alice", BOB),
                   lambda: tab_runs.save_notes("alice/ppo-alice", "mine now", "x", BOB),
                   lambda: tab_runs.export_csv("alice/ppo-alice", BOB),
                   lambda: tab_runs.config_diff("bob/ppo-bob", "alice/ppo-alice", BOB),
                   lambda: tab_ppo.run_status("alice/ppo-alice", BOB)):
        with pytest.raises(gr.Error, match="that you can see"):
            action()
    assert (home / "runs/users/alice/ppo-alice/config.json").is_file()
    assert not (home / "runs/users/alice/ppo-alice/notes.json").exists()
    assert tab_runs.overlay_points(["alice/ppo-alice"], ["reward/gold"], 0, BOB) == []
    assert len(tab_runs.overlay_points(["bob/ppo-bob"], ["reward/gold"], 0, BOB)) == 2
    # no server folder in what a student is shown
    assert str(home) not in tab_runs.details("bob/ppo-bob", BOB)[1]

    tab_runs.save_notes("alice/ppo-alice", "looked at it", "shared", ADA)  # the instructor may
    assert tab_runs.delete_run("bob/ppo-bob", BOB) == "bob/ppo-bob"
    assert not (home / "runs/users/bob/ppo-bob").exists()


def test_instructor_runs_tagged_shared_are_listed_for_students(home):
    tab_runs.save_notes("ada/ppo-ada", "", "shared", ADA)
    assert "ada/ppo-ada" in tab_runs.run_names(watch.viewer(BOB))
    with pytest.raises(gr.Error, match="not yours"):  # seen, not changed
        tab_runs.delete_run("ada/ppo-ada", BOB)


def test_stopping_someone_elses_run_is_refused(home):
    run = watch.submit(User("alice", "student"), "waits", "ppo", {}, waiting_job, "cpu")
    assert run == "alice/waits"
    runs = context.get_lab().runs
    wait_for(lambda: runs.get(run).state == "running")
    for stop in (lambda: tab_ppo.stop_run(run, BOB), lambda: watch.stop(run, BOB)):
        with pytest.raises(gr.Error, match="that you can see"):
            stop()
    time.sleep(0.2)
    assert runs.get(run).state == "running" and not runs.get(run).stop_requested
    with pytest.raises(gr.Error, match="Only the instructor"):
        tab_class.stop_any(run, BOB)
    table, _ = tab_class.active_runs(ADA)
    assert table["run"].tolist() == [run]
    tab_class.stop_any(run, ADA)
    wait_for(lambda: runs.get(run).state == "stopped")


def test_a_student_over_the_run_limit_is_refused_and_a_queued_run_says_where(home):
    lab = context.get_lab()
    lab.settings.max_runs_per_student, lab.settings.max_running = 1, 1
    bob, alice = User("bob", "student"), User("alice", "student")
    first = watch.submit(bob, "first", "ppo", {}, waiting_job, "cpu")
    with pytest.raises(gr.Error, match="limit is 1"):
        watch.submit(bob, "second", "ppo", {"seed": 2}, waiting_job, "cpu")
    assert not (home / "runs/users/bob/second").exists()
    queued = watch.submit(alice, "queued", "ppo", {"seed": 1}, waiting_job, "cpu")
    wait_for(lambda: lab.runs.get(first).state == "running")
    assert "1st in the queue" in watch.status_line(queued)
    assert "1st in the queue" in tab_runs.runs_table(watch.viewer(ALICE))["status"][0]
    for run in (queued, first):
        lab.runs.stop(run)
    wait_for(lambda: not any(r.active for r in lab.runs.list()))


def test_a_launch_past_the_bounds_is_refused(home):
    from test_app import ppo_args

    with pytest.raises(gr.Error, match="iterations must be at most 10000"):
        tab_ppo.launch(*ppo_args("huge", iterations=50_000), user=User("bob", "student"))
    with pytest.raises(gr.Error, match="prompts must be 'toy'"):
        tab_ppo.launch(*ppo_args("files", prompts="/etc/hostname"), user=User("bob", "student"))
    assert not (home / "runs/users/bob/huge").exists()


# --- models ---------------------------------------------------------------------------------
def test_a_student_loads_builtins_own_runs_and_the_instructors_only(home):
    bob, ada = User("bob", "student"), User("ada", "instructor")
    listed = [v for _, v in tab_ppo.policy_choices(bob)]
    alice_policy = str(home / "runs/users/alice/ppo-alice/policy")
    assert listed[0] == "toy" and alice_policy not in listed
    assert str(home / "runs/users/ada/ppo-ada/policy") in listed
    assert str(home / "runs/users/bob/ppo-bob/policy") in listed
    assert tab_ppo.policy_choices(watch.NOBODY) == [("toy base model", "toy")]

    for value in (alice_policy, "/etc", str(home / "models")):
        with pytest.raises(gr.Error, match="not one you may load") as err:
            tab_compare.loadable(value, bob)
        assert str(home) not in str(err.value) and "/etc" not in str(err.value)
    with pytest.raises(gr.Error, match="not one you may load"):
        tab_ppo.launch(*ppo_args_with(policy=alice_policy), user=bob)
    with pytest.raises(gr.Error, match="not one you may load"):
        tab_reward.score_by_hand(alice_policy, "tell me about cats .", "cats purr .", BOB)
    assert tab_compare.loadable(alice_policy, ada) == alice_policy
    assert not (home / "runs/users/bob/by-api").exists()


def ppo_args_with(**fields):
    from test_app import ppo_args

    args = ppo_args("by-api")
    args[2] = fields.get("policy", args[2])
    return args


def test_compare_refuses_a_model_that_is_not_built_yet(home, monkeypatch):
    real = tab_compare.toy_model_dir  # the data home has no toy-s; the package ships toy
    monkeypatch.setattr(tab_compare, "toy_model_dir", lambda size: home / "none" / real(size).name)
    assert tab_compare.unbuilt("toy-s") == ("toy-s is not built yet: build it first: "
                                            "moss-lab pretrain --size s")
    assert tab_compare.unbuilt("toy") is None  # shipped with the package
    with pytest.raises(gr.Error, match="build it first: moss-lab pretrain --size s"):
        tab_compare.compare("tell me about cats .", "toy", "toy-s", False, 8, BOB)


def test_a_blind_pick_is_a_vote_by_the_login_name(home):
    prompt = format_prompt("tell me about cats .")
    pair = Pair("p-compare", prompt, "cats purr .", "dogs bark .", True, True, "toy", "toy")
    reveal = {"prompt": prompt, "out": [("toy", "cats purr .", True), ("toy", "dogs bark .", True)],
              "blind": True, "pair": pair.__dict__, "shown_left": "A", "picked": None}
    text, _ = tab_compare.pick(0, reveal, "alice", BOB)  # the name box says alice: ignored
    assert "Stored as a vote by bob" in text
    assert [v["annotator"] for v in context.get_lab().store.votes()] == ["bob"]


# --- the Class tab --------------------------------------------------------------------------
def vote_on_pairs(store, votes: dict[str, str]):
    """Each annotator votes on the same pairs, with a string of choices ('AAB...')."""
    prompts = [format_prompt(q) for q in ("tell me about cats .", "tell me about dogs .")]
    prompts += sample_prompts(6, seed=3)
    for i, prompt in enumerate(prompts[:len(next(iter(votes.values())))]):
        pair = store.add_pair(Pair(f"p{i}", prompt, "happy to help . cats purr .",
                                   "no . no . no .", True, True, "toy", "toy"))
        for who, choices in votes.items():
            store.record_vote(pair, choices[i], who, "A")


def test_a_students_dpo_run_trains_on_their_own_labels(home, monkeypatch):
    from moss_lab.app import tab_methods
    from moss_lab.methods.train_dpo import DPOTrainConfig, load_pairs

    store = context.get_lab().store
    vote_on_pairs(store, {"alice": "AAAB", "bob": "BBBB"})
    submitted = []
    monkeypatch.setattr(watch, "submit", lambda user, name, kind, config, job, device:
                        submitted.append(config) or f"users/{user.name}/{name}")
    m = tab_methods.METHODS["DPO"]
    values = {f: getattr(DPOTrainConfig(), f) for f in m.main + m.more()}
    values |= {"data": "labels", "min_pairs": 2, "annotator": "alice"}  # sent: alice's
    for who, expected in ((BOB, "bob"), (ADA, "alice")):  # the instructor may pick anyone
        tab_methods.launch("DPO", "dpo-own", *values.values(), user=watch.viewer(who))
        assert submitted[-1]["annotator"] == expected
    bobs = load_pairs(DPOTrainConfig(**{**submitted[0], "data": str(store.path)}))
    assert len(bobs) == 4 and {p.annotator for p in bobs} == {"bob"}
    assert len(load_pairs(DPOTrainConfig(data=str(store.path)))) == 8  # everyone's


def test_the_class_tab_is_the_instructors_and_shows_each_student(home):
    store = context.get_lab().store
    vote_on_pairs(store, {"alice": "AAAB", "bob": "AABA"})
    for handler in (tab_class.students_table, tab_class.disagreements_table,
                    tab_class.export_all, tab_class.settings_values, tab_class.active_runs):
        with pytest.raises(gr.Error, match="Only the instructor"):
            handler(BOB)
    table = tab_class.students_table(ADA).set_index("student")
    assert table.loc["alice", "votes"] == 4 and table.loc["bob", "votes"] == 4
    assert table.loc["alice", "shared pairs"] == 4
    assert table.loc["alice", "kappa with others"] == table.loc["bob", "kappa with others"]
    assert table.loc["bob", "runs"] == 1 and table.loc["bob", "best gold"] == "2.500"
    assert table.loc["ada", "role"] == "instructor"
    split = tab_class.disagreements_table(ADA)
    assert len(split) == 2 and set(split["who"]) == {"alice: A, bob: B", "alice: B, bob: A"}


def test_the_class_tab_kappa_is_pooled_over_the_pairs_shared():
    verdicts = {"p1": {"a": "A", "b": "A"}, "p2": {"a": "B", "b": "B", "c": "A"},
                "p3": {"b": "A", "c": "B"}}
    kappa = tab_class.kappas(verdicts)
    assert kappa["a"][1] == 2 and kappa["b"][1] == 3 and kappa["c"][1] == 2
    from moss_lab.labels import cohen_kappa
    assert kappa["a"][0] == pytest.approx(cohen_kappa(["A", "B", "B"], ["A", "B", "A"]))


def test_download_everything_replaces_the_last_one(home):
    store = context.get_lab().store
    vote_on_pairs(store, {"alice": "AB", "bob": "BB"})
    first = Path(tab_class.export_all(ADA))
    with zipfile.ZipFile(first) as z:
        assert sorted(z.namelist()) == ["labels.jsonl", "ratings.jsonl", "runs.csv", "votes.csv"]
        assert len(z.read("labels.jsonl").decode().splitlines()) == 4
        runs_csv = z.read("runs.csv").decode()
        assert "alice/ppo-alice" in runs_csv and "2.5" in runs_csv
    time.sleep(1.1)  # a new name (time stamped), in the same folder
    second = Path(tab_class.export_all(ADA))
    assert second.parent == first.parent and not first.exists()
    assert [p.name for p in second.parent.iterdir()] == [second.name]


def test_settings_are_kept_and_applied_to_the_run_queue(home):
    message = tab_class.save_settings(3, True, 2, 1, ADA)
    assert "LOCKED" in message
    lab = context.get_lab()
    assert (lab.settings.overlap, lab.settings.labelling_locked) == (3, True)
    assert (lab.runs.max_per_owner, lab.runs.max_running) == (2, 1)
    assert tab_class.settings_values(ADA) == (3, True, 2, 1)
    with pytest.raises(gr.Error, match="overlap must be a whole number in"):
        tab_class.save_settings(0, False, 1, 1, ADA)
    with pytest.raises(gr.Error, match="Only the instructor"):
        tab_class.save_settings(2, False, 5, 5, BOB)
    assert lab.settings.max_runs_per_student == 2


def test_single_user_mode_is_unchanged(home):
    context.use_accounts(None)
    assert watch.viewer(None).is_instructor
    assert len(tab_runs.run_names()) == 3 and "owner" not in tab_runs.runs_table().columns
    assert tab_compare.loadable("/anything/at/all", watch.viewer(None)) == "/anything/at/all"


# --- over the API (gradio_client, logged in) -------------------------------------------------
def test_over_the_api_a_student_cannot_reach_another_students_runs(tmp_path, monkeypatch):
    """The same rules hold for a gradio_client call with a real login (the endpoints take
    the user from Gradio's request, never from an argument)."""
    gradio_client = pytest.importorskip("gradio_client")
    from app_helpers import free_port

    from moss_lab import accounts as acc
    from moss_lab.app import launch

    home = isolated_home(tmp_path)
    monkeypatch.setenv("MOSS_LAB_HOME", str(home))
    users = home / "users.toml"
    passwords = {"ada": "ada-password", "alice": "alice-password", "bob": "bob-password"}
    acc.add_user(users, "ada", "instructor", passwords["ada"])
    acc.add_users(users, {n: passwords[n] for n in ("alice", "bob")}, "student")
    for who in ("alice", "bob"):
        folder = fake_run(home, f"users/{who}/ppo-{who}", policy=True, rows=[{"iteration": 1}])
        write_json(folder / "status.json", {**read_json(folder / "status.json"),
                                            "final": {"iterations": 1}})
    context.reset_lab()
    _, url, _ = launch(port=free_port(), users=acc.Accounts.load(users), prevent_thread_lock=True)
    try:
        bob, ada = (gradio_client.Client(url, auth=(n, passwords[n]), verbose=False)
                    for n in ("bob", "ada"))
        assert bob.predict("bob/ppo-bob", api_name="/run_status")["state"] == "finished"
        for args, api in [(("alice/ppo-alice",), "/run_status"), (("alice/ppo-alice",), "/stop_run"),
                          (("alice/ppo-alice",), "/delete_run"), (("alice/ppo-alice",), "/export_csv")]:
            with pytest.raises(Exception, match="that you can see"):
                bob.predict(*args, api_name=api)
        alice_policy = str(home / "runs/users/alice/ppo-alice/policy")
        with pytest.raises(Exception, match="not one you may load"):
            bob.predict("tell me about cats .", "toy", alice_policy, False, 8, api_name="/compare")
        with pytest.raises(Exception, match="Only the instructor"):
            bob.predict(api_name="/class_students")
        assert (home / "runs/users/alice/ppo-alice").is_dir()
        assert {r["student"] for r in ada.predict(api_name="/class_students")} >= {"alice", "bob"}
        assert ada.predict("alice/ppo-alice", api_name="/run_status")["state"] == "finished"
    finally:
        gr.close_all()
        context.reset_lab()


def test_runs_to_compare_and_a_locked_class(home):
    tab_runs.save_notes("ada/ppo-ada", "", "shared", ADA)  # now listed in bob's Runs tab
    update = tab_runs.to_compare("ada/ppo-ada", BOB)
    assert update["value"] == str(home / "runs/users/ada/ppo-ada/policy")
    with pytest.raises(gr.Error, match="that you can see"):
        tab_runs.to_compare("alice/ppo-alice", BOB)
    context.get_lab().settings.labelling_locked = True
    prompt = format_prompt("tell me about cats .")
    pair = Pair("p-locked", prompt, "cats purr .", "dogs bark .")
    reveal = {"prompt": prompt, "out": [("toy", "cats purr .", True), ("toy", "dogs bark .", True)],
              "blind": True, "pair": pair.__dict__, "shown_left": "A", "picked": None}
    assert "labelling is locked" in tab_compare.pick(1, reveal, "", BOB)[0]
    assert context.get_lab().store.votes() == []
