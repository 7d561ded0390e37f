"""The label store's rules (issue #15 point 6 and 8, #14): re-imports deduplicated, one vote
per person per pair (also under concurrent writes), names normalised and never cut, old
files migrated in place, disagreements listed, Compare picks stored with both policies."""
import json
import sqlite3
import threading

import pytest

from moss_lab.labels import (LabelError, LabelStore, Pair, checked_name, fleiss_kappa,
                             normalise_name)
from moss_lab.toyworld import format_prompt

PROMPT = format_prompt("tell me about cats .")
GOOD = "happy to help . cats purr when they are happy ."
BAD = "go away . dogs wag their tails ."
MEH = "cats sleep most of the day ."


def make_pair(i=0, a=GOOD, b=BAD, sources=("toy", "toy")):
    return Pair(f"p{i}", PROMPT, a, b, True, True, *sources)


@pytest.fixture
def store(tmp_path):
    s = LabelStore(tmp_path / "labels.sqlite")
    yield s
    s.close()


def vote_rows(path):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT pair_id, annotator, choice FROM votes ORDER BY id").fetchall()


# --- import: a re-import adds nothing --------------------------------------------------------
def test_reimporting_an_export_adds_no_vote_and_says_so(store, tmp_path):
    store.record_vote(make_pair(0), "A", "ada", "B")
    store.record_vote(make_pair(1, a=BAD, b=MEH), "B", "ada", "A")
    store.record_vote(make_pair(0), "B", "bob", "A")
    store.record_vote(make_pair(2, a=MEH, b=GOOD), "tie", "bob", "A")
    before = vote_rows(store.path)
    out = tmp_path / "export.jsonl"
    assert store.export_jsonl(out, include_ties=True) == 4
    assert tuple(store.import_file(out, annotator="cy")) == (0, 4)  # the records' own names
    assert tuple(store.import_file(out)) == (0, 4)
    assert vote_rows(store.path) == before
    # the same file in another store: all new, then all known (also a repeated line)
    other = LabelStore(tmp_path / "other.sqlite")
    doubled = tmp_path / "doubled.jsonl"
    doubled.write_text(out.read_text() * 2)
    assert tuple(other.import_file(doubled)) == (4, 4)
    assert tuple(other.import_file(out)) == (0, 4)
    # ada's A on p0 (GOOD over BAD) and bob's B on the same content share one pair
    assert other.inter_annotator()["pairs"] == 1
    other.close()


@pytest.mark.parametrize("chunk", [1, 2, 1000])
def test_an_import_in_chunks_lets_votes_in_between_and_stores_the_same(store, tmp_path,
                                                                      monkeypatch, chunk):
    """Chunks of 1 and 2 records (one transaction each) store what one transaction does,
    also when a vote lands between two chunks on a pair the import votes on next."""
    from moss_lab import labels

    monkeypatch.setattr(labels, "IMPORT_CHUNK", chunk)
    rows = [(GOOD, BAD, "t1"), (GOOD, BAD, "t2"), (BAD, GOOD, "t1"), (GOOD, BAD, "t1"),
            (MEH, GOOD, "t2"), (GOOD, BAD, "ada")]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"prompt": PROMPT, "chosen": c, "rejected": r,
                                        "annotator": who}) + "\n" for c, r, who in rows))
    store.add_pair(make_pair(0))  # stored before: the import's GOOD/BAD votes go on it
    transactions, writing = [], store._writing

    def counted():
        transactions.append(1)
        if len(transactions) == 2:  # between two chunks (chunk 1 and 2): ada votes on p0
            store.record_vote(make_pair(0), "B", "ada", "A")
        return writing()

    monkeypatch.setattr(store, "_writing", counted)
    new, known = store.import_file(data)
    monkeypatch.setattr(store, "_writing", writing)
    got = sorted((p.annotator, p.chosen, p.rejected) for p in store.preferences())
    expected = [("t1", GOOD, BAD), ("t2", GOOD, BAD), ("t1", BAD, GOOD), ("t2", MEH, GOOD),
                ("ada", GOOD, BAD)]  # t1's second GOOD/BAD was stored already
    assert (new, known) == (5, 1)
    if chunk == 1000:  # one transaction
        assert len(transactions) == 1
    else:  # one per chunk, and ada's vote on p0 (B: BAD over GOOD) between the first two;
        # her GOOD/BAD record, in a later chunk, then goes on a new pair
        assert len(transactions) == -(-len(rows) // chunk) + 1
        expected.append(("ada", BAD, GOOD))
    assert got == sorted(expected)
    assert tuple(store.import_file(data)) == (0, 6)  # all stored now, whatever the chunks


def test_opposite_labels_on_one_pair_from_an_anonymous_dataset_are_both_kept(store, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"prompt": PROMPT, "chosen": c, "rejected": r}) + "\n"
                            for c, r in [(GOOD, BAD), (BAD, GOOD)]))
    assert tuple(store.import_file(data)) == (2, 0)
    assert tuple(store.import_file(data)) == (0, 2)
    prefs = store.preferences()
    assert sorted((p.chosen, p.rejected) for p in prefs) == sorted([(GOOD, BAD), (BAD, GOOD)])


