"""The moderator's desk, measured where the moderator feels it.

    python benchmarks/bench_desk.py [--part seek,queue,loop] [--segments 10000] [--steps 40]

- seek: in a real browser (Playwright + Debian chromium) on the running app, the time from the
  mouse press on a segment row / on the timeline to the player's `seeked` event (the frame at the
  new time is ready), measured in the page with `performance.now()`; target < 300 ms.
- queue: the Review tab's handlers (what each click runs on the server: the page's rows with
  thumbnails, filter menus, bulk preview text, bulk apply) over a SQLite queue of --segments
  flagged segments (filled as bench_review_queue.py does); target < 500 ms each.
- queue-browser: the same queue behind the running app, in the browser: from the click (next
  page, score filter, bulk preview) to the page showing the result.
- loop: reviews -> model on a synthetic stand-in: a model trained briefly (fixture checkpoint,
  --base-steps) on one synth_vad xd benchmark (seed 0); reviews simulated from another seed's
  ground truth (benchmarks/review_simulation.py) in a real review database; fine-tune
  (`vadclip.reviews_dataset.fine_tune_from_reviews`, --steps) and AUC/AP on the held-out reviewed
  videos before and after.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

from bench_review_queue import median_ms  # noqa: E402
from browser import CHROMIUM, CHROMIUM_FLAGS as FLAGS  # noqa: E402
from shared_paths import OFFICIAL, SHARED  # noqa: E402



def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared), Python {platform.python_version()}"


def stats(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
    return f"median {statistics.median(values):.1f} ms, p95 {p95:.1f} ms, max {values[-1]:.1f} ms (n={len(values)})"


# ------------------------------------------------------------------ seek latency in the browser

INSTRUMENT = """() => {
  const v = document.querySelector('#video video');
  window.vadBench = {t0: null, times: []};
  document.addEventListener('mousedown', () => { window.vadBench.t0 = performance.now(); }, true);
  v.addEventListener('seeked', () => {
    if (window.vadBench.t0 !== null) { window.vadBench.times.push(performance.now() - window.vadBench.t0);
                                       window.vadBench.t0 = null; }
  });
}"""


def _seek_runs(page, repeats: int) -> dict[str, list[float]]:
    results = {}
    # segment rows: alternate between the first and last row so every click moves the player
    page.evaluate(INSTRUMENT)
    cells = page.locator("#segment-table [role=gridcell]").filter(visible=True)
    first = cells.nth(2)                    # the end-time cell of row 1 (any cell of the row)
    times = []
    for k in range(repeats):
        page.evaluate("document.querySelector('#video video').currentTime = %f" % (5.0 if k % 2 else 8.0))
        page.wait_for_timeout(150)
        page.evaluate("window.vadBench.times = []")
        first.click()
        page.wait_for_function("window.vadBench.times.length > 0")
        times.append(page.evaluate("window.vadBench.times[0]"))
        page.wait_for_timeout(200)
    results["segment row click -> player seeked"] = times
    times = []
    for k in range(repeats):
        t = 2.0 + (k % 5) * 1.5
        target = page.evaluate("""(t) => {
            const div = document.querySelector('#timeline .js-plotly-plot');
            div.scrollIntoView({block: 'center'});
            const ax = div._fullLayout.xaxis, ay = div._fullLayout.yaxis, box = div.getBoundingClientRect();
            return {x: box.left + ax._offset + ax.l2p(t), y: box.top + ay._offset + ay._length * 0.5};
        }""", t)
        page.evaluate("window.vadBench.times = []")
        page.mouse.click(target["x"], target["y"])
        page.wait_for_function("window.vadBench.times.length > 0")
        times.append(page.evaluate("window.vadBench.times[0]"))
        page.wait_for_timeout(200)
    results["timeline click -> player seeked"] = times
    return results


def run_seek(repeats: int) -> None:
    from playwright.sync_api import sync_playwright

    from app_server import AppServer

    with tempfile.TemporaryDirectory() as tmp:
        server = AppServer(Path(tmp), concurrency=1, VADCLIP_MAX_VIDEO_S=30, OMP_NUM_THREADS=2).start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                page = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
                page.set_default_timeout(60_000)
                page.goto(server.url)
                page.set_input_files("#video input[type=file]", str(REPO / "assets" / "explosion.mp4"))
                page.wait_for_selector("#video video")
                page.click("#analyse-btn")
                page.wait_for_function("window.Plotly && document.querySelector('#timeline .js-plotly-plot')"
                                       " && document.querySelector('#timeline .js-plotly-plot').vadHooked")
                page.wait_for_function("document.querySelector('#video video').readyState >= 2")
                for name, values in _seek_runs(page, repeats).items():
                    print(f"{name}: {stats(values)}")
                browser.close()
        finally:
            server.stop()


# ------------------------------------------------------------------ the queue's handlers at scale

def run_queue(n_segments: int, repeats: int) -> None:
    from bench_review_queue import fill

    from app import handlers as h
    from app.config import AppConfig
    from app.handlers import AppContext

    def timed(fn):
        return median_ms(fn, repeats, warm=False)

    with tempfile.TemporaryDirectory() as tmp:
        ctx = AppContext.create(AppConfig(models_dir=Path(tmp) / "m", data_dir=Path(tmp) / "d", clip="random"))
        try:
            fill_s = fill(ctx.store, n_segments)
            print(f"queue of {n_segments} segments in SQLite (filled in {fill_s:.1f} s); medians of {repeats}:")
            everything = h.queue_filter()
            a_video = h.filter_choices(ctx).videos[5][1]
            cases = {
                "first page (50 rows with thumbnails, score desc)": lambda: h.queue_view(ctx, everything),
                "page 100, by video and time": lambda: h.queue_view(ctx, everything, "video and time", 100),
                "filter: pending, score 0.8..1": lambda: h.queue_view(ctx, h.queue_filter(status="pending",
                                                                                          min_score=0.8)),
                "filter: one video": lambda: h.queue_view(ctx, h.queue_filter(video=a_video)),
                "filter: class + reviewer": lambda: h.queue_view(ctx, h.queue_filter(label="riot", reviewer="bob")),
                "filter menus (videos, classes, reviewers)": lambda: h.filter_choices(ctx),
                "history of one segment (markdown)": lambda: h.history_markdown(
                    h.review_item(ctx, h.queue_view(ctx, h.queue_filter(status="confirmed")).ids[0]).history),
            }
            for name, fn in cases.items():
                ms, _ = timed(fn)
                print(f"  {name}: {ms:.1f} ms")
            low = h.queue_filter(max_score=0.2)
            ms, text = timed(lambda: h.bulk_markdown(h.bulk_preview(ctx, low, "dismiss")))
            preview = h.bulk_preview(ctx, low, "dismiss")
            print(f"  bulk preview 'dismiss below 0.2' + text: {ms:.1f} ms ({preview.count} segments)")
            applies = []
            for _ in range(max(1, repeats // 2)):
                preview = h.bulk_preview(ctx, low, "dismiss")
                start = time.perf_counter()
                n = h.bulk_apply(ctx, low, preview, reviewer="bench")
                applies.append((time.perf_counter() - start) * 1000)
                undo = h.bulk_preview(ctx, h.queue_filter(max_score=0.2, reviewer="bench"), "reset")
                h.bulk_apply(ctx, h.queue_filter(max_score=0.2, reviewer="bench"), undo, reviewer="bench")
            print(f"  bulk apply 'dismiss below 0.2' ({n} segments, one history row each): "
                  f"{statistics.median(applies):.1f} ms")
            start = time.perf_counter()
            path = h.export_reviews(ctx, "json", None, out_dir=Path(tmp))
            print(f"  export everything as JSON with histories: {(time.perf_counter() - start) * 1000:.0f} ms "
                  f"({path.stat().st_size / 1e6:.1f} MB)")
        finally:
            ctx.close()


def run_queue_browser(n_segments: int, repeats: int) -> None:
    """The Review tab in the browser over a queue of `n_segments`: from the click to the table's
    caption (or the bulk text) showing the result, server round trip and rendering included."""
    from bench_review_queue import fill
    from playwright.sync_api import sync_playwright

    from app.review_db import ReviewStore
    from app_server import AppServer

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        store = ReviewStore(f"sqlite:///{(root / 'data' / 'reviews.sqlite').resolve()}")
        fill(store, n_segments)
        store.close()
        server = AppServer(root, concurrency=1, OMP_NUM_THREADS=2).start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                page = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
                page.set_default_timeout(60_000)
                start = time.perf_counter()
                page.goto(server.url)
                page.click("button[role=tab]:has-text('Review queue')")
                page.wait_for_function("/page 1 \\//.test(document.querySelector('#queue-caption').innerText)")
                print(f"browser, queue of {n_segments}: page open to first queue page shown "
                      f"{(time.perf_counter() - start) * 1000:.0f} ms (includes loading the app page)")

                def timed(action, condition: str) -> float:
                    start = time.perf_counter()
                    action()
                    page.wait_for_function(condition)
                    return (time.perf_counter() - start) * 1000

                caption = "document.querySelector('#queue-caption').innerText"
                nexts, prevs = [], []
                for _ in range(repeats):
                    nexts.append(timed(lambda: page.click("#page-next"), f"/page 2 \\//.test({caption})"))
                    prevs.append(timed(lambda: page.click("#page-prev"), f"/page 1 \\//.test({caption})"))
                print(f"  next page click -> new rows shown: {stats(nexts)}")
                print(f"  previous page click -> rows shown: {stats(prevs)}")
                filters = []
                for k in range(repeats):
                    value = "0.8" if k % 2 == 0 else "0"
                    filters.append(timed(lambda: (page.fill("#filter-min input", value), page.press("#filter-min input", "Enter"),
                                                  page.locator("#filter-min input").blur()),
                                         f"{caption}.includes('page 1 /') && {caption} !== window.vadLastCaption"))
                    page.evaluate(f"window.vadLastCaption = {caption}")
                print(f"  score filter changed -> filtered rows shown: {stats(filters)}")
                page.click("#bulk button, #bulk .label-wrap")
                page.wait_for_selector("#bulk-preview")
                previews = []
                for k in range(repeats):        # alternate two actions, so the text changes each time
                    choice, target = ("confirm all", "confirmed") if k % 2 == 0 else ("dismiss all", "dismissed")
                    page.click("#bulk-action input")
                    page.get_by_role("option", name=choice).click()
                    previews.append(timed(lambda: page.click("#bulk-preview"),
                                          f"/will become {target}/.test(document.querySelector('#bulk-summary')"
                                          ".innerText)"))
                print(f"  bulk preview click -> count and sample shown: {stats(previews)}")
                browser.close()
        finally:
            server.stop()


# ------------------------------------------------------------------ reviews -> model

def run_loop(base_steps: int, steps: int, n_test: int) -> None:
    from review_simulation import simulate_reviews

    from vadclip.reviews_dataset import fine_tune_from_reviews
    from vadclip.train import TrainConfig, train

    tool = SHARED / "tools" / "synth_vad.py"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for seed in (0, 1):
            subprocess.run([sys.executable, str(tool), "--preset", "xd", "--out", str(root / f"s{seed}"),
                            "--seed", str(seed), "--n-train", "32", "--n-test", str(n_test)],
                           check=True, capture_output=True)
        start = time.perf_counter()
        base = train(TrainConfig(preset="xd", train_list=str(root / "s0/xd_train.csv"), out_dir=str(root / "base"),
                                 init=str(OFFICIAL / "official_xd.pth"), device="cpu", num_workers=0,
                                 batch_size=8, max_steps=base_steps))
        print(f"base model: fixture checkpoint + {base.steps} steps on synthetic xd seed 0 "
              f"({time.perf_counter() - start:.0f} s)")
        db_url = f"sqlite:///{root / 'reviews.sqlite'}"
        features = simulate_reviews(root / "s1", db_url)
        start = time.perf_counter()
        result = fine_tune_from_reviews(db_url, base.last_path, root / "fine", features=features.get,
                                        batch_size=4, max_steps=steps)
        print(f"reviews: {n_test} videos of synthetic xd seed 1 decided from its ground truth; "
              f"fine-tune {time.perf_counter() - start:.0f} s")
        print(result.report())
        gain = {k: result.after[k] - result.before[k] for k in ("auc_c", "ap_c", "auc_a", "ap_a")}
        print("gain: " + ", ".join(f"{k} {v:+.4f}" for k, v in gain.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", default="seek,queue,queue-browser,loop")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--segments", type=int, default=10_000)
    parser.add_argument("--base-steps", type=int, default=20)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--n-test", type=int, default=40)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    parts = set(args.part.split(","))
    if "seek" in parts:
        run_seek(args.repeats)
    if "queue" in parts:
        run_queue(args.segments, args.repeats)
    if "queue-browser" in parts:
        run_queue_browser(args.segments, args.repeats)
    if "loop" in parts:
        run_loop(args.base_steps, args.steps, args.n_test)


if __name__ == "__main__":
    main()
