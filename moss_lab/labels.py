"""The human-feedback label store: one SQLite row per vote (the app's Label tab).

A *pair* is a prompt with two responses, A and B, sampled from a policy. Annotators see
the two side by side in a random left/right order (recorded in `shown_left`) and vote:

    A         response A is better           (Chatbot Arena: "A is better")
    B         response B is better
    tie       both are about as good
    both_bad  neither is acceptable
    skip      the annotator did not judge it

`choice` always names the *stored* response (A = response_a), whatever side it was shown
on, so swapping the display order never changes the meaning of a row.

Every vote is written at once (SQLite in WAL mode, so the app can read while it writes).
One vote per annotator per pair, enforced by the store (a changed mind is `change_vote`,
an undo and a vote in one transaction). Annotator names are normalised (`normalise_name`:
NFKC, invisible characters removed, spaces collapsed), so full-width "ａｄａ" and "ada"
followed by a zero-width space are both "ada"; names longer than 64 characters are
refused, never cut.

A pair's `source_a`/`source_b` name the policy (or run) that wrote each response, and
every vote copies them: the Label tab's pairs are one policy sampled twice, the Compare
tab's blind picks (vote source "compare") are two policies, the input of a people's
leaderboard.

Pairs to label are *assigned* (issue #14): `assign_pair(annotator, overlap=k)` gives a person
the oldest stored pair they never voted on, skipped or were given, whose judgements plus
the live assignments of others stay under k, in one BEGIN IMMEDIATE transaction; so each
pair is judged by k different people and nobody gets one twice (k = 2 by default; a skip
is no judgement). None means: take a fresh pair (`add_pair(pair, assign_to=annotator)`).
Imported labels are data, never served to label again.

Speed: nothing done per vote grows with the number of stored votes. Indexes serve every
lookup; triggers keep `pairs.judged` and the `tallies` (votes per annotator and choice,
with their agreement with gold, worked out once per vote in `votes.gold`), which the
counters read; kappa and the disagreements read only the pairs judged by two or more
people, through a second connection, and are cached (see LabelStore._cached).

Export to prompt/chosen/rejected keeps only A/B votes; ties are left out unless
`include_ties=True`, which exports them with `tie=True` (chosen = A, rejected = B, an
arbitrary order a tie-aware loss must ignore); both_bad and skip are never exported.

Ratings (issue #13): beside the vote, an annotator may score each response of the pair
1-5 on the aspects of `moss_lab.ratings` (quality, safety, relevance, fluency) and
overall, with a free-text comment. One row per rated response in `ratings`, linked to the
pair (`pair_id`, `side` A/B) and to the vote it was given with (`vote_id`); one rating per
annotator per response per pair (a changed rating replaces the old one). A vote with
ratings is one transaction: both stored or neither. Undoing the vote removes its ratings;
changing it keeps them (or replaces them when new ones come with it). Imported ratings have
no pair (`pair_id` NULL). Comments are stored verbatim: plain text, escaped when shown.

Agreement measures:
    gold agreement   fraction of A/B votes on toy prompts that pick the response with the
                     higher `toyworld.gold_score` (gold ties are left out)
    Cohen's kappa    two annotators:  k = (p_o - p_e) / (1 - p_e)
    Fleiss' kappa    several:         k = (P_bar - P_e) / (1 - P_e)
"""
from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
import unicodedata
import uuid
from collections import Counter, deque
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from .paths import labels_db
from .ratings import ASPECTS, Rating, RatingError
from .ratings import validate as validate_rating
from .toyworld import gold_score, has_gold, sample_prompts

CHOICES = ("A", "B", "tie", "both_bad", "skip")
JUDGED = ("A", "B", "tie", "both_bad")  # the categories kappa is computed over
MAX_IMPORT_BYTES = 20 * 1024 * 1024  # a bigger upload is refused before it is read
IMPORT_CHUNK = 1000  # records per write transaction of an import (~50 ms): votes go between
MAX_NAME = 64  # characters in an annotator name, after normalisation


class LabelError(ValueError):
    """A vote or an import that cannot be stored (the message says why)."""


@dataclass
class Pair:
    """Two responses to one prompt, waiting for a vote."""

    id: str
    prompt: str
    response_a: str
    response_b: str
    ended_a: bool = True
    ended_b: bool = True
    source_a: str | None = None  # the policy (or run) that wrote each response
    source_b: str | None = None


