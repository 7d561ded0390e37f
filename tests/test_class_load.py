"""benchmarks/class_load.py in miniature: 3 logged-in students x 5 votes, a kill -9 of the
server after half of them, a restart, and the store read directly afterwards.

The benchmark itself starts `moss-lab app --users` in a subprocess (so that it can be
killed), which is why this test runs it as a command and reads its JSON line."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"labelers", "votes_acked", "votes_stored", "lost", "duplicates", "latency_ms",
        "votes_per_s", "integrity", "restart_s", "pairs_judged_by"}

pytestmark = pytest.mark.slow


def run_benchmark(*args: str, timeout: float = 150) -> dict:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "class_load.py"), *args],
                          cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_kill_during_class_labelling_loses_no_acknowledged_vote():
    result = run_benchmark("--labelers", "3", "--votes", "5", "--kill-at", "0.5",
                           "--timeout", "120")
    assert KEYS <= set(result), result
    assert result["mode"] == "class"
    assert not result.get("timed_out"), result
    assert result["votes_acked"] == 15, result
    # the server was really killed half-way and came back on the same home
    assert 7 <= result["killed_after_acked"] < 15, result
    assert result["restart_s"] > 0
    # every acknowledged vote is in the file, once; votes in flight at the kill may be extra
    assert result["lost"] == 0, result
    assert result["duplicates"] == 0, result
    assert result["integrity"] == "ok"
    assert 15 <= result["votes_stored"] <= 15 + 3, result
    assert set(result["latency_ms"]) == {"p50", "p95", "max"}
    latency = result["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["max"]
    assert 1 <= sum(result["pairs_judged_by"].values()) <= result["pairs_stored"]


def test_the_store_check_finds_a_lost_and_a_repeated_vote(tmp_path):
    """check_store is what says lost == 0: it must see a vote that is not in the file, a
    vote stored with another choice, and a repeated vote (written around the unique index)."""
    import importlib.util
    import sqlite3

    from moss_lab.labels import LabelStore, Pair

    spec = importlib.util.spec_from_file_location("class_load",
                                                  ROOT / "benchmarks" / "class_load.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    db = tmp_path / "labels.sqlite"
    store = LabelStore(db)
    pair = Pair("p1", "q", "resp a", "resp b")
    store.record_vote(pair, "B", "ada", shown_left="B")  # ada saw B on the left, voted left
    store.close()
    seen = {"annotator": "ada", "prompt": "", "left": "resp b", "right": "resp a"}
    assert bench.check_store(db, [{**seen, "display": "left"}])["lost"] == 0
    assert bench.check_store(db, [{**seen, "display": "right"}])["lost"] == 1
    assert bench.check_store(db, [{**seen, "annotator": "bob", "display": "left"}])["lost"] == 1
    con = sqlite3.connect(db)
    con.execute("DROP INDEX one_vote_per_annotator")
    con.execute("INSERT INTO votes (pair_id, prompt, response_a, response_b, shown_left, choice,"
                " annotator, created_at) SELECT pair_id, prompt, response_a, response_b,"
                " shown_left, 'tie', annotator, created_at FROM votes")
    con.commit()
    con.close()
    check = bench.check_store(db, [{**seen, "display": "left"}])
    assert (check["duplicates"], check["votes_stored"], check["integrity"]) == (1, 2, "ok")
    assert check["pairs_judged_by"] == {"1": 1}
