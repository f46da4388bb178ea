"""Reviewers and history (app/review_db.py, app/reviewers.py, app/export.py) on SQLite and on a
real PostgreSQL: every decision appended with who/when/what, the status derived from it,
simultaneous decisions on one item all kept, and the history in CSV/JSON exports."""
from __future__ import annotations

import csv
import json
import threading
from datetime import datetime, timezone

import pytest

from app import export
from app.review_db import BulkChanged, QueueFilter, ReviewStore
from app.reviewers import normalize_reviewer, parse_auth, resolve_reviewer

from test_review_db import scores_of

pytest_plugins = ["conftest_pg"]


@pytest.fixture
def store(db_url):
    s = ReviewStore(db_url)
    yield s
    s.close()


def test_every_decision_is_appended(store):
    item = store.sync_segments(scores_of("v.mp4", [(0, 4, "fighting", 0.9)]))[0]
    before = datetime.now(timezone.utc)
    store.decide(item.id, "confirmed", note="real", reviewer="alice")
    store.decide(item.id, "relabelled", new_label="riot", reviewer="bob")
    store.decide(item.id, "dismissed", note="false alarm", reviewer="carol")
    last = store.decide(item.id, "pending", reviewer="alice")
    rows = [(h.reviewer, h.action, h.from_status, h.to_status, h.label, h.note) for h in last.history]
    assert rows == [("alice", "confirm", "pending", "confirmed", "fighting", "real"),
                    ("bob", "relabel", "confirmed", "relabelled", "riot", ""),
                    ("carol", "dismiss", "relabelled", "dismissed", "fighting", "false alarm"),
                    ("alice", "reset", "dismissed", "pending", "fighting", "")]
    times = [h.at for h in last.history]
    assert times == sorted(times) and times[0] >= before and all(t.tzinfo == timezone.utc for t in times)
    assert store.history(item.id) == list(last.history) == list(store.get(item.id).history)
    assert (last.status, last.reviewer, last.decided_at) == ("pending", "alice", None)
    assert store.history(10**6) == []
    assert store.status_cache_mismatches() == []


def test_status_cache_mismatch_is_detected(store):
    item = store.sync_segments(scores_of("v.mp4", [(0, 4, "fighting", 0.9)]))[0]
    store.decide(item.id, "confirmed")
    with store.engine.begin() as conn:                     # a write that bypassed the store
        conn.exec_driver_sql(f"UPDATE review_items SET status = 'dismissed' WHERE id = {item.id}")
    assert store.status_cache_mismatches() == [item.id]


@pytest.mark.parametrize("stores", [1, 2], ids=["one-store", "two-stores"])
def test_simultaneous_decisions_all_land(db_url, stores):
    """Eight moderators decide one segment at the same moment, through one store or through two
    (two engines on one database, as two app processes): all eight decisions are in the history,
    each one's from-status is the previous one's to-status, and the last one is the status."""
    opened = [ReviewStore(db_url) for _ in range(stores)]
    item = opened[0].sync_segments(scores_of("v.mp4", [(0, 4, "fighting", 0.9)]))[0]
    decisions = [("confirmed", None), ("dismissed", None), ("relabelled", "riot"), ("confirmed", None),
                 ("relabelled", "fire"), ("dismissed", None), ("confirmed", None), ("dismissed", None)]
    start = threading.Barrier(len(decisions))
    errors: list[BaseException] = []

    def moderator(n: int) -> None:
        status, label = decisions[n]
        try:
            start.wait(timeout=30)
            opened[n % stores].decide(item.id, status, new_label=label, note=f"decision {n}",
                                      reviewer=f"mod{n}")
        except BaseException as error:             # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=moderator, args=(n,)) for n in range(len(decisions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    history = opened[-1].history(item.id)
    assert sorted(h.reviewer for h in history) == [f"mod{n}" for n in range(len(decisions))]
    assert history[0].from_status == "pending"
    assert all(b.from_status == a.to_status for a, b in zip(history, history[1:]))
    winner = history[-1]
    for s in opened:
        record = s.get(item.id)
        assert (record.status, record.reviewer, record.note, record.final_label) == \
            (winner.to_status, winner.reviewer, winner.note, winner.label)
    assert opened[0].status_cache_mismatches() == []
    for s in opened:
        s.close()