SCHEMA = """
CREATE TABLE IF NOT EXISTS pairs (
    id TEXT PRIMARY KEY, prompt TEXT NOT NULL, response_a TEXT NOT NULL,
    response_b TEXT NOT NULL, ended_a INTEGER NOT NULL DEFAULT 1,
    ended_b INTEGER NOT NULL DEFAULT 1, source_a TEXT, source_b TEXT,
    created_at REAL NOT NULL,
    judged INTEGER NOT NULL DEFAULT 0,     -- judged (non-skip) votes on it: kept by triggers
    assignable INTEGER NOT NULL DEFAULT 1  -- 0: imported labels, never served to label again
);
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pair_id TEXT NOT NULL REFERENCES pairs(id),
    prompt TEXT NOT NULL, response_a TEXT NOT NULL, response_b TEXT NOT NULL,
    shown_left TEXT CHECK (shown_left IN ('A', 'B')),  -- NULL for imported labels
    choice TEXT NOT NULL CHECK (choice IN ('A', 'B', 'tie', 'both_bad', 'skip')),
    annotator TEXT NOT NULL, created_at REAL NOT NULL,
    source_a TEXT, source_b TEXT, source TEXT,
    gold INTEGER  -- 1: agrees with the gold score, 0: disagrees, NULL: no gold verdict
);
CREATE INDEX IF NOT EXISTS votes_by_annotator ON votes (annotator, id);
CREATE INDEX IF NOT EXISTS votes_by_pair ON votes (pair_id);
CREATE TABLE IF NOT EXISTS ratings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pair_id TEXT REFERENCES pairs(id),   -- NULL for a rating imported without its pair
    side TEXT CHECK (side IN ('A', 'B')),  -- the pair's response A or B; NULL without a pair
    vote_id INTEGER,                     -- the vote it was given with; NULL if none
    prompt TEXT NOT NULL, response TEXT NOT NULL, ended INTEGER NOT NULL DEFAULT 1,
    annotator TEXT NOT NULL,
    quality INTEGER, safety INTEGER, relevance INTEGER, fluency INTEGER,  -- NULL: skipped
    overall INTEGER NOT NULL, comment TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL, source TEXT
);
-- one rating per annotator per response of a pair (imported ratings are deduplicated on
-- their whole content instead: see import_ratings)
CREATE UNIQUE INDEX IF NOT EXISTS one_rating_per_response
    ON ratings (pair_id, side, annotator) WHERE pair_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS ratings_by_vote ON ratings (vote_id);
-- who was given which pair to label (assign_pair): a live assignment (done_at NULL, younger
-- than the hold) reserves one of the pair's `overlap` places; a vote or a skip completes it
CREATE TABLE IF NOT EXISTS assignments (
    pair_id TEXT NOT NULL, annotator TEXT NOT NULL, assigned_at REAL NOT NULL,
    done_at REAL, PRIMARY KEY (pair_id, annotator)
);
CREATE INDEX IF NOT EXISTS assignments_open ON assignments (annotator, assigned_at)
    WHERE done_at IS NULL;
-- vote counts per annotator and choice (and their agreement with gold), kept by triggers,
-- so that the counters the Label tab shows after each vote cost the same at 200k votes
CREATE TABLE IF NOT EXISTS tallies (
    annotator TEXT NOT NULL, choice TEXT NOT NULL, n INTEGER NOT NULL DEFAULT 0,
    gold_n INTEGER NOT NULL DEFAULT 0, gold_agree INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (annotator, choice)
);
"""
# Made after the migration (they name columns an older file gains there). The triggers keep
# pairs.judged, the tallies and the assignments right for every writer of the file.
DERIVED = (
    "CREATE INDEX IF NOT EXISTS pairs_open ON pairs (judged, created_at, id)"
    " WHERE assignable = 1",
    "CREATE INDEX IF NOT EXISTS pairs_by_judged ON pairs (judged)",
    """CREATE TRIGGER IF NOT EXISTS vote_added AFTER INSERT ON votes BEGIN
        INSERT INTO tallies (annotator, choice, n, gold_n, gold_agree)
            VALUES (NEW.annotator, NEW.choice, 1, NEW.gold IS NOT NULL, COALESCE(NEW.gold, 0))
            ON CONFLICT (annotator, choice) DO UPDATE SET n = n + 1,
                gold_n = gold_n + (NEW.gold IS NOT NULL),
                gold_agree = gold_agree + COALESCE(NEW.gold, 0);
        UPDATE pairs SET judged = judged + 1 WHERE id = NEW.pair_id AND NEW.choice != 'skip';
        UPDATE assignments SET done_at = NEW.created_at
            WHERE pair_id = NEW.pair_id AND annotator = NEW.annotator;
    END""",
    # an undone vote gives the pair back to its voter (the tab shows it again): a live hold
    """CREATE TRIGGER IF NOT EXISTS vote_removed AFTER DELETE ON votes BEGIN
        UPDATE tallies SET n = n - 1, gold_n = gold_n - (OLD.gold IS NOT NULL),
            gold_agree = gold_agree - COALESCE(OLD.gold, 0)
            WHERE annotator = OLD.annotator AND choice = OLD.choice;
        UPDATE pairs SET judged = judged - 1 WHERE id = OLD.pair_id AND OLD.choice != 'skip';
        UPDATE assignments SET done_at = NULL,
            assigned_at = (julianday('now') - 2440587.5) * 86400.0
            WHERE pair_id = OLD.pair_id AND annotator = OLD.annotator;
    END""",
)
# The next pair for a person at one level of `judged`: the oldest assignable pairs with that
# many judgements, of which the first this person never voted on, skipped or was given, and
# whose judgements + live assignments of others stay under the overlap. Only the first
# ASSIGN_SCAN pairs of a level are looked at, so the cost never grows with the store (pairs
# beyond are reached once those are full; a person alone with many half-judged pairs of
# their own gets a fresh pair instead).
ASSIGN_SCAN = 256
CANDIDATE = """
SELECT c.* FROM (SELECT * FROM pairs WHERE assignable = 1 AND judged = :level
                 ORDER BY created_at, id LIMIT :scan) AS c
WHERE NOT EXISTS (SELECT 1 FROM assignments a WHERE a.pair_id = c.id AND a.annotator = :who)
  AND NOT EXISTS (SELECT 1 FROM votes v WHERE v.pair_id = c.id AND v.annotator = :who)
  AND c.judged + (SELECT COUNT(*) FROM assignments a WHERE a.pair_id = c.id
                  AND a.done_at IS NULL AND a.assigned_at > :live) < :overlap
ORDER BY c.created_at, c.id LIMIT 1"""
STATS_TTL = 5.0  # s: a costly whole-store statistic is at most this old (+ its cost) ...
STATS_DUTY = 0.02  # ... and recomputed sooner when that costs <= 2% of a core;
STATS_CHEAP = 0.01  # s: one that takes less than this is recomputed at once (always fresh)
# One vote per annotator per pair. The store checks it in every write transaction (with a
# clear message); the index makes it hold for any writer, but cannot be built on a file
# that already holds a repeated vote, which is then kept as it was (nothing is deleted).
ONE_VOTE_INDEX = ("CREATE UNIQUE INDEX IF NOT EXISTS one_vote_per_annotator"
                  " ON votes (pair_id, annotator)")
PAIR_COLUMNS = ("id", "prompt", "response_a", "response_b", "ended_a", "ended_b",
                "source_a", "source_b", "created_at")
RATING_COLUMNS = ("pair_id", "side", "vote_id", "prompt", "response", "ended", "annotator",
                  *ASPECTS, "overall", "comment", "created_at", "source")


def schema_columns() -> dict[str, dict[str, str]]:
    """{table: {column: definition for ALTER TABLE ADD COLUMN}} as SCHEMA declares them:
    the migration adds whatever an older file lacks (type and default; a NOT NULL column
    needs its default to be added to a table that has rows)."""
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    out = {}
    for table in ("pairs", "votes", "ratings"):
        out[table] = {}
        for _, name, kind, notnull, default, _ in db.execute(f"PRAGMA table_info({table})"):
            extra = "" if default is None else (" NOT NULL" * notnull) + f" DEFAULT {default}"
            out[table][name] = kind + extra
    db.close()
    return out


def normalise_name(name) -> str:
    """An annotator name as stored: Unicode NFKC (full-width "ａｄａ" -> "ada"), invisible
    format characters removed (zero-width spaces, joiners, BOM), whitespace runs collapsed
    to one space, stripped. Two names that look the same are the same person."""
    text = unicodedata.normalize("NFKC", name if isinstance(name, str) else "")
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return " ".join(text.split())


def checked_name(name) -> str:
    """The normalised name; LabelError when it is empty or longer than MAX_NAME."""
    if isinstance(name, str) and len(name) > 16 * MAX_NAME:  # no need to normalise 5 MB
        raise LabelError(f"the annotator name is too long: {len(name)} characters, "
                         f"{MAX_NAME} at most; use a shorter name (nothing was stored)")
    who = normalise_name(name)
    if not who:
        raise LabelError("enter your annotator name before voting")
    if len(who) > MAX_NAME:
        raise LabelError(f"the annotator name is too long: {len(who)} characters, "
                         f"{MAX_NAME} at most; use a shorter name (nothing was stored)")
    return who


class Imported(NamedTuple):
    """What an import did: votes stored, and records skipped because that person's vote on
    that pair was already stored (a re-imported export, or a line repeated in the file)."""

    new: int
    already: int


def display_to_choice(display: str, shown_left: str) -> str:
    """Turn a vote on the screen ('left', 'right', 'tie', ...) into a stored choice."""
    if display in ("left", "right"):
        right = "B" if shown_left == "A" else "A"
        return shown_left if display == "left" else right
    return display


