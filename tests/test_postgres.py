"""A team's review database on a real PostgreSQL (a throwaway cluster, tests/pg_cluster.py):
several stores and several processes on one database see each other's decisions. The store's
other tests run on PostgreSQL too (the `db_url` fixture of tests/conftest_pg.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import pg_cluster as clusters
from app.review_db import QueueFilter, ReviewStore
from test_review_db import scores_of

pytest_plugins = ["conftest_pg"]
REPO = Path(__file__).resolve().parents[1]


def test_the_cluster_is_a_real_unprivileged_postgres(pg_cluster, pg_url):
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version()")).scalar().startswith("PostgreSQL")
        assert conn.execute(text("SELECT current_setting('listen_addresses')")).scalar() == "127.0.0.1"
        data_dir = Path(conn.execute(text("SELECT current_setting('data_directory')")).scalar())
    engine.dispose()
    assert data_dir.parent == pg_cluster.root
    if os.geteuid() == 0:
        import pwd

        assert pwd.getpwuid(data_dir.stat().st_uid).pw_name == clusters.SERVER_USER


def test_two_stores_see_each_others_decisions(pg_url):
    """Two stores (two engines, as two app processes have) on one database."""
    first, second = ReviewStore(pg_url), ReviewStore(pg_url)
    items = first.sync_segments(scores_of("cam.mp4", [(0, 4, "fighting", 0.9), (10, 14, "riot", 0.3)]))
    assert [r.id for r in second.query(sort="time", descending=False).records] == [r.id for r in items]
    first.decide(items[0].id, "confirmed", reviewer="alice")
    seen = second.query(QueueFilter(status="confirmed"))
    assert [(r.id, r.reviewer) for r in seen.records] == [(items[0].id, "alice")]
    second.decide(items[0].id, "relabelled", new_label="fire", reviewer="bob")
    assert [h.reviewer for h in first.history(items[0].id)] == ["alice", "bob"]
    assert first.query(QueueFilter(label="fire")).total == 1
    preview = second.preview_bulk(QueueFilter(max_score=0.5), "dismissed")
    assert second.apply_bulk(QueueFilter(max_score=0.5), "dismissed", "bob", preview.count) == 1
    assert first.get(items[1].id).status == "dismissed" and first.reviewers() == ["alice", "bob"]
    first.close()
    second.close()


CHILD = textwrap.dedent("""
    import json, sys
    from app.review_db import QueueFilter, ReviewStore
    store = ReviewStore(sys.argv[1])
    seen = [(r.id, r.status, r.reviewer) for r in store.query(QueueFilter(status="confirmed")).records]
    store.decide(int(sys.argv[2]), "dismissed", note="from the other process", reviewer="process-2")
    print(json.dumps(seen))
    store.close()
""")


@pytest.mark.slow                                   # the child process imports torch (vadclip)
def test_another_process_sees_decisions(pg_url):
    store = ReviewStore(pg_url)
    items = store.sync_segments(scores_of("cam.mp4", [(0, 4, "fighting", 0.9), (10, 14, "riot", 0.8)]))
    store.decide(items[0].id, "confirmed", reviewer="process-1")
    done = subprocess.run([sys.executable, "-c", CHILD, pg_url, str(items[1].id)], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == [[items[0].id, "confirmed", "process-1"]]
    (dismissed,) = store.query(QueueFilter(status="dismissed")).records
    assert (dismissed.id, dismissed.reviewer, dismissed.note) == \
        (items[1].id, "process-2", "from the other process")
    store.close()


def test_cluster_is_removed_afterwards():
    try:
        cluster = clusters.PostgresCluster().start()
    except clusters.ClusterUnavailable as why:
        pytest.skip(f"no throwaway PostgreSQL here: {why}")
    root, url = cluster.root, cluster.create_database()
    store = ReviewStore(url)
    store.close()
    cluster.stop()
    assert not root.exists()
    with pytest.raises(Exception):
        ReviewStore(url)                                  # nothing listens there any more


def test_missing_server_binaries_give_a_clear_reason(monkeypatch):
    monkeypatch.setattr(clusters.shutil, "which", lambda name: None)
    monkeypatch.setattr(clusters.glob, "glob", lambda pattern: [])
    with pytest.raises(clusters.ClusterUnavailable, match="initdb/pg_ctl not found"):
        clusters.PostgresCluster()
