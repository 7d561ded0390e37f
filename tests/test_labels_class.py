"""Labels in class mode (issue #14 points 2 and 5): pairs assigned with an overlap k (each
judged by k different people, nobody twice, also with 20 people at once), per-vote work
that does not grow with the store, counts kept right by the triggers (also in a migrated
old file), and the Label tab over the API with logins: no impersonation, the lock, own
exports, instructor-only imports and disagreement table, one export folder."""
import json
import random
import sqlite3
import threading
import time
import uuid
from collections import Counter

import pytest

from moss_lab import labels
from moss_lab.labels import LabelStore, Pair
from moss_lab.preferences import gold_judged
from moss_lab.toyworld import format_prompt, sample_prompts

PROMPT = format_prompt("tell me about cats .")
GOOD = "happy to help . cats purr when they are happy ."
BAD = "go away . dogs wag their tails ."


def fresh(i=None) -> Pair:
    return Pair(uuid.uuid4().hex[:12] if i is None else f"p{i}", PROMPT, GOOD, BAD)


@pytest.fixture
def store(tmp_path):
    s = LabelStore(tmp_path / "labels.sqlite")
    yield s
    s.close()


def label_one(store, who, k=2, choice="A"):
    """What the Label tab does for one vote: assign (else a fresh pair), then vote."""
    pair = store.assign_pair(who, k) or store.add_pair(fresh(), assign_to=who)
    store.record_vote(pair, choice, who, "A")
    return pair


# --- assignment ---------------------------------------------------------------------------
def test_twenty_people_at_once_each_pair_judged_by_exactly_k(store):
    """The issue's goal: 20 people x 100 votes with k=2 -> each pair judged by exactly two
    people (but the few left open at the end), nobody twice, no vote lost."""
    def person(n):
        rng = random.Random(n)
        for _ in range(100):
            label_one(store, f"student{n}", 2, rng.choice(["A", "B", "tie", "both_bad"]))

    threads = [threading.Thread(target=person, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    votes = store.votes()
    assert len(votes) == 2000
    assert len({(v["pair_id"], v["annotator"]) for v in votes}) == 2000  # nobody twice
    per_pair = Counter(v["pair_id"] for v in votes)
    sizes = Counter(per_pair.values())
    # judged once: only the last few (a person still labelling when the others are done
    # gets fresh pairs that nobody is left to judge again)
    assert set(sizes) <= {1, 2} and sizes[1] <= 50, sizes
    newest = [r[0] for r in store._query("SELECT id FROM pairs ORDER BY created_at DESC")]
    assert {p for p, n in per_pair.items() if n == 1} <= set(newest[:100])
    assert store.inter_annotator()["pairs"] == sizes[2]


def test_assignment_holds_completes_frees_and_never_repeats(store):
    # a fresh pair given to ada; her reload gets the same one back (no hoarding)
    p0 = store.add_pair(fresh(0), assign_to="ada")
    assert store.assign_pair("ada").id == "p0"
    # bob gets it too (k=2: ada's hold + bob's hold), cy does not
    assert store.assign_pair("bob").id == "p0"
    assert store.assign_pair("cy") is None
    # bob skips: his place is free again (a skip is no judgement) and he never gets it back
    store.record_vote(p0, "skip", "bob", "A")
    assert store.assign_pair("bob") is None
    assert store.assign_pair("cy").id == "p0"
    store.record_vote(p0, "A", "ada", "A")
    store.record_vote(p0, "B", "cy", "B")
    assert store.assign_pair("dee") is None  # judged by two people: full
    assert store.assign_pair("dee", overlap=3).id == "p0"
    # a hold not completed in time frees its place for somebody else
    p1 = store.add_pair(fresh(1), assign_to="eve")
    assert store.assign_pair("fay", overlap=1, hold_s=600) is None
    time.sleep(0.05)
    assert store.assign_pair("fay", overlap=1, hold_s=0.01).id == p1.id
    # an undone vote gives the pair back to its voter (shown again), held for them
    store.record_vote(p1, "A", "fay", "A")
    assert store.assign_pair("fay", overlap=1) is None
    store.undo_last("fay")
    assert store.assign_pair("fay", overlap=1).id == p1.id
    assert store.assign_pair("gus", overlap=1) is None


def test_imported_labels_are_never_served_to_label(store, tmp_path):
    data = tmp_path / "prefs.jsonl"
    data.write_text(json.dumps({"prompt": PROMPT, "chosen": GOOD, "rejected": BAD,
                                "annotator": "t1"}) + "\n")
    assert store.import_file(data).new == 1
    assert store.assign_pair("ada") is None and store.pending_pair("ada") is None
    assert store.progress()["total"] == 1
    # a record on a stored pair, the other way round (chosen = its B): counted right too
    meh = "cats sleep most of the day ."
    store.record_vote(Pair("p9", PROMPT, meh, GOOD, False, True), "B", "ada", "A")
    data.write_text(json.dumps({"prompt": PROMPT, "chosen": GOOD, "rejected": meh,
                                "annotator": "t2"}) + "\n")  # ended: the pair's flags count
    assert store.import_file(data).new == 1
    assert store.vote_of("p9", "t2")["choice"] == "B"
    check_counts(store, ["ada", "t1", "t2"])


def test_alone_with_many_half_judged_pairs_the_next_pair_is_fresh_and_cheap(store):
    """A person labelling alone with k=2 leaves every pair half-judged: their next pair is
    fresh (after a bounded look), and the next person gets the oldest of them."""
    for i in range(labels.ASSIGN_SCAN + 50):
        store.add_pair(fresh(i), assign_to="ada")
        store.record_vote(fresh(i), "A", "ada", "A")
    assert store.assign_pair("ada") is None
    assert store.assign_pair("bob").id == "p0"


# --- speed: the per-vote work does not grow with the store -----------------------------------
def steps(store, fn) -> int:
    """SQLite virtual-machine steps (in hundreds) fn() costs on the store's connections."""
    count = [0]

    def tick():
        count[0] += 1
        return 0

    for db in (store._db, store._reader):
        db.set_progress_handler(tick, 100)
    try:
        fn()
    finally:
        for db in (store._db, store._reader):
            db.set_progress_handler(None, 1000)
    return count[0]


def import_records(store, tmp_path, n: int, seed: int):
    prompts = sample_prompts(n, seed=seed)
    path = tmp_path / f"bulk{seed}.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "chosen": f"{GOOD} {i}", "rejected": BAD,
                                        "annotator": f"t{i % 7}"}) + "\n"
                            for i, p in enumerate(prompts)))
    store.import_file(path)


