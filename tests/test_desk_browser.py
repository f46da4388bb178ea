"""The moderator's desk in a real browser (Playwright + Debian chromium, as tests/test_browser.py):
seeking the player from the timeline and from a segment row, the playhead, every review key, the
typed reviewer name, and a bulk action with its confirmation step. The tests run in order on one
app server, like a moderator would."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

from app_server import AppServer
from browser import AUTOPLAY_FLAG, CHROMIUM, CHROMIUM_FLAGS, TIMEOUT_MS
from conftest import OFFICIAL

REPO = Path(__file__).resolve().parents[1]

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no chromium executable (looked for `chromium` on PATH and {CHROMIUM})",
                allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not (OFFICIAL / "official_xd.pth").is_file():
        pytest.skip(f"fixture checkpoint not found under {OFFICIAL}")
    root = tmp_path_factory.mktemp("desk")
    app = AppServer(root, concurrency=1, queue_size=16, VADCLIP_MAX_VIDEO_S=30, OMP_NUM_THREADS=2).start()
    try:
        yield app
    finally:
        app.stop()


@pytest.fixture(scope="module")
def page(server):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_FLAGS, AUTOPLAY_FLAG])
        page = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(server.url)
        page.wait_for_selector("#analyse-btn")
        yield page
        browser.close()


def visible_text(page, scope: str, text):
    return page.locator(scope).get_by_text(text).filter(visible=True).first


def current_time(page) -> float:
    return page.evaluate("document.querySelector('#video video').currentTime")


def rows(page, table: str) -> list[list[str]]:
    """The visible rows of a table, as cell texts."""
    return page.evaluate("""(id) => Array.from(document.querySelectorAll(`#${id} [role=row]`))
        .filter(r => r.offsetParent !== null && r.querySelector('[role=gridcell]'))
        .map(r => Array.from(r.querySelectorAll('[role=gridcell]')).map(c => c.innerText.trim()))""", table)


def wait_status(page, n: int, pattern: str) -> None:
    """Wait until segment row `n` (0-based) of the Analyse table shows a review status matching."""
    page.wait_for_function("""([n, pattern]) => {
        const rs = Array.from(document.querySelectorAll('#segment-table [role=row]'))
            .filter(r => r.offsetParent && r.querySelector('[role=gridcell]'));
        return rs.length > n && new RegExp(pattern).test(rs[n].innerText);
    }""", arg=[n, pattern])


def press(page, key: str) -> None:
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press(key)


def test_analyse_with_a_typed_reviewer(page):
    page.fill("#reviewer-name input, #reviewer-name textarea", "alice")
    page.set_input_files("#video input[type=file]", str(REPO / "assets" / "explosion.mp4"))
    page.wait_for_selector("#video video")
    page.fill("#anomalies textarea", "explosion\nfighting\nriot")
    page.click("#analyse-btn")
    page.wait_for_selector("#timeline .js-plotly-plot")
    visible_text(page, "#segment-table", "pending").wait_for()
    page.wait_for_function("document.querySelector('#video video').readyState >= 1")
    assert len(rows(page, "segment-table")) >= 1


def test_segment_row_seeks_the_player(page):
    first = rows(page, "segment-table")[0]
    start = float(first[1])
    page.evaluate("document.querySelector('#video video').currentTime = 0")
    visible_text(page, "#segment-table", "pending").click()
    page.wait_for_function(f"Math.abs(document.querySelector('#video video').currentTime - {start}) < 0.1")
    page.wait_for_selector("#segment-table .vad-current")          # the current segment is marked
    visible_text(page, "#preview-caption", "Segment #1").wait_for()
    assert page.locator("#preview-clip").count() == 0                # no re-encoded clip any more


def test_timeline_click_seeks_the_player(page):
    page.wait_for_function("window.Plotly && document.querySelector('#timeline .js-plotly-plot').vadHooked")
    target = page.evaluate("""() => {
        const div = document.querySelector('#timeline .js-plotly-plot');
        div.scrollIntoView({block: 'center'});
        const ax = div._fullLayout.xaxis, ay = div._fullLayout.yaxis;
        const t = ax.range[1] * 0.7;
        const box = div.getBoundingClientRect();
        return {t, x: box.left + ax._offset + ax.l2p(t), y: box.top + ay._offset + ay._length * 0.5};
    }""")
    page.mouse.click(target["x"], target["y"])
    page.wait_for_function(f"Math.abs(document.querySelector('#video video').currentTime - {target['t']}) < 1.0")


def test_playhead_follows_the_player(page):
    def playhead() -> float | None:
        return page.evaluate("""() => {
            const s = (document.querySelector('#timeline .js-plotly-plot').layout.shapes || [])
                .find(s => s.name === 'vad-playhead');
            return s ? s.x0 : null;
        }""")

    page.evaluate("window.vadDesk.seek(1.0)")
    page.wait_for_function("""() => { const s = (document.querySelector('#timeline .js-plotly-plot').layout.shapes
        || []).find(s => s.name === 'vad-playhead'); return s && Math.abs(s.x0 - 1.0) < 0.05; }""")
    page.evaluate("document.querySelector('#video video').muted = true")
    press(page, " ")                                                   # play
    page.wait_for_function("document.querySelector('#video video').currentTime > 1.6")
    press(page, " ")                                                   # pause
    page.wait_for_function("document.querySelector('#video video').paused")
    assert playhead() > 1.3


def test_step_keys_move_the_player(page):
    page.evaluate("window.vadDesk.seek(6.0)")
    for key, delta in (("ArrowLeft", -5), ("ArrowRight", 5), ("h", -5), ("l", 5)):
        before = current_time(page)
        press(page, key)
        page.wait_for_function(f"Math.abs(document.querySelector('#video video').currentTime - "
                               f"Math.max(0, {before + delta})) < 0.2")


def test_review_keys_on_the_analyse_tab(page):
    n = len(rows(page, "segment-table"))
    page.evaluate("window.vadDesk.current.analyse = -1")
    press(page, "j")
    visible_text(page, "#preview-caption", "Segment #1").wait_for()
    press(page, "c")
    wait_status(page, 0, "confirmed")
    if n > 1:
        press(page, "j")
        visible_text(page, "#preview-caption", "Segment #2").wait_for()
        press(page, "k")
        visible_text(page, "#preview-caption", "Segment #1").wait_for()
    press(page, "d")
    wait_status(page, 0, "dismissed")
    press(page, "r")
    assert page.evaluate("document.activeElement.closest('#quick-label') !== null")
    page.keyboard.type("fire")
    page.keyboard.press("Enter")
    wait_status(page, 0, "relabelled: fire")
    page.wait_for_function("!document.activeElement.closest('#quick-label')")   # keys work again
    page.keyboard.press("c")
    wait_status(page, 0, "confirmed")


def test_keys_do_nothing_while_typing(page):
    before = rows(page, "segment-table")[0][-1]
    page.click("#quick-note input, #quick-note textarea")
    page.keyboard.type("cdj")
    page.wait_for_timeout(1000)
    assert rows(page, "segment-table")[0][-1] == before
    assert page.input_value("#quick-note input, #quick-note textarea") == "cdj"
    page.fill("#quick-note input, #quick-note textarea", "")


def test_queue_shows_reviewer_and_history(page):
    page.locator("#video button[aria-label='Clear']").first.click()                     # a 2nd video
    page.set_input_files("#video input[type=file]", str(REPO / "assets" / "scuffle.mp4"))
    page.wait_for_selector("#video video")
    page.click("#analyse-btn")
    visible_text(page, "#summary", "scuffle.mp4").wait_for()
    page.click("button[role=tab]:has-text('Review queue')")
    page.click("#queue-refresh")
    visible_text(page, "#review-table", "alice").click()
    visible_text(page, "#item-history", "alice").wait_for()
    history = page.inner_text("#item-history")
    for action in ("confirm", "dismiss", "relabel"):
        assert action in history


def test_review_keys_in_the_queue(page):
    ids = [row[0] for row in rows(page, "review-table")]
    assert len(ids) >= 2
    page.evaluate("window.vadDesk.current.review = -1")
    for key, n in (("j", 0), ("j", 1), ("k", 0)):
        press(page, key)
        visible_text(page, "#selected-item", f"#{ids[n]} ").wait_for()
    page.wait_for_selector("#review-table .vad-current")
    press(page, "c")
    visible_text(page, "#selected-item", "confirmed").wait_for()
    press(page, "d")
    visible_text(page, "#selected-item", "dismissed").wait_for()
    press(page, "r")
    assert page.evaluate("document.activeElement.closest('#new-label') !== null")
    page.keyboard.type("riot")
    page.keyboard.press("Enter")
    visible_text(page, "#selected-item", "riot").wait_for()


def test_bulk_action_needs_a_confirmation(page):
    page.click("#bulk button, #bulk .label-wrap")                     # open the accordion
    page.click("#bulk-preview")
    visible_text(page, "#bulk-summary", re.compile(r"\d+ segments? will become dismissed")).wait_for()
    count = int(re.search(r"(\d+) segments? will", page.inner_text("#bulk-summary")).group(1))
    before = rows(page, "review-table")
    assert sum("dismissed" in " ".join(r) for r in before) == len(before) - count   # nothing changed yet
    page.click("#bulk-apply")
    visible_text(page, "#bulk-summary", re.compile(f"Done: {count} segment")).wait_for()
    page.wait_for_function("""() => Array.from(document.querySelectorAll('#review-table [role=row]'))
        .filter(r => r.offsetParent && r.querySelector('[role=gridcell]'))
        .every(r => /dismissed/.test(r.innerText))""")
