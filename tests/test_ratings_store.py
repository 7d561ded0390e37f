"""Ratings in the label store (issue #13): stored with the vote in one transaction, one per
person per response of a pair (a changed rating replaces), undone with the vote, exported
and imported (JSONL and datasets) with re-imports deduplicated, bad input refused whole."""
import json
import sqlite3

import pytest

from moss_lab.labels import LabelError, LabelStore, Pair
from moss_lab.ratings import ASPECTS, MAX_COMMENT_CHARS, Rating, read_jsonl
from moss_lab.toyworld import format_prompt

PROMPT = format_prompt("tell me about cats .")
GOOD = "happy to help . cats purr when they are happy ."
BAD = "go away . dogs wag their tails ."
HTML = "<b>html</b> <script>alert(1)</script> & \"quotes\""


def make_pair(i=0, a=GOOD, b=BAD):
    return Pair(f"p{i}", PROMPT, a, b, True, False, "toy", "toy")


def stars(overall, quality=4, safety=5, relevance=3, fluency=2, comment=""):
    return {"overall": overall, "comment": comment,
            "aspects": dict(zip(ASPECTS, (quality, safety, relevance, fluency)))}


@pytest.fixture
def store(tmp_path):
    s = LabelStore(tmp_path / "labels.sqlite")
    yield s
    s.close()


def rows(path, table="ratings"):
    with sqlite3.connect(path) as db:
        return db.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()


def test_a_vote_with_ratings_stores_both_linked(store):
    vote_id = store.record_vote(make_pair(), "A", "ada", "B",
                                ratings={"A": stars(5, comment=HTML), "B": stars(2, safety=1)})
    got = store.ratings("ada")
    assert [(r["side"], r["response"], r["overall"], r["vote_id"]) for r in got] == [
        ("A", GOOD, 5, vote_id), ("B", BAD, 2, vote_id)]
    assert (got[0]["quality"], got[0]["safety"], got[0]["relevance"], got[0]["fluency"]) == (4, 5, 3, 2)
    assert got[1]["safety"] == 1 and got[1]["ended"] == 0  # the pair's end flag
    assert got[0]["comment"] == HTML  # stored verbatim: plain text, escaped where shown


def test_a_bad_rating_stores_neither_the_vote_nor_any_rating(store):
    with pytest.raises(LabelError, match=r"response B: field 'overall' is out of range: 6"):
        store.record_vote(make_pair(), "A", "ada", "A", ratings={"A": stars(4), "B": stars(6)})
    with pytest.raises(LabelError, match=r"response A: aspect 'fluency' is out of range: 0"):
        store.record_vote(make_pair(), "A", "ada", "A", ratings={"A": stars(4, fluency=0)})
    with pytest.raises(LabelError, match=r"\{'A': rating, 'B': rating\}"):
        store.record_vote(make_pair(), "A", "ada", "A", ratings={"left": stars(4)})
    assert rows(store.path) == [] and rows(store.path, "votes") == []


def test_a_1_mb_comment_is_refused_naming_the_field(store):
    huge = "x" * 2**20
    with pytest.raises(LabelError, match=r"field 'comment' is too long: 1,048,576 characters "
                                         rf"\(the limit is {MAX_COMMENT_CHARS:,}\)"):
        store.record_vote(make_pair(), "A", "ada", "A", ratings={"A": stars(3, comment=huge)})
    assert rows(store.path, "votes") == [] and rows(store.path) == []


def test_one_rating_per_person_per_response_a_change_replaces(store):
    store.record_vote(make_pair(), "A", "ada", "A", ratings={"A": stars(4), "B": stars(2)})
    store.record_vote(make_pair(), "B", "bob", "A", ratings={"A": stars(1), "B": stars(5)})
    # a changed vote without new ratings keeps them, relinked to the new vote
    new_vote = store.change_vote("p0", "tie", "ada")
    assert [(r["overall"], r["vote_id"]) for r in store.ratings("ada")] == [(4, new_vote), (2, new_vote)]
    # with new ratings, they replace the old ones (B only: A stays)
    store.change_vote("p0", "B", "ada", ratings={"B": stars(3)})
    assert sorted((r["side"], r["overall"]) for r in store.ratings("ada")) == [("A", 4), ("B", 3)]
    assert store.add_ratings({"A": stars(5)}, "ada", pair=make_pair()) == 1
    assert sorted((r["side"], r["overall"]) for r in store.ratings("ada")) == [("A", 5), ("B", 3)]
    assert len(store.ratings()) == 4  # bob's two untouched
    with sqlite3.connect(store.path) as db, pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO ratings (pair_id, side, prompt, response, annotator, overall,"
                   " created_at) VALUES ('p0', 'A', ?, ?, 'ada', 3, 0)", (PROMPT, GOOD))