def vote_path(store, who):
    """One vote as the Label tab makes it, and what it shows after: the next pair, the
    counters, the gold agreement, kappa and the earlier votes."""
    def run():
        label_one(store, who)
        store.assign_pair(who)
        store.progress(who)
        store.gold_agreement(who)
        store.gold_agreement()
        store.inter_annotator()
        store.recent_votes(who, 200)
    return run


def test_the_work_of_a_vote_does_not_grow_with_the_store(store, tmp_path):
    for n in range(4):  # some shared pairs, so that kappa has something to do
        for _ in range(10):
            label_one(store, f"s{n}")
    import_records(store, tmp_path, 500, seed=1)
    small = steps(store, vote_path(store, "ada"))
    import_records(store, tmp_path, 20_000, seed=2)
    assert store.progress()["total"] > 20_000
    large = steps(store, vote_path(store, "bob"))
    assert large <= 1.3 * small + 10, (small, large)


# --- counts kept by the triggers --------------------------------------------------------------
def brute(store, who=None):
    """progress and gold agreement recomputed from the votes themselves."""
    votes = store.votes(who)
    agree, n = gold_judged(store.preferences(annotator=who))
    return Counter(v["choice"] for v in votes), len(votes), (agree, n)


def check_counts(store, people):
    everyone, total, (agree, n) = brute(store)
    p = store.progress()
    assert p["total"] == total and p["by_choice"] == {c: everyone[c] for c in labels.CHOICES}
    g = store.gold_agreement()
    assert g["n"] == n and g["agreement"] == (agree / n if n else None)
    for who in people:
        _, mine, (agree, n) = brute(store, who)
        assert store.progress(who)["mine"] == mine
        assert store.gold_agreement(who)["n"] == n
    judged = Counter(v["pair_id"] for v in store.votes() if v["choice"] != "skip")
    for row in store._query("SELECT id, judged FROM pairs"):
        assert row["judged"] == judged[row["id"]], row["id"]


