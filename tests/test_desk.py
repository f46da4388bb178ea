"""The moderator's desk without a browser: the review handlers (queue pages, filters, history,
bulk preview/apply, exports, reviewer names, alert failures) on SQLite and PostgreSQL, and the real
app over HTTP: two gradio_client sessions deciding one segment at once, `/export_reviews`, and two
app processes sharing one PostgreSQL database."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from app import handlers as h
from app.alerts import AlertSettings
from app.config import AppConfig
from app.handlers import AppContext
from app.review_db import BulkChanged
from app.tab_review import alert_failures_markdown
from vadclip.errors import UserError

from test_review_db import scores_of

pytest_plugins = ["conftest_pg"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def ctx(db_url, tmp_path):
    config = AppConfig(models_dir=tmp_path / "models", data_dir=tmp_path / "data", db_url=db_url,
                       clip="random")
    context = AppContext.create(config)
    yield context
    context.close()


def fill(ctx, n_videos: int = 3, per_video: int = 8) -> list[int]:
    ids = []
    for v in range(n_videos):
        segs = [(2 * k, 2 * k + 1, ("fighting", "explosion")[k % 2], round(0.1 + 0.1 * k, 2))
                for k in range(per_video)]
        ids += [r.id for r in ctx.store.sync_segments(scores_of(f"v{v}.mp4", segs))]
    return ids


def test_queue_pages_filters_and_sort(ctx):
    fill(ctx)
    view = h.queue_view(ctx, h.queue_filter(), "score, highest first", 1, page_size=10)
    assert (view.total, view.pages, len(view.rows)) == (24, 3, 10)
    scores = [row[7] for row in view.rows]
    assert scores == sorted(scores, reverse=True)
    last = h.queue_view(ctx, h.queue_filter(), "score, lowest first", 99, page_size=10)
    assert last.page == 3 and len(last.rows) == 4                      # past the end: the last page
    choices = h.filter_choices(ctx)
    v1 = next(value for label, value in choices.videos if label.startswith("v1.mp4"))
    only = h.queue_view(ctx, h.queue_filter(video=v1, label="explosion", min_score=0.4, max_score=0.8))
    assert only.total == 3 and {row[2] for row in only.rows} == {"v1.mp4"}     # scores .4 .6 .8
    assert all(0.4 <= row[7] <= 0.8 and row[5] == "explosion" for row in only.rows)
    by_time = h.queue_view(ctx, h.queue_filter(), "video and time", 1, page_size=8)
    assert [row[3] for row in by_time.rows] == sorted(row[3] for row in by_time.rows)
    with pytest.raises(UserError, match="number"):
        h.queue_filter(min_score="lots")
    with pytest.raises(UserError, match="unknown review filter"):
        h.queue_filter(status="maybe")


def test_decisions_record_the_reviewer_and_history(ctx):
    item = fill(ctx, 1, 2)[0]
    h.decide(ctx, item, "confirm", note="looks real", reviewer="alice")
    record = h.decide(ctx, item, "relabel", new_label="riot", reviewer="bob")
    assert record.status == "relabelled" and record.reviewer == "bob"
    text = h.history_markdown(record.history)
    assert text.index("alice") < text.index("bob") and "pending → confirmed" in text
    assert "confirmed → relabelled" in text and "looks real" in text
    assert h.queue_view(ctx, h.queue_filter(reviewer="bob")).total == 1
    assert "bob" in h.filter_choices(ctx).reviewers
    assert h.reviewer_name(None, None, "  carol  ") == "carol"
    assert h.reviewer_name("hf-user", "login", "typed") == "hf-user"
    assert h.reviewer_name(None, "login", "typed") == "login"
    assert h.reviewer_name(None, None, "") == "anonymous"
    with pytest.raises(UserError, match="select a segment"):
        h.decide(ctx, None, "confirm")


def test_bulk_needs_a_preview_and_notices_changes(ctx):
    ids = fill(ctx, 2, 6)
    low = h.queue_filter(max_score=0.35)
    preview = h.bulk_preview(ctx, low, "dismiss")
    assert preview.count == 6 and "6 segments will become dismissed" in h.bulk_markdown(preview)
    assert h.queue_view(ctx, h.queue_filter(status="dismissed")).total == 0      # nothing yet
    h.decide(ctx, ids[0], "dismiss", reviewer="eve")                             # the set changes
    with pytest.raises(BulkChanged, match="preview the bulk action again"):
        h.bulk_apply(ctx, low, preview, reviewer="alice")
    again = h.bulk_preview(ctx, low, "dismiss")
    assert again.count == 5
    assert h.bulk_apply(ctx, low, again, reviewer="alice") == 5
    assert h.queue_view(ctx, h.queue_filter(status="dismissed", reviewer="alice")).total == 5
    with pytest.raises(UserError, match="preview the bulk action first"):
        h.bulk_apply(ctx, low, None)


def test_export_has_every_history(ctx, tmp_path):
    item = fill(ctx, 1, 2)[0]
    h.decide(ctx, item, "confirm", reviewer="alice")
    h.decide(ctx, item, "dismiss", reviewer="bob")
    path = h.export_reviews(ctx, "json", h.queue_filter(status="dismissed"), out_dir=tmp_path)
    doc = json.loads(path.read_text())
    segments = doc["segments"] if isinstance(doc, dict) else doc
    assert len(segments) == 1
    assert [e["reviewer"] for e in segments[0]["history"]] == ["alice", "bob"]
    assert h.export_reviews(ctx, "csv", out_dir=tmp_path).suffix == ".csv"
    with pytest.raises(UserError, match="unknown export format"):
        h.export_reviews(ctx, "xml", out_dir=tmp_path)


def test_alert_failures_are_listed(tmp_path):
    config = AppConfig(models_dir=tmp_path / "m", data_dir=tmp_path / "d", clip="random",
                       alerts=AlertSettings(webhook_url="http://127.0.0.1:9/hook", min_score=0.5,
                                            attempts=1, timeout_s=1.0))
    ctx = AppContext.create(config)
    try:
        assert ctx.alerter.settings.webhook_url == "http://127.0.0.1:9/hook"
        futures = ctx.alerter.notify(scores_of("a.mp4", [(0, 2, "fighting", 0.9), (4, 6, "riot", 0.2)]))
        for future in futures:
            future.result(timeout=30)
        text = alert_failures_markdown(ctx)
        assert "1 failed" in text and "a.mp4" in text and "fighting" in text
    finally:
        ctx.close()
    off = AppContext.create(AppConfig(models_dir=tmp_path / "m", data_dir=tmp_path / "d2", clip="random"))
    try:
        assert "Alerts are off" in alert_failures_markdown(off)
    finally:
        off.close()


# ------------------------------------------------------------------ the real app over HTTP

def _servers(root: Path, n: int, **env):
    from app_server import AppServer
    from conftest import OFFICIAL

    if not (OFFICIAL / "official_xd.pth").is_file():
        pytest.skip(f"fixture checkpoint not found under {OFFICIAL}")
    return [AppServer(root / f"app{k}", concurrency=2, **env).start() for k in range(n)]


def _analyse(client, server) -> list:
    from gradio_client import handle_file

    out = client.predict(handle_file(str(REPO / "assets" / "explosion.mp4")), "normal", "explosion\nfighting",
                         server.model_key, "auto", "4", 0.5, "c", 0.0, 0.0, api_name="/analyse")
    return out[3]["data"]


@pytest.mark.slow
def test_two_sessions_decide_one_segment_at_once(tmp_path):
    """Two moderators (two gradio_client sessions) decide segment 1 at the same moment: both land
    in the history, the later wins the status, nothing is lost; `/export_reviews` has it all."""
    (server,) = _servers(tmp_path, 1)
    try:
        clients = [server.client(), server.client()]
        for client in clients:
            assert _analyse(client, server)
        barrier = threading.Barrier(2)
        errors = []

        def decide(client, action, who):
            try:
                barrier.wait()
                client.predict(1, action, f"{who} decided", who, api_name="/decide_segment")
            except Exception as e:           # reported below
                errors.append(e)

        threads = [threading.Thread(target=decide, args=(c, a, w))
                   for c, a, w in zip(clients, ("confirm", "dismiss"), ("ann", "bob"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        path = clients[0].predict("json", api_name="/export_reviews")
        doc = json.loads(Path(path).read_text())
        segments = doc["segments"] if isinstance(doc, dict) else doc
        first = next(s for s in segments if s["history"])
        history = first["history"]
        assert sorted(e["reviewer"] for e in history) == ["ann", "bob"]
        assert history[1]["from_status"] == history[0]["to_status"]          # serialised, not lost
        assert first["status"] == history[-1]["to_status"]                   # the later one wins
    finally:
        server.stop()


@pytest.mark.slow
def test_two_app_processes_share_one_postgresql(tmp_path, pg_url):
    """A decision made through one app process shows in the other's queue (one PostgreSQL)."""
    one, two = _servers(tmp_path, 2, VADCLIP_DB_URL=pg_url)
    try:
        a, b = one.client(), two.client()
        _analyse(a, one)
        a.predict(1, "confirm", "seen in process one", "ann", api_name="/decide_segment")
        doc = json.loads(Path(b.predict("json", api_name="/export_reviews")).read_text())
        segments = doc["segments"] if isinstance(doc, dict) else doc
        decided = [s for s in segments if s["status"] == "confirmed"]
        assert len(decided) == 1 and decided[0]["history"][0]["reviewer"] == "ann"
        assert decided[0]["note"] == "seen in process one"
    finally:
        one.stop()
        two.stop()


