"""Class mode in a real browser (Debian's chromium driven by Playwright): a student logs in
on Gradio's login page and labels; when the instructor gives them a new password
(`moss-lab users reset`), their open page goes back to the login page at their next
action, instead of silently doing nothing, and the login page does not reload itself."""
import pytest
from app_helpers import CHROMIUM, CHROMIUM_ARGS, browser_marks, free_port, isolated_home

pytestmark = browser_marks()


def test_a_reset_password_brings_an_open_page_back_to_the_login(tmp_path):
    pytest.importorskip("playwright.sync_api")
    import gradio as gr
    from playwright import sync_api

    from moss_lab import accounts as acc
    from moss_lab.app import context, launch

    home = isolated_home(tmp_path)
    users = home / "users.toml"
    acc.add_user(users, "ada", "instructor", "ada's password")
    acc.add_user(users, "bob", "student", "bob's password")
    with pytest.MonkeyPatch.context() as mp, sync_api.sync_playwright() as p:
        mp.setenv("MOSS_LAB_HOME", str(home))
        context.reset_lab()
        _, url, _ = launch(port=free_port(), users=acc.Accounts.load(users),
                           prevent_thread_lock=True)
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(url)
            password = page.locator("input[type=password]")
            page.locator("input[type=text], input:not([type])").first.fill("bob")
            password.fill("bob's password")
            password.press("Enter")
            page.wait_for_function(
                "() => document.querySelector('#label-left textarea')?.value.length > 0")
            page.keyboard.press("1")
            page.wait_for_function("() => (document.querySelector('#label-count')?.textContent"
                                   " || '').startsWith('1 by you')")
            acc.reset_password(users, "bob", "bob's new password")
            page.wait_for_timeout(1500)  # the app follows the users file within a second
            page.keyboard.press("2")
            password.wait_for(timeout=15_000)  # the login page, without a manual reload
            loads = []
            page.on("load", lambda _: loads.append(1))
            page.wait_for_timeout(2000)
            assert loads == []  # the login page stays put (it gets 401s of its own)
            assert page.locator("#label-left").count() == 0
        finally:
            browser.close()
            gr.close_all()
            context.reset_lab()
