"""The Label and Compare tabs over the API (gradio_client against a launched app, its own
data home): imports say how many votes were new, upload errors name no server path, the
agreement panel follows an import, earlier votes can be changed, the gold verdict is
shown on request, and a blind Compare pick is a vote that cannot change after the reveal."""
import json
import sqlite3
import tempfile

import pytest
from app_helpers import free_port, isolated_home

from moss_lab.toyworld import format_prompt, gold_score

gradio_client = pytest.importorskip("gradio_client")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning",
                                        "ignore:.*no_silent_downcasting:Warning",
                                        "ignore:The copy keyword:Warning")

PROMPT = format_prompt("tell me about cats .")
GOOD = "happy to help . cats purr when they are happy ."
BAD = "go away . dogs wag their tails ."


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """(client, home, blocks): the app launched on a free port with its own data home."""
    import gradio as gr

    from moss_lab.app import context, launch

    home = isolated_home(tmp_path_factory.mktemp("label-home"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOSS_LAB_HOME", str(home))
        context.reset_lab()
        server, url, _ = launch(port=free_port(), prevent_thread_lock=True)
        client = gradio_client.Client(url, verbose=False)
        yield client, home, server.get_blocks()
        client.close()
        gr.close_all()
        context.reset_lab()


def votes(home, annotator=None):
    with sqlite3.connect(home / "labels.sqlite") as db:
        rows = db.execute("SELECT pair_id, annotator, choice, shown_left, source, source_a,"
                          " source_b FROM votes ORDER BY id").fetchall()
    return [r for r in rows if annotator is None or r[1] == annotator]


def upload(client, path, annotator="ada"):
    return client.predict(gradio_client.handle_file(str(path)), "auto", annotator,
                          api_name="/import_labels")


def test_import_twice_says_0_new(app, tmp_path):
    client, home, _ = app
    data = tmp_path / "prefs.jsonl"
    data.write_text("".join(json.dumps({"prompt": PROMPT, "chosen": c, "rejected": r,
                                        "annotator": who}) + "\n"
                            for c, r, who in [(GOOD, BAD, "t1"), (BAD, GOOD, "t2")]))
    message, _ = upload(client, data)
    assert message.startswith("Imported 2 new votes") and "(2 records)" in message
    message, _ = upload(client, data)
    assert message.startswith("Imported 0 new votes") and "2 already stored" in message
    assert len(votes(home)) == 2
    # an export of everything, imported again, adds nothing either
    path, _ = client.predict(False, api_name="/export_jsonl")
    message, _ = upload(client, path)
    assert message.startswith("Imported 0 new") and len(votes(home)) == 2


def test_agreement_panel_follows_an_import(app):
    """t1 and t2 disagree on one pair (imported above): the panel's kappa and the
    disagreement table are refreshed after the import, in the browser by the event chain."""
    client, _, blocks = app
    *_, stats = client.predict("ada", api_name="/start")
    assert "kappa" in stats and "on 1 shared pairs" in stats
    config = blocks.config
    ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
    deps = config["dependencies"]
    imported = next(i for i, d in enumerate(deps) if d.get("api_name") == "import_labels")
    after = [d for d in deps if d.get("trigger_after") == imported]
    assert any(ids["label-stats"] in d["outputs"] and ids["label-disagreements"] in d["outputs"]
               for d in after)


def test_a_non_json_upload_names_the_file_not_the_server_path(app, tmp_path):
    client, home, _ = app
    before = votes(home)
    notes = tmp_path / "notes.jsonl"
    notes.write_text("these are my notes, not JSON\n")
    with pytest.raises(Exception) as err:
        upload(client, notes)
    message = str(err.value)
    assert "notes.jsonl" in message and "line 1" in message
    assert tempfile.gettempdir() not in message and "gradio" not in message.lower()
    assert votes(home) == before


def test_go_back_to_an_earlier_pair_and_change_the_vote(app):
    client, home, _ = app
    client.predict("cy", api_name="/start")
    client.predict("cy", api_name="/vote_left")
    client.predict("cy", api_name="/vote_tie")
    (pair_id, _, first, shown_left, *_), _ = votes(home, "cy")
    assert first == shown_left  # "left" is the response shown on the left
    prompt, left, right, note = client.predict(pair_id, "cy", api_name="/revisit")
    assert "you voted **A is better**" in note and prompt.startswith("**Prompt:**")
    client.predict("cy", api_name="/vote_right")
    mine = votes(home, "cy")
    assert len(mine) == 2 and [v[0] for v in mine].count(pair_id) == 1
    changed = next(v for v in mine if v[0] == pair_id)
    assert changed[2] == ("B" if shown_left == "A" else "A") and changed[3] == shown_left
    with pytest.raises(Exception, match="not in the list of choices"):  # only your own pairs
        client.predict("nope-pair", "cy", api_name="/revisit")


def test_gold_verdict_after_a_vote_when_asked(app):
    client, home, _ = app
    client.predict("dee", api_name="/start")
    *_, note, _ = client.predict("dee", False, api_name="/vote_left")
    assert note == ""
    *_, note, _ = client.predict("dee", True, api_name="/vote_right")
    pair_id, _, _, shown_left, *_ = votes(home, "dee")[-1]
    with sqlite3.connect(home / "labels.sqlite") as db:
        prompt, a, b, ended_a, ended_b = db.execute(
            "SELECT prompt, response_a, response_b, ended_a, ended_b FROM pairs WHERE id = ?",
            (pair_id,)).fetchone()
    gold = {"A": gold_score(prompt, a, bool(ended_a)).total,
            "B": gold_score(prompt, b, bool(ended_b)).total}
    margin = gold[shown_left] - gold["B" if shown_left == "A" else "A"]  # left - right
    assert note.startswith("You voted **B is better**")
    if abs(margin) < 1e-9:
        assert "sees no difference" in note
    else:
        side = "A (left)" if margin > 0 else "B (right)"
        assert f"gold prefers **{side}** by {abs(margin):.2f}" in note


def test_names_are_normalised_and_long_ones_refused(app):
    client, home, _ = app
    client.predict("ｅｖｅ\u200b", api_name="/start")
    client.predict("ｅｖｅ\u200b", api_name="/vote_left")
    assert [v[1] for v in votes(home, "eve")] == ["eve"]
    *_, progress = client.predict(" eve ", api_name="/undo")
    assert "**0** by you" in progress
    with pytest.raises(Exception, match="too long: 65 characters, 64 at most"):
        client.predict("z" * 65, api_name="/start")


def test_a_blind_compare_pick_is_a_vote_and_final(app):
    client, home, _ = app
    before = len(votes(home))
    client.predict("tell me about cats .", "toy", "toy", True, 8, api_name="/compare")
    revealed = client.predict("ada", api_name="/compare_pick_2")
    assert "Stored as a vote by ada" in revealed and "← your pick" in revealed
    rows = votes(home)
    assert len(rows) == before + 1
    _, who, choice, shown_left, source, source_a, source_b = rows[-1]
    assert (who, source, source_a, source_b) == ("ada", "compare", "toy", "toy")
    assert choice == ("B" if shown_left == "A" else "A")  # Response 2 = the right side
    with pytest.raises(Exception, match="cannot change"):
        client.predict("ada", api_name="/compare_pick_1")
    assert len(votes(home)) == before + 1
    # named (not blind) picks are no votes; without a name a blind pick is not stored
    client.predict("tell me about cats .", "toy", "toy", False, 8, api_name="/compare")
    assert "Stored" not in client.predict("ada", api_name="/compare_pick_1")
    client.predict("tell me about cats .", "toy", "toy", True, 8, api_name="/compare")
    assert "Not stored" in client.predict("", api_name="/compare_pick_1")
    assert len(votes(home)) == before + 1
