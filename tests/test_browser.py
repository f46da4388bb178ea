"""The app in a real browser: Playwright (from PyPI) driving Debian's chromium.

One app server (benchmarks/app_server.AppServer: `python app.py` on a free port) with temporary data
and models folders, the fixture checkpoint and a random-weight ViT-B-16 for zero-shot; the tests run in order on it like a moderator would: analyse
an example, preview and confirm a segment, reload and find the decision kept, export CSV, then
bad inputs; last, an AnomalyCLIP checkpoint (the AnomalyCLIP fixture) analysed and compared with
VadCLIP on one timeline. Screenshots go to $VADCLIP_TEST_ARTIFACTS (default test-artifacts/browser/).
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

from app_server import AppServer
from browser import CHROMIUM, CHROMIUM_FLAGS, TIMEOUT_MS
from conftest import OFFICIAL, SHARED, synth
from videos import write_text, write_video

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("VADCLIP_TEST_ARTIFACTS", REPO / "test-artifacts")) / "browser"
MAX_VIDEO_S = 12

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no chromium executable (looked for `chromium` on PATH and {CHROMIUM})",
                allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not (OFFICIAL / "official_xd.pth").is_file():
        pytest.skip(f"fixture checkpoint not found under {OFFICIAL}")
    root = tmp_path_factory.mktemp("app")
    if (SHARED / "tools" / "synth_vad.py").is_file():
        synth("xd", root / "training" / "xd", n_train=8, n_test=4)
    app = AppServer(root, concurrency=1, queue_size=16, VADCLIP_CLIP="random",
                    VADCLIP_MAX_VIDEO_S=MAX_VIDEO_S, OMP_NUM_THREADS=2).start()
    try:
        yield {"url": app.url, "root": root}
    finally:
        app.stop()


@pytest.fixture(scope="module")
def page(server):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(server["url"])
        page.wait_for_selector("#analyse-btn")
        yield page
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def visible_text(page, scope: str, text: str | re.Pattern):
    """The first visible element under `scope` showing `text` (Gradio keeps hidden copies of
    table cells for measuring)."""
    return page.locator(scope).get_by_text(text).filter(visible=True).first


def expect_message(page, pattern: str) -> None:
    """Wait until an error / info message matching `pattern` is visible in the page."""
    visible_text(page, "body", re.compile(pattern, re.IGNORECASE)).wait_for()


def close_messages(page) -> None:
    for button in page.locator(".toast-close").all():
        try:
            button.click(timeout=2000)
        except Exception:
            pass


def upload_video(page, path: Path) -> None:
    clear = page.locator("#video button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
    page.set_input_files("#video input[type=file]", str(path))
    page.wait_for_selector("#video video")


def test_analyse_example_video(page):
    shot(page, "01_start")
    upload_video(page, REPO / "assets" / "explosion.mp4")
    page.click("#analyse-btn")
    page.wait_for_selector("#timeline .js-plotly-plot")
    visible_text(page, "#segment-table", "pending").wait_for()
    assert "explosion.mp4" in page.inner_text("#summary")
    assert page.locator("#random-banner").count() == 0      # the fixture CLIP is not random
    shot(page, "02_analysed")


def test_select_segment_and_confirm(page):
    visible_text(page, "#segment-table", "pending").click()
    page.wait_for_selector("#preview-strip img")
    assert page.locator("#preview-clip").count() == 0     # the segment plays in the uploaded video's player
    assert "Segment #1" in page.inner_text("#preview-caption")
    page.fill("#quick-note textarea, #quick-note input", "checked in the browser test")
    page.click("#quick-confirm")
    visible_text(page, "#segment-table", "confirmed").wait_for()
    shot(page, "03_segment_confirmed")


def test_decision_survives_reload(page):
    page.reload()
    page.wait_for_selector("#analyse-btn")
    page.click("button[role=tab]:has-text('Review queue')")
    visible_text(page, "#review-table", "confirmed").wait_for()
    visible_text(page, "#review-table", "checked in the browser test").wait_for()
    shot(page, "04_review_queue_after_reload")


def test_export_csv(page, tmp_path):
    page.click("#export-csv")
    link = page.locator("#export-file a").first
    link.wait_for()
    with page.expect_download() as download_info:
        link.click()
    target = tmp_path / "export.csv"
    download_info.value.save_as(target)
    text = target.read_text()
    assert text.splitlines()[0].startswith("video,content_hash,start_s")
    assert "explosion.mp4" in text and "confirmed" in text
    shot(page, "05_exported")


def test_relabel_in_review_queue(page):
    visible_text(page, "#review-table", "explosion.mp4").click()
    visible_text(page, "#selected-item", "explosion.mp4").wait_for()
    page.fill("#new-label textarea, #new-label input", "fire")
    page.click("#relabel-btn")
    visible_text(page, "#review-table", "relabelled").wait_for()


def test_bad_inputs_show_clear_messages(page, tmp_path):
    page.click("button[role=tab]:has-text('Analyse')")
    upload_video(page, REPO / "assets" / "scuffle.mp4")

    page.fill("#anomalies textarea", "")
    page.click("#analyse-btn")
    expect_message(page, "vocabulary is empty")
    shot(page, "06_empty_vocabulary")
    close_messages(page)

    page.fill("#anomalies textarea", "fighting\n" + "a very long class name " * 12)
    page.click("#analyse-btn")
    expect_message(page, "too long")
    shot(page, "07_long_class_name")
    close_messages(page)
    page.fill("#anomalies textarea", "fighting\nexplosion")

    long_video = write_video(tmp_path / "long.mp4", n_frames=25 * (MAX_VIDEO_S + 4), fps=25)
    upload_video(page, long_video)
    page.click("#analyse-btn")
    expect_message(page, f"longer than the limit of {MAX_VIDEO_S} s")
    shot(page, "08_too_long_video")
    close_messages(page)

    fake = write_text(tmp_path / "notes.mp4")
    clear = page.locator("#video button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
    page.set_input_files("#video input[type=file]", str(fake))
    expect_message(page, "not a video|cannot|invalid|no video stream")
    shot(page, "09_not_a_video")
    close_messages(page)


def test_random_weights_banner(page):
    upload_video(page, REPO / "assets" / "calm_street.mp4")
    page.get_by_label("1", exact=True).check()            # 1 frame per snippet: fast on CPU
    page.click("#model input")
    page.get_by_role("option", name=re.compile("zero-shot")).click()
    page.click("#analyse-btn")
    page.wait_for_selector("#random-banner")
    page.wait_for_selector("#timeline .js-plotly-plot")
    visible_text(page, "#summary", "calm_street.mp4").wait_for()
    assert "RANDOM CLIP WEIGHTS" in page.inner_text("#random-banner")
    shot(page, "10_random_weights_banner")


def test_training_tab(page, server):
    if not (server["root"] / "training" / "xd" / "xd_train.csv").is_file():
        pytest.skip("synthetic training data could not be generated (../shared/tools is absent)")
    page.click("button[role=tab]:has-text('Train')")
    assert page.input_value("#train-list input") == "xd/xd_train.csv"       # sensible defaults
    assert page.input_value("#test-list input") == "xd/xd_test.csv"
    assert page.input_value("#annotations input") == "xd/annotations.txt"
    page.click("#train-init input")                           # the fixture's small CLIP: fast
    page.get_by_role("option", name=re.compile("official_xd.pth")).filter(visible=True).first.click()
    page.fill("#train-batch input", "4")
    page.fill("#train-max-steps input", "2")
    page.click("#train-start")
    visible_text(page, "#train-status", "finished").wait_for()
    page.wait_for_selector("#train-checkpoint a")
    assert "eval at step 2" in page.input_value("#train-log textarea")
    page.wait_for_selector("#train-plot .js-plotly-plot")
    shot(page, "11_training_finished")
    page.click("button[role=tab]:has-text('Analyse')")
    page.click("#model input")
    page.get_by_role("option", name=re.compile(r"run-xd-.*\(ours, xd")).wait_for()


def _anomalyclip_in_models(models: Path) -> str:
    """The AnomalyCLIP fixture's last.ckpt in the models folder with its centroid beside it (the
    name the page's centroid upload writes); returns its file name."""
    import numpy as np
    import torch

    from vadclip import anomalyclip

    fixture = SHARED / "fixtures" / "anomalyclip"
    if not (fixture / "official_xd.ckpt").is_file():
        pytest.skip(f"AnomalyCLIP fixtures not found under {fixture}")
    fx = np.load(fixture / "parity_xd.npz")
    videos = np.split(fx["train_normal_features"], np.cumsum(fx["train_normal_lengths"])[:-1])
    shutil.copyfile(fixture / "official_xd.ckpt", models / "anomalyclip_xd.ckpt")
    torch.save(torch.from_numpy(anomalyclip.normal_centroid(videos)), models / "anomalyclip_xd.ckpt.ncentroid.pt")
    return "anomalyclip_xd.ckpt"


