"""The review store (app/review_db.py) on SQLite and on a real PostgreSQL: the queue of flagged
segments across re-analyses, filtered / sorted / paginated queries, two-step bulk decisions, and
the migration of a database written before the history existed."""
from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import (Boolean, Column, DateTime, Float, Integer, LargeBinary, MetaData, String,
                        Table, Text, UniqueConstraint, create_engine, inspect)

from app.review_db import BulkChanged, QueueFilter, ReviewStore
from vadclip.results import DetectedSegment, DetectionParams, VideoScores

pytest_plugins = ["conftest_pg"]


def scores_of(video: str, segments: list[tuple[int, int, str, float]], content_hash: str | None = None,
              random_weights: bool = False) -> VideoScores:
    """A small analysis of `video` with segments (start snippet, end snippet, label, peak score)."""
    n, names = 40, ["normal", "fighting", "explosion", "riot"]
    fine = np.random.default_rng(0).dirichlet(np.ones(len(names)), n).astype(np.float32)
    start = np.arange(n) * 16 / 25.0
    segs = [DetectedSegment(start_s=a * 16 / 25, end_s=b * 16 / 25, start_frame=a * 16, end_frame=b * 16,
                            label=label, confidence=0.7, peak_score=score, mean_score=score - 0.1)
            for a, b, label, score in segments]
    return VideoScores(video=video, content_hash=content_hash or f"hash-{video}", fps=25.0,
                       n_frames=n * 16, duration_s=n * 16 / 25, snippet_frames=16,
                       samples_per_snippet=4, snippet_start_s=start, snippet_end_s=start + 16 / 25,
                       curves={"c": fine[:, 1:].sum(1), "a": 1 - fine[:, 0]}, fine=fine,
                       class_names=names, segments=segs, params=DetectionParams(), model="test model",
                       random_weights=random_weights)


@pytest.fixture
def store(db_url):
    s = ReviewStore(db_url)
    yield s
    s.close()


@pytest.fixture
def queue(store):
    """Three videos, nine segments, scores 0.1 .. 0.9."""
    a = store.sync_segments(scores_of("a.mp4", [(0, 2, "fighting", 0.9), (4, 6, "riot", 0.5),
                                                (8, 10, "fighting", 0.2)]))
    b = store.sync_segments(scores_of("b.mp4", [(0, 3, "explosion", 0.8), (5, 7, "fighting", 0.4),
                                                (9, 12, "riot", 0.1)]))
    c = store.sync_segments(scores_of("c.mp4", [(1, 2, "riot", 0.7), (3, 4, "explosion", 0.6),
                                                (6, 9, "fighting", 0.3)]))
    return a + b + c


# ------------------------------------------------------------------------------- sync + decide

def test_sync_keeps_decisions_across_reanalysis(store):
    first = store.sync_segments(scores_of("v.mp4", [(0, 4, "fighting", 0.9), (10, 14, "riot", 0.8),
                                                    (20, 24, "riot", 0.7)]), {0: b"jpeg"})
    assert [r.status for r in first] == ["pending"] * 3 and first[0].thumbnail == b"jpeg"
    assert all(r.history == () for r in first)
    store.decide(first[0].id, "confirmed", note="yes", reviewer="alice")
    store.decide(first[2].id, "dismissed", reviewer="bob")
    store.decide(first[2].id, "pending", reviewer="bob")          # reset: pending, but has history
    second = store.sync_segments(scores_of("v.mp4", [(0, 4, "fighting", 0.95), (12, 16, "riot", 0.6)]))
    assert second[0].id == first[0].id and second[0].status == "confirmed"
    assert second[0].peak_score == pytest.approx(0.9)                # decided items are not refilled
    ids = {r.id for r in store.items()}
    assert first[1].id not in ids                                    # never-decided item replaced
    assert first[2].id in ids and store.get(first[2].id).status == "pending"   # its history kept
    assert len(store.history(first[2].id)) == 2
    assert len(store.items(content_hash="hash-v.mp4")) == 3 and len(store.items(status="confirmed")) == 1


