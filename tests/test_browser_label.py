"""The Label tab in a real browser (Debian's chromium driven by Playwright): a key after a
refused vote is not ignored, a name confirmed with Enter stays as typed and the next "1"
votes, a key pressed while a vote is saving is ignored with a visible note, the gold
verdict shows when asked, a prompt holding HTML is shown as text, and the agreement panel
follows an import."""
import json
import re
import sqlite3
from pathlib import Path

import pytest
from app_helpers import app_page, browser_marks, isolated_home, upload

HTML_PROMPT = "Human: <form><input type=password></form><img src=http://x> Assistant: "

pytestmark = browser_marks()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """(page, home): a chromium page on the app, launched with its own data home, whose
    store holds one pair with an HTML prompt, older than any other (served first)."""
    pytest.importorskip("playwright.sync_api")
    from moss_lab.app import context
    from moss_lab.labels import Pair

    def add_html_pair():
        store = context.get_lab().store
        store.add_pair(Pair("html-pair", HTML_PROMPT, "<b>bold?</b> no", "**stars** [x](y)"))
        with sqlite3.connect(store.path) as db:
            db.execute("UPDATE pairs SET created_at = 0 WHERE id = 'html-pair'")

    home = isolated_home(tmp_path_factory.mktemp("browser-label-home"))
    with app_page(home, prepare=add_html_pair) as pg:
        yield pg, home


def votes_by(home: Path, who: str) -> list[tuple]:
    with sqlite3.connect(home / "labels.sqlite") as db:
        return db.execute("SELECT pair_id, choice FROM votes WHERE annotator = ? ORDER BY id",
                          (who,)).fetchall()


def wait_count(pg, n: int) -> None:
    pg.wait_for_function("(n) => (document.querySelector('#label-count')?.textContent || '')"
                         ".startsWith(n + ' by you')", arg=n)


def test_a_key_after_a_refused_vote_is_not_ignored(page):
    pg, home = page
    pg.wait_for_function("() => document.querySelector('#label-left textarea')?.value.length > 0")
    errors = pg.locator(".toast-message-item.error")
    pg.keyboard.press("1")  # no name yet: refused with an error
    errors.first.wait_for(timeout=10_000)
    pg.keyboard.press("2")  # at once: sent (and refused again), not "ignored"
    pg.wait_for_function("() => document.querySelectorAll('.toast-message-item.error').length >= 2",
                         timeout=10_000)
    assert not pg.locator("#label-key-note").is_visible()
    assert "Enter your annotator name first" in errors.last.inner_text()
    for close in pg.locator(".toast-close").all():
        close.click()
    assert votes_by(home, "") == []


def test_enter_then_1_votes_and_keeps_the_name(page):
    pg, home = page
    pg.wait_for_function("() => document.querySelector('#label-left textarea')?.value.length > 0")
    name_box = pg.locator("#annotator textarea, #annotator input").first
    name_box.fill("ada")
    name_box.press("Enter")
    wait_count(pg, 0)  # the name is confirmed: "0 by you"
    pg.keyboard.press("1")
    wait_count(pg, 1)
    assert name_box.input_value() == "ada" and len(votes_by(home, "ada")) == 1


def test_an_html_prompt_is_shown_as_text(page):
    """After ada's first vote the oldest pending pair, the HTML one, is on screen."""
    pg, _ = page
    pg.wait_for_function("() => document.querySelector('#label-prompt')?.textContent.includes('<form>')")
    prompt = pg.locator("#label-prompt")
    assert prompt.locator("form, input, img").count() == 0  # nothing of it was rendered
    assert "<form><input type=password></form><img src=http://x>" in prompt.inner_text()
    texts = pg.locator("#label-left textarea").input_value() + pg.locator(
        "#label-right textarea").input_value()
    assert "<b>bold?</b> no" in texts and "**stars** [x](y)" in texts


def test_gold_verdict_when_the_toggle_is_on(page):
    pg, home = page
    pg.locator("#label-gold-toggle input").check()
    pg.keyboard.press("2")  # on the HTML pair: no gold truth
    wait_count(pg, 2)
    note = pg.locator("#label-note")
    assert "You voted B is better. No gold verdict" in note.inner_text()
    pg.keyboard.press("1")  # a toy pair: the gold score says which side it prefers
    wait_count(pg, 3)
    pg.wait_for_function("() => /gold prefers (A \\(left\\)|B \\(right\\)) by \\d|sees no difference/"
                         ".test(document.querySelector('#label-note')?.textContent || '')")
    assert votes_by(home, "ada")[1][0] == "html-pair"


def test_a_key_during_a_save_is_ignored_with_a_note(page):
    pg, home = page
    before = len(votes_by(home, "ada"))
    pg.keyboard.press("4")
    pg.keyboard.press("3")  # at once: the first vote is still on its way
    pg.locator("#label-key-note").wait_for(state="visible", timeout=5_000)
    assert 'key "3" ignored' in pg.locator("#label-key-note").inner_text()
    wait_count(pg, before + 1)
    pg.wait_for_timeout(500)
    assert [c for _, c in votes_by(home, "ada")][before:] == ["both_bad"]


def test_the_agreement_panel_follows_an_import(page, tmp_path):
    pg, _ = page
    stats = pg.locator("#label-stats")
    assert "needs pairs labelled by two or more people" in stats.inner_text()
    data = tmp_path / "class.jsonl"
    prompt = "Human: tell me about tea . Assistant: "
    data.write_text("".join(json.dumps({"prompt": prompt, "chosen": c, "rejected": r,
                                        "annotator": who}) + "\n"
                            for c, r, who in [("tea is warm .", "go away .", "t1"),
                                              ("go away .", "tea is warm .", "t2")]))
    pg.get_by_text("Export and import").click()
    upload(pg, "import-file", data)
    pg.click("#import-button")
    pg.wait_for_function("() => (document.querySelector('#import-message')?.textContent || '')"
                         ".includes('Imported 2 new votes from class.jsonl')")
    pg.wait_for_function("() => /kappa = .* on 1 shared pairs/"
                         ".test(document.querySelector('#label-stats')?.textContent || '')")
    pg.get_by_text("Pairs on which annotators disagree").click()
    pg.wait_for_function("() => (document.querySelector('#label-disagreements')?.innerText || '')"
                         ".includes('t1: A, t2: B')")
    assert re.search(r"tell me about tea", pg.locator("#label-disagreements").inner_text())