@pytest.mark.slow
def test_auth_login_names_the_reviewer(tmp_path):
    """`--auth` (here VADCLIP_AUTH): the app asks for a login and records it as the reviewer; a
    typed name does not override a login."""
    from gradio_client import Client

    (server,) = _servers(tmp_path, 1, VADCLIP_AUTH="alice:s3cret bob:pw:with:colons")
    try:
        with pytest.raises(Exception):
            Client(server.url, verbose=False, auth=("alice", "wrong"))
        client = Client(server.url, verbose=False, auth=("alice", "s3cret"))
        _analyse(client, server)
        client.predict(1, "confirm", "", "someone else", api_name="/decide_segment")
        doc = json.loads(Path(client.predict("json", api_name="/export_reviews")).read_text())
        segments = doc["segments"] if isinstance(doc, dict) else doc
        decided = [s for s in segments if s["history"]]
        assert decided[0]["history"][-1]["reviewer"] == "alice"
    finally:
        server.stop()


def test_auth_settings():
    config = AppConfig.from_env({"VADCLIP_AUTH": "alice:pw bob:a:b"})
    assert config.auth == (("alice", "pw"), ("bob", "a:b"))
    with pytest.raises(ValueError, match="user:password"):
        AppConfig.from_env({"VADCLIP_AUTH": "nopassword"})
    from app.ui import launch_options
    assert launch_options(config)["auth"] == [("alice", "pw"), ("bob", "a:b")]
    assert launch_options(AppConfig())["auth"] is None
    assert "<script>" in launch_options(config)["head"]
