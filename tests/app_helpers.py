"""Helpers shared by the app tests (gradio_client and browser)."""
import contextlib
import os
import socket
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def isolated_home(tmp: Path) -> Path:
    """A fresh data home whose models/ is the shared test models folder (nothing rebuilt)."""
    shared = Path(os.environ["MOSS_LAB_HOME"]) / "models"
    shared.mkdir(parents=True, exist_ok=True)
    (tmp / "models").symlink_to(shared.resolve(), target_is_directory=True)
    return tmp


def fake_run(home, name, kind="ppo", rows=(), config=None, state="finished", policy=False):
    """A run folder as a trainer leaves it (the Runs tab reads folders only)."""
    from moss_lab.files import append_jsonl, write_json

    folder = home / "runs" / name
    folder.mkdir(parents=True)
    write_json(folder / "config.json", {"kind": kind, **(config or {})})
    write_json(folder / "status.json", {"state": state, "kind": kind, "created_at": time.time()})
    for row in rows:
        append_jsonl(folder / "metrics.jsonl", row)
    if policy:
        write_json(folder / "policy" / "config.json", {})
    return folder


# ---- the browser tests (Debian's chromium driven by Playwright for Python) ----
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def browser_marks():
    """The pytestmark of a browser test module: skipped without chromium, quiet about
    the warnings gradio and pandas raise while serving."""
    import pytest

    return [
        pytest.mark.browser,
        pytest.mark.skipif(not CHROMIUM.exists(),
                           reason="needs Debian's chromium at /usr/bin/chromium "
                                  "(apt-get install chromium; .ci/browser-deps does it in CI)"),
        pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning",
                                   "ignore:.*no_silent_downcasting:Warning",
                                   "ignore:The copy keyword:Warning"),
    ]


@contextlib.contextmanager
def app_page(home: Path, height: int = 1000, prepare=None):
    """A chromium page on the app, launched in-process with `home` as its data home;
    `prepare()` runs once the lab is reset, before the launch (e.g. to store pairs)."""
    import gradio as gr
    import pytest
    from playwright import sync_api

    from moss_lab.app import context, launch

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOSS_LAB_HOME", str(home))
        context.reset_lab()
        if prepare is not None:
            prepare()
        _, url, _ = launch(port=free_port(), prevent_thread_lock=True)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": height})
            page.set_default_timeout(60_000)
            page.goto(url)
            yield page
            browser.close()
        gr.close_all()
        context.reset_lab()


def upload(page, elem_id: str, path: Path, tries: int = 3, wait_ms: int = 20_000) -> None:
    """Give a gr.File the file at `path` and wait until it is uploaded: its download link
    shows (a[download=name]).

    Waiting for the name as text was a race, and once failed a CI run: while uploading
    the component shows "class.jsonl" as one text, and once uploaded as "class" and
    ".jsonl" in two cells, so a quick upload could finish before the text was seen. The
    file is given again (up to `tries` times) if no link shows, as Gradio's upload has
    races of its own (gradio-app/gradio#9514, #11102)."""
    done = page.locator(f'#{elem_id} a[download="{path.name}"]')
    for attempt in range(1, tries + 1):
        page.locator(f"#{elem_id} input[type=file]").set_input_files(str(path))
        try:
            done.wait_for(timeout=wait_ms)
            return
        except Exception:  # playwright's TimeoutError
            print(f"upload of {path.name} not done after {wait_ms} ms (try {attempt})")
    raise AssertionError(f"{path.name} was never uploaded into #{elem_id}")


def wait_for(predicate, timeout: float = 20.0, every: float = 0.02) -> bool:
    """Poll until predicate() is true (runs and jobs go on in threads or processes);
    AssertionError after `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every)
    raise AssertionError(f"condition not reached in {timeout:g} s")
