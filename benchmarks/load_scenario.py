"""The load scenario: simulated users analysing their own tiny video through the app's HTTP API.

Each user has its own tiny video and its own client session; a request is an analysis (API
`/analyse`, a vocabulary and threshold of its own) followed by a decision on its first segment
(API `/decide_segment`). `check_outcome` compares each answer with `score_video` run directly,
`stored_decisions` / `expected_decisions` the review database with the decisions made. Used by
tests/test_load.py (8 users x 3 requests) and benchmarks/bench_load.py (as many as asked).
"""
from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app_server import CHECKPOINT, AppServer
from shared_paths import OFFICIAL
from videos import write_video


def make_videos(folder: Path, n: int, base_frames: int = 96, step: int = 16) -> list[Path]:
    """`n` tiny videos of distinct lengths (so distinct content and results)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [write_video(folder / f"user{i}.mp4", n_frames=base_frames + step * i, width=64,
                        height=48, fps=25) for i in range(n)]


# ------------------------------------------------------------------------------- scenario

VOCABULARIES = ("fighting\nriot\nexplosion", "shooting\nabuse", "car accident\nfighting\nshooting\nriot")
QUANTILES = (0.5, 0.25, 0.75)        # threshold of request r: this quantile of the C-branch curve
ACTIONS = ("confirm", "dismiss")
ACTION_STATUS = {"confirm": "confirmed", "dismiss": "dismissed"}


@dataclass(frozen=True)
class Request:
    """One simulated request: analyse `video` with these settings, then decide segment 1."""

    user: int
    number: int
    video: Path
    anomalies: str
    threshold: float
    action: str

    @property
    def note(self) -> str:
        return f"user{self.user}-request{self.number}"

    def params(self):
        from vadclip.results import DetectionParams

        return DetectionParams(threshold=self.threshold, branch="c", min_gap_s=0.0, min_duration_s=0.0)


@dataclass
class Outcome:
    """What the app answered to one request, and how long it took."""

    request: Request
    summary: str
    rows: list[list]
    decided_rows: list[list]
    latency_s: float
    errors: list[str] = field(default_factory=list)


def direct_model():
    """The fixture checkpoint loaded in this process (the reference the app must match)."""
    from vadclip.factory import load_vadclip_model

    return load_vadclip_model(OFFICIAL / CHECKPOINT, preset="xd", device="cpu")


def plan_requests(videos: list[Path], model, n_requests: int = 3) -> list[list[Request]]:
    """Each user's requests: vocabularies and thresholds rotate so that users differ."""
    from vadclip.features import ExtractSettings
    from vadclip.scoring import score_video

    plans = []
    for user, video in enumerate(videos):
        curve = score_video(video, model, ["normal", "fighting"],
                            settings=ExtractSettings(samples_per_snippet=4)).coarse_c
        plan = []
        for r in range(n_requests):
            q = float(np.quantile(curve, QUANTILES[r % len(QUANTILES)]))
            plan.append(Request(user=user, number=r, video=video,
                                anomalies=VOCABULARIES[(user + r) % len(VOCABULARIES)],
                                threshold=math.floor(q * 100) / 100,
                                action=ACTIONS[(user + r) % len(ACTIONS)]))
        plans.append(plan)
    return plans


def expected_scores(request: Request, model):
    from vadclip.features import ExtractSettings
    from vadclip.scoring import score_video

    return score_video(request.video, model, ["normal", *request.anomalies.splitlines()],
                       params=request.params(), settings=ExtractSettings(samples_per_snippet=4))


