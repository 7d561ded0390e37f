"""The first run on a fresh machine: from opening the page to the first pair to label, and
to the first live PPO point.

    .venv/bin/python benchmarks/first_run.py [--keep-home]

Starts `moss-lab app` in a subprocess with an empty data home (no model built or copied
yet: the shipped toy models are copied on first use), opens the page in Debian's chromium
once the server answers, and times from the moment the page is opened:

    first_pair_s    the first pair's text in the Label tab           (goal <= 10 s)
    first_point_s   the first point on the PPO reward plot, launched
                    with the default preset once the pair is shown   (goal <= 20 s)

plus server_start_s (process start to the first HTTP answer, not part of the goals) and
ppo_status_seen, the PPO status lines shown meanwhile (never a silent "0 points"). The
last line printed is JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
GOALS = {"first_pair_s": 10.0, "first_point_s": 20.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(home: Path, port: int, timeout: float = 300.0) -> tuple[subprocess.Popen, float]:
    """`moss-lab app` on `port` with `home` as its data home; (process, seconds until it
    answered HTTP)."""
    env = {**os.environ, "MOSS_LAB_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    log = open(home / "app.log", "w")
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "moss_lab.cli", "app", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited ({proc.returncode}): "
                               + (home / "app.log").read_text()[-2000:])
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return proc, time.perf_counter() - start
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise TimeoutError(f"the app did not answer within {timeout:.0f} s")


def plot_points(pg, plot: str = "#ppo-plot-score") -> int:
    """Vertices of the line vega drew in the plot's SVG (0 when nothing is drawn)."""
    return pg.evaluate("""(sel) => {
        const path = document.querySelector(sel + ' .mark-line path');
        const d = path ? path.getAttribute('d') || '' : '';
        return d ? (d.match(/[ML]/g) || []).length : 0; }""", plot)


def measure(home: Path, timeout: float = 180.0) -> dict:
    """Start the app on the (empty) data home `home`, open the page, and time the first
    pair and the first PPO point (seconds from opening the page)."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    proc, server_start = start_app(home, port)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            pg = browser.new_page(viewport={"width": 1400, "height": 1000})
            pg.set_default_timeout(timeout * 1000)
            opened = time.perf_counter()
            pg.goto(f"http://127.0.0.1:{port}/")
            pg.wait_for_function(
                "() => document.querySelector('#label-left textarea')?.value.length > 0")
            first_pair = time.perf_counter() - opened
            pg.get_by_role("tab", name="Train").click()
            pg.click("#ppo-launch")
            seen, end = [], time.perf_counter() + timeout
            while plot_points(pg) < 1:
                status = pg.locator("#ppo-status").inner_text().strip()
                if status and (not seen or seen[-1] != status):
                    seen.append(status)
                if time.perf_counter() > end:
                    raise TimeoutError(f"no PPO point within {timeout:.0f} s; status: {seen[-3:]}")
                time.sleep(0.1)
            first_point = time.perf_counter() - opened
            pg.click("#ppo-stop")  # free the CPU
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {"first_pair_s": round(first_pair, 2), "first_point_s": round(first_point, 2),
            "server_start_s": round(server_start, 2), "ppo_status_seen": seen}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep-home", action="store_true",
                        help="keep the throwaway data home (its app.log, runs and models)")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="moss-lab-first-run-"))
    try:
        result = measure(home)
    finally:
        if not args.keep_home:
            shutil.rmtree(home, ignore_errors=True)
    result["goals_met"] = all(result[k] <= goal for k, goal in GOALS.items())
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
