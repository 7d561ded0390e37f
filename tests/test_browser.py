"""The app in a real browser: Debian's chromium driven by Playwright for Python.

Labels five pairs with the keyboard, launches a short PPO run and watches the reward
plot gain points, presses Stop, reloads (same tab, same settings), picks GRPO as the Train
tab's method and watches its run too, overlays three runs in
the Runs tab (three drawn lines and a legend), and saves a screenshot of every tab to
test-artifacts/.
"""
import re
import sqlite3
import time
from pathlib import Path

import pytest
from app_helpers import app_page, browser_marks, fake_run, isolated_home

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

pytestmark = browser_marks()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """(page, home): a chromium page on the app, launched with its own data home."""
    pytest.importorskip("playwright.sync_api")
    home = isolated_home(tmp_path_factory.mktemp("browser-home"))
    ARTIFACTS.mkdir(exist_ok=True)
    with app_page(home) as pg:
        yield pg, home


def count_votes(home: Path) -> int:
    with sqlite3.connect(home / "labels.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM votes WHERE annotator = 'ada'").fetchone()[0]


def my_votes_on_screen(pg) -> int:
    match = re.match(r"(\d+) by you", pg.locator("#label-count").inner_text())
    return int(match.group(1)) if match else 0


def status_text(pg, tab="ppo") -> str:
    return pg.locator(f"#{tab}-status").inner_text()


def plot_points(pg, plot="#ppo-plot-score") -> int:
    """Vertices of the line vega drew in the plot's SVG (0 when nothing is drawn)."""
    return pg.evaluate("""(sel) => {
        const path = document.querySelector(sel + ' .mark-line path');
        const d = path ? path.getAttribute('d') || '' : '';
        return d ? (d.match(/[ML]/g) || []).length : 0; }""", plot)


def test_label_five_pairs_with_the_keyboard(page):
    pg, home = page
    pg.wait_for_function("() => document.querySelector('#label-left textarea')?.value.length > 0")
    name_box = pg.locator("#annotator textarea, #annotator input").first
    name_box.click()
    pg.keyboard.press("1")  # typing in a field is not a vote
    assert count_votes(home) == 0
    name_box.fill("ada")
    pg.locator("h1").first.click()  # leave the name box: keys are shortcuts again
    for n, key in enumerate("12341", start=1):
        before = pg.locator("#label-prompt").inner_text() + pg.locator("#label-left textarea").input_value()
        pg.keyboard.press(key)
        pg.wait_for_function("(n) => (document.querySelector('#label-count')?.textContent || '')"
                             ".startsWith(n + ' by you')", arg=n)
        after = pg.locator("#label-prompt").inner_text() + pg.locator("#label-left textarea").input_value()
        assert after != before  # the next pair is on screen
    assert my_votes_on_screen(pg) == 5 and count_votes(home) == 5
    pg.keyboard.press("u")  # undo takes the last vote back
    pg.wait_for_function("() => document.querySelector('#label-count')?.textContent.startsWith('4 by you')")
    assert count_votes(home) == 4
    pg.keyboard.press("1")
    pg.wait_for_function("() => document.querySelector('#label-count')?.textContent.startsWith('5 by you')")
    assert count_votes(home) == 5
    pg.wait_for_function("() => document.querySelector('#label-stats')?.textContent.includes('gold annotator')")
    pg.screenshot(path=str(ARTIFACTS / "tab-label.png"), full_page=True)
    pg.reload()  # the name is remembered by the browser, the count by the store
    pg.wait_for_function("() => document.querySelector('#annotator textarea, #annotator input')?.value === 'ada'")
    pg.wait_for_function("() => document.querySelector('#label-count')?.textContent.startsWith('5 by you')")


def headers_broken_mid_word(pg, table: str) -> list[str]:
    """One-word headers of a table drawn on more than one line ("iterati/on")."""
    return pg.evaluate("""(sel) => [...document.querySelectorAll(sel + ' thead th')].flatMap(th => {
        const text = th.innerText.trim();
        if (!text || /\\s/.test(text)) return [];
        const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
        let node, lines = 0;
        while ((node = walker.nextNode())) {
            if (!node.textContent.trim()) continue;
            const range = document.createRange();
            range.selectNodeContents(node);
            const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
            lines = Math.max(lines, tops.size);
        }
        return lines > 1 ? [text] : []; })""", table)