class LabelStore:
    """Votes and pairs in one SQLite file (default: `moss_lab.paths.labels_db()`).

    Nothing done per vote grows with the number of stored votes: lookups go through
    indexes, the counts the Label tab shows come from `tallies` (kept by triggers), and the
    whole-store statistics (kappa, disagreements) read only pairs judged by two or more
    people, through a second connection (never holding up a vote), cached until the store
    changes and then recomputed at most every STATS_TTL seconds when they are costly."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else labels_db()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the app's threads, serialised by a lock: simple, and
        # a vote is a single short transaction.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # safe with WAL, much faster
            self._db.execute("PRAGMA busy_timeout=10000")  # another process writing
            had = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
            self._db.executescript(SCHEMA)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._migrate(new_tallies="tallies" not in had)
                for statement in DERIVED:
                    self._db.execute(statement)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        # Long reads (statistics, exports) go through their own connection: with WAL they
        # see the last committed state and never wait for, nor hold up, a vote.
        self._reader = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._reader.row_factory = sqlite3.Row
        self._reader.execute("PRAGMA busy_timeout=10000")
        self._read_lock = threading.Lock()
        self._cache: dict[str, tuple] = {}  # name -> (store state, time, value, cost s)
        self._computing: dict[str, threading.Lock] = {}

    def _migrate(self, new_tallies: bool) -> None:
        """Bring a file written by an older moss-lab up to SCHEMA in place (one
        transaction): ALTER TABLE ... ADD COLUMN for each missing column (rows are kept; the
        new column takes its default), the derived columns and counts filled from the stored
        votes, then the one-vote index where the stored votes allow it."""
        added = set()
        for table, columns in schema_columns().items():
            have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for name, definition in columns.items():
                if name not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")
                    added.add(f"{table}.{name}")
        if "votes.gold" in added:
            rows = self._db.execute(
                "SELECT v.id, v.choice, v.prompt, v.response_a, v.response_b, p.ended_a,"
                " p.ended_b FROM votes v LEFT JOIN pairs p ON p.id = v.pair_id"
                " WHERE v.choice IN ('A', 'B')").fetchall()
            self._db.executemany("UPDATE votes SET gold = ? WHERE id = ?", [
                (vote_gold(r["prompt"], r["response_a"], r["response_b"], r["choice"],
                           r["ended_a"] in (None, 1), r["ended_b"] in (None, 1)), r["id"])
                for r in rows])
        if "pairs.judged" in added:
            self._db.execute("UPDATE pairs SET judged = (SELECT COUNT(*) FROM votes v WHERE"
                             " v.pair_id = pairs.id AND v.choice != 'skip')")
        if "pairs.assignable" in added:  # imported labels are data, not pairs to label
            self._db.execute("UPDATE pairs SET assignable = 0 WHERE id IN (SELECT pair_id"
                             " FROM votes WHERE source LIKE 'import:%')")
        if new_tallies or "votes.gold" in added:
            self._db.execute("DELETE FROM tallies")
            self._db.execute("INSERT INTO tallies (annotator, choice, n, gold_n, gold_agree)"
                             " SELECT annotator, choice, COUNT(*), COUNT(gold),"
                             " COALESCE(SUM(gold), 0) FROM votes GROUP BY annotator, choice")
        self._db.execute("SAVEPOINT one_vote")
        try:
            self._db.execute(ONE_VOTE_INDEX)
            self._db.execute("RELEASE one_vote")
        except sqlite3.IntegrityError:  # an old file with a repeated vote: kept as it was;
            self._db.execute("ROLLBACK TO one_vote")  # record_vote still checks
            self._db.execute("RELEASE one_vote")
            self._db.execute("CREATE INDEX IF NOT EXISTS votes_by_pair_annotator"
                             " ON votes (pair_id, annotator)")

    def close(self) -> None:
        with self._lock:
            self._db.close()
        with self._read_lock:
            self._reader.close()

    def _query(self, sql: str, args=()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _read(self, sql: str, args=()) -> list[sqlite3.Row]:
        """A read on the second connection (long reads: a vote meanwhile is not held up)."""
        with self._read_lock:
            return self._reader.execute(sql, args).fetchall()

    def _state(self) -> int:
        """Changes whenever anything (this store, or another process) commits a write."""
        with self._read_lock:
            return self._reader.execute("PRAGMA data_version").fetchone()[0]

    def _cached(self, name: str, compute):
        """compute(), kept until the store changes. A cheap value (computed in under
        STATS_CHEAP s) is then recomputed at once, so it is always fresh. A costly one is
        served as it is (stale) while a background thread recomputes it, at most once per
        min(STATS_TTL, its cost / STATS_DUTY) seconds: however fast votes come, no request
        waits for it, and it takes at most a few percent of a core."""
        state = self._state()
        entry = self._cache.get(name)
        if entry is not None and entry[0] == state:
            return entry[2]
        lock = self._computing.setdefault(name, threading.Lock())
        if entry is not None and entry[3] > STATS_CHEAP:
            due = time.monotonic() - entry[1] >= min(STATS_TTL, entry[3] / STATS_DUTY)
            if due and lock.acquire(blocking=False):
                threading.Thread(target=self._compute, args=(name, compute, state, lock),
                                 daemon=True, name=f"labels-{name}").start()
            return entry[2]
        with lock:
            entry = self._cache.get(name)  # computed by another thread while we waited?
            if entry is not None and entry[0] == state:
                return entry[2]
            return self._compute(name, compute, state, None)

    def _compute(self, name: str, compute, state: int, release: threading.Lock | None):
        try:
            started = time.monotonic()
            value = compute()
            self._cache[name] = (state, started, value, time.monotonic() - started)
            return value
        except sqlite3.ProgrammingError:  # the store was closed meanwhile (background)
            if release is None:
                raise
        finally:
            if release is not None:
                release.release()

    @contextmanager
    def _writing(self):
        """One write transaction. BEGIN IMMEDIATE takes SQLite's write lock before the
        first read, so a check ("has this person voted on this pair?") and the insert that
        follows are atomic against other threads (our lock) and other processes (SQLite's)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # --- pairs -------------------------------------------------------------------------
    def add_pair(self, pair: Pair, assign_to: str | None = None) -> Pair:
        """Store a pair to label (kept if its id is stored already); with `assign_to`, it
        is given to that person too (as assign_pair does), in the same transaction."""
        who = checked_name(assign_to) if assign_to is not None else None
        with self._writing() as db:
            now = time.time()
            self._insert_pair(pair, now)
            if who is not None:
                self._assign(db, pair.id, who, now)
        return pair

    def _insert_pair(self, pair: Pair, created_at: float, assignable: bool = True) -> None:
        self._db.execute(
            f"INSERT OR IGNORE INTO pairs ({', '.join(PAIR_COLUMNS)}, assignable)"
            " VALUES (?,?,?,?,?,?,?,?,?,?)",
            (pair.id, pair.prompt, pair.response_a, pair.response_b, int(pair.ended_a),
             int(pair.ended_b), pair.source_a, pair.source_b, created_at, int(assignable)))

    @staticmethod
    def _assign(db, pair_id: str, who: str, now: float) -> None:
        db.execute("INSERT INTO assignments (pair_id, annotator, assigned_at) VALUES (?,?,?)"
                   " ON CONFLICT (pair_id, annotator) DO UPDATE SET assigned_at ="
                   " excluded.assigned_at, done_at = NULL", (pair_id, who, now))

    def get_pair(self, pair_id: str) -> Pair | None:
        rows = self._query("SELECT * FROM pairs WHERE id = ?", (pair_id,))
        return _pair(rows[0]) if rows else None

    def assign_pair(self, annotator: str, overlap: int = 2, hold_s: float = 600.0) -> Pair | None:
        """Give this person a stored pair to label, or None when there is none for them
        (then take a fresh pair: add_pair(pair, assign_to=annotator)).

        The person's own live assignment, if any (a page reloaded before voting), comes
        back first. Else the oldest pair they never voted on, skipped or were given, whose
        judgements plus live assignments of others (younger than `hold_s` seconds, not yet
        voted on) stay under `overlap`: so each pair is judged by `overlap` different people
        and nobody gets a pair twice. A vote or a skip completes the assignment; one not
        completed within `hold_s` frees its place for somebody else. Checked and recorded in
        one BEGIN IMMEDIATE transaction, so two people asking at once never push a pair past
        `overlap`. Imported labels are never served (they are data, not pairs to label)."""
        who = checked_name(annotator)
        overlap = max(1, int(overlap))
        with self._writing() as db:
            now = time.time()
            live = now - hold_s
            row = db.execute(
                "SELECT p.* FROM assignments a JOIN pairs p ON p.id = a.pair_id"
                " WHERE a.annotator = ? AND a.done_at IS NULL AND a.assigned_at > ?"
                " ORDER BY a.assigned_at DESC LIMIT 1", (who, live)).fetchone()
            if row is None:
                row = self._candidate(db, who, overlap, live)
                if row is None:
                    return None
            self._assign(db, row["id"], who, now)
            return _pair(row)

    @staticmethod
    def _candidate(db, who: str, overlap: int, live: float):
        """The oldest pair `who` may be given (see CANDIDATE), over every level of
        `judged` below the overlap; None if there is none."""
        best = None
        for level in range(overlap):
            row = db.execute(CANDIDATE, {"level": level, "scan": ASSIGN_SCAN, "who": who,
                                         "live": live, "overlap": overlap}).fetchone()
            if row is not None and (best is None or (row["created_at"], row["id"])
                                    < (best["created_at"], best["id"])):
                best = row
        return best

    def pending_pair(self, annotator: str, overlap: int = 2) -> Pair | None:
        """The pair assign_pair would give this annotator, ignoring assignments and
        recording none (a script voting alone through the store)."""
        with self._lock:
            row = self._candidate(self._db, normalise_name(annotator), max(1, int(overlap)),
                                  float("inf"))
        return _pair(row) if row is not None else None

    # --- votes -------------------------------------------------------------------------
    def record_vote(self, pair: Pair, choice: str, annotator: str, shown_left: str | None,
                    source: str = "app", ratings: dict | None = None) -> int:
        """Store one vote at once; return its row id. Bad input, or a second vote by the
        same person on the same pair, raises LabelError and stores nothing.

        ratings: {'A': rating, 'B': rating} (either side may be left out), each a Rating or
        a dict with overall, aspects and comment (the pair gives prompt and response);
        stored with the vote in one transaction, so a bad rating stores no vote either.
        """
        who = checked_name(annotator)
        _check_vote(choice, shown_left)
        rated = pair_ratings(pair, ratings, who, source) if ratings else {}
        with self._writing():
            self._refuse_second_vote(pair.id, who)
            now = time.time()
            self._insert_pair(pair, now)
            vote_id = self._insert_vote(pair, choice, who, shown_left, source, now)
            self._replace_pair_ratings(pair.id, who, rated, vote_id, now)
            return vote_id

    def change_vote(self, pair_id: str, choice: str, annotator: str,
                    ratings: dict | None = None) -> int:
        """A changed mind: undo this person's vote on the pair, then vote `choice` (same
        screen order), in one transaction. Returns the new row id. The ratings given with
        the old vote stay with the new one, unless new `ratings` (as in record_vote)
        replace them."""
        who = checked_name(annotator)
        _check_vote(choice, None)
        with self._writing() as db:
            old = db.execute("SELECT * FROM votes WHERE pair_id = ? AND annotator = ?",
                             (pair_id, who)).fetchone()
            pair = db.execute("SELECT * FROM pairs WHERE id = ?", (pair_id,)).fetchone()
            if old is None or pair is None:
                raise LabelError(f"{who} has no vote on pair {pair_id} to change")
            rated = pair_ratings(_pair(pair), ratings, who, old["source"]) if ratings else {}
            db.execute("DELETE FROM votes WHERE pair_id = ? AND annotator = ?", (pair_id, who))
            now = time.time()
            vote_id = self._insert_vote(_pair(pair), choice, who, old["shown_left"],
                                        old["source"], now)
            db.execute("UPDATE ratings SET vote_id = ? WHERE vote_id = ?", (vote_id, old["id"]))
            self._replace_pair_ratings(pair_id, who, rated, vote_id, now)
            return vote_id

    def _refuse_second_vote(self, pair_id: str, who: str) -> None:
        choice = self._choice_of(pair_id, who)
        if choice is not None:
            raise LabelError(f"{who} has already voted on this pair ({choice}); one vote per "
                             "person per pair: undo it (or pick it under 'Your earlier votes') "
                             "to change it")

    def _choice_of(self, pair_id: str, annotator: str) -> str | None:
        """This person's vote on this pair (its choice), or None; inside a write
        transaction (the store's lock held)."""
        row = self._db.execute("SELECT choice FROM votes WHERE pair_id = ? AND annotator = ?",
                               (pair_id, annotator)).fetchone()
        return row[0] if row is not None else None

    def _insert_vote(self, pair, choice, annotator, shown_left, source, created_at,
                     gold=...) -> int:
        """Insert one vote row (the triggers update the counts); `gold` is vote_gold's
        verdict when the caller worked it out already."""
        if gold is ...:
            gold = vote_gold(pair.prompt, pair.response_a, pair.response_b, choice,
                             pair.ended_a, pair.ended_b)
        cursor = self._db.execute(
            "INSERT INTO votes (pair_id, prompt, response_a, response_b, shown_left, choice,"
            " annotator, created_at, source_a, source_b, source, gold)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (pair.id, pair.prompt, pair.response_a, pair.response_b, shown_left, choice,
             annotator, created_at, pair.source_a, pair.source_b, source, gold))
        return cursor.lastrowid

    def undo_last(self, annotator: str) -> dict | None:
        """Delete this annotator's most recent vote; return it (None if there is none)."""
        with self._writing() as db:
            row = db.execute("SELECT * FROM votes WHERE annotator = ? ORDER BY id DESC LIMIT 1",
                             (normalise_name(annotator),)).fetchone()
            if row is not None:  # the ratings given with the vote go with it
                db.execute("DELETE FROM ratings WHERE vote_id = ?", (row["id"],))
                db.execute("DELETE FROM votes WHERE id = ?", (row["id"],))
        return dict(row) if row is not None else None

    def votes(self, annotator: str | None = None) -> list[dict]:
        """Every stored vote (of one annotator, or everyone's), oldest first."""
        if annotator is None:
            rows = self._read("SELECT * FROM votes ORDER BY id")
        else:
            rows = self._read("SELECT * FROM votes WHERE annotator = ? ORDER BY id",
                              (normalise_name(annotator),))
        return [dict(r) for r in rows]

    def recent_votes(self, annotator: str, limit: int = 200) -> list[dict]:
        """This annotator's newest `limit` votes, newest first (pair_id, prompt, choice,
        shown_left, id): what 'Your earlier votes' lists, at the same cost however many
        votes are stored."""
        rows = self._query("SELECT id, pair_id, prompt, choice, shown_left FROM votes"
                           " WHERE annotator = ? ORDER BY id DESC LIMIT ?",
                           (normalise_name(annotator), int(limit)))
        return [dict(r) for r in rows]

    def vote_of(self, pair_id: str, annotator: str) -> dict | None:
        """This annotator's (latest) vote on the pair, or None."""
        rows = self._query("SELECT * FROM votes WHERE pair_id = ? AND annotator = ?"
                           " ORDER BY id DESC LIMIT 1", (pair_id, normalise_name(annotator)))
        return dict(rows[0]) if rows else None

    def ratings_of(self, pair_id: str, annotator: str) -> dict[str, dict]:
        """{'A': row, 'B': row}: this annotator's ratings of the pair's responses."""
        rows = self._query("SELECT * FROM ratings WHERE pair_id = ? AND annotator = ?",
                           (pair_id, normalise_name(annotator)))
        return {r["side"]: dict(r) for r in rows}

    def progress(self, annotator: str | None = None) -> dict:
        """Vote counts: total, per choice, for one annotator, and how many people voted
        (from the tallies: the same cost at 2k or 200k votes)."""
        by_choice = {c: 0 for c in CHOICES}
        with self._lock:
            for row in self._db.execute("SELECT choice, SUM(n) FROM tallies GROUP BY choice"):
                by_choice[row[0]] = row[1]
            mine = 0
            if annotator:
                mine = self._db.execute("SELECT COALESCE(SUM(n), 0) FROM tallies WHERE"
                                        " annotator = ?", (normalise_name(annotator),)
                                        ).fetchone()[0]
            annotators = self._db.execute("SELECT COUNT(DISTINCT annotator) FROM tallies"
                                          " WHERE n > 0").fetchone()[0]
        return {"total": sum(by_choice.values()), "by_choice": by_choice, "mine": mine,
                "annotators": annotators, "pairwise": by_choice["A"] + by_choice["B"]}

    # --- agreement ---------------------------------------------------------------------
    def gold_agreement(self, annotator: str | None = None) -> dict:
        """How often A/B votes on toy prompts pick the response the gold score prefers
        (each vote's verdict is kept with it: see vote_gold)."""
        where, args = ("WHERE annotator = ?", (normalise_name(annotator),)) if annotator \
            else ("", ())
        agree, n = self._query("SELECT COALESCE(SUM(gold_agree), 0), COALESCE(SUM(gold_n), 0)"
                               f" FROM tallies {where}", args)[0]
        return {"agreement": agree / n if n else None, "n": n}

    def inter_annotator(self) -> dict:
        """Kappa over pairs judged by two or more people (skips left out; each person's
        latest vote on a pair counts). Two annotators: Cohen; more: Fleiss. Cached with
        the disagreements (see _cached): one read of the shared pairs for both."""
        return self._cached("agreement", self._agreement)[0]

    def _agreement(self) -> tuple[dict, list[dict]]:
        shared = self._shared_verdicts()
        return self._inter_annotator(shared), self._disagreements(shared)

    def _inter_annotator(self, verdicts: dict) -> dict:
        shared = {p: by for p, (by, _) in verdicts.items()}
        people = sorted({a for by in shared.values() for a in by})
        if not shared:
            return {"kappa": None, "method": None, "pairs": 0, "annotators": len(people)}
        if len(people) == 2:
            a, b = people
            kappa = cohen_kappa([by[a] for by in shared.values()],
                                [by[b] for by in shared.values()])
            method = "cohen"
        else:
            table = [[Counter(by.values())[c] for c in JUDGED] for by in shared.values()]
            kappa, method = fleiss_kappa(table), "fleiss"
        return {"kappa": kappa, "method": method, "pairs": len(shared), "annotators": len(people)}

    def shared_verdicts(self) -> dict[str, dict[str, str]]:
        """{pair id: {annotator: verdict}} for the pairs two or more people judged (the
        Class tab's kappa per student reads it)."""
        return {p: by for p, (by, _) in self._shared_verdicts().items()}

    def _shared_verdicts(self) -> dict[str, tuple[dict[str, str], sqlite3.Row]]:
        """{pair id: ({annotator: choice}, pair row)} for the pairs judged by two or more
        people (skips left out; a file from before the one-vote rule may hold several votes
        by one person: the latest counts), oldest vote first. Reads only those pairs'
        votes (pairs.judged, indexed), never the whole store."""
        rows = self._read(
            "SELECT v.pair_id, v.annotator, v.choice, p.prompt, p.response_a, p.response_b"
            " FROM pairs p CROSS JOIN votes v ON v.pair_id = p.id"  # pairs first: shared only
            " WHERE p.judged >= 2 AND v.choice != 'skip' ORDER BY v.id")
        latest: dict[str, tuple[dict, sqlite3.Row]] = {}
        for r in rows:
            latest.setdefault(r["pair_id"], ({}, r))[0][r["annotator"]] = r["choice"]
        return {p: got for p, got in latest.items() if len(got[0]) >= 2}

    def disagreements(self) -> list[dict]:
        """The pairs judged by two or more people who did not all give the same verdict:
        the pair's texts, the votes per verdict and who voted what (oldest pair first).
        Cached with the kappa (see _cached)."""
        return self._cached("agreement", self._agreement)[1]

    @staticmethod
    def _disagreements(verdicts: dict) -> list[dict]:
        return [{"pair_id": pair_id, "prompt": pair["prompt"],
                 "response_a": pair["response_a"], "response_b": pair["response_b"],
                 "votes": {c: list(by.values()).count(c) for c in JUDGED},
                 "annotators": dict(sorted(by.items()))}
                for pair_id, (by, pair) in verdicts.items()
                if len(set(by.values())) > 1]

    # --- export / import ---------------------------------------------------------------
    def preferences(self, include_ties: bool = False, annotator: str | None = None) -> list:
        """The votes (of one annotator, or everyone's) as `moss_lab.preferences.Preference`
        records (see the module doc)."""
        from .preferences import Preference

        sql = ("SELECT v.*, COALESCE(p.ended_a, 1) AS pair_ended_a,"
               " COALESCE(p.ended_b, 1) AS pair_ended_b"
               " FROM votes v LEFT JOIN pairs p ON p.id = v.pair_id"
               " WHERE v.choice IN ('A', 'B', 'tie')")
        if annotator is None:
            rows = self._read(sql + " ORDER BY v.id")
        else:
            rows = self._read(sql + " AND v.annotator = ? ORDER BY v.id",
                              (normalise_name(annotator),))
        out = []
        for v in rows:
            a, b = v["response_a"], v["response_b"]
            if a == b or not a.strip() or not b.strip():
                continue  # not a comparison (the pair pool never makes these)
            ended_a, ended_b = bool(v["pair_ended_a"]), bool(v["pair_ended_b"])
            if v["choice"] == "A":
                chosen, rejected, tie, ends = a, b, False, (ended_a, ended_b)
            elif v["choice"] == "B":
                chosen, rejected, tie, ends = b, a, False, (ended_b, ended_a)
            elif v["choice"] == "tie" and include_ties:
                chosen, rejected, tie, ends = a, b, True, (ended_a, ended_b)
            else:
                continue
            out.append(Preference(prompt=v["prompt"], chosen=chosen, rejected=rejected,
                                  tie=tie, annotator=v["annotator"], source=v["source"],
                                  created_at=_iso(v["created_at"]),
                                  chosen_ended=ends[0], rejected_ended=ends[1]))
        return out

    def export_jsonl(self, path: str | Path, include_ties: bool = False,
                     annotator: str | None = None) -> int:
        """Write prompt/chosen/rejected JSONL (atomic) of everyone's votes, or of one
        annotator's; return the number of records."""
        from .preferences import write_jsonl

        prefs = self.preferences(include_ties, annotator)
        write_jsonl(prefs, path)
        return len(prefs)

    def to_dataset(self, include_ties: bool = False, annotator: str | None = None):
        """The exported records as a `datasets.Dataset` (prompt, chosen, rejected)."""
        from .preferences import to_dataset

        return to_dataset(self.preferences(include_ties, annotator))

    def import_file(self, path: str | Path, annotator: str | None = None,
                    fmt: str = "auto") -> Imported:
        """Import a prompt/chosen/rejected JSONL or an Anthropic HH JSONL file.

        The whole file is validated first; a malformed file stores nothing (LabelError
        names the problem, and the file by its name only). Each record is a vote by its own
        `annotator` (else by `annotator`, else "imported"): 'tie' for tie=True, else for
        the chosen response, on a stored pair with the same prompt and responses (in either
        order) that this person has not voted on, else on a new pair (A = chosen). A vote
        this person already gave on such a pair is not stored again, so re-importing an
        export adds nothing. Returns (new votes, records already stored).

        The records are stored IMPORT_CHUNK at a time, one transaction each, so that people
        labelling meanwhile wait ~50 ms, not the whole import (seconds per 100k records); an
        import cut short (the app killed) is completed by importing the same file again.
        """
        from .preferences import PreferenceError, read_hh_jsonl, read_jsonl

        path = Path(path)
        size = path.stat().st_size
        if size > MAX_IMPORT_BYTES:
            raise LabelError(f"{path.name} is {size / 2**20:.1f} MB; the import limit is "
                             f"{MAX_IMPORT_BYTES // 2**20} MB")
        if fmt == "auto":
            fmt = sniff_format(path)
        try:
            prefs = read_hh_jsonl(path) if fmt == "hh" else read_jsonl(path)
        except (PreferenceError, ValueError, UnicodeDecodeError) as err:
            # the message names the file by its name: never the server's upload folder
            message = str(err).replace(str(path), path.name)
            raise LabelError(f"{path.name} was not imported: {message}") from err
        if not prefs:
            raise LabelError(f"{path.name} holds no preference records")
        names = []
        for i, p in enumerate(prefs, start=1):
            try:
                names.append(checked_name(p.annotator or annotator or "imported"))
            except LabelError as err:
                raise LabelError(f"{path.name} was not imported: record {i}: {err}") from None
        # each record's agreement with gold, worked out before the write lock is taken
        golds = [vote_gold(p.prompt, p.chosen, p.rejected, "tie" if p.tie else "A",
                           p.chosen_ended, p.rejected_ended) for p in prefs]
        source = f"import:{path.name}"
        now = time.time()
        new = 0
        # (prompt, chosen, rejected) -> [(pair id, the choice that means "chosen")], read
        # once and then topped up with the pairs stored since (pairs are never deleted)
        same: dict[tuple, list] = {}
        last_pair = 0  # rowid of the last pair read into `same`
        records = list(zip(prefs, names, golds))
        for start in range(0, len(records), IMPORT_CHUNK):
            # one write transaction per chunk: votes of others go in between
            with self._writing() as db:
                for row in db.execute("SELECT rowid, id, prompt, response_a, response_b"
                                      " FROM pairs WHERE rowid > ? ORDER BY rowid", (last_pair,)):
                    last_pair = row[0]
                    same.setdefault((row[2], row[3], row[4]), []).append((row[1], "A"))
                    same.setdefault((row[2], row[4], row[3]), []).append((row[1], "B"))
                for p, who, gold in records[start:start + IMPORT_CHUNK]:
                    key = (p.prompt, p.chosen, p.rejected)
                    swapped = (p.prompt, p.rejected, p.chosen)
                    pairs = same.get(key, [])
                    given = {pid: self._choice_of(pid, who) for pid, _ in pairs}
                    if any(given[pid] == _verdict(p, ch) for pid, ch in pairs):
                        continue  # this person's same verdict on this pair is stored already
                    # a pair with this content this person has not voted on; else a new one
                    # (a dataset may hold one pair twice with opposite labels: both are kept)
                    free = [(pid, ch) for pid, ch in pairs if given[pid] is None]
                    if free:
                        pid, ch = free[0]
                        pair = _pair(db.execute("SELECT * FROM pairs WHERE id = ?",
                                                (pid,)).fetchone())
                        if (pair.ended_a, pair.ended_b)[::1 if ch == "A" else -1] != \
                                (p.chosen_ended, p.rejected_ended):  # the stored pair's flags
                            gold = vote_gold(pair.prompt, pair.response_a, pair.response_b,
                                             _verdict(p, ch), pair.ended_a, pair.ended_b)
                    else:
                        pair, ch = Pair(uuid.uuid4().hex[:12], p.prompt, p.chosen, p.rejected,
                                        p.chosen_ended, p.rejected_ended, p.source,
                                        p.source), "A"
                        self._insert_pair(pair, now, assignable=False)
                        same.setdefault(key, []).append((pair.id, "A"))
                        same.setdefault(swapped, []).append((pair.id, "B"))
                    self._insert_vote(pair, _verdict(p, ch), who, None, source, now, gold)
                    new += 1
                # this chunk's own pairs are in `same` already
                last_pair = db.execute("SELECT COALESCE(MAX(rowid), 0) FROM pairs").fetchone()[0]
            time.sleep(0.002)  # a thread waiting for the store's lock takes it now, not later
        return Imported(new, len(prefs) - new)

    # --- ratings -----------------------------------------------------------------------
    def add_ratings(self, ratings, annotator: str | None = None, pair: Pair | None = None,
                    source: str = "app") -> int:
        """Store ratings without a vote, all or nothing; return how many were stored.

        With `pair`: ratings is {'A': rating, 'B': rating}, as in record_vote. Without:
        a list of Rating records (or dicts) of any responses, each by its own annotator
        (else `annotator`). Either way a person's earlier rating of the same response
        (on the same pair, or pairless) is replaced: one rating per person per response.
        """
        if pair is not None:
            who = checked_name(annotator)
            rated = pair_ratings(pair, ratings, who, source)
            with self._writing():
                now = time.time()
                self._insert_pair(pair, now)
                self._replace_pair_ratings(pair.id, who, rated, None, now)
            return len(rated)
        rows = []
        for i, r in enumerate(ratings, start=1):
            try:
                r = validate_rating(r)
            except RatingError as err:
                raise LabelError(f"rating {i}: {err} (nothing was stored)") from None
            r.annotator = checked_name(r.annotator or annotator)
            rows.append(r)
        with self._writing() as db:
            now = time.time()
            for r in rows:
                db.execute("DELETE FROM ratings WHERE pair_id IS NULL AND annotator = ? AND "
                           "prompt = ? AND response = ?", (r.annotator, r.prompt, r.response))
                self._insert_rating(r, None, None, None, now, r.source or source)
        return len(rows)

    def _replace_pair_ratings(self, pair_id, who, rated: dict, vote_id, now) -> None:
        for side, r in rated.items():
            self._db.execute("DELETE FROM ratings WHERE pair_id = ? AND side = ? AND "
                             "annotator = ?", (pair_id, side, who))
            self._insert_rating(r, pair_id, side, vote_id, now, r.source)

    def _insert_rating(self, r: Rating, pair_id, side, vote_id, created_at, source) -> int:
        values = (pair_id, side, vote_id, r.prompt, r.response, int(r.ended), r.annotator,
                  *(r.aspects.get(a) for a in ASPECTS), r.overall, r.comment, created_at,
                  source)
        cursor = self._db.execute(
            f"INSERT INTO ratings ({', '.join(RATING_COLUMNS)})"
            f" VALUES ({', '.join('?' * len(RATING_COLUMNS))})", values)
        return cursor.lastrowid

    def ratings(self, annotator: str | None = None) -> list[dict]:
        """The stored ratings (of one annotator, or everyone's), oldest first, one dict
        per rated response with the columns of the `ratings` table."""
        if annotator is None:
            rows = self._read("SELECT * FROM ratings ORDER BY id")
        else:
            rows = self._read("SELECT * FROM ratings WHERE annotator = ? ORDER BY id",
                               (normalise_name(annotator),))
        return [dict(r) for r in rows]

    def rating_records(self, annotator: str | None = None) -> list[Rating]:
        """The stored ratings as `moss_lab.ratings.Rating` records (skipped aspects left out)."""
        return [Rating(r["prompt"], r["response"], r["overall"],
                       {a: r[a] for a in ASPECTS if r[a] is not None}, r["comment"],
                       bool(r["ended"]), r["annotator"], r["source"], _iso(r["created_at"]))
                for r in self.ratings(annotator)]

    def export_ratings_jsonl(self, path: str | Path, annotator: str | None = None) -> int:
        """Write the ratings (everyone's, or one annotator's) as JSONL
        (moss_lab.ratings.write_jsonl, atomic); return the count."""
        from .ratings import write_jsonl

        records = self.rating_records(annotator)
        write_jsonl(records, path)
        return len(records)

    def ratings_dataset(self, annotator: str | None = None):
        """The ratings as a `datasets.Dataset` (moss_lab.ratings.to_dataset)."""
        from .ratings import to_dataset

        return to_dataset(self.rating_records(annotator))

    def import_ratings(self, path: str | Path, annotator: str | None = None) -> Imported:
        """Import a ratings JSONL file (moss_lab.ratings.read_jsonl) as pairless ratings.

        The whole file is checked first; a malformed one stores nothing (LabelError names
        the file by its name and the bad lines). Each record is by its own `annotator`
        (else `annotator`, else "imported"). A record equal to a stored rating (same person,
        prompt, response, stars and comment) is not stored again, so re-importing an export
        adds nothing. Returns (new ratings, records already stored).
        """
        from .ratings import read_jsonl

        path = Path(path)
        size = path.stat().st_size
        if size > MAX_IMPORT_BYTES:
            raise LabelError(f"{path.name} is {size / 2**20:.1f} MB; the import limit is "
                             f"{MAX_IMPORT_BYTES // 2**20} MB")
        try:
            records = read_jsonl(path)
        except ValueError as err:  # RatingError; the message names the file by its name only
            message = str(err).replace(f"{path}: ", "").replace(str(path), path.name)
            raise LabelError(f"{path.name} was not imported: {message}") from err
        if not records:
            raise LabelError(f"{path.name} holds no ratings")
        for i, r in enumerate(records, start=1):
            try:
                r.annotator = checked_name(r.annotator or annotator or "imported")
            except LabelError as err:
                raise LabelError(f"{path.name} was not imported: record {i}: {err}") from None
        new = 0
        with self._writing() as db:
            now = time.time()
            stored = {_rating_key(row) for row in db.execute("SELECT * FROM ratings")}
            for r in records:
                key = _rating_key(r)
                if key in stored:
                    continue
                self._insert_rating(r, None, None, None, now, f"import:{path.name}")
                stored.add(key)
                new += 1
        return Imported(new, len(records) - new)