def test_exports_carry_history(store, tmp_path):
    items = store.sync_segments(scores_of("v.mp4", [(0, 4, "fighting", 0.9), (10, 14, "riot", 0.4)],
                                          random_weights=True))
    store.decide(items[0].id, "confirmed", note="real", reviewer="alice")
    store.decide(items[0].id, "relabelled", new_label="fire", reviewer="bob")

    json_path = export.export_reviews_file(store, "JSON", out_dir=tmp_path)
    doc = json.loads(json_path.read_text())
    assert json_path.parent == tmp_path and json_path.suffix == ".json" and "RANDOM WEIGHTS" in doc["warning"]
    first, second = doc["segments"]
    assert [h["reviewer"] for h in first["history"]] == ["alice", "bob"] and second["history"] == []
    assert set(first["history"][1]) == {"at", "reviewer", "action", "from_status", "to_status", "label", "note"}
    assert first["history"][1] | {"at": None} == {
        "at": None, "reviewer": "bob", "action": "relabel", "from_status": "confirmed",
        "to_status": "relabelled", "label": "fire", "note": ""}
    assert datetime.fromisoformat(first["history"][0]["at"]).tzinfo is not None
    assert (first["status"], first["final_label"], first["reviewer"]) == ("relabelled", "fire", "bob")

    csv_path = export.export_reviews_file(store, "csv", out_dir=tmp_path, filters=QueueFilter(min_score=0.5))
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and json.loads(rows[0]["history"]) == first["history"]

    only = json.loads(export.export_reviews_file(store, "json", out_dir=tmp_path,
                                                 filters=QueueFilter(status="pending")).read_text())
    assert [s["label"] for s in only["segments"]] == ["riot"] and only["filters"]["status"] == ["pending"]
    for fmt, message in [("xlsx", "unknown export format"), ("", "unknown export format")]:
        with pytest.raises(ValueError, match=message):
            export.export_reviews_file(store, fmt, out_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown sort"):
        export.export_reviews_file(store, "csv", out_dir=tmp_path, sort="colour")


def test_records_without_history_export_as_not_loaded(store, tmp_path):
    store.sync_segments(scores_of("v.mp4", [(0, 4, "fighting", 0.9)]))
    page = store.query().records
    row = export.export_row(page[0])
    assert row["history"] is None
    with open(export.write_csv(page, out_dir=tmp_path), newline="") as f:
        assert next(csv.DictReader(f))["history"] == ""


# ------------------------------------------------------------------------------- reviewers

def test_reviewer_names():
    assert normalize_reviewer(None) == normalize_reviewer("   ") == "anonymous"
    assert normalize_reviewer("  Ada \t Lovelace ") == "Ada Lovelace"
    with pytest.raises(ValueError, match="too long"):
        normalize_reviewer("x" * 129)
    with pytest.raises(ValueError, match="control characters"):
        normalize_reviewer("ada\x00")
    assert resolve_reviewer("hf-user", "local", "typed") == "hf-user"
    assert resolve_reviewer(None, "local", "typed") == "local"
    assert resolve_reviewer("", " ", " typed ") == "typed"
    assert resolve_reviewer() == "anonymous"


def test_parse_auth():
    assert parse_auth(["alice:se:cret", "bob:pw"]) == [("alice", "se:cret"), ("bob", "pw")]
    for bad, message in [(["alice"], "use user:password"), ([":pw"], "use user:password"),
                         (["alice:"], "use user:password"), (["a:1", "a:2"], "twice")]:
        with pytest.raises(ValueError, match=message) as error:
            parse_auth(bad)
        assert "pw" not in str(error.value) and "1" not in str(error.value)


def test_bulk_and_single_decisions_at_once_keep_every_history_consistent(db_url):
    """Two stores: one runs bulk decisions over the whole queue while the other decides single
    items; afterwards every item's history is an unbroken chain ending in its status."""
    bulk_store, single_store = ReviewStore(db_url), ReviewStore(db_url)
    items = bulk_store.sync_segments(scores_of("v.mp4", [(n, n + 1, "riot", n / 40) for n in range(0, 40, 2)]))
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def bulk() -> None:
        try:
            start.wait(timeout=30)
            for status in ("dismissed", "confirmed", "pending", "dismissed"):
                for _ in range(200):               # the other store may change the set meanwhile
                    preview = bulk_store.preview_bulk(QueueFilter(), status)
                    try:
                        bulk_store.apply_bulk(QueueFilter(), status, "bulk-mod", preview.count,
                                              expected_digest=preview.digest)
                        break
                    except BulkChanged:
                        continue
                else:
                    raise AssertionError(f"the bulk {status} never found a stable set")
        except BaseException as error:
            errors.append(error)

    def singles() -> None:
        try:
            start.wait(timeout=30)
            for n, item in enumerate(items * 2):
                single_store.decide(item.id, ("confirmed", "relabelled")[n % 2],
                                    new_label="fire" if n % 2 else None, reviewer="one-mod")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=bulk), threading.Thread(target=singles)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    for record in single_store.records():
        chain = record.history
        assert chain[0].from_status == "pending"
        assert all(b.from_status == a.to_status for a, b in zip(chain, chain[1:]))
        assert chain[-1].to_status == record.status and chain[-1].label == record.final_label
        assert sum(h.reviewer == "one-mod" for h in chain) == 2
    assert single_store.status_cache_mismatches() == []
    bulk_store.close()
    single_store.close()
