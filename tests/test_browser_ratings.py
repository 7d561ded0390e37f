"""Rating mode of the Label tab in a real browser (Debian's chromium driven by Playwright):
tick it, rate both responses with the keys (1-5 in a rating row rate and move on, never
vote), write a comment holding HTML, vote; the ratings are in the store, the comment is
shown as text, and the rows are empty for the next pair."""
import sqlite3

import pytest
from app_helpers import app_page, browser_marks, isolated_home

COMMENT = "right is <b>html</b> & rude"

pytestmark = browser_marks()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """(page, home): a chromium page on the app, launched with its own data home."""
    pytest.importorskip("playwright.sync_api")
    home = isolated_home(tmp_path_factory.mktemp("browser-ratings-home"))
    with app_page(home, height=1400) as pg:
        yield pg, home


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