def pair_ratings(pair: Pair, ratings: dict, who: str, source: str | None) -> dict[str, Rating]:
    """{'A': rating, 'B': rating} checked by moss_lab.ratings.validate, with the prompt,
    response, ended, annotator and source taken from the pair and the vote; LabelError
    naming the response and the field otherwise."""
    if not isinstance(ratings, dict) or not set(ratings) <= {"A", "B"}:
        raise LabelError("ratings must be given as {'A': rating, 'B': rating} (the pair's "
                         "responses); nothing was stored")
    out = {}
    for side in sorted(ratings):
        r = ratings[side]
        if isinstance(r, Rating):
            r = r.to_dict()
        if not isinstance(r, dict):
            raise LabelError(f"the rating of response {side} must be an object with overall, "
                             f"aspects and comment, got {type(r).__name__}; nothing was stored")
        a = side == "A"
        record = {**r, "prompt": pair.prompt, "response": pair.response_a if a else pair.response_b,
                  "ended": pair.ended_a if a else pair.ended_b, "annotator": who, "source": source}
        try:
            out[side] = validate_rating(record)
        except RatingError as err:
            raise LabelError(f"the rating of response {side}: {err}; nothing was stored") from None
    return out


def _rating_key(r) -> tuple:
    """What makes two ratings the same record (a row of `ratings` or a Rating)."""
    if isinstance(r, Rating):
        stars = tuple(r.aspects.get(a) for a in ASPECTS)
        return (r.annotator, r.prompt, r.response, r.overall, stars, r.comment)
    return (r["annotator"], r["prompt"], r["response"], r["overall"],
            tuple(r[a] for a in ASPECTS), r["comment"])


