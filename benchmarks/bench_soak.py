"""Memory soak: N consecutive analyses in one process through the app's handlers.

The scenario of soak_scenario.py, also run by tests/test_reliability.py (3 tiny videos and 3 vocabularies alternating, feature
cache capped at 0 MB so every analysis decodes and encodes, a preview clip and an export every
10th, session temp folders removed), run longer. Prints RSS after the warm-up, every 10
analyses, and the growth against the stated bound.

    python benchmarks/bench_soak.py --analyses 100 --warmup 10 --bound-mib 50
"""
from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from soak_scenario import rss_mib, soak, soak_setup  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analyses", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--bound-mib", type=float, default=50.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="vadclip-soak-") as tmp:
        ctx, key, videos = soak_setup(Path(tmp))
        try:
            soak(ctx, key, videos, args.warmup)
            gc.collect()
            before = rss_mib()
            print(f"after {args.warmup} warm-up analyses: RSS {before:.1f} MiB")
            start, done = time.perf_counter(), 0
            while done < args.analyses:
                step = min(10, args.analyses - done)
                soak(ctx, key, videos, step, start=args.warmup + done)
                done += step
                gc.collect()
                print(f"  after {done:4d}: RSS {rss_mib():.1f} MiB ({rss_mib() - before:+.1f})")
            elapsed = time.perf_counter() - start
            after = rss_mib()
            temp_left = len(ctx.temp.files())
            cache_entries = len(ctx.cache.entries())
        finally:
            ctx.close()
    growth = after - before
    ok = growth < args.bound_mib and temp_left == 0
    print(f"{args.analyses} analyses in {elapsed:.1f} s ({elapsed / args.analyses:.2f} s each); "
          f"RSS {before:.1f} -> {after:.1f} MiB, growth {growth:+.1f} MiB (bound {args.bound_mib:g}): "
          f"{'OK' if ok else 'FAIL'}; temp files left {temp_left}; cache entries {cache_entries}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