def test_an_import_with_a_too_long_name_stores_nothing(store, tmp_path):
    data = tmp_path / "names.jsonl"
    data.write_text(json.dumps({"prompt": PROMPT, "chosen": GOOD, "rejected": BAD}) + "\n"
                    + json.dumps({"prompt": PROMPT, "chosen": MEH, "rejected": BAD,
                                  "annotator": "x" * 65}) + "\n")
    with pytest.raises(LabelError, match=r"names.jsonl was not imported: record 2: .*too long"):
        store.import_file(data)
    assert vote_rows(store.path) == []


def test_an_import_error_names_the_file_not_its_folder(store, tmp_path):
    bad = tmp_path / "upload" / "notes.jsonl"
    bad.parent.mkdir()
    bad.write_text("this is not JSON\n")
    with pytest.raises(LabelError) as err:
        store.import_file(bad)
    assert "notes.jsonl" in str(err.value) and str(tmp_path) not in str(err.value)


# --- one vote per annotator per pair -----------------------------------------------------------
def test_a_second_vote_on_a_pair_is_refused_until_undone(store):
    store.record_vote(make_pair(0), "A", "ada", "A")
    with pytest.raises(LabelError, match="already voted on this pair"):
        store.record_vote(make_pair(0), "B", "ada", "B")
    with pytest.raises(LabelError, match="already voted"):  # the same person, written differently
        store.record_vote(make_pair(0), "skip", "ａｄａ\u200b", "B")
    store.record_vote(make_pair(0), "B", "bob", "A")  # someone else may
    store.undo_last("ada")
    store.record_vote(make_pair(0), "B", "ada", "B")
    assert vote_rows(store.path) == [("p0", "bob", "B"), ("p0", "ada", "B")]


def test_change_vote_is_an_undo_then_a_vote(store):
    store.record_vote(make_pair(0), "A", "ada", "B")
    store.record_vote(make_pair(1), "tie", "ada", "A")
    store.change_vote("p0", "B", "ada")
    rows = store.votes("ada")
    assert [(v["pair_id"], v["choice"], v["shown_left"]) for v in rows] == [
        ("p1", "tie", "A"), ("p0", "B", "B")]  # the screen order is kept
    with pytest.raises(LabelError, match="no vote on pair p1"):
        store.change_vote("p1", "A", "bob")
    with pytest.raises(LabelError, match="unknown choice"):
        store.change_vote("p0", "C", "ada")
    assert len(store.votes()) == 2