def test_counts_follow_votes_undos_and_changes(store):
    rng = random.Random(0)
    people = ["ada", "bob", "cy"]
    good_bad = [(GOOD, BAD), (BAD, GOOD), (GOOD, GOOD + " ."), ("cats purr .", "cats purr .")]
    for i in range(60):
        who = rng.choice(people)
        a, b = rng.choice(good_bad)
        pair = Pair(f"q{i % 20}", PROMPT, a, b) if i % 3 else Pair(f"q{i}", PROMPT, a, b)
        pair = store.get_pair(pair.id) or pair
        try:
            store.record_vote(pair, rng.choice(labels.CHOICES), who, "A")
        except labels.LabelError:
            store.change_vote(pair.id, rng.choice(labels.CHOICES), who)
        if i % 7 == 0:
            store.undo_last(rng.choice(people))
    check_counts(store, people)


OLD_SCHEMA = """
CREATE TABLE pairs (id TEXT PRIMARY KEY, prompt TEXT NOT NULL, response_a TEXT NOT NULL,
    response_b TEXT NOT NULL, ended_a INTEGER NOT NULL DEFAULT 1,
    ended_b INTEGER NOT NULL DEFAULT 1, source_a TEXT, source_b TEXT, created_at REAL NOT NULL);
CREATE TABLE votes (id INTEGER PRIMARY KEY AUTOINCREMENT, pair_id TEXT NOT NULL,
    prompt TEXT NOT NULL, response_a TEXT NOT NULL, response_b TEXT NOT NULL,
    shown_left TEXT, choice TEXT NOT NULL, annotator TEXT NOT NULL, created_at REAL NOT NULL,
    source_a TEXT, source_b TEXT, source TEXT);
"""


def test_an_old_file_gains_the_counts_and_the_assignments(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
        rows = [("p0", "A", "ada", "app"), ("p0", "B", "bob", "app"), ("p1", "skip", "ada", "app"),
                ("p2", "A", "t1", "import:x.jsonl"), ("p3", "B", "ada", "app")]
        for pid in {r[0] for r in rows}:
            a, b = (BAD, GOOD) if pid == "p3" else (GOOD, BAD)
            db.execute("INSERT INTO pairs VALUES (?,?,?,?,1,1,'toy','toy',?)",
                       (pid, PROMPT, a, b, int(pid[1:])))
        for pid, choice, who, source in rows:
            a, b = db.execute("SELECT response_a, response_b FROM pairs WHERE id = ?",
                              (pid,)).fetchone()
            db.execute("INSERT INTO votes (pair_id, prompt, response_a, response_b, shown_left,"
                       " choice, annotator, created_at, source) VALUES (?,?,?,?,'A',?,?,1,?)",
                       (pid, PROMPT, a, b, choice, who, source))
    store = LabelStore(path)
    try:
        check_counts(store, ["ada", "bob", "t1"])
        assert store.gold_agreement("ada") == {"agreement": 1.0, "n": 2}
        assert store.gold_agreement("bob") == {"agreement": 0.0, "n": 1}
        # p1 (ada skipped) goes to bob; the imported p2 is never served; p0 is full
        assert store.assign_pair("bob").id == "p1"
        assert store.assign_pair("cy").id == "p1"
        assert store.assign_pair("dee").id == "p3"
    finally:
        store.close()
    LabelStore(path).close()  # opening again changes nothing
    store = LabelStore(path)
    check_counts(store, ["ada", "bob", "t1"])
    store.close()


def test_costly_statistics_are_served_stale_and_refreshed_in_the_background(store,
                                                                           monkeypatch):
    calls = []
    real = store._agreement

    def slow():
        calls.append(1)
        time.sleep(2 * labels.STATS_CHEAP)
        return real()

    monkeypatch.setattr(store, "_agreement", slow)
    monkeypatch.setattr(labels, "STATS_TTL", 0.3)
    for who in ("ada", "bob"):
        store.record_vote(fresh(0), "A", who, "A")
    assert store.inter_annotator()["pairs"] == 1 and len(calls) == 1  # the first: computed
    assert store.disagreements() == [] and len(calls) == 1  # nothing changed: kept
    for who, choice in (("ada", "A"), ("bob", "B")):
        store.record_vote(fresh(1), choice, who, "A")
    t0 = time.perf_counter()
    assert store.inter_annotator()["pairs"] == 1 and len(calls) == 1  # changed, but fresh
    time.sleep(0.4)
    assert store.inter_annotator()["pairs"] == 1  # due: served stale, refreshed behind
    assert time.perf_counter() - t0 < 0.4 + labels.STATS_CHEAP  # without waiting for it
    deadline = time.time() + 10
    while store.inter_annotator()["pairs"] != 2 and time.time() < deadline:
        time.sleep(0.05)
    assert store.inter_annotator()["pairs"] == 2 and len(calls) == 2
    assert len(store.disagreements()) == 1


# --- the Label tab in class mode, over the API -------------------------------------------
gradio_client = pytest.importorskip("gradio_client")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning",
                                        "ignore:.*no_silent_downcasting:Warning",
                                        "ignore:The copy keyword:Warning")