def test_undo_removes_the_ratings_given_with_the_vote(store):
    store.record_vote(make_pair(0), "A", "ada", "A", ratings={"A": stars(4), "B": stars(2)})
    store.record_vote(make_pair(1, a=BAD, b=GOOD), "B", "ada", "A", ratings={"A": stars(1)})
    store.undo_last("ada")
    assert [r["pair_id"] for r in store.ratings()] == ["p0", "p0"]


def test_export_import_round_trip_and_reimport_adds_nothing(store, tmp_path):
    store.record_vote(make_pair(), "A", "ada", "B", ratings={"A": stars(5, comment=HTML),
                                                            "B": stars(2)})
    store.add_ratings([Rating(PROMPT, "cats sleep .", 3, {"quality": 2}, annotator="bob")])
    out = tmp_path / "ratings.jsonl"
    assert store.export_ratings_jsonl(out) == 3
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(d["response"], d["overall"], d["annotator"]) for d in lines] == [
        (GOOD, 5, "ada"), (BAD, 2, "ada"), ("cats sleep .", 3, "bob")]
    assert lines[0]["comment"] == HTML and lines[2]["aspects"] == {"quality": 2}
    assert tuple(store.import_ratings(out)) == (0, 3)  # all already stored
    other = LabelStore(tmp_path / "other.sqlite")
    assert tuple(other.import_ratings(out)) == (3, 0)
    assert tuple(other.import_ratings(out)) == (0, 3)
    assert [r.to_dict() | {"created_at": None, "source": None} for r in other.rating_records()] == [
        r.to_dict() | {"created_at": None, "source": None} for r in read_jsonl(out)]
    assert {r["source"] for r in other.ratings()} == {"import:ratings.jsonl"}
    ds = other.ratings_dataset()
    assert ds.column_names == ["prompt", "response", "overall", *ASPECTS, "comment"]
    assert ds["overall"] == [5, 2, 3] and ds["quality"] == [4, 4, 2] and ds["safety"][2] is None
    other.close()


def test_a_malformed_import_stores_nothing_and_names_the_lines(store, tmp_path):
    bad = tmp_path / "upload" / "mixed.jsonl"
    bad.parent.mkdir()
    good = {"prompt": PROMPT, "response": GOOD, "overall": 4}
    bad.write_text("\n".join([json.dumps(good), json.dumps({**good, "overall": 9}),
                              json.dumps({**good, "aspects": {"kindness": 3}}), "{not json"]))
    with pytest.raises(LabelError) as err:
        store.import_ratings(bad)
    message = str(err.value)
    assert message.startswith("mixed.jsonl was not imported") and str(bad.parent) not in message
    assert "line 2: field 'overall' is out of range: 9" in message
    assert "line 3: unknown aspect(s) 'kindness'" in message and "line 4: bad JSON" in message
    assert rows(store.path) == []
    long_name = tmp_path / "names.jsonl"
    long_name.write_text(json.dumps(good) + "\n" + json.dumps({**good, "annotator": "x" * 65}))
    with pytest.raises(LabelError, match=r"record 2: .*too long"):
        store.import_ratings(long_name)
    assert rows(store.path) == []


def test_an_old_file_gets_the_ratings_table(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE pairs (id TEXT PRIMARY KEY, prompt TEXT NOT NULL, response_a "
                   "TEXT NOT NULL, response_b TEXT NOT NULL, created_at REAL NOT NULL)")
    store = LabelStore(path)
    store.record_vote(make_pair(), "A", "ada", "A", ratings={"A": stars(4)})
    assert len(store.ratings()) == 1
    store.close()
