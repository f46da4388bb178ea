"""Webhook alerts (app/alerts.py) against a local receiver on 127.0.0.1: delivery without blocking
the caller, retry after a 500, a receiver too slow for the timeout, an unreachable port, a final
4xx, the threshold, de-duplication and the bounded failure list."""
from __future__ import annotations

import json
import threading
from concurrent.futures import wait
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.alerts import Alerter, AlertSettings, alert_message, segment_link
from pg_cluster import free_port
from test_review_db import scores_of


class Receiver:
    """An HTTP server on 127.0.0.1 that answers POSTs with the next status in `statuses` (then
    200), after `delay_s`, or only once `release` is set."""

    def __init__(self, statuses: list[int] | None = None, delay_s: float = 0.0):
        self.statuses = list(statuses or [])
        self.delay_s = delay_s
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.release = threading.Event()
        self.release.set()
        self.done = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.release.wait(10)
                receiver.done.wait(receiver.delay_s)          # a slow receiver (cut short at exit)
                receiver.bodies.append(json.loads(body))
                receiver.headers.append(dict(self.headers))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:                           # the client gave up (timeout test)
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.done.set()
        self.server.shutdown()
        self.server.server_close()


FLAGGED = scores_of("cam1.mp4", [(0, 4, "fighting", 0.95), (10, 14, "riot", 0.5), (20, 24, "explosion", 0.85)])


def alerter(url: str, **settings) -> Alerter:
    base = dict(webhook_url=url, min_score=0.8, timeout_s=5.0, attempts=3, backoff_s=0.01,
                app_url="https://mod.example/")
    return Alerter(AlertSettings(**(base | settings)))


def test_alerts_are_sent_in_the_background():
    with Receiver() as receiver:
        receiver.release.clear()                          # the receiver holds every request
        sender = alerter(receiver.url)
        futures = sender.notify(FLAGGED, item_ids=[7, 8, 9])
        assert len(futures) == 2 and not any(f.done() for f in futures)   # notify did not wait
        receiver.release.set()
        wait(futures, timeout=10)
        assert [f.result() for f in futures] == [True, True] and sender.sent() == 2
        assert sender.failures() == []
        by_label = {b["label"]: b for b in receiver.bodies}
        assert set(by_label) == {"fighting", "explosion"}                    # riot is below 0.8
        fight = by_label["fighting"]
        assert (fight["video"], fight["start_s"], fight["end_s"], fight["score"], fight["item_id"]) == \
            ("cam1.mp4", 0.0, round(4 * 16 / 25, 3), 0.95, 7)
        assert fight["link"] == "https://mod.example/?video=hash-cam1.mp4&t=0.00&item=7"
        assert fight["random_weights"] is False and "warning" not in fight
        assert receiver.headers[0]["Content-Type"] == "application/json"
        assert sender.notify(FLAGGED) == []                                  # each segment once
        sender.close()


def test_retry_after_a_server_error():
    with Receiver(statuses=[500, 503]) as receiver:
        sender = alerter(receiver.url, attempts=3)
        (future,) = sender.notify(scores_of("v.mp4", [(0, 4, "fighting", 0.9)]))
        assert future.result(timeout=10) is True
        assert len(receiver.bodies) == 3 and sender.sent() == 1 and sender.failures() == []
        sender.close()


def test_gives_up_and_lists_the_failure():
    with Receiver(statuses=[500, 500, 500]) as receiver:
        sender = alerter(receiver.url, attempts=2)
        (future,) = sender.notify(scores_of("v.mp4", [(0, 4, "fighting", 0.9)]))
        assert future.result(timeout=10) is False
        (failure,) = sender.failures()
        assert (failure.video, failure.label, failure.attempts) == ("v.mp4", "fighting", 2)
        assert "HTTP 500" in failure.error and len(receiver.bodies) == 2
        sender.close()