def _verdict(pref, chosen_side: str) -> str:
    """The stored choice of an imported record on a pair whose `chosen_side` ('A' or 'B')
    holds its chosen response."""
    return "tie" if pref.tie else chosen_side


def vote_gold(prompt: str, response_a: str, response_b: str, choice: str, ended_a=True,
              ended_b=True) -> int | None:
    """A vote's agreement with the gold score, kept with the vote: 1 when an A/B vote on a
    toy prompt picks the response with the higher gold score, 0 when it picks the lower
    one, None otherwise (not A/B, no comparison, no gold truth, a gold tie): the rule of
    moss_lab.preferences.gold_judged, counted once per vote instead of once per query."""
    if choice not in ("A", "B") or response_a == response_b or not response_a.strip() \
            or not response_b.strip() or not has_gold(prompt):
        return None
    diff = (gold_score(prompt, response_a, bool(ended_a)).total
            - gold_score(prompt, response_b, bool(ended_b)).total)
    if abs(diff) <= 1e-9:
        return None
    return int((diff > 0) == (choice == "A"))


def _check_vote(choice: str, shown_left: str | None) -> None:
    if choice not in CHOICES:
        raise LabelError(f"unknown choice {choice!r}; expected one of {', '.join(CHOICES)}")
    if shown_left not in ("A", "B", None):
        raise LabelError(f"shown_left must be 'A', 'B' or None, not {shown_left!r}")


