"""People as a judge (moss_lab.evaluate.save_with_people / people_verdicts) and the
people's board (moss_lab.leaderboard.outcomes_from_votes): pairs queued in the label store,
votes simulated through the store's API, every figure checked against a brute-force count;
bad input refused with nothing stored."""
import json
import os
import random
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from moss_lab import evaluate as ev
from moss_lab import labels
from moss_lab import leaderboard as lb
from moss_lab.cli import main
from moss_lab.labels import LabelStore, Pair
from moss_lab.toyworld import gold_score, sample_prompts

TEST_MODELS = Path(os.environ["MOSS_LAB_HOME"]) / "models"
A, B = "toy", "policy-b"  # "policy-b": a name resolve_policy keeps as it is (a hub id)


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(TEST_MODELS.resolve(), target_is_directory=True)
    monkeypatch.setenv("MOSS_LAB_HOME", str(home))
    return home


GOOD = ["happy to help . {t} facts are fun .", "{t} are nice .", "let me think . {t} ."]


def comparison(n=12, seed=0, rm=True) -> ev.Comparison:
    """A hand-made comparison on toy prompts: mixed answers, two identical pairs (i = 0, 5),
    and fake rm scores."""
    rng = random.Random(seed)
    prompts = sample_prompts(n, seed=seed)
    pool = ["happy to help .", "go away .", "let me think . let me think .", "cats purr .",
            "dogs wag their tails .", "thank you for asking . birds sing ."]
    ra = [rng.choice(pool) for _ in prompts]
    rb = [rng.choice(pool) for _ in prompts]
    rb[0], rb[5] = ra[0], ra[5]
    ended = [True] * n
    s_rm = (np.array([rng.random() for _ in prompts]), np.array([rng.random() for _ in prompts]))
    judges = ("rm",) if rm else ()
    return ev.Comparison(ev.PolicyRef(A, A, A), ev.PolicyRef(B, B, B), judges, prompts, ra, rb,
                         ended, ended, {"rm": s_rm} if rm else {},
                         {"rm": ev.verdicts(*s_rm)} if rm else {}, {"seed": 0}, 500)


def brute(pairs_votes, key_a):
    """{pair id: sign(sum of +1 for key_a's response, -1 for the other's)} by a plain loop."""
    out = {}
    for pid, (pair, votes) in pairs_votes.items():
        total = 0
        for choice in votes:
            if choice in ("A", "B"):
                src = pair.source_a if choice == "A" else pair.source_b
                total += 1 if src == key_a else -1
        out[pid] = (total > 0) - (total < 0)
    return out


