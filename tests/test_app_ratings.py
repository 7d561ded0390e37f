"""Rating mode of the Label tab over the API (gradio_client against a launched app, its own
data home): a vote carries the ratings on screen into the store, an incomplete or
out-of-range rating stores neither it nor the vote, exports re-import as 0 new, and a
malformed ratings file stores nothing."""
import json
import re
import sqlite3
from pathlib import Path

import pytest
from app_helpers import free_port, isolated_home

gradio_client = pytest.importorskip("gradio_client")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning",
                                        "ignore:.*no_silent_downcasting:Warning",
                                        "ignore:The copy keyword:Warning")

LEFT = (4, 5, 3, 4, 4)    # quality, safety, relevance, fluency, overall of the left response
RIGHT = (2, 1, 3, 2, 1)
COMMENT = "left is fine; right is <b>rude</b> & off topic"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """(client, home): the app launched on a free port with its own data home."""
    import gradio as gr

    from moss_lab.app import context, launch

    home = isolated_home(tmp_path_factory.mktemp("ratings-home"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOSS_LAB_HOME", str(home))
        context.reset_lab()
        _, url, _ = launch(port=free_port(), prevent_thread_lock=True)
        client = gradio_client.Client(url, verbose=False)
        yield client, home
        client.close()
        gr.close_all()
        context.reset_lab()


def query(home, sql, args=()):
    with sqlite3.connect(home / "labels.sqlite") as db:
        return db.execute(sql, args).fetchall()


def vote(client, who, key="left", left=LEFT, right=RIGHT, comment=COMMENT, rating=True):
    return client.predict(who, False, rating, *left, *right, comment, api_name=f"/vote_{key}")


def test_a_vote_with_ratings_stores_them_with_the_vote(app):
    client, home = app
    client.predict("ada", api_name="/start")
    *_, note, _ = vote(client, "ada")
    [(vote_id, pair_id, choice, shown_left)] = query(
        home, "SELECT id, pair_id, choice, shown_left FROM votes WHERE annotator = 'ada'")
    assert choice == shown_left  # "left" voted for the response shown on the left
    rows = query(home, "SELECT side, quality, safety, relevance, fluency, overall, comment,"
                       " vote_id, pair_id FROM ratings WHERE annotator = 'ada' ORDER BY side")
    right = "B" if shown_left == "A" else "A"
    by_side = {r[0]: r[1:] for r in rows}
    assert by_side[shown_left] == (*LEFT, COMMENT, vote_id, pair_id)
    assert by_side[right] == (*RIGHT, COMMENT, vote_id, pair_id)
    assert "Saved with your ratings: A (left) 4/5 overall · B (right) 1/5 overall" in note
    assert "<b>" not in note and "&#60;b&#62;rude&#60;&#47;b&#62;" in note  # shown as text
    # back to that pair ('Your earlier votes'): the rows show the ratings in screen order
    from moss_lab.app.tab_label import stored_ratings

    assert stored_ratings(pair_id, "ada") == (*LEFT, *RIGHT, COMMENT)
    # with rating mode off the vote stores no rating, whatever the rows hold
    vote(client, "ada", "tie", rating=False)
    assert len(query(home, "SELECT * FROM ratings")) == 2
    assert len(query(home, "SELECT * FROM votes WHERE annotator = 'ada'")) == 2


@pytest.mark.parametrize("left, right, comment, message", [
    ((4, 5, None, 4, 4), RIGHT, "", "missing: A (left) relevance"),
    (LEFT, (None,) * 5, "", "missing: B (right) quality, B (right) safety"),
    (LEFT, (2, 1, 3, 2, 7), "", "not in the list of choices"),
    (LEFT, RIGHT, "x" * 2**20, "comment is too long: 1,048,576 characters"),
])
def test_an_incomplete_or_bad_rating_stores_no_vote(app, left, right, comment, message):
    client, home = app
    client.predict("bob", api_name="/start")
    with pytest.raises(Exception, match=re.escape(message)):
        vote(client, "bob", "right", left, right, comment)
    assert query(home, "SELECT * FROM votes WHERE annotator = 'bob'") == []
    assert query(home, "SELECT * FROM ratings WHERE annotator = 'bob'") == []


def test_skip_in_rating_mode_stores_the_skip_only(app):
    client, home = app
    vote(client, "cy", "skip", left=(None,) * 5, right=(None,) * 5)
    assert query(home, "SELECT choice FROM votes WHERE annotator = 'cy'") == [("skip",)]
    assert query(home, "SELECT * FROM ratings WHERE annotator = 'cy'") == []


def test_export_then_import_says_0_new_and_a_bad_file_stores_nothing(app, tmp_path):
    client, home = app
    before = query(home, "SELECT * FROM ratings")
    path, message = client.predict(api_name="/export_ratings_jsonl")
    assert message.startswith(f"Exported {len(before)} ratings")
    records = [json.loads(line) for line in Path(path).read_text().splitlines()]
    assert {r["comment"] for r in records} == {COMMENT}
    message = client.predict(gradio_client.handle_file(path), "ada", api_name="/import_ratings")
    assert message.startswith("Imported 0 new ratings from ratings.jsonl") and "2 already" in message
    bad = tmp_path / "stars.jsonl"
    bad.write_text(json.dumps({**records[0], "overall": 9}) + "\n"
                   + json.dumps({**records[0], "annotator": "new"}) + "\n")
    with pytest.raises(Exception, match=r"(?s)stars.jsonl was not imported: 1 bad line.*line 1: field "
                                        r"'overall' is out of range: 9"):
        client.predict(gradio_client.handle_file(str(bad)), "ada", api_name="/import_ratings")
    assert query(home, "SELECT * FROM ratings") == before