def run_user(server: AppServer, plan: list[Request]) -> list[Outcome]:
    """One user: its own client session, its requests one after the other."""
    from gradio_client import handle_file

    client = server.client()
    outcomes = []
    for request in plan:
        start = time.perf_counter()
        errors = []
        summary, rows, decided = "", [], []
        try:
            out = client.predict(handle_file(str(request.video)), "normal", request.anomalies,
                                 server.model_key, "auto", "4", request.threshold, "c", 0.0, 0.0,
                                 api_name="/analyse")
            summary, rows = out[1], out[3]["data"]
            decided = client.predict(1, request.action, request.note, "", api_name="/decide_segment")["data"]
        except Exception as e:       # recorded: the test reports every failed request
            errors.append(f"{type(e).__name__}: {e}")
        outcomes.append(Outcome(request, summary, rows, decided, time.perf_counter() - start, errors))
    return outcomes


def run_load(server: AppServer, plans: list[list[Request]]) -> tuple[list[Outcome], float]:
    """All users at once (one thread each); returns every outcome and the wall time."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(plans)) as pool:
        results = list(pool.map(lambda plan: run_user(server, plan), plans))
    return [o for user in results for o in user], time.perf_counter() - start


def expected_all(outcomes: list[Outcome], model) -> dict:
    """`expected_scores` of every request, each computed once."""
    return {o.request: expected_scores(o.request, model) for o in outcomes}


def check_outcome(outcome: Outcome, expected) -> list[str]:
    """Differences between the app's answer and `expected`, `score_video` run directly ([] = none)."""
    request = outcome.request
    if outcome.errors:
        return outcome.errors
    problems = []
    if not outcome.summary.startswith(f"**{request.video.name}**"):
        problems.append(f"summary of another video: {outcome.summary[:60]!r}")
    if len(outcome.rows) != len(expected.segments):
        return problems + [f"{len(outcome.rows)} segments, expected {len(expected.segments)}"]
    for row, seg in zip(outcome.rows, expected.segments):
        want = [round(seg.start_s, 2), round(seg.end_s, 2), seg.label, round(seg.confidence, 3),
                round(seg.peak_score, 3)]
        got = row[1:6]
        if got[2] != want[2] or not np.allclose([got[i] for i in (0, 1, 3, 4)],
                                                [want[i] for i in (0, 1, 3, 4)], atol=2e-3):
            problems.append(f"segment {row[0]}: got {got}, expected {want}")
    if not outcome.decided_rows or outcome.decided_rows[0][-1] != ACTION_STATUS[request.action]:
        problems.append(f"decision not shown: {outcome.decided_rows[:1]}")
    return [f"{request.note}: {p}" for p in problems]


def expected_decisions(outcomes: list[Outcome], expected: dict) -> dict[tuple, tuple[str, str]]:
    """(content hash, start frame, end frame, label) -> (status, note) after all requests, in
    each user's order (a later decision on the same segment replaces an earlier one)."""
    from vadclip.video import content_hash

    decisions = {}
    for outcome in sorted(outcomes, key=lambda o: (o.request.user, o.request.number)):
        request = outcome.request
        seg = expected[request].segments[0]
        key = (content_hash(request.video), seg.start_frame, seg.end_frame, seg.label)
        decisions[key] = (ACTION_STATUS[request.action], request.note)
    return decisions


def stored_decisions(data_dir: Path) -> dict[tuple, tuple[str, str]]:
    """Every decided item of the app's review database."""
    from app.review_db import ReviewStore

    store = ReviewStore(f"sqlite:///{(data_dir / 'reviews.sqlite').resolve()}")
    try:
        return {(r.content_hash, r.start_frame, r.end_frame, r.label): (r.status, r.note)
                for r in store.items() if r.status != "pending"}
    finally:
        store.close()


def latency_summary(outcomes: list[Outcome], wall_s: float) -> dict[str, float]:
    latencies = np.array([o.latency_s for o in outcomes])
    return {"requests": len(outcomes), "wall_s": wall_s, "requests_per_s": len(outcomes) / wall_s,
            "p50_s": float(np.percentile(latencies, 50)), "p95_s": float(np.percentile(latencies, 95)),
            "max_s": float(latencies.max())}
