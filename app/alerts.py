"""Webhook alerts: when an analysis flags a segment whose peak anomaly score reaches a threshold,
POST a JSON message about it to a configured URL.

Sending happens on background threads with a timeout per attempt and retries with exponential
backoff (after a connection error, a timeout, HTTP 429 or 5xx; other HTTP errors are final), so
the analysis never waits for the receiver. Failures are logged and kept in a bounded list
(`Alerter.failures()`), never raised. A segment is alerted once per `Alerter` (re-analysing a video
with other settings does not repeat it). Standard library only (urllib).

The message: `{"event": "vadclip.segment_flagged", "video", "content_hash", "item_id", "start_s",
"end_s", "start_frame", "end_frame", "label", "score", "confidence", "model", "random_weights",
"link", "sent_at"}` (+ `"warning"` when the scores come from a random-weight CLIP). `score` is the
segment's peak anomaly score; `link` points into the app when its public address is set.
"""
from __future__ import annotations

import http.client
import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Mapping, Sequence

from vadclip.results import DetectedSegment, VideoScores
from vadclip.errors import UserError

log = logging.getLogger(__name__)

RETRY_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
RANDOM_WEIGHTS_WARNING = "scores come from a CLIP with RANDOM WEIGHTS: they are meaningless"


@dataclass(frozen=True)
class AlertSettings:
    """Where and when to alert. An empty `webhook_url` turns alerts off."""

    webhook_url: str = ""
    min_score: float = 0.8            # alert on segments whose peak score is at least this
    timeout_s: float = 5.0            # per attempt
    attempts: int = 4                 # first try + retries
    backoff_s: float = 1.0            # wait before retry n: backoff_s * 2 ** (n - 1)
    app_url: str = ""                 # the app's public address, for each alert's link

    def __post_init__(self) -> None:
        url = (self.webhook_url or "").strip()
        object.__setattr__(self, "webhook_url", url)
        if url:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise UserError(f"the alert webhook must be an http(s) URL with a host, not {url!r}")
        if not 0.0 <= self.min_score <= 1.0:
            raise UserError(f"the alert score threshold must be within 0..1, not {self.min_score}")
        if not self.timeout_s > 0:
            raise UserError(f"the alert timeout must be positive, not {self.timeout_s}")
        if self.attempts < 1:
            raise UserError(f"alerts need at least one attempt, not {self.attempts}")
        if self.backoff_s < 0:
            raise UserError(f"the alert backoff cannot be negative ({self.backoff_s})")

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_url)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "AlertSettings":
        """From `VADCLIP_ALERT_URL`, `VADCLIP_ALERT_MIN_SCORE`, `VADCLIP_ALERT_TIMEOUT_S`,
        `VADCLIP_ALERT_ATTEMPTS` and `VADCLIP_APP_URL` (all optional). UserError on bad values."""
        values: dict = {"webhook_url": env.get("VADCLIP_ALERT_URL", ""),
                        "app_url": env.get("VADCLIP_APP_URL", "")}
        for name, key, kind in [("min_score", "VADCLIP_ALERT_MIN_SCORE", float),
                                ("timeout_s", "VADCLIP_ALERT_TIMEOUT_S", float),
                                ("attempts", "VADCLIP_ALERT_ATTEMPTS", int)]:
            if env.get(key, "").strip():
                try:
                    values[name] = kind(env[key])
                except ValueError:
                    raise UserError(f"bad {key}={env[key]!r}: expected a number") from None
        return cls(**values)


@dataclass(frozen=True)
class AlertFailure:
    """An alert that could not be delivered."""

    at: datetime
    video: str
    label: str
    start_s: float
    attempts: int
    error: str


def segment_link(app_url: str, content_hash: str, start_s: float, item_id: int | None = None) -> str:
    """`APP_URL/?video=HASH&t=START[&item=ID]`, or "" without an app address."""
    if not app_url:
        return ""
    query = {"video": content_hash, "t": f"{start_s:.2f}"}
    if item_id is not None:
        query["item"] = str(item_id)
    return f"{app_url.rstrip('/')}/?{urllib.parse.urlencode(query)}"


def alert_message(scores: VideoScores, seg: DetectedSegment, item_id: int | None = None,
                  app_url: str = "") -> dict:
    """The JSON body of one segment's alert."""
    message = {
        "event": "vadclip.segment_flagged", "video": scores.video, "content_hash": scores.content_hash,
        "item_id": item_id, "start_s": round(float(seg.start_s), 3), "end_s": round(float(seg.end_s), 3),
        "start_frame": int(seg.start_frame), "end_frame": int(seg.end_frame), "label": seg.label,
        "score": round(float(seg.peak_score), 4), "confidence": round(float(seg.confidence), 4),
        "model": scores.model, "random_weights": bool(scores.random_weights),
        "link": segment_link(app_url, scores.content_hash, float(seg.start_s), item_id),
        "sent_at": datetime.now(timezone.utc).isoformat(),
    }
    if scores.random_weights:
        message["warning"] = RANDOM_WEIGHTS_WARNING
    return message