ROLES = {"ada": "student", "bob": "student", "cy": "student", "teach": "instructor"}


class FakeAccounts:
    """The one call of moss_lab.accounts.Accounts the tab needs: user(name)."""

    def user(self, name):
        from moss_lab.app.session import User

        return User(name, ROLES[name]) if name in ROLES else None


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    """(clients by login, home, lab): the Label tab alone, launched with logins."""
    import gradio as gr
    from app_helpers import free_port

    from moss_lab.app import context, tab_label
    from moss_lab.app.session import ClassSettings

    home = tmp_path_factory.mktemp("class-home")
    counter = iter(range(10**6))

    def sample(prompts):  # distinct responses, no model needed
        return [f"cats purr . {next(counter)}" for _ in prompts], [True] * len(prompts)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOSS_LAB_HOME", str(home))
        context.reset_lab()
        lab = context.Lab(LabelStore(home / "labels.sqlite"), None,
                          labels.PairPool("toy", size=4, sample=sample),
                          accounts=FakeAccounts(), settings=ClassSettings(path=home / "c.json"))
        context._LAB = lab
        with gr.Blocks() as demo:
            parts = tab_label.build()
            tab_label.wire_load(demo, parts)
        demo.queue()
        _, url, _ = demo.launch(server_port=free_port(), prevent_thread_lock=True,
                                auth=lambda name, password: password == "pw" and name in ROLES)
        clients = {name: gradio_client.Client(url, auth=(name, "pw"), verbose=False)
                   for name in ROLES}
        yield clients, home, lab, demo
        for c in clients.values():
            c.close()
        demo.close()
        context.reset_lab()


def stored(home, sql="SELECT pair_id, annotator, choice FROM votes ORDER BY id"):
    with sqlite3.connect(home / "labels.sqlite") as db:
        return db.execute(sql).fetchall()


def request(name):
    import gradio as gr

    return gr.Request(username=name)


def test_the_login_name_is_the_annotator_whatever_the_client_sends(klass):
    clients, home, _, _ = klass
    clients["ada"].predict("bob", api_name="/start")
    clients["ada"].predict("bob", api_name="/vote_left")
    clients["ada"].predict("", api_name="/vote_right")
    assert [r[1] for r in stored(home)] == ["ada", "ada"]
    *_, progress = clients["ada"].predict("bob", api_name="/undo")
    assert "**1** by you" in progress and [r[1] for r in stored(home)] == ["ada"]