def test_a_client_error_is_not_retried():
    with Receiver(statuses=[404]) as receiver:
        sender = alerter(receiver.url, attempts=3)
        (future,) = sender.notify(scores_of("v.mp4", [(0, 4, "fighting", 0.9)]))
        assert future.result(timeout=10) is False
        assert len(receiver.bodies) == 1 and "HTTP 404" in sender.failures()[0].error
        sender.close()


def test_timeout():
    with Receiver(delay_s=5.0) as receiver:
        sender = alerter(receiver.url, timeout_s=0.2, attempts=2)
        (future,) = sender.notify(scores_of("v.mp4", [(0, 4, "fighting", 0.9)]))
        assert future.result(timeout=10) is False
        (failure,) = sender.failures()
        assert failure.attempts == 2 and "timed out" in failure.error.lower()
        sender.close()


def test_unreachable_port():
    sender = alerter(f"http://127.0.0.1:{free_port()}/hook", attempts=2)
    (future,) = sender.notify(scores_of("v.mp4", [(0, 4, "fighting", 0.9)]))
    assert future.result(timeout=10) is False
    (failure,) = sender.failures()
    assert failure.attempts == 2 and "refused" in failure.error.lower()
    sender.close()


def test_failure_list_is_bounded_and_nothing_raises():
    sender = Alerter(AlertSettings(webhook_url=f"http://127.0.0.1:{free_port()}/", attempts=1,
                                   min_score=0.0), max_failures=3, workers=1)
    many = scores_of("v.mp4", [(n, n + 1, "fighting", 0.9) for n in range(0, 10, 2)])
    wait(sender.notify(many), timeout=10)
    failures = sender.failures()
    assert [f.start_s for f in failures] == [s.start_s for s in many.segments[-3:]]   # the latest
    sender.close()
    assert sender.notify(scores_of("w.mp4", [(0, 4, "fighting", 0.9)])) == []   # closed: nothing


def test_pending_alerts_are_bounded():
    with Receiver() as receiver:
        receiver.release.clear()
        sender = Alerter(AlertSettings(webhook_url=receiver.url, min_score=0.0, attempts=1),
                         max_pending=2, workers=1)
        futures = sender.notify(scores_of("v.mp4", [(n, n + 1, "riot", 0.9) for n in range(0, 8, 2)]))
        assert len(futures) == 2
        assert [f.attempts for f in sender.failures()] == [0, 0]
        assert "dropped" in sender.failures()[0].error
        receiver.release.set()
        wait(futures, timeout=10)
        sender.close()


def test_disabled_and_random_weights():
    assert Alerter().notify(FLAGGED) == []                       # no webhook: alerts are off
    message = alert_message(scores_of("r.mp4", [(0, 4, "fighting", 0.9)], random_weights=True),
                            scores_of("r.mp4", [(0, 4, "fighting", 0.9)]).segments[0])
    assert message["random_weights"] is True and "RANDOM WEIGHTS" in message["warning"]
    assert message["link"] == "" and segment_link("http://a/", "h", 1.5) == "http://a/?video=h&t=1.50"


@pytest.mark.parametrize("settings, message", [
    ({"webhook_url": "ftp://host/x"}, "http"),
    ({"webhook_url": "http://"}, "with a host"),
    ({"min_score": 1.5}, "within 0..1"),
    ({"timeout_s": 0}, "timeout must be positive"),
    ({"attempts": 0}, "at least one attempt"),
    ({"backoff_s": -1}, "cannot be negative"),
])
def test_bad_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        AlertSettings(**settings)


def test_settings_from_env():
    settings = AlertSettings.from_env({"VADCLIP_ALERT_URL": " https://hooks.example/x ",
                                       "VADCLIP_ALERT_MIN_SCORE": "0.6", "VADCLIP_APP_URL": "https://app"})
    assert (settings.webhook_url, settings.min_score, settings.app_url, settings.enabled) == \
        ("https://hooks.example/x", 0.6, "https://app", True)
    assert AlertSettings.from_env({}).enabled is False
    with pytest.raises(ValueError, match="VADCLIP_ALERT_MIN_SCORE"):
        AlertSettings.from_env({"VADCLIP_ALERT_MIN_SCORE": "high"})