def drawn_lines(pg, plot: str) -> list[str]:
    """The stroke colours of the lines vega drew (stroke "none": not drawn)."""
    return pg.evaluate("""(sel) => [...document.querySelectorAll(sel + ' .mark-line path')]
        .map(p => p.getAttribute('stroke')).filter(s => s && s !== 'none' &&
             (document.querySelector(sel + ' .mark-line path[stroke="' + s + '"]')
              .getAttribute('d') || '').length > 0)""", plot)


def legend_labels(pg, plot: str) -> list[str]:
    return pg.evaluate("""(sel) => [...document.querySelectorAll(
        sel + ' .role-legend-label text')].map(t => t.textContent)""", plot)


def test_ppo_run_plots_live_and_stops(page):
    pg, home = page
    pg.get_by_role("tab", name="Train").click()
    # before any run, the empty plots already show their titles
    pg.wait_for_function("() => [...document.querySelectorAll('#ppo-plot-score svg text')]"
                         ".some(t => t.textContent === 'Reward-model score')")
    # critic pre-training steps are a number field, and no GPU preset is offered on a CPU
    pg.get_by_text("More PPO-max settings").click()
    assert pg.locator("#ppo-critic_pretrain_steps input[type=number]").input_value() == "2"
    pg.locator("#ppo-preset input").click()
    options = pg.locator("ul[role=listbox] li").all_inner_texts()
    assert "toy-fast" in " ".join(options) and ("gpu-small" in " ".join(options)) == _gpu()
    pg.keyboard.press("Escape")
    pg.locator("#ppo-name input, #ppo-name textarea").first.fill("browser-ppo")
    for field, value in (("iterations", "400"), ("batch_size", "8"), ("minibatch_size", "8")):
        pg.locator(f"#ppo-{field} input").fill(value)
    pg.click("#ppo-launch")
    pg.wait_for_function("() => document.querySelector('#ppo-status')?.textContent.includes('browser-ppo')")
    # the reward plot gains points while the run is going
    end = time.monotonic() + 120
    first = 0
    while time.monotonic() < end and first < 2:
        first = plot_points(pg)
        time.sleep(0.2)
    assert first >= 2, status_text(pg)
    end = time.monotonic() + 60
    while time.monotonic() < end and plot_points(pg) <= first:
        time.sleep(0.2)
    assert plot_points(pg) > first, status_text(pg)
    assert "running" in status_text(pg)
    pg.wait_for_function("() => document.querySelectorAll('#ppo-samples tbody tr').length > 0")
    pg.screenshot(path=str(ARTIFACTS / "tab-ppo.png"), full_page=True)
    pg.click("#ppo-stop")
    pg.wait_for_function("() => document.querySelector('#ppo-status')?.textContent.includes(': stopped')",
                         timeout=120_000)
    assert '"state": "stopped"' in (home / "runs" / "browser-ppo" / "status.json").read_text()
    points = int(re.search(r"(\d+) points", status_text(pg)).group(1))
    assert 2 <= points < 400
    assert "Why: stopped by request" in status_text(pg)  # the reason, from result.json
    assert headers_broken_mid_word(pg, "#ppo-samples") == []
    # a reload stays on this tab and shows the watched run's settings, not the defaults
    pg.reload()
    pg.wait_for_function("() => document.querySelector('#ppo-status')?.textContent.includes('browser-ppo')")
    pg.wait_for_function("() => document.querySelector('#ppo-iterations input')?.value === '400'")
    assert pg.locator("#ppo-batch_size input").input_value() == "8"


def test_train_tab_offers_the_method(page):
    pg, _ = page
    pg.get_by_role("tab", name="Train").click()
    radio = pg.locator("#train-method")
    for method in ("PPO", "DPO", "GRPO", "RLOO", "best-of-n"):
        assert radio.get_by_text(method, exact=True).is_visible()
    assert pg.locator("#ppo-launch").is_visible() and not pg.locator("#grpo-launch").is_visible()
    radio.get_by_text("GRPO", exact=True).click()
    pg.locator("#grpo-launch").wait_for(state="visible")
    assert not pg.locator("#ppo-launch").is_visible() and not pg.locator("#dpo-launch").is_visible()
    assert pg.locator("#train-about").inner_text().startswith("GRPO")
    pg.locator("#grpo-name input, #grpo-name textarea").first.fill("browser-grpo")
    for field, value in (("steps", "300"), ("group_size", "2"), ("prompts_per_step", "2")):
        pg.locator(f"#grpo-{field} input").fill(value)
    pg.click("#grpo-launch")
    pg.wait_for_function("() => document.querySelector('#methods-status')?.textContent"
                         ".includes('browser-grpo')")
    end = time.monotonic() + 120
    while time.monotonic() < end and plot_points(pg, "#methods-plot-score") < 2:
        time.sleep(0.2)
    assert plot_points(pg, "#methods-plot-score") >= 2, status_text(pg, "methods")
    pg.wait_for_timeout(1000)  # let vega settle before the picture
    pg.screenshot(path=str(ARTIFACTS / "tab-train-grpo.png"), full_page=True)
    pg.click("#grpo-stop")
    pg.wait_for_function("() => document.querySelector('#methods-status')?.textContent"
                         ".includes(': stopped')", timeout=120_000)
    radio.get_by_text("PPO", exact=True).click()  # back to PPO's form, as it was
    pg.locator("#ppo-launch").wait_for(state="visible")


