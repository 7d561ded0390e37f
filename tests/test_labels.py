"""The label store: votes, undo, agreement statistics, export and import."""
import json
import sqlite3

import pytest

from moss_lab import labels
from moss_lab.labels import (LabelError, LabelStore, Pair, PairPool, cohen_kappa,
                             display_to_choice, fleiss_kappa)
from moss_lab.preferences import read_jsonl
from moss_lab.toyworld import format_prompt, gold_score

PROMPT = format_prompt("tell me about cats .")
GOOD = "happy to help . cats purr when they are happy ."
BAD = "go away . dogs wag their tails ."


def make_pair(i=0, a=GOOD, b=BAD, prompt=PROMPT):
    return Pair(f"p{i}", prompt, a, b, True, True, "toy", "toy")


@pytest.fixture
def store(tmp_path):
    s = LabelStore(tmp_path / "labels.sqlite")
    yield s
    s.close()


def rows(store):
    """Read the votes with a separate connection: what another process would see."""
    with sqlite3.connect(store.path) as db:
        return db.execute("SELECT pair_id, choice, annotator, shown_left FROM votes").fetchall()


# --- votes -------------------------------------------------------------------------------
def test_vote_is_stored_at_once_in_wal_mode(store):
    store.record_vote(make_pair(), "A", "ada", shown_left="B")
    assert rows(store) == [("p0", "A", "ada", "B")]
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_screen_side_maps_to_stored_response():
    assert display_to_choice("left", "A") == "A"
    assert display_to_choice("right", "A") == "B"
    assert display_to_choice("left", "B") == "B"
    assert display_to_choice("right", "B") == "A"
    assert display_to_choice("tie", "B") == "tie"


@pytest.mark.parametrize("annotator, choice", [("", "A"), ("   ", "A"), ("ada", "C"),
                                               ("x" * 65, "A")])
def test_bad_vote_is_refused_and_nothing_stored(store, annotator, choice):
    with pytest.raises(LabelError):
        store.record_vote(make_pair(), choice, annotator, shown_left="A")
    assert rows(store) == []


def test_undo_removes_only_the_annotators_last_vote(store):
    store.record_vote(make_pair(0), "A", "ada", "A")
    store.record_vote(make_pair(1), "B", "ada", "A")
    store.record_vote(make_pair(2), "tie", "bob", "A")
    undone = store.undo_last("ada")
    assert undone["pair_id"] == "p1" and undone["choice"] == "B"
    assert sorted(rows(store)) == [("p0", "A", "ada", "A"), ("p2", "tie", "bob", "A")]
    assert store.undo_last("nobody") is None


def test_progress_counts(store):
    for i, c in enumerate(["A", "B", "B", "tie", "both_bad", "skip"]):
        store.record_vote(make_pair(i), c, "ada" if i < 4 else "bob", "A")
    p = store.progress("ada")
    assert p["total"] == 6 and p["mine"] == 4 and p["annotators"] == 2
    assert p["by_choice"] == {"A": 1, "B": 2, "tie": 1, "both_bad": 1, "skip": 1}
    assert p["pairwise"] == 3


def test_pending_pair_offers_pairs_others_labelled_until_overlap(store):
    store.add_pair(make_pair(0))
    assert store.pending_pair("ada").id == "p0"  # served but never voted on
    store.record_vote(make_pair(0), "A", "ada", "A")
    assert store.pending_pair("ada") is None     # ada voted on it already
    assert store.pending_pair("bob").id == "p0"  # bob is offered it for the overlap
    store.record_vote(make_pair(0), "A", "bob", "A")
    assert store.pending_pair("cy", overlap=2) is None
    assert store.pending_pair("cy", overlap=3).id == "p0"


# --- agreement ---------------------------------------------------------------------------
def test_gold_agreement(store):
    assert gold_score(PROMPT, GOOD).total > gold_score(PROMPT, BAD).total
    store.record_vote(make_pair(0), "A", "ada", "A")   # agrees with gold
    store.record_vote(make_pair(1), "B", "ada", "B")   # disagrees
    store.record_vote(make_pair(2), "A", "bob", "A")   # agrees
    store.record_vote(make_pair(3), "tie", "bob", "A")  # not a pairwise vote: left out
    same = make_pair(4, a="cats purr when they are happy .", b="cats sleep most of the day .")
    store.record_vote(same, "A", "bob", "A")           # gold tie: left out
    assert store.gold_agreement() == {"agreement": 2 / 3, "n": 3}
    assert store.gold_agreement("ada") == {"agreement": 0.5, "n": 2}


def test_cohen_kappa_textbook_example():
    # Wikipedia "Cohen's kappa": 50 proposals, yes/yes 20, yes/no 5, no/yes 10, no/no 15
    # p_o = 0.7, p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5, kappa = 0.4
    r1 = ["yes"] * 25 + ["no"] * 25
    r2 = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(r1, r2) == pytest.approx(0.4)
    assert cohen_kappa(r1, r1) == 1.0