def test_anomalyclip_analyse_then_compare_with_vadclip(page, server):
    name = _anomalyclip_in_models(server["root"] / "models")
    page.reload()                                              # the page rescans the models folder
    page.wait_for_selector("#analyse-btn")
    page.click("button[role=tab]:has-text('Analyse')")
    upload_video(page, REPO / "assets" / "scuffle.mp4")
    page.click("#model input")
    page.get_by_role("option", name=re.compile(re.escape(name))).click()
    page.wait_for_function("document.querySelector('#normal input, #normal textarea').value === 'Normal'")
    assert "Car_accident" in page.input_value("#anomalies textarea")     # its trained classes, normal first
    close_messages(page)
    page.click("#analyse-btn")
    visible_text(page, "#summary", "frames scored one by one").wait_for()
    page.wait_for_selector("#timeline .js-plotly-plot")
    assert "AnomalyCLIP" in page.inner_text("#summary")
    shot(page, "12_anomalyclip_timeline")

    page.get_by_text("Compare with another model").click()
    page.click("#compare-model input")
    page.get_by_role("option", name=re.compile("official_xd.pth")).filter(visible=True).first.click()
    page.click("#compare-btn")
    page.wait_for_selector("#compare-timeline .js-plotly-plot")
    summary = visible_text(page, "#compare-summary", "VadCLIP")
    summary.wait_for()
    text = page.inner_text("#compare-summary")
    assert "AnomalyCLIP" in text and "VadCLIP" in text and "segment(s)" in text
    legend = page.inner_text("#compare-timeline")
    assert "(score)" in legend and "(c)" in legend               # both curves, one timeline
    shot(page, "13_compare_anomalyclip_vadclip")
