"""The Evaluate tab over the API (gradio_client against a launched app, its own data
home): a small gold eval gives win/tie/loss with intervals; people's pairs are queued,
voted on through the Label tab's API, and the tab's Refresh shows the people's figures
and their board; bad input is refused with a message and nothing stored."""
import sqlite3

import pytest
from app_helpers import free_port, isolated_home

gradio_client = pytest.importorskip("gradio_client")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning",
                                        "ignore:.*no_silent_downcasting:Warning",
                                        "ignore:The copy keyword:Warning")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """(client, home, folder of policy B: the toy base model saved again, its own key)."""
    import gradio as gr

    from moss_lab.app import context, launch
    from moss_lab.models import load_policy

    home = isolated_home(tmp_path_factory.mktemp("eval-home"))
    policy_b = tmp_path_factory.mktemp("policy-b")
    model, tokenizer = load_policy("toy")
    model.save_pretrained(policy_b)
    tokenizer.save_pretrained(policy_b)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOSS_LAB_HOME", str(home))
        context.reset_lab()
        _, url, _ = launch(port=free_port(), prevent_thread_lock=True)
        client = gradio_client.Client(url, verbose=False)
        yield client, home, policy_b
        client.close()
        gr.close_all()
        context.reset_lab()


def evaluate(client, b, n, judges, a="toy"):
    head, summary, rates, agree, note, name = client.predict(a, str(b), n, judges,
                                                             api_name="/evaluate")
    return head, summary, rates, agree, note, name


def pairs(home):
    if not (home / "labels.sqlite").exists():
        return 0
    with sqlite3.connect(home / "labels.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM pairs").fetchone()[0]


def evals(home):
    return sorted((home / "evals").glob("*.jsonl")) if (home / "evals").is_dir() else []


@pytest.mark.parametrize("a, b, n, judges, words", [
    ("toy", "toy", 5, ["gold"], "same policy"),
    ("toy", "{b}", 0, ["gold"], "N prompts must be a whole number in [1, 10000]"),
    ("toy", "{b}", 10 ** 6, ["people"], "N prompts must be a whole number in [1, 10000]"),
    ("toy", "{b}", 5000, ["people"], "too many for people"),
    ("toy", "/no/such/checkpoint", 5, ["gold"], "not found"),
    ("toy", "{b}", 5, [], "Pick at least one judge"),
])
def test_bad_input_is_refused_and_nothing_stored(app, a, b, n, judges, words):
    client, home, policy_b = app
    before = (pairs(home), evals(home))
    with pytest.raises(Exception) as err:
        evaluate(client, b.format(b=policy_b), n, judges, a=a)
    assert words in str(err.value)
    assert (pairs(home), evals(home)) == before


def test_a_gold_eval_has_rates_with_intervals(app):
    client, home, policy_b = app
    head, s, rates, agree, note, _ = evaluate(client, policy_b, 20, ["gold", "rm"])
    from moss_lab.app.tab_label import plain

    assert s["n"] == 20 and s["judges"] == ["gold", "rm"] and plain(policy_b.name) in head
    lo, hi = s["win_rate_ci95"]
    assert 0 <= lo <= s["win_rate"] <= hi <= 1
    assert s["wins"] + s["ties"] + s["losses"] == 20
    assert [row[0] for row in rates["data"]] == ["gold", "rm"]
    assert agree["data"][0][0] == "gold vs rm" and agree["data"][0][1] == 20
    assert note == "" and len(evals(home)) == 1
    # the boards: gold and rm have both policies, people none yet
    _, _, _, _, gold, rm, people = client.predict(None, api_name="/evaluate_refresh")
    assert {row[1] for row in gold["data"]} == {"toy", policy_b.name}
    assert sum(row[4] for row in rm["data"]) == 40 and people["data"] in ([], [[""] * 8])


def test_people_pairs_are_labelled_in_the_label_tab_and_refresh_shows_them(app):
    client, home, policy_b = app
    _, summary, _, _, note, name = evaluate(client, policy_b, 6, ["people"])
    assert name == summary["people"] and summary["judges"] == []
    queued = int(note.split("blind pairs queued")[0].split()[-1])
    assert 1 <= queued <= 6 and pairs(home) == queued
    _, text, *_ = client.predict(name, api_name="/evaluate_refresh")
    assert "No votes yet" in text and f"{queued} of {queued} queued" in text
    # one person labels every queued pair in the Label tab: left each time (a random side)
    client.predict("zoe", api_name="/start")
    for _ in range(queued):
        client.predict("zoe", api_name="/vote_left")
    with sqlite3.connect(home / "labels.sqlite") as db:
        voted = db.execute("SELECT COUNT(*) FROM votes WHERE annotator = 'zoe' AND "
                           "pair_id LIKE ?", (f"{name}/%",)).fetchone()[0]
    assert voted == queued
    _, text, rates, agree, *boards = client.predict(name, api_name="/evaluate_refresh")
    assert f"{queued} votes by 1 person on {queued} pairs" in text and "0 of" in text
    row = rates["data"][0]
    assert row[0] == "people" and row[1] == queued
    assert agree["data"][0][0] == "people vs gold"
    people_board = boards[2]["data"]
    assert {r[1] for r in people_board} == {"toy", policy_b.name}
    assert sum(r[4] for r in people_board) == 2 * queued