@pytest.mark.parametrize("two_connections", [False, True])
def test_near_simultaneous_votes_by_one_person_store_one(tmp_path, two_connections):
    """8 threads vote on the same pair at once, through one store (the app's threads) or
    through two stores on one file (two processes): exactly one vote is stored."""
    stores = [LabelStore(tmp_path / "labels.sqlite")]
    stores.append(LabelStore(stores[0].path) if two_connections else stores[0])
    start, results = threading.Barrier(8), []

    def vote(i):
        start.wait()
        try:
            stores[i % 2].record_vote(make_pair(0), "AB"[i % 2], "ada", "A")
            results.append("stored")
        except LabelError as err:
            results.append(str(err))

    threads = [threading.Thread(target=vote, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("stored") == 1
    assert all("already voted" in r for r in results if r != "stored")
    assert len(vote_rows(stores[0].path)) == 1
    for s in set(stores):
        s.close()


# --- names --------------------------------------------------------------------------------
def test_names_are_normalised_so_one_person_is_one_name(store):
    import unicodedata

    for same in ["ada", " ada ", "ａｄａ", "ada\u200b", "\u200dad\u00ada", "\ufeffada"]:
        assert normalise_name(same) == "ada", repr(same)
    assert normalise_name("ada\u3000 lovelace") == "ada lovelace"  # ideographic space
    assert normalise_name("Ada") == "Ada"  # case is the person's own choice
    assert all(unicodedata.is_normalized("NFKC", normalise_name(x)) for x in ["ﬁ", "①", "Å"])
    store.record_vote(make_pair(0), "A", "ａｄａ", "A")
    store.record_vote(make_pair(1), "A", "ada\u200b", "A")
    assert store.progress("ada")["mine"] == 2 and store.progress()["annotators"] == 1
    assert {v["annotator"] for v in store.votes()} == {"ada"}


def test_names_over_64_characters_are_refused_not_cut(store):
    assert checked_name("é" * 64) == "é" * 64
    for long in ["x" * 65, "ａ" * 65, "y" * 5_000_000]:
        with pytest.raises(LabelError, match="too long.*64 at most"):
            store.record_vote(make_pair(0), "A", long, "A")
    assert vote_rows(store.path) == []


# --- schema migration ---------------------------------------------------------------------
OLD_SCHEMA = """
CREATE TABLE pairs (id TEXT PRIMARY KEY, prompt TEXT NOT NULL, response_a TEXT NOT NULL,
    response_b TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE votes (id INTEGER PRIMARY KEY AUTOINCREMENT,
    pair_id TEXT NOT NULL REFERENCES pairs(id),
    prompt TEXT NOT NULL, response_a TEXT NOT NULL, response_b TEXT NOT NULL,
    choice TEXT NOT NULL, annotator TEXT NOT NULL, created_at REAL NOT NULL);
"""


def test_an_old_database_is_migrated_in_place_without_losing_a_vote(tmp_path):
    """A file without the columns added later (end flags, sources, shown side), holding a
    repeated vote from before the one-vote rule: every row survives, new columns get their
    defaults, and new votes obey the rule."""
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
        db.execute("INSERT INTO pairs VALUES ('p0', ?, ?, ?, 1.0)", (PROMPT, GOOD, BAD))
        db.executemany("INSERT INTO votes (pair_id, prompt, response_a, response_b, choice,"
                       " annotator, created_at) VALUES ('p0', ?, ?, ?, ?, ?, ?)",
                       [(PROMPT, GOOD, BAD, "A", "ada", 2.0), (PROMPT, GOOD, BAD, "B", "ada", 3.0),
                        (PROMPT, GOOD, BAD, "A", "bob", 4.0)])
    store = LabelStore(path)
    assert vote_rows(path) == [("p0", "ada", "A"), ("p0", "ada", "B"), ("p0", "bob", "A")]
    pair = store.get_pair("p0")
    assert (pair.ended_a, pair.ended_b, pair.source_a, pair.source_b) == (True, True, None, None)
    assert len(store.preferences()) == 3
    assert store.inter_annotator()["pairs"] == 1  # ada's latest (B) against bob's A
    store.record_vote(make_pair(1, sources=("toy", "runs/x/policy")), "B", "ada", "A",
                      source="compare")
    with pytest.raises(LabelError, match="already voted"):
        store.record_vote(make_pair(1), "A", "ada", "A")
    store.close()
    with sqlite3.connect(path) as db:
        columns = {r[1] for r in db.execute("PRAGMA table_info(votes)")}
        assert {"shown_left", "source_a", "source_b", "source"} <= columns
        assert db.execute("SELECT source_a, source_b FROM pairs WHERE id = 'p1'").fetchone() == (
            "toy", "runs/x/policy")
    LabelStore(path).close()  # a second open migrates nothing and loses nothing
    assert len(vote_rows(path)) == 4


def test_a_new_database_enforces_one_vote_per_person_in_sqlite_itself(store):
    store.record_vote(make_pair(0), "A", "ada", "A")
    with sqlite3.connect(store.path) as db, pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO votes (pair_id, prompt, response_a, response_b, choice,"
                   " annotator, created_at) VALUES ('p0', 'p', 'a', 'b', 'B', 'ada', 0)")


# --- disagreements and Compare votes -------------------------------------------------------
def test_disagreements_list_the_pairs_people_judged_differently(store):
    verdicts = {"p0": {"ada": "A", "bob": "B", "cy": "A"},   # disagree
                "p1": {"ada": "tie", "bob": "tie"},           # agree
                "p2": {"ada": "A", "bob": "skip"},            # one judgement: no pair
                "p3": {"ada": "both_bad", "cy": "tie"},       # disagree
                "p4": {"bob": "B"}}
    for pair_id, by in verdicts.items():
        for who, choice in by.items():
            store.record_vote(make_pair(int(pair_id[1])), choice, who, "A")
    got = store.disagreements()
    # brute force: pairs with two or more judged votes that are not all equal
    expected = [p for p, by in verdicts.items()
                if len([c for c in by.values() if c != "skip"]) >= 2
                and len({c for c in by.values() if c != "skip"}) > 1]
    assert [d["pair_id"] for d in got] == expected == ["p0", "p3"]
    assert got[0]["votes"] == {"A": 2, "B": 1, "tie": 0, "both_bad": 0}
    assert got[0]["annotators"] == {"ada": "A", "bob": "B", "cy": "A"}
    assert got[1]["prompt"] == PROMPT and got[1]["response_b"] == BAD
    # the kappa uses the same verdicts
    table = [[1, 2, 0, 0], [0, 0, 2, 0], [0, 0, 1, 1]]  # p0, p1, p3 as (B, A, tie, bad) counts
    assert store.inter_annotator()["kappa"] == pytest.approx(fleiss_kappa(table))


def test_compare_votes_keep_both_policies(store):
    pair = make_pair(7, sources=("toy", "/runs/ppo-1/policy"))
    store.record_vote(pair, "B", "ada", "B", source="compare")
    with sqlite3.connect(store.path) as db:
        rows = db.execute("SELECT v.source, v.choice, v.source_a, v.source_b, p.source_a,"
                          " p.source_b FROM votes v JOIN pairs p ON p.id = v.pair_id"
                          " WHERE p.source_a IS NOT NULL AND p.source_b IS NOT NULL"
                          " AND p.source_a != p.source_b").fetchall()
    assert rows == [("compare", "B", "toy", "/runs/ppo-1/policy", "toy", "/runs/ppo-1/policy")]
