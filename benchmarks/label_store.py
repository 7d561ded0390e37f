"""Label-store speed for a class (issue #14 point 5): the store-side work of one vote, at 2k
votes and after importing 200k records, and the import itself.

    .venv/bin/python benchmarks/label_store.py [--labelers 20] [--votes 100] [--records 200000]

In a temporary folder: `--labelers` people cast `--votes` votes each as the Label tab does
(assign_pair with overlap 2, else a fresh pair given to them; then the vote), in threads.
Then "one vote" is timed `--samples` times: the vote, the next pair, and every statistic the
tab shows after it (counters, gold agreement of the person and of everyone, kappa, the
disagreements, the earlier votes). Then `--records` prompt/chosen/rejected records are
imported (files of at most 100k records, under the 20 MB import limit) and the vote is
timed again, for a labeller and for the person the records were imported under.

One JSON line: {"votes_2k", "vote_ms_2k": {p50, p95, max, "cpu": {p50, p95, max}},
"import_records", "import_s", "import_cpu_s", "import_rss_mb" (growth of the peak resident
memory), "vote_ms_during_import" (a student voting every 10 ms while the import runs; the
import's CPU time includes theirs), "votes_after", "vote_ms_200k", "vote_ms_200k_importer" (same form), "first_stats_ms",
"target_p95_ms"}. Target: p95 <= 20 ms at 200k (exit status 1 when missed).
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moss_lab.labels import LabelStore, Pair  # noqa: E402
from moss_lab.toyworld import format_prompt, sample_prompts  # noqa: E402

TARGET_P95_MS = 20.0
PER_FILE = 100_000
GOOD = "happy to help . cats purr ."
BAD = "go away ."


def percentiles(ms: list[float]) -> dict:
    ordered = sorted(ms)
    return {"p50": round(statistics.median(ordered), 2),
            "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
            "max": round(ordered[-1], 2)}


def fresh_pair(rng: random.Random) -> Pair:
    prompt = format_prompt(f"tell me about {rng.choice(['cats', 'dogs', 'snow', 'tea'])} .")
    return Pair(uuid.uuid4().hex[:12], prompt, f"{GOOD} {rng.random():.6f}", BAD, True, True,
                "toy", "toy")


def one_vote(store: LabelStore, who: str, rng: random.Random) -> None:
    """What the Label tab asks of the store for one vote and the screen after it."""
    pair = store.assign_pair(who, 2) or store.add_pair(fresh_pair(rng), assign_to=who)
    store.record_vote(pair, rng.choice(["A", "B", "A", "tie"]), who, rng.choice("AB"))
    store.assign_pair(who, 2) or store.add_pair(fresh_pair(rng), assign_to=who)
    store.progress(who)
    store.gold_agreement(who)
    store.gold_agreement()
    store.inter_annotator()
    store.disagreements()
    store.recent_votes(who, 200)


def timed_votes(store: LabelStore, people: list[str], samples: int, seed: int) -> dict:
    """{wall ms percentiles, "cpu": CPU ms percentiles} of one_vote (CPU time: this process,
    so that a machine busy with other work does not inflate it)."""
    rng = random.Random(seed)
    wall, cpu = [], []
    for i in range(samples):
        t0, c0 = time.perf_counter(), time.process_time()
        one_vote(store, people[i % len(people)], rng)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return {**percentiles(wall), "cpu": percentiles(cpu)}


def write_records(folder: Path, n: int) -> list[Path]:
    """n records (toy prompts, distinct chosen texts) in files of at most PER_FILE."""
    paths = []
    for start in range(0, n, PER_FILE):
        k = min(PER_FILE, n - start)
        path = folder / f"records{start // PER_FILE}.jsonl"
        prompts = sample_prompts(k, seed=start)
        path.write_text("".join(json.dumps({"prompt": p, "chosen": f"{GOOD} {start + i}",
                                            "rejected": BAD}) + "\n"
                                for i, p in enumerate(prompts)))
        paths.append(path)
    return paths


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labelers", type=int, default=20)
    parser.add_argument("--votes", type=int, default=100)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="moss-lab-label-store-") as tmp:
        tmp = Path(tmp)
        store = LabelStore(tmp / "labels.sqlite")
        people = [f"student{n}" for n in range(args.labelers)]

        def person(n: int) -> None:
            rng = random.Random(n)
            for _ in range(args.votes):
                pair = (store.assign_pair(people[n], 2)
                        or store.add_pair(fresh_pair(rng), assign_to=people[n]))
                store.record_vote(pair, rng.choice(["A", "B", "tie"]), people[n], "A")

        threads = [threading.Thread(target=person, args=(n,)) for n in range(args.labelers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        votes_2k = store.progress()["total"]
        at_2k = timed_votes(store, people, args.samples, seed=1)

        paths = write_records(tmp, args.records)
        rss_before = rss_mb()
        importing, during = threading.Event(), []

        def student_votes_meanwhile() -> None:  # a student labels while the import runs
            rng = random.Random(4)
            while importing.is_set():
                t = time.perf_counter()
                pair = store.add_pair(fresh_pair(rng), assign_to="student0")
                store.record_vote(pair, "A", "student0", "A")
                during.append((time.perf_counter() - t) * 1000)
                time.sleep(0.01)

        importing.set()
        voter = threading.Thread(target=student_votes_meanwhile)
        voter.start()
        t0, c0 = time.perf_counter(), time.process_time()
        for path in paths:
            store.import_file(path, annotator="teach")
        import_s, import_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        importing.clear()
        voter.join()
        rss_after = rss_mb()
        t0 = time.perf_counter()
        store.inter_annotator(), store.disagreements(), store.gold_agreement()
        first_stats_ms = (time.perf_counter() - t0) * 1000
        at_200k = timed_votes(store, people, args.samples, seed=2)
        importer = timed_votes(store, ["teach"], max(20, args.samples // 5), seed=3)
        result = {"votes_2k": votes_2k, "vote_ms_2k": at_2k,
                  "import_records": args.records, "import_s": round(import_s, 1),
                  "import_cpu_s": round(import_cpu_s, 1),
                  "import_rss_mb": round(rss_after - rss_before, 1),
                  "vote_ms_during_import": {**percentiles(during), "votes": len(during)},
                  "votes_after": store.progress()["total"],
                  "vote_ms_200k": at_200k, "vote_ms_200k_importer": importer,
                  "first_stats_ms": round(first_stats_ms, 1), "target_p95_ms": TARGET_P95_MS}
        store.close()
    print(json.dumps(result))
    return 0 if result["vote_ms_200k"]["p95"] <= TARGET_P95_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
