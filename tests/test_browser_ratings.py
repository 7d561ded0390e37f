"""Rating mode of the Label tab in a real browser (Debian's chromium driven by Playwright):
tick it, rate both responses with the keys (1-5 in a rating row rate and move on, never
vote), write a comment holding HTML, vote; the ratings are in the store, the comment is
shown as text, and the rows are empty for the next pair."""
import sqlite3
from pathlib import Path

import pytest
from app_helpers import free_port, isolated_home

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
COMMENT = "right is <b>html</b> & rude"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium at /usr/bin/chromium "
                              "(apt-get install chromium; .ci/browser-deps does it in CI)"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning",
                               "ignore:.*no_silent_downcasting:Warning",
                               "ignore:The copy keyword:Warning"),
]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """(page, home): a chromium page on the app, launched with its own data home."""
    sync_api = pytest.importorskip("playwright.sync_api")
    import gradio as gr

    from moss_lab.app import context, launch

    home = isolated_home(tmp_path_factory.mktemp("browser-ratings-home"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOSS_LAB_HOME", str(home))
        context.reset_lab()
        _, url, _ = launch(port=free_port(), prevent_thread_lock=True)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            pg = browser.new_page(viewport={"width": 1400, "height": 1400})
            pg.set_default_timeout(60_000)
            pg.goto(url)
            yield pg, home
            browser.close()
        gr.close_all()
        context.reset_lab()


def wait_count(pg, n: int) -> None:
    pg.wait_for_function("(n) => (document.querySelector('#label-count')?.textContent || '')"
                         ".startsWith(n + ' by you')", arg=n)


def test_rate_with_the_keys_then_vote_stores_the_ratings(page):
    pg, home = page
    pg.wait_for_function("() => document.querySelector('#label-left textarea')?.value.length > 0")
    name_box = pg.locator("#annotator textarea, #annotator input").first
    name_box.fill("ada")
    name_box.press("Enter")
    wait_count(pg, 0)
    pg.locator("#label-rate-toggle input").check()
    pg.locator("#rate-left-quality").wait_for(state="visible")
    pg.locator("#rate-left-quality input").first.focus()
    for key in "4534421321":  # left: quality safety relevance fluency overall, then right
        pg.keyboard.press(key)
    pg.wait_for_function("() => document.activeElement?.closest('#label-comment') !== null")
    assert pg.locator("#rate-right-overall input:checked").input_value() == "1"
    pg.keyboard.type(COMMENT)
    pg.wait_for_timeout(300)
    assert pg.locator("#label-count").inner_text().startswith("0 by you")  # the digits rated
    pg.click("#vote-left")
    wait_count(pg, 1)
    with sqlite3.connect(home / "labels.sqlite") as db:
        shown_left, choice = db.execute("SELECT shown_left, choice FROM votes").fetchone()
        rows = {r[0]: r[1:] for r in db.execute(
            "SELECT side, quality, safety, relevance, fluency, overall, comment FROM ratings")}
    right = "B" if shown_left == "A" else "A"
    assert choice == shown_left
    assert rows == {shown_left: (4, 5, 3, 4, 4, COMMENT), right: (2, 1, 3, 2, 1, COMMENT)}
    note = pg.locator("#label-note")
    pg.wait_for_function("() => (document.querySelector('#label-note')?.textContent || '')"
                         ".includes('Saved with your ratings')")
    assert COMMENT in note.inner_text() and note.locator("b, script").count() == 0
    pg.wait_for_function("() => document.querySelectorAll('.rate-row input:checked').length === 0")
    assert pg.locator("#label-comment textarea").input_value() == ""


def test_with_rating_mode_on_a_vote_key_outside_the_rows_refuses_an_unrated_pair(page):
    """Away from the rating rows "2" still votes; the empty rows refuse it, nothing stored."""
    pg, home = page
    pg.locator("#label-rate-toggle input").focus()
    pg.keyboard.press("2")
    pg.get_by_text("Rate every row of both responses before voting").first.wait_for()
    with sqlite3.connect(home / "labels.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM votes").fetchone() == (1,)
    pg.locator("#label-rate-toggle input").uncheck()  # rating mode off: the keys vote alone
    pg.locator("#rate-left-quality").wait_for(state="hidden")
    pg.wait_for_timeout(3000)  # a key within 3 s of a vote that did not land is ignored
    pg.keyboard.press("2")
    wait_count(pg, 2)