def sniff_format(path: str | Path) -> str:
    """'hh' when the first record has chosen/rejected but no prompt, else 'jsonl'."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                try:
                    first = json.loads(line)
                except (json.JSONDecodeError, RecursionError):
                    return "jsonl"  # read_jsonl reports the bad line
                if isinstance(first, dict) and "prompt" not in first and "chosen" in first:
                    return "hh"
                return "jsonl"
    return "jsonl"


def _pair(row: sqlite3.Row) -> Pair:
    return Pair(row["id"], row["prompt"], row["response_a"], row["response_b"],
                bool(row["ended_a"]), bool(row["ended_b"]), row["source_a"], row["source_b"])


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# ---------------------------------------------------------------------------------------
# Agreement statistics
# ---------------------------------------------------------------------------------------
def cohen_kappa(labels_1: list, labels_2: list) -> float:
    """Cohen's kappa of two annotators on the same items.

    k = (p_o - p_e) / (1 - p_e), with p_o the observed agreement and
    p_e = sum_c p_1(c) p_2(c) the agreement expected by chance from each one's marginals.
    """
    if len(labels_1) != len(labels_2) or not labels_1:
        raise ValueError("need two equally long, non-empty label lists")
    n = len(labels_1)
    p_o = sum(x == y for x, y in zip(labels_1, labels_2)) / n
    c1, c2 = Counter(labels_1), Counter(labels_2)
    p_e = sum(c1[c] * c2[c] for c in c1) / n**2
    return 1.0 if p_e == 1 else (p_o - p_e) / (1 - p_e)


def fleiss_kappa(table: list[list[int]]) -> float:
    """Fleiss' kappa from a table of counts: table[i][j] = raters who put item i in class j.

    P_i   = (sum_j n_ij^2 - n_i) / (n_i (n_i - 1))     agreement on item i
    p_j   = sum_i n_ij / sum_i n_i                      share of class j
    k     = (mean_i P_i - sum_j p_j^2) / (1 - sum_j p_j^2)

    Items may have different numbers of raters n_i (>= 2); with a constant n this is
    exactly Fleiss (1971).
    """
    rows = [r for r in table if sum(r) >= 2]
    if not rows:
        raise ValueError("need at least one item rated by two or more people")
    p_items = [(sum(x * x for x in r) - sum(r)) / (sum(r) * (sum(r) - 1)) for r in rows]
    total = sum(sum(r) for r in rows)
    p_classes = [sum(r[j] for r in rows) / total for j in range(len(rows[0]))]
    p_bar = sum(p_items) / len(p_items)
    p_e = sum(p * p for p in p_classes)
    return 1.0 if p_e == 1 else (p_bar - p_e) / (1 - p_e)


# ---------------------------------------------------------------------------------------
# Pairs to label: two policy samples per prompt, generated ahead of time
# ---------------------------------------------------------------------------------------
class PairPool:
    """A small stock of fresh pairs, refilled in a background thread, so that the next
    pair appears at once after a vote instead of after a generation.

    `sample(prompts) -> (responses, ended)` draws one response per prompt; by default it
    loads `policy` with `moss_lab.models.load_policy` and calls `moss_lab.sampling.generate`.
    """

    def __init__(self, policy: str = "toy", size: int = 8, max_new_tokens: int = 40,
                 seed: int = 0, sample=None, processes: bool = False):
        """processes=True (the app under `moss-lab app`): sample in a worker process, so
        that generation (~40% of a class's server CPU) does not hold this process's GIL
        while the app answers votes."""
        self.policy, self.size, self.max_new_tokens = policy, size, max_new_tokens
        self.processes, self._executor = processes, None
        self._rng = random.Random(seed)
        self._sample = sample
        self._pairs: deque[Pair] = deque()
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._filled = threading.Condition(self._lock)
        self.error: str | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def _default_sampler(self):
        from .models import load_policy
        from .sampling import generate

        if self.processes:
            from concurrent.futures import ProcessPoolExecutor

            from .runs import _context

            self._executor = ProcessPoolExecutor(
                1, mp_context=_context(), initializer=_pair_worker_start,
                initargs=(self.policy, self.max_new_tokens, os.getpid(), dict(os.environ)))
            return lambda prompts: self._executor.submit(_pair_worker_sample, prompts).result()
        model, tokenizer = load_policy(self.policy, device="cpu")
        return lambda prompts: (lambda s: (s.responses, s.ended))(
            generate(model, tokenizer, prompts, max_new_tokens=self.max_new_tokens))

    def start(self) -> "PairPool":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="pair-pool")
            self._thread.start()
            self._wanted.set()
        return self

    def _run(self) -> None:
        try:
            if self._sample is None:
                self._sample = self._default_sampler()
            while not self._closed:
                self._wanted.wait()
                self._wanted.clear()
                if len(self._pairs) > self.size // 2:
                    continue  # refill in batches: 16x cheaper a pair at 64 than at 1 (52 vs 4 ms)
                while len(self._pairs) < self.size and not self._closed:
                    self._add(self.make_pairs(self.size - len(self._pairs)))
        except Exception as err:  # shown in the app instead of a silent empty pool
            with self._lock:
                self.error = f"could not sample pairs from {self.policy!r}: {err}"
                self._filled.notify_all()

    def make_pairs(self, n: int) -> list[Pair]:
        """n new pairs: each prompt sampled twice in one batch."""
        prompts = sample_prompts(n, seed=self._rng.randrange(2**31))
        responses, ended = self._sample(prompts + prompts)
        return [Pair(uuid.uuid4().hex[:12], p, responses[i], responses[n + i],
                     bool(ended[i]), bool(ended[n + i]), self.policy, self.policy)
                for i, p in enumerate(prompts)
                # identical or empty responses are no comparison: drop them
                if responses[i] != responses[n + i] and responses[i].strip()
                and responses[n + i].strip()]

    def _add(self, pairs: list[Pair]) -> None:
        with self._lock:
            self._pairs.extend(pairs)
            self._filled.notify_all()

    def get(self, timeout: float = 120.0) -> Pair:
        """The next fresh pair (waits while the pool is first filled)."""
        self.start()
        with self._lock:
            if not self._filled.wait_for(lambda: self._pairs or self.error, timeout):
                raise TimeoutError("no pair was generated in time")
            if self.error and not self._pairs:
                raise RuntimeError(self.error)
            pair = self._pairs.popleft()
        self._wanted.set()
        return pair

    def close(self, timeout: float = 30.0) -> None:
        """Stop the refill thread (after the batch it is sampling, if any)."""
        self._closed = True
        self._wanted.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


# --- the pair pool's worker process (PairPool(processes=True)) ------------------------------
_PAIR_WORKER: dict = {}


def _pair_worker_start(policy: str, max_new_tokens: int, app_pid: int, environ: dict) -> None:
    """Load the policy once in the worker; the worker ends with the app (as a run does)."""
    import signal

    import torch

    from .models import load_policy
    from .runs import _die_with_the_app

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the app, which takes us along
    _die_with_the_app(app_pid)
    os.environ.update(environ)
    torch.set_num_threads(1)
    model, tokenizer = load_policy(policy, device="cpu")
    _PAIR_WORKER.update(model=model, tokenizer=tokenizer, max_new_tokens=max_new_tokens)


def _pair_worker_sample(prompts: list[str]) -> tuple[list[str], list[bool]]:
    from .sampling import generate

    s = generate(_PAIR_WORKER["model"], _PAIR_WORKER["tokenizer"], prompts,
                 max_new_tokens=_PAIR_WORKER["max_new_tokens"])
    return s.responses, [bool(e) for e in s.ended]


def add_pairs(store: LabelStore, pairs: list[Pair]) -> int:
    """Store several pairs in one transaction, all or none (an eval's blind pairs for
    people, moss_lab.evaluate.save_with_people). Their created_at follow the list's order, so
    assign_pair (and pending_pair) serve them in that order; an id already stored refuses the
    whole list."""
    now = time.time()
    with store._writing() as db:
        for pair in pairs:
            if db.execute("SELECT 1 FROM pairs WHERE id = ?", (pair.id,)).fetchone():
                raise LabelError(f"pair {pair.id} is stored already: nothing was added")
        for k, pair in enumerate(pairs):
            store._insert_pair(pair, now + k * 1e-6)
    return len(pairs)