def test_decide_reopened_store_and_bad_decisions(db_url):
    store = ReviewStore(db_url)
    item = store.sync_segments(scores_of("v.mp4", [(0, 4, "fighting", 0.9)]))[0]
    record = store.decide(item.id, "relabelled", new_label=" fire ", note=" it burns ", reviewer="  ann  ")
    assert (record.status, record.final_label, record.note, record.reviewer) == \
        ("relabelled", "fire", "it burns", "ann")
    assert record.decided_at.tzinfo is not None
    store.close()
    again = ReviewStore(db_url)                                      # a restart: new engine
    assert again.get(item.id).final_label == "fire" and again.get(10**6) is None
    for status, label, message in [("approved", None, "unknown review status"),
                                   ("relabelled", "", "needs the new class"),
                                   ("relabelled", "fighting", "already labelled")]:
        with pytest.raises(ValueError, match=message):
            again.decide(item.id, status, new_label=label)
    with pytest.raises(ValueError, match="does not exist"):
        again.decide(10**6, "confirmed")
    with pytest.raises(ValueError, match="whole number"):
        again.decide("seven", "confirmed")
    with pytest.raises(ValueError, match="too long"):
        again.decide(item.id, "confirmed", reviewer="x" * 200)
    assert len(again.history(item.id)) == 1                          # refused decisions left no trace
    assert again.decide(np.int64(item.id), "confirmed").reviewer == "anonymous"
    again.close()


# ------------------------------------------------------------------------------- queue queries