class _Retryable(Exception):
    pass


def _post(url: str, message: dict, timeout_s: float) -> int:
    """One attempt: the HTTP status on success; _Retryable or another exception on failure."""
    body = json.dumps(message).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "vadclip-alerts"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as error:
        if error.code in RETRY_HTTP:
            raise _Retryable(f"HTTP {error.code} {error.reason}") from None
        raise RuntimeError(f"HTTP {error.code} {error.reason} (not retried)") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        reason = getattr(error, "reason", error)
        raise _Retryable(f"{type(reason).__name__}: {reason}") from None


class Alerter:
    """Sends alerts for one running app. `notify` returns at once; `close` stops the threads."""

    def __init__(self, settings: AlertSettings | None = None, max_failures: int = 100,
                 max_pending: int = 1000, workers: int = 2, remember: int = 10_000,
                 post: Callable[[str, dict, float], int] = _post):
        self._settings = settings or AlertSettings()
        self._failures: deque[AlertFailure] = deque(maxlen=max_failures)
        self._alerted: OrderedDict[tuple, None] = OrderedDict()
        self._remember = remember
        self._max_pending = max_pending
        self._pending = 0
        self._sent = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._post = post
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vadclip-alert")

    @property
    def settings(self) -> AlertSettings:
        return self._settings

    def configure(self, settings: AlertSettings) -> None:
        """New settings for the alerts sent from now on (e.g. from a settings form)."""
        self._settings = settings

    def notify(self, scores: VideoScores, item_ids: Sequence[int] | None = None) -> list[Future]:
        """Queue an alert for each segment of `scores` at or above the threshold that was not
        alerted before (`item_ids`: the review items of the segments, in order, for the links).
        Never blocks and never raises; returns the futures (for tests and shutdown)."""
        settings = self._settings
        if not settings.enabled or self._closing.is_set():
            return []
        futures = []
        for n, seg in enumerate(scores.segments):
            if seg.peak_score < settings.min_score:
                continue
            key = (scores.content_hash, seg.start_frame, seg.end_frame, seg.label)
            item_id = item_ids[n] if item_ids is not None and n < len(item_ids) else None
            with self._lock:
                if key in self._alerted:
                    continue
                self._alerted[key] = None
                while len(self._alerted) > self._remember:
                    self._alerted.popitem(last=False)
                full = self._pending >= self._max_pending
                if not full:
                    self._pending += 1
            message = alert_message(scores, seg, item_id, settings.app_url)
            if full:
                self._fail(message, 0, f"{self._max_pending} alerts already waiting; this one was dropped")
                continue
            futures.append(self._pool.submit(self._deliver, settings, message))
        return futures

    def _deliver(self, settings: AlertSettings, message: dict) -> bool:
        try:
            error = "not attempted"
            for attempt in range(1, settings.attempts + 1):
                try:
                    self._post(settings.webhook_url, message, settings.timeout_s)
                    with self._lock:
                        self._sent += 1
                    log.info("alert sent: %s %s at %.1f s", message["video"], message["label"],
                             message["start_s"])
                    return True
                except _Retryable as why:
                    error = str(why)
                except Exception as why:                      # a final answer from the receiver
                    self._fail(message, attempt, str(why))
                    return False
                if attempt < settings.attempts and self._closing.wait(settings.backoff_s * 2 ** (attempt - 1)):
                    self._fail(message, attempt, f"{error} (the app closed before the next retry)")
                    return False
            self._fail(message, settings.attempts, error)
            return False
        finally:
            with self._lock:
                self._pending -= 1

    def _fail(self, message: dict, attempts: int, error: str) -> None:
        failure = AlertFailure(at=datetime.now(timezone.utc), video=message["video"],
                               label=message["label"], start_s=message["start_s"],
                               attempts=attempts, error=error)
        log.warning("alert for %s (%s at %.1f s) failed after %d attempt(s): %s", failure.video,
                    failure.label, failure.start_s, attempts, error)
        with self._lock:
            self._failures.append(failure)

    def failures(self) -> list[AlertFailure]:
        """The latest undelivered alerts, oldest first (at most `max_failures`)."""
        with self._lock:
            return list(self._failures)

    def sent(self) -> int:
        """How many alerts were delivered."""
        with self._lock:
            return self._sent

    def close(self, wait: bool = True) -> None:
        """Stop: cancel queued alerts, cut retries' waits short, and (`wait`) join the threads."""
        self._closing.set()
        self._pool.shutdown(wait=wait, cancel_futures=True)