def test_pairs_go_to_k_people_and_nobody_twice(klass):
    clients, home, _, _ = klass
    for _ in range(4):
        for who in ("ada", "bob", "cy"):
            clients[who].predict("", api_name="/start")
            clients[who].predict("", api_name="/vote_tie")
    rows = stored(home)
    assert len({(p, who) for p, who, _ in rows}) == len(rows)
    per_pair = Counter(p for p, _, _ in rows)
    assert max(per_pair.values()) == 2 and Counter(per_pair.values())[2] >= 5


def test_a_locked_class_cannot_vote_but_the_instructor_can(klass):
    clients, home, lab, _ = klass
    before = stored(home)
    lab.settings.labelling_locked = True
    try:
        for api in ("/vote_left", "/vote_skip", "/undo"):
            with pytest.raises(Exception, match="locked by the instructor"):
                clients["bob"].predict("", api_name=api)
        assert stored(home) == before
        clients["teach"].predict("", api_name="/start")
        clients["teach"].predict("", api_name="/vote_left")
        assert stored(home)[-1][1] == "teach"
    finally:
        lab.settings.labelling_locked = False


def test_exports_are_ones_own_and_replace_the_last(klass):
    clients, home, _, _ = klass
    path, message = clients["ada"].predict(True, api_name="/export_jsonl")
    mine = [json.loads(line) for line in open(path)]
    assert mine and {r["annotator"] for r in mine} == {"ada"} and "of your" in message
    path, _ = clients["teach"].predict(True, api_name="/export_jsonl")
    assert {json.loads(line)["annotator"] for line in open(path)} >= {"ada", "bob", "teach"}
    from moss_lab.app import downloads

    root = downloads.root() / "labels"
    for _ in range(3):
        clients["ada"].predict(False, api_name="/export_jsonl")
        clients["ada"].predict(False, api_name="/export_parquet")
    assert sorted(p.name for p in root.iterdir()) == ["all", "user-ada"]
    assert sorted(p.name for p in (root / "user-ada").iterdir()) == [
        "preferences.jsonl", "preferences.parquet"]


def test_imports_and_the_disagreement_table_are_the_instructors(klass, tmp_path):
    clients, home, _, _ = klass
    from moss_lab.app import tab_label

    data = tmp_path / "prefs.jsonl"
    data.write_text(json.dumps({"prompt": PROMPT, "chosen": GOOD, "rejected": BAD}) + "\n")
    before = stored(home)
    with pytest.raises(Exception, match="Only the instructor"):
        clients["ada"].predict(gradio_client.handle_file(str(data)), "auto", "teach",
                               api_name="/import_labels")
    assert stored(home) == before
    message, _ = clients["teach"].predict(gradio_client.handle_file(str(data)), "auto", "x",
                                          api_name="/import_labels")
    assert message.startswith("Imported 1 new") and stored(home)[-1][1] == "teach"
    # two students disagreeing on a pair: only the instructor sees who voted what
    pair = fresh()
    store = tab_label.get_lab().store
    store.record_vote(pair, "A", "ada", "A")
    store.record_vote(pair, "B", "bob", "A")
    _, table = tab_label.panel("", request("teach"))
    assert "ada: A" in " ".join(table["who voted what"])
    _, table = tab_label.panel("", request("ada"))
    assert table.empty
    # nor does a request without a login get anything
    with pytest.raises(Exception, match="Log in first"):
        tab_label.panel("", None)


def test_earlier_votes_are_ones_own_and_votes_do_not_queue(klass):
    _, _, _, demo = klass
    from moss_lab.app import tab_label

    mine = tab_label.history("ada")["choices"]
    assert mine and all(tab_label.get_lab().store.vote_of(pid, "ada") for _, pid in mine)
    store = tab_label.get_lab().store
    bobs = next(v["pair_id"] for v in store.votes("bob") if not store.vote_of(v["pair_id"], "ada"))
    with pytest.raises(Exception, match="no vote on that pair"):
        tab_label.revisit(bobs, "bob", request("ada"))  # bob's pair, asked for as bob
    fns = {fn.api_name: fn for fn in demo.fns.values()}
    for api in ("vote_left", "vote_skip", "undo", "start"):
        assert fns[api].concurrency_limit is None