def test_query_filters(store, queue):
    by_name = {(r.video, r.label, r.peak_score): r for r in queue}
    store.decide(by_name["a.mp4", "fighting", 0.9].id, "confirmed", reviewer="alice")
    store.decide(by_name["b.mp4", "riot", 0.1].id, "dismissed", reviewer="bob")
    store.decide(by_name["c.mp4", "riot", 0.7].id, "relabelled", new_label="fighting", reviewer="bob")

    def scores(**filters) -> list[float]:
        return [round(r.peak_score, 2) for r in store.query(QueueFilter(**filters), limit=100).records]

    assert scores() == [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    assert scores(video="b.mp4") == [0.8, 0.4, 0.1]
    assert scores(content_hash="hash-c.mp4") == [0.7, 0.6, 0.3]
    assert scores(label="fighting") == [0.9, 0.7, 0.4, 0.3, 0.2]     # the relabelled one counts
    assert scores(label="riot") == [0.5, 0.1]
    assert scores(status="pending") == [0.8, 0.6, 0.5, 0.4, 0.3, 0.2]
    assert scores(status=("confirmed", "relabelled")) == [0.9, 0.7]
    assert scores(min_score=0.3, max_score=0.6) == [0.6, 0.5, 0.4, 0.3]
    assert scores(reviewer="bob") == [0.7, 0.1]
    assert scores(video="a.mp4", status="pending", min_score=0.3) == [0.5]
    assert scores(video="nothing.mp4") == []
    assert store.videos() == [("hash-a.mp4", "a.mp4", 3), ("hash-b.mp4", "b.mp4", 3),
                              ("hash-c.mp4", "c.mp4", 3)]
    assert store.labels() == ["explosion", "fighting", "riot"]
    assert store.reviewers() == ["alice", "bob"]


def test_query_sort_and_pages(store, queue):
    store.decide(queue[4].id, "confirmed")
    store.decide(queue[1].id, "dismissed")
    ascending = store.query(sort="score", descending=False, limit=100).records
    assert [r.peak_score for r in ascending] == sorted(r.peak_score for r in queue)
    by_time = store.query(sort="time", descending=False, limit=100).records
    assert [(r.video, r.start_s) for r in by_time] == sorted((r.video, r.start_s) for r in queue)
    decided = store.query(sort="decided", descending=True, limit=100).records
    assert [r.id for r in decided[:2]] == [queue[1].id, queue[4].id]   # latest first, then undecided
    assert all(r.decided_at is None for r in decided[2:])
    assert [r.id for r in store.query(sort="flagged", descending=False, limit=100).records][:3] == \
        [r.id for r in queue[:3]]

    pages = [store.query(offset=offset, limit=4) for offset in (0, 4, 8)]
    assert [p.total for p in pages] == [9, 9, 9] and [len(p.records) for p in pages] == [4, 4, 1]
    assert [r.id for p in pages for r in p.records] == [r.id for r in store.query(limit=9).records]
    assert all(r.history is None for r in pages[0].records)
    with_history = store.query(limit=2, sort="decided", with_history=True).records
    assert [len(r.history) for r in with_history] == [1, 1]
    assert store.query(offset=20).records == [] and store.query(offset=20).total == 9
    for kwargs, message in [({"limit": 0}, "a page holds"), ({"offset": -1}, "cannot be negative"),
                            ({"sort": "colour"}, "unknown sort")]:
        with pytest.raises(ValueError, match=message):
            store.query(**kwargs)


@pytest.mark.parametrize("filters, message", [
    ({"status": "maybe"}, "unknown review status"),
    ({"min_score": "high"}, "must be a number"),
    ({"min_score": float("nan")}, "NaN"),
    ({"min_score": 0.8, "max_score": 0.2}, "score range is empty"),
])
def test_bad_filters(filters, message):
    with pytest.raises(ValueError, match=message):
        QueueFilter(**filters)


def test_blank_filter_fields_match_everything():
    assert QueueFilter(video="  ", label="", reviewer=" ", status=()).clauses() == []


# ------------------------------------------------------------------------------- bulk

def test_bulk_two_steps(store, queue):
    below = QueueFilter(max_score=0.35)
    preview = store.preview_bulk(below, "dismissed", sample=2)
    assert preview.count == 3 and [round(r.peak_score, 2) for r in preview.sample] == [0.3, 0.2]
    assert store.apply_bulk(below, "dismissed", "carol", preview.count, note=" low ",
                            expected_digest=preview.digest) == 3
    low = store.query(below).records
    assert {(r.status, r.reviewer, r.note) for r in low} == {("dismissed", "carol", "low")}
    for record in store.records(below):
        (entry,) = record.history
        assert (entry.action, entry.from_status, entry.to_status, entry.reviewer, entry.label) == \
            ("bulk dismiss", "pending", "dismissed", "carol", record.label)
    # already dismissed: nothing left to do; the items keep their single history row
    assert store.preview_bulk(below, "dismissed").count == 0
    assert store.apply_bulk(below, "dismissed", "carol", 0) == 0
    assert all(len(r.history) == 1 for r in store.records(below))

    video_a = QueueFilter(video="a.mp4")
    assert store.preview_bulk(video_a, "confirmed").count == 3
    assert store.apply_bulk(video_a, "confirmed", "dan", 3) == 3
    relabel = store.preview_bulk(QueueFilter(video="a.mp4"), "relabelled", new_label="fighting")
    assert relabel.count == 1                                        # the two fighting ones are not
    store.apply_bulk(video_a, "relabelled", "dan", relabel.count, new_label="fighting")
    assert {r.final_label for r in store.records(video_a)} == {"fighting"}
    assert [h.to_status for h in store.records(QueueFilter(video="a.mp4", label="fighting"))[1].history] \
        == ["confirmed", "relabelled"]
    assert store.status_cache_mismatches() == []


def test_bulk_refuses_a_changed_set(store, queue):
    pending = QueueFilter(status="pending")
    preview = store.preview_bulk(pending, "confirmed")
    assert preview.count == 9
    store.decide(queue[0].id, "dismissed", reviewer="eve")               # someone else meanwhile
    with pytest.raises(BulkChanged, match="9 items then, 8 now"):
        store.apply_bulk(pending, "confirmed", "frank", preview.count)
    again = store.preview_bulk(QueueFilter(), "confirmed")
    swapped = store.preview_bulk(QueueFilter(), "confirmed")
    assert again.digest == swapped.digest
    store.decide(queue[0].id, "relabelled", new_label="fire")             # same size, other content
    with pytest.raises(BulkChanged):
        store.apply_bulk(QueueFilter(), "confirmed", "frank", again.count, expected_digest=again.digest)
    assert {r.status for r in store.items()} == {"pending", "relabelled"}  # nothing written
    with pytest.raises(ValueError, match="needs the new class"):
        store.preview_bulk(pending, "relabelled")


# ------------------------------------------------------------------------------- migration

def legacy_table(metadata: MetaData) -> Table:
    """`review_items` as the app wrote it before the history existed."""
    return Table(
        "review_items", metadata,
        Column("id", Integer, primary_key=True), Column("content_hash", String(64), index=True),
        Column("video", String(512)), Column("start_frame", Integer), Column("end_frame", Integer),
        Column("label", String(256)), Column("start_s", Float), Column("end_s", Float),
        Column("confidence", Float), Column("peak_score", Float), Column("model", Text),
        Column("random_weights", Boolean), Column("thumbnail", LargeBinary, nullable=True),
        Column("status", String(16), index=True), Column("new_label", String(256), nullable=True),
        Column("note", Text), Column("reviewer", String(128)),
        Column("created_at", DateTime(timezone=True)),
        Column("decided_at", DateTime(timezone=True), nullable=True),
        UniqueConstraint("content_hash", "start_frame", "end_frame", "label", name="uq_review_segment"))


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_migrates_a_database_without_history(db_url):
    from datetime import datetime, timezone

    metadata = MetaData()
    table = legacy_table(metadata)
    engine = create_engine(db_url)
    metadata.create_all(engine)
    made = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)
    decided = datetime(2026, 11, 2, 10, 30, tzinfo=timezone.utc)
    common = dict(content_hash="old", video="old.mp4", start_s=0.0, end_s=1.0, confidence=0.6,
                  model="m", random_weights=False, thumbnail=None, created_at=made)
    with engine.begin() as conn:
        conn.execute(table.insert(), [
            dict(common, id=1, start_frame=0, end_frame=16, label="fighting", peak_score=0.9,
                 status="confirmed", new_label=None, note="ok", reviewer="", decided_at=decided),
            dict(common, id=2, start_frame=32, end_frame=48, label="riot", peak_score=0.5,
                 status="relabelled", new_label="fire", note="", reviewer="old-mod", decided_at=decided),
            dict(common, id=3, start_frame=64, end_frame=80, label="riot", peak_score=0.4,
                 status="pending", new_label=None, note="", reviewer="", decided_at=None)])
    engine.dispose()

    store = ReviewStore(db_url)
    assert store.items()[0].note == "ok" and len(store.items()) == 3
    (h1,), (h2,), h3 = store.history(1), store.history(2), store.history(3)
    assert (h1.action, h1.from_status, h1.to_status, h1.label, h1.reviewer, h1.note, h1.at) == \
        ("migrated", "pending", "confirmed", "fighting", "anonymous", "ok", decided)
    assert (h2.to_status, h2.label, h2.reviewer) == ("relabelled", "fire", "old-mod") and h3 == []
    indexes = {ix["name"] for ix in inspect(store.engine).get_indexes("review_items")}
    assert {"ix_review_status_score", "ix_review_score", "ix_review_position"} <= indexes
    assert store.query(QueueFilter(label="fire")).total == 1
    store.decide(3, "confirmed", reviewer="new-mod")
    store.close()
    reopened = ReviewStore(db_url)                                  # migrating twice adds nothing
    assert [len(reopened.history(i)) for i in (1, 2, 3)] == [1, 1, 1]
    assert reopened.status_cache_mismatches() == []
    reopened.close()