def test_people_pairs_are_queued_then_votes_give_rates_and_agreement(home):
    store = LabelStore()
    result = comparison()
    path, queued = ev.save_with_people(result, store, "ask")
    assert queued == 10  # 12 prompts, 2 with identical answers are not asked
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    people = [r for r in rows if r["judge"] == "people"]
    assert len(people) == 10 and {r["winner"] for r in people} == {"pending"}
    assert len([r for r in rows if r["judge"] == "rm"]) == 12
    assert ev.read_judgements("people") == []  # pending rows are no judgements
    # nothing voted yet
    s = ev.people_verdicts("ask", store=store)
    assert (s["n"], s["queued"], s["pending"], s["votes"]) == (0, 10, 10, 0)

    # two people vote through the store's API (the Label tab's path): pending_pair, record_vote
    rng = random.Random(3)
    cast = {}
    for who in ("ada", "bob"):
        while (pair := store.pending_pair(who)) is not None:
            choice = rng.choice(["A", "B", "A", "tie", "both_bad", "skip"])
            store.record_vote(pair, choice, who, rng.choice("AB"))
            cast.setdefault(pair.id, (pair, []))[1].append(choice)
    assert set(cast) == {r["pair_id"] for r in people}
    assert all(p.source_a == A and p.source_b == B for p, _ in cast.values())
    # a Compare pick between the same two policies, stored the other way round (B first)
    prompt = sample_prompts(1, seed=99)[0]
    pick = Pair("cmp1", prompt, "dogs wag their tails .", "go away .", True, True, B, A)
    store.record_vote(pick, "A", "cy", "B", source="compare")  # for B's response
    cast["cmp1"] = (pick, ["A"])
    # a Label-tab pool pair (one policy twice) is not part of it
    store.record_vote(Pair("pool1", prompt, "x .", "y .", True, True, A, A), "A", "cy", "A")

    want = brute(cast, A)
    judged = {p: v for p, v in want.items() if any(c != "skip" for c in cast[p][1])}
    v = np.array(list(judged.values()))
    s = ev.people_verdicts("ask", store=store, n_resamples=500)
    assert s["n"] == s["pairs"] == len(judged)
    assert (s["wins"], s["ties"], s["losses"]) == ((v == 1).sum(), (v == 0).sum(), (v == -1).sum())
    assert s["votes"] == sum(c != "skip" for _, cs in cast.values() for c in cs)
    assert s["annotators"] == 3 and s["pending"] == 10 - (len(judged) - 1)
    # the intervals are summarize() of the per-pair verdicts, pairs in order of first vote
    order = list(dict.fromkeys(v["pair_id"] for v in store.votes()
                               if v["pair_id"] in judged and v["choice"] != "skip"))
    ref = ev.summarize(np.array([judged[p] for p in order]), 500, 0)
    for key in ("win_rate", "win_rate_ci95", "tie_rate_ci95", "loss_rate_ci95", "margin_ci95"):
        assert s[key] == pytest.approx(ref[key])

    # agreement with gold (toy prompts, gold of the two texts) and with the stored rm verdicts
    gold = {}
    for pid in judged:
        pair = cast[pid][0]
        g = np.sign(gold_score(pair.prompt, pair.response_a, True).total
                    - gold_score(pair.prompt, pair.response_b, True).total)
        gold[pid] = int(g) if pair.source_a == A else -int(g)
    same = np.mean([gold[p] == judged[p] for p in judged])
    assert s["agreement"]["people~gold"]["agreement"] == pytest.approx(same)
    assert s["agreement"]["people~gold"]["n"] == len(judged)
    rm_rows = {r["index"]: r for r in rows if r["judge"] == "rm"}
    index = {r["pair_id"]: r["index"] for r in people}
    sign = {"a": 1, "tie": 0, "b": -1}
    rm = {p: sign[rm_rows[index[p]]["winner"]] for p in judged if p in index}
    assert s["agreement"]["people~rm"]["n"] == len(rm)  # the Compare pick has no rm verdict
    assert s["agreement"]["people~rm"]["agreement"] == pytest.approx(
        np.mean([rm[p] == judged[p] for p in rm]))
    # by the policy pair: the same pairs (one eval) and the Compare pick
    by_pair = ev.people_verdicts(a="toy", b=B, store=store, n_resamples=500)
    assert (by_pair["wins"], by_pair["ties"], by_pair["losses"]) == (s["wins"], s["ties"], s["losses"])
    flipped = ev.people_verdicts(a=B, b="toy", store=store, n_resamples=500)
    assert (flipped["wins"], flipped["losses"]) == (s["losses"], s["wins"])
    for judge in ("people~gold", "people~rm"):  # agreement does not depend on the order
        assert flipped["agreement"][judge]["agreement"] == s["agreement"][judge]["agreement"]
    store.close()


def test_people_board_counts_each_vote_between_two_policies(home):
    store = LabelStore()
    prompt = sample_prompts(1, seed=1)[0]
    rng = random.Random(0)
    expect = {m: {"wins": 0, "ties": 0, "losses": 0} for m in ("toy", "p1", "p2")}
    for k in range(60):
        a, b = rng.sample(["toy", "p1", "p2"], 2)
        choice = rng.choice(["A", "B", "tie", "both_bad", "skip"])
        store.record_vote(Pair(f"p{k}", prompt, "a .", "b .", True, True, a, b), choice, "ada", "A")
        if choice in ("A", "B"):
            win, lose = (a, b) if choice == "A" else (b, a)
            expect[win]["wins"] += 1
            expect[lose]["losses"] += 1
        elif choice != "skip":
            expect[a]["ties"] += 1
            expect[b]["ties"] += 1
    store.record_vote(Pair("same", prompt, "a .", "b .", True, True, "p1", "p1"), "A", "ada", "A")
    outcomes = lb.outcomes_from_votes(store.votes())
    assert len(outcomes) == sum(e["wins"] for e in expect.values()) + \
        sum(e["ties"] for e in expect.values()) // 2
    board = {r["model"]: r for r in lb.leaderboard(outcomes, n_resamples=200)}
    for m, e in expect.items():
        assert {k: board[m][k] for k in e} == e
    assert board["toy"]["rating"] == 1000.0
    store.close()


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    run.stdout = out.out
    return code, out.out + out.err


