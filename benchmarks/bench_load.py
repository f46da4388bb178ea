"""Load benchmark: N simulated users x R requests against `python app.py` over HTTP.

The scenario of load_scenario.py, also run by tests/test_load.py (analyse a tiny video of one's own through `/analyse`, then
decide its first segment through `/decide_segment`), with more users and requests if asked.
Prints requests/s and latency percentiles, and checks every result and the review database.

    python benchmarks/bench_load.py --users 16 --requests 5 --concurrency 2
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from app_server import AppServer  # noqa: E402
from load_scenario import (check_outcome, direct_model, expected_all, expected_decisions,  # noqa: E402
                           latency_summary, make_videos, plan_requests, run_load, stored_decisions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--requests", type=int, default=5, help="requests per user")
    parser.add_argument("--concurrency", type=int, default=2, help="VADCLIP_CONCURRENCY of the app")
    parser.add_argument("--frames", type=int, default=96, help="frames of the shortest video")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="vadclip-bench-load-") as tmp:
        root = Path(tmp)
        videos = make_videos(root / "videos", args.users, base_frames=args.frames)
        model = direct_model()
        plans = plan_requests(videos, model, args.requests)
        server = AppServer(root, concurrency=args.concurrency, queue_size=max(64, 2 * args.users)).start()
        try:
            run_load(server, [plan[:1] for plan in plans[:2]])          # warm-up (model load)
            outcomes, wall_s = run_load(server, plans)
            alive = server.proc.poll() is None
        finally:
            server.stop()
        expected = expected_all(outcomes, model)
        problems = [p for o in outcomes for p in check_outcome(o, expected[o.request])]
        decisions_ok = stored_decisions(root / "data") == expected_decisions(outcomes, expected)
    stats = latency_summary(outcomes, wall_s)
    print(f"users {args.users} x requests {args.requests} (analyse + decide), app concurrency "
          f"{args.concurrency}, videos {args.frames}-{args.frames + 16 * (args.users - 1)} frames 64x48")
    print(f"requests {stats['requests']}  wall {stats['wall_s']:.1f} s  "
          f"{stats['requests_per_s']:.2f} requests/s  p50 {stats['p50_s']:.2f} s  "
          f"p95 {stats['p95_s']:.2f} s  max {stats['max_s']:.2f} s")
    print(f"wrong or failed requests: {len(problems)}  review database exact: {decisions_ok}  "
          f"app alive: {alive}")
    for p in problems[:10]:
        print("  ", p)
    return 0 if not problems and decisions_ok and alive else 1


if __name__ == "__main__":
    sys.exit(main())