def test_fleiss_kappa_textbook_example():
    # Wikipedia "Fleiss' kappa": 10 subjects, 14 raters, 5 categories; kappa = 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
             [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
             [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(table) == pytest.approx(0.20993, abs=1e-5)


def test_inter_annotator_uses_cohen_for_two_and_fleiss_for_more(store):
    votes = {"ada": ["A", "B", "A", "tie"], "bob": ["A", "B", "B", "tie"]}
    for who, choices in votes.items():
        for i, c in enumerate(choices):
            store.record_vote(make_pair(i), c, who, "A")
    store.record_vote(make_pair(9), "A", "ada", "A")  # labelled by one person: left out
    got = store.inter_annotator()
    assert got["method"] == "cohen" and got["pairs"] == 4
    assert got["kappa"] == pytest.approx(cohen_kappa(votes["ada"], votes["bob"]))
    for i, c in enumerate(["A", "A", "A", "tie"]):
        store.record_vote(make_pair(i), c, "cy", "A")
    got = store.inter_annotator()
    cats = ["A", "B", "tie", "both_bad"]
    table = [[[votes["ada"][i], votes["bob"][i], c].count(k) for k in cats]
             for i, c in enumerate(["A", "A", "A", "tie"])]
    assert got["method"] == "fleiss" and got["annotators"] == 3
    assert got["kappa"] == pytest.approx(fleiss_kappa(table))


# --- export and import ---------------------------------------------------------------------
def test_export_keeps_pairwise_votes_in_chosen_rejected_order(store, tmp_path):
    store.record_vote(make_pair(0), "A", "ada", "B")
    store.record_vote(make_pair(1), "B", "ada", "A")
    for i, c in [(2, "tie"), (3, "both_bad"), (4, "skip")]:
        store.record_vote(make_pair(i), c, "ada", "A")
    n = store.export_jsonl(tmp_path / "out.jsonl")
    prefs = read_jsonl(tmp_path / "out.jsonl")
    assert n == 2 and [(p.chosen, p.rejected) for p in prefs] == [(GOOD, BAD), (BAD, GOOD)]
    assert prefs[0].annotator == "ada"
    with_ties = store.preferences(include_ties=True)
    assert len(with_ties) == 3 and with_ties[-1].tie
    ds = store.to_dataset()
    assert ds.column_names == ["prompt", "chosen", "rejected"] and len(ds) == 2


def test_import_jsonl_and_hh(store, tmp_path):
    good = tmp_path / "prefs.jsonl"
    good.write_text("\n".join(json.dumps({"prompt": PROMPT, "chosen": c, "rejected": r})
                              for c, r in [(GOOD, BAD), (BAD, GOOD)]) + "\n")
    assert store.import_file(good, annotator="teacher").new == 2
    hh = tmp_path / "hh.jsonl"
    hh.write_text(json.dumps({"chosen": "\n\nHuman: hi\n\nAssistant: hello there",
                              "rejected": "\n\nHuman: hi\n\nAssistant: go away"}) + "\n")
    assert store.import_file(hh).new == 1
    prefs = store.preferences()
    assert [(p.chosen, p.rejected) for p in prefs] == [
        (GOOD, BAD), (BAD, GOOD), (" hello there", " go away")]
    assert prefs[2].prompt == "\n\nHuman: hi\n\nAssistant:"


@pytest.mark.parametrize("content", [
    '{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p", "chosen": "a"\n',
    '{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p", "chosen": "a"}\n',
    "not json at all\n",
    "",
])
def test_malformed_import_stores_nothing(store, tmp_path, content):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    with pytest.raises(LabelError, match="bad.jsonl"):
        store.import_file(bad)
    assert rows(store) == []


def test_oversized_import_is_refused_before_reading(store, tmp_path, monkeypatch):
    monkeypatch.setattr(labels, "MAX_IMPORT_BYTES", 100)
    big = tmp_path / "big.jsonl"
    big.write_text(json.dumps({"prompt": "p", "chosen": "a" * 200, "rejected": "b"}) + "\n")
    with pytest.raises(LabelError, match="limit"):
        store.import_file(big)
    assert rows(store) == []


# --- pairs to label ----------------------------------------------------------------------
def test_pair_pool_drops_identical_and_empty_pairs():
    def sample(prompts):  # first half is response A, second half response B
        n = len(prompts) // 2
        a = [GOOD] * n
        b = [GOOD] + [""] + [BAD] * (n - 2)  # pair 0 identical, pair 1 empty
        return a + b, [True] * len(prompts)

    pool = PairPool(size=4, sample=sample)
    pairs = pool.make_pairs(5)
    assert len(pairs) == 3 and all(p.response_a == GOOD and p.response_b == BAD for p in pairs)
    pair = pool.get(timeout=10)
    pool.close()
    assert pair.prompt.startswith("Human:") and pair.source_a == "toy"


def test_pair_pool_samples_the_toy_policy(toy_policy):
    pool = PairPool(size=2)
    pair = pool.get(timeout=120)
    pool.close()
    assert pair.response_a != pair.response_b
    assert pair.prompt.endswith("Assistant: ")


def test_pair_pool_samples_in_a_worker_process_that_ends_with_it(toy_policy):
    """processes=True (moss-lab app): the toy policy is sampled in a worker process, so the
    app's own interpreter lock stays free for the votes; close() ends the worker."""
    import os
    import time

    pool = PairPool(size=2, processes=True)
    pair = pool.get(timeout=120)
    workers = [p.pid for p in pool._executor._processes.values()]
    assert pair.response_a != pair.response_b and pair.prompt.endswith("Assistant: ")
    assert workers and all(pid != os.getpid() for pid in workers)
    pool.close()

    def running(pid: int) -> bool:  # a zombie (never reaped in this container) has ended
        try:
            return open(f"/proc/{pid}/stat").read().split()[2] != "Z"
        except FileNotFoundError:
            return False

    end = time.monotonic() + 20
    while time.monotonic() < end and any(map(running, workers)):
        time.sleep(0.2)
    assert not any(map(running, workers))