def _gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def test_runs_overlay_three_runs_with_a_legend(page):
    pg, home = page
    for i, name in enumerate(("curve-a", "curve-b", "curve-c")):
        fake_run(home, name, rows=[{"iteration": t, "reward/score": t * (i + 1) / 3,
                                    "reward/gold": i - t / 4} for t in range(1, 8)],
                 config={"kl_coef": 0.05 * (i + 1), "seed": i})
    pg.get_by_role("tab", name="Runs").click()
    pg.get_by_role("button", name="↻ Refresh").click()
    pg.wait_for_function("() => document.querySelector('#runs-table')?.textContent.includes('curve-c')")
    box = pg.locator("#runs-overlay-runs input")
    pg.locator("#runs-overlay-runs .remove-all").click()  # the newest run is preselected
    for name in ("curve-a", "curve-b", "curve-c"):
        box.click()
        box.fill(name)
        box.press("Enter")  # the first option that matches
        pg.wait_for_function("(n) => [...document.querySelectorAll('#runs-overlay-runs .token')]"
                             ".some(t => t.textContent.includes(n))", arg=name)
        pg.wait_for_timeout(300)  # the overlay and the metric list follow the change
    pg.locator("h1").first.click()  # close the list
    end = time.monotonic() + 30
    while time.monotonic() < end and len(drawn_lines(pg, "#runs-overlay")) < 3:
        time.sleep(0.2)
    runs_in_legend = [x for x in legend_labels(pg, "#runs-overlay") if x.startswith("curve-")]
    lines = drawn_lines(pg, "#runs-overlay")
    assert len(set(lines)) == 3, (lines, runs_in_legend)
    assert sorted(runs_in_legend) == ["curve-a", "curve-b", "curve-c"]
    assert headers_broken_mid_word(pg, "#runs-table") == []
    pg.wait_for_timeout(1000)  # let vega settle before the picture
    pg.screenshot(path=str(ARTIFACTS / "tab-runs-overlay.png"), full_page=True)
    # reward and gold on one chart: six lines
    pg.get_by_role("button", name="Reward and gold").click()
    end = time.monotonic() + 30
    while time.monotonic() < end and len(set(drawn_lines(pg, "#runs-overlay"))) < 6:
        time.sleep(0.2)
    assert len(set(drawn_lines(pg, "#runs-overlay"))) == 6
    assert "curve-a · reward/gold" in legend_labels(pg, "#runs-overlay")


def test_screenshots_of_the_other_tabs(page):
    pg, _ = page
    pg.get_by_role("tab", name="Runs").click()
    pg.wait_for_function("() => document.querySelector('#runs-table')?.textContent.includes('browser-ppo')")
    pg.screenshot(path=str(ARTIFACTS / "tab-runs.png"), full_page=True)
    run_box = pg.locator("#runs-run input")
    run_box.click()
    run_box.fill("browser-ppo")
    run_box.press("Enter")
    pg.click("#runs-to-compare")  # the stopped run's checkpoint goes to Compare
    pg.wait_for_function("() => document.querySelector('#compare-policy-b input')?.value.includes('browser-ppo')")
    pg.click("#compare-generate")
    pg.wait_for_function("() => document.querySelector('#compare-2 textarea')?.value.length > 0")
    pg.screenshot(path=str(ARTIFACTS / "tab-compare.png"), full_page=True)
    pg.get_by_role("tab", name="Reward model").click()
    pg.get_by_text("Score by hand").wait_for()
    pg.screenshot(path=str(ARTIFACTS / "tab-reward.png"), full_page=True)