def pairs_in_store(home):
    if not (home / "labels.sqlite").exists():
        return 0
    with sqlite3.connect(home / "labels.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM pairs").fetchone()[0]


def stored(home):
    return sorted((home / "evals").glob("*")) if (home / "evals").is_dir() else []


@pytest.fixture(scope="module")
def copy_of_toy(tmp_path_factory):
    """The toy base model saved to a folder: a second policy with its own key."""
    from moss_lab.models import load_policy

    folder = tmp_path_factory.mktemp("policy-b")
    model, tokenizer = load_policy("toy")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("argv, words", [
    (["--a", "toy", "--b", "toy", "--judge", "people"], "same policy"),
    (["--b", "toy-s", "--prompts", "0", "--judge", "people"], "between 1 and 10,000"),
    (["--b", "toy-s", "--prompts", "1000000", "--judge", "people"], "between 1 and 10,000"),
    (["--b", "toy-s", "--prompts", "5000", "--judge", "gold,people"], "too many for people"),
    (["--b", "/no/such/checkpoint", "--judge", "people"], "not found"),
    (["--b", "toy-s", "--judge", "people", "--no-save"], "drop --no-save"),
    (["--judge", "people"], "give policy B"),
    (["--people", "nope"], "no eval named 'nope'"),
])
def test_bad_input_is_refused_and_nothing_is_stored(capsys, home, argv, words):
    code, out = run(capsys, "eval", *argv)
    assert code == 2
    assert words in " ".join(out.replace("│", " ").split())
    assert stored(home) == [] and pairs_in_store(home) == 0


def test_a_failing_store_leaves_no_eval_file_and_add_pairs_is_all_or_nothing(home, monkeypatch):
    store = LabelStore()
    store.add_pair(Pair("taken", "p", "a", "b"))
    pairs = [Pair("new1", "p", "a", "b"), Pair("taken", "p", "c", "d")]
    with pytest.raises(labels.LabelError, match="stored already"):
        labels.add_pairs(store, pairs)
    assert store.get_pair("new1") is None

    def broken(store, pairs):
        raise labels.LabelError("disk full")

    monkeypatch.setattr(labels, "add_pairs", broken)
    with pytest.raises(labels.LabelError):
        ev.save_with_people(comparison(), store, "half")
    assert stored(home) == [] and pairs_in_store(home) == 1
    store.close()


def test_cli_people_end_to_end_then_the_board(capsys, home, copy_of_toy):
    code, out = run(capsys, "eval", "--a", "toy", "--b", copy_of_toy, "--prompts", 8,
                    "--judge", "gold,people", "--name", "ask", "--bootstrap", 200)
    assert code == 0, out
    s = json.loads(run.stdout.strip().splitlines()[-1])
    assert s["people"] == "ask" and 1 <= s["queued"] <= 8 and s["n"] == 8
    assert pairs_in_store(home) == s["queued"]
    code, out = run(capsys, "eval", "--people", "ask", "--bootstrap", 200)
    assert code == 0 and "no votes yet" in out
    code, out = run(capsys, "board", "--judge", "people")
    assert code == 1 and "no people judgements" in out
    store = LabelStore()
    while (pair := store.pending_pair("ada", overlap=1)) is not None:
        store.record_vote(pair, "B", "ada", "A")  # always the copy's answer
    store.close()
    code, out = run(capsys, "eval", "--people", "ask", "--bootstrap", 200)
    p = json.loads(run.stdout.strip().splitlines()[-1])
    assert code == 0 and p["n"] == s["queued"] and p["loss_rate"] == 1.0 and p["pending"] == 0
    assert "people~gold" in p["agreement"]
    code, out = run(capsys, "board", "--judge", "people", "--bootstrap", 200)
    assert code == 0, out
    board = {m["model"]: m for m in json.loads(run.stdout.strip().splitlines()[-1])["models"]}
    assert board["toy"]["losses"] == s["queued"] and board["toy"]["rating"] == 1000.0
    assert board[str(copy_of_toy.resolve())]["rating"] > 1000
    # the gold board has the same eval's gold judgements only
    code, out = run(capsys, "board", "--judge", "gold", "--bootstrap", 200)
    assert code == 0 and json.loads(run.stdout.strip().splitlines()[-1])["judgements"] == 8
