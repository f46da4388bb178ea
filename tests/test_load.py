"""Load test: 8 simulated users x 3 requests against the real app over HTTP (gradio_client).

The app runs as `python app.py` in a subprocess on a free 127.0.0.1 port (fixture checkpoint,
two analyses at once). Each user has its own tiny video and its own client session; a request
is an analysis (API `/analyse`, a vocabulary and threshold of its own) followed by a decision on
its first segment (API `/decide_segment`). Checks: every request succeeds, each result equals
`score_video` run directly on that user's video (no cross-talk between sessions), and the review
database holds exactly the decisions that were made.

The app server is benchmarks/app_server.AppServer and the scenario benchmarks/load_scenario.py
(shared with benchmarks/bench_load.py).
"""
from __future__ import annotations

import pytest

from app_server import CHECKPOINT, AppServer
from load_scenario import (check_outcome, direct_model, expected_all, expected_decisions, latency_summary,
                           make_videos, plan_requests, run_load, stored_decisions)
from shared_paths import OFFICIAL


# ------------------------------------------------------------------------------- the test

N_USERS, N_REQUESTS = 8, 3


@pytest.fixture(scope="module")
def load_setup(tmp_path_factory):
    if not (OFFICIAL / CHECKPOINT).is_file():
        pytest.skip(f"fixture checkpoint not found under {OFFICIAL}")
    root = tmp_path_factory.mktemp("load")
    videos = make_videos(root / "videos", N_USERS)
    server = AppServer(root, concurrency=2).start()
    try:
        yield server, videos
    finally:
        server.stop()


@pytest.mark.slow     # a soak/load run: minutes on 2 shared cores
def test_eight_users_three_requests_each(load_setup):
    server, videos = load_setup
    model = direct_model()
    plans = plan_requests(videos, model, N_REQUESTS)
    outcomes, wall_s = run_load(server, plans)
    assert len(outcomes) == N_USERS * N_REQUESTS
    expected = expected_all(outcomes, model)
    problems = [p for o in outcomes for p in check_outcome(o, expected[o.request])]
    assert not problems, "\n".join(problems[:20]) + "\n" + server.log_tail()
    assert stored_decisions(server.root / "data") == expected_decisions(outcomes, expected)
    stats = latency_summary(outcomes, wall_s)
    print(f"\nload: {stats}")
    assert server.proc.poll() is None, "the app died under load"
