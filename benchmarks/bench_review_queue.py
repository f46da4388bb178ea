"""The review queue at scale: page load, filters and bulk actions with 10,000 flagged segments.

    python benchmarks/bench_review_queue.py [--segments 10000] [--repeats 7] [--url DB_URL]

Fills a fresh review database (default: a SQLite file in a temp folder; `--url` any SQLAlchemy
URL, e.g. a PostgreSQL database) through the store's own `sync_segments`: 20 segments per video,
each with a 3 KB thumbnail, peak scores spread over 0..1, 5 classes; then a quarter of the items
get a decision from one of 4 reviewers (one history row each). Times, median of --repeats runs
(target for each: under 500 ms):

- page load: the first page (50 items, highest score first) and the last page, each with the
  filtered total (what the queue table shows);
- filters: status + score range, class (final label), one video, reviewer, by position, and
  the filter menus' choices (videos, classes, reviewers);
- bulk: `preview_bulk` + `apply_bulk` of "dismiss everything below 0.2" (about 2,000 items: one
  history row each; timed alternately with its undo, a bulk reset) and "confirm all of one video";
- export: the whole queue with every history as JSON (no target; shown for scale).

Prints SQLite's query plans for the page and filter queries (they should use the indexes).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import export  # noqa: E402
from app.review_db import QueueFilter, ReviewItem, ReviewStore, _order  # noqa: E402
from vadclip.results import DetectedSegment, DetectionParams, VideoScores  # noqa: E402

CLASSES = ["fighting", "shooting", "riot", "explosion", "car accident"]
PER_VIDEO = 20
REVIEWERS = ["alice", "bob", "carol", "dan"]
TARGET_MS = 500.0


def video_scores(n: int, rng: np.random.Generator) -> VideoScores:
    snippets = PER_VIDEO * 3
    start = np.arange(snippets) * 16 / 25.0
    fine = rng.dirichlet(np.ones(len(CLASSES) + 1), snippets).astype(np.float32)
    segs = []
    for k in range(PER_VIDEO):
        a = 3 * k
        score = float(rng.random())
        segs.append(DetectedSegment(start_s=a * 16 / 25, end_s=(a + 2) * 16 / 25, start_frame=a * 16,
                                    end_frame=(a + 2) * 16, label=CLASSES[int(rng.integers(len(CLASSES)))],
                                    confidence=float(rng.random()), peak_score=score, mean_score=score))
    return VideoScores(video=f"camera-{n:04d}.mp4", content_hash=f"{n:064x}", fps=25.0,
                       n_frames=snippets * 16, duration_s=snippets * 16 / 25, snippet_frames=16,
                       samples_per_snippet=4, snippet_start_s=start, snippet_end_s=start + 16 / 25,
                       curves={"c": 1 - fine[:, 0], "a": 1 - fine[:, 0]}, fine=fine,
                       class_names=["normal", *CLASSES], segments=segs, params=DetectionParams(),
                       model="bench", random_weights=False)


def fill(store: ReviewStore, n_segments: int) -> float:
    rng = np.random.default_rng(0)
    thumb = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    t0 = time.perf_counter()
    ids = []
    for n in range(n_segments // PER_VIDEO):
        records = store.sync_segments(video_scores(n, rng), {k: thumb for k in range(PER_VIDEO)})
        ids += [r.id for r in records]
    for k, item_id in enumerate(rng.choice(ids, size=len(ids) // 4, replace=False)):
        status = ["confirmed", "dismissed", "relabelled"][k % 3]
        store.decide(int(item_id), status, new_label="fire" if status == "relabelled" else None,
                     reviewer=REVIEWERS[k % len(REVIEWERS)])
    return time.perf_counter() - t0


def median_ms(fn, repeats: int, warm: bool = True) -> tuple[float, object]:
    """(median milliseconds of `repeats` calls of `fn`, the last call's result); `warm`: one call first."""
    if warm:
        fn()                                              # warm the cache and the connection pool
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


def show_plans(store: ReviewStore, cases: dict[str, QueueFilter]) -> None:
    from sqlalchemy import select

    with store.engine.connect() as conn:
        for name, filters in cases.items():
            query = select(ReviewItem.id).where(*filters.clauses()).order_by(*_order("score", True)).limit(50)
            compiled = query.compile(store.engine, compile_kwargs={"literal_binds": True})
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
            print(f"  {name:24s} " + " | ".join(row[-1] for row in plan))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--url", help="database URL (default: a fresh SQLite file in a temp folder)")
    args = parser.parse_args()
    work = tempfile.TemporaryDirectory(prefix="vadclip-bench-queue-")
    url = args.url or f"sqlite:///{Path(work.name) / 'reviews.sqlite'}"
    store = ReviewStore(url)
    if store.query(limit=1).total:
        sys.exit(f"{store.url} is not empty; give an empty database")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; database: {store.backend}")
    fill_s = fill(store, args.segments)
    total = store.query(limit=1).total
    print(f"filled {total} segments ({total // 4} decided) in {fill_s:.1f} s")

    one_video = store.videos()[len(store.videos()) // 2][0]
    rows: list[tuple[str, float, str]] = []

    def timed(name: str, fn, describe=lambda r: "") -> object:
        ms, result = median_ms(fn, args.repeats)
        rows.append((name, ms, describe(result)))
        return result

    pages = lambda p: f"{len(p.records)} of {p.total}"  # noqa: E731
    timed("page load: first page", lambda: store.query(limit=50), pages)
    timed("page load: last page", lambda: store.query(offset=total - 50, limit=50), pages)
    filters = {
        "pending, score 0.4-0.6": QueueFilter(status="pending", min_score=0.4, max_score=0.6),
        "class riot": QueueFilter(label="riot"),
        "class fire (relabelled)": QueueFilter(label="fire"),
        "one video": QueueFilter(content_hash=one_video),
        "reviewer bob": QueueFilter(reviewer="bob"),
    }
    for name, f in filters.items():
        timed(f"filter: {name}", lambda f=f: store.query(f, limit=50), pages)
    timed("filter choices (videos, classes, reviewers)",
          lambda: (store.videos(), store.labels(), store.reviewers()),
          lambda r: f"{len(r[0])} videos, {len(r[1])} classes, {len(r[2])} reviewers")
    timed("filter: by position, page 10", lambda: store.query(sort="time", descending=False,
                                                              offset=450, limit=50), pages)

    below = QueueFilter(max_score=0.2)
    timed("bulk preview: dismiss < 0.2", lambda: store.preview_bulk(below, "dismissed"),
          lambda p: f"{p.count} items")
    dismiss_ms, undo_ms = [], []
    for _ in range(args.repeats):                         # dismiss, then undo (bulk reset), alternating
        for status, sink in (("dismissed", dismiss_ms), ("pending", undo_ms)):
            preview = store.preview_bulk(below, status)
            t0 = time.perf_counter()
            store.apply_bulk(below, status, "bench", preview.count, expected_digest=preview.digest)
            sink.append((time.perf_counter() - t0) * 1000)
    count = store.preview_bulk(below, "dismissed").count
    rows.append(("bulk apply: dismiss < 0.2", statistics.median(dismiss_ms), f"{count} items"))
    rows.append(("bulk apply: reset them", statistics.median(undo_ms), f"{count} items"))
    video_ms = []
    for k in range(args.repeats):
        f = QueueFilter(content_hash=store.videos()[k][0])
        preview = store.preview_bulk(f, "confirmed")
        t0 = time.perf_counter()
        store.apply_bulk(f, "confirmed", "bench", preview.count)
        video_ms.append((time.perf_counter() - t0) * 1000)
    rows.append(("bulk: confirm one video", statistics.median(video_ms), f"{PER_VIDEO} items"))
    out = Path(work.name) / "export"
    timed("export JSON with history", lambda: export.export_reviews_file(store, "json", out_dir=out),
          lambda p: f"{p.stat().st_size / 1e6:.1f} MB")
    assert store.status_cache_mismatches() == [], "status cache disagrees with the history"

    print(f"\n{'operation':44s} {'median ms':>10s}  {'target':>7s}  result")
    for name, ms, what in rows:
        target = "" if name.startswith("export") else ("ok" if ms < TARGET_MS else "SLOW")
        print(f"{name:44s} {ms:10.1f}  {target:>7s}  {what}")
    if store.backend == "sqlite":
        print("\nquery plans (SQLite):")
        show_plans(store, {"all, by score": QueueFilter(), **filters})
    store.close()
    work.cleanup()


if __name__ == "__main__":
    main()
