"""Label-tab latency: from a vote click to the stored row, and to the next pair on screen.

    .venv/bin/python benchmarks/app_label_latency.py [--votes 40] [--pause 0.5] [--client]

Launches the app on a free port with a throwaway data home (the toy models are shared
with the normal data home through a symlink), then votes `--votes` times:

  * in chromium (default when /usr/bin/chromium exists): the vote button is clicked inside
    the page and the time until the progress counter changes is taken in the page
    (performance.now), so it includes the server round trip and the re-render;
  * with --client (or without chromium): gradio_client round trips.

A thread polls the SQLite file every millisecond to time "click -> row stored".
`--pause` seconds pass between votes (a fast human needs about a second per pair; the
pool of pre-generated pairs refills in the background meanwhile).
The last line printed is JSON with p50/p95 in milliseconds; the target is p95 <= 150 ms.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TARGET_P95_MS = 150.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


class RowWatcher(threading.Thread):
    """Polls the votes table; `wait_for(n)` returns when the n-th row was first seen."""

    def __init__(self, db: Path):
        super().__init__(daemon=True)
        self.db, self.seen, self.stop = db, {}, False

    def run(self) -> None:
        con = sqlite3.connect(self.db)
        while not self.stop:
            n = con.execute("SELECT COUNT(*) FROM votes").fetchone()[0]
            self.seen.setdefault(n, time.perf_counter())
            time.sleep(0.001)

    def wait_for(self, n: int, timeout: float = 30.0) -> float:
        end = time.monotonic() + timeout
        while n not in self.seen and time.monotonic() < end:
            time.sleep(0.001)
        return self.seen[n]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser_votes(url: str, watcher: RowWatcher, votes: int, pause: float):
    from playwright.sync_api import sync_playwright

    stored, shown = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.set_default_timeout(120_000)
        page.goto(url)
        page.wait_for_function("() => document.querySelector('#label-left textarea')?.value.length > 0")
        page.locator("#annotator textarea, #annotator input").first.fill("bench")
        page.locator("h1").first.click()
        for i in range(votes + 3):  # the first three warm up
            button = "#vote-left" if i % 2 else "#vote-right"
            t0 = time.perf_counter()
            ms = page.evaluate("""(sel) => new Promise((resolve) => {
                const counter = document.querySelector('#label-progress');
                const count = () => document.querySelector('#label-count')?.textContent;
                const before = count();
                const start = performance.now();
                const obs = new MutationObserver(() => {
                    if (count() !== before) {
                        obs.disconnect(); resolve(performance.now() - start);
                    }
                });
                obs.observe(counter, {childList: true, subtree: true, characterData: true});
                document.querySelector(sel).click();
            })""", button)
            t_row = watcher.wait_for(i + 1)
            if i >= 3:
                shown.append(ms)
                stored.append((t_row - t0) * 1000)
            time.sleep(pause)
        browser.close()
    return stored, shown


def client_votes(url: str, watcher: RowWatcher, votes: int, pause: float):
    from gradio_client import Client

    client = Client(url, verbose=False)
    client.predict("bench", api_name="/start")
    stored, shown = [], []
    for i in range(votes + 3):
        t0 = time.perf_counter()
        client.predict("bench", api_name="/vote_left")
        t1 = time.perf_counter()
        t_row = watcher.wait_for(i + 1)
        if i >= 3:
            shown.append((t1 - t0) * 1000)
            stored.append((t_row - t0) * 1000)
        time.sleep(pause)
    client.close()
    return stored, shown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=40)
    parser.add_argument("--pause", type=float, default=0.5)
    parser.add_argument("--client", action="store_true", help="gradio_client instead of chromium")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from moss_lab.paths import models_dir

    shared_models = models_dir()  # the normal data home's models (built if missing)
    home = Path(tempfile.mkdtemp(prefix="moss-lab-bench-"))
    (home / "models").symlink_to(shared_models, target_is_directory=True)
    os.environ["MOSS_LAB_HOME"] = str(home)
    import gradio as gr

    from moss_lab.app import launch

    _, url, _ = launch(port=free_port(), prevent_thread_lock=True)
    use_browser = not args.client and Path(CHROMIUM).exists()
    watcher = RowWatcher(home / "labels.sqlite")
    watcher.start()
    run = browser_votes if use_browser else client_votes
    stored, shown = run(url, watcher, args.votes, args.pause)
    watcher.stop = True
    gr.close_all()

    result = {
        "benchmark": "app_label_latency",
        "method": "chromium" if use_browser else "gradio_client",
        "votes": len(shown), "pause_s": args.pause,
        "click_to_stored_ms": {"p50": round(percentile(stored, 50), 1),
                               "p95": round(percentile(stored, 95), 1)},
        "click_to_next_pair_ms": {"p50": round(percentile(shown, 50), 1),
                                  "p95": round(percentile(shown, 95), 1),
                                  "mean": round(statistics.mean(shown), 1)},
        "target_p95_ms": TARGET_P95_MS,
        "ok": percentile(shown, 95) <= TARGET_P95_MS,
        "load_1min": os.getloadavg()[0],
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
