"""Memory bound: many consecutive analyses through the app's handlers do not grow the process.

Three tiny videos and three vocabularies alternate; the feature cache is capped at 0 MB so it
keeps only the last entry and every analysis decodes and encodes its video again (the whole
pipeline runs each time). Every few analyses a segment preview (trimmed clip) and an export are
written into the session's temp folder, which is removed as a session end would. RSS is read
from /proc after a warm-up and after the run. The long version is benchmarks/bench_soak.py.
"""
from __future__ import annotations

import pytest

from conftest import OFFICIAL
from soak_scenario import measure, soak_setup

SOAK_BOUND_MIB = 30.0


@pytest.mark.slow     # a soak/load run: minutes on 2 shared cores
def test_repeated_analyses_do_not_grow_memory(tmp_path):
    if not (OFFICIAL / "official_xd.pth").is_file():
        pytest.skip("fixture checkpoint not found")
    ctx, key, videos = soak_setup(tmp_path)
    try:
        stats = measure(ctx, key, videos, warmup=4, n=24)
        print(f"\nsoak: {stats}")
        assert stats["growth_mib"] < SOAK_BOUND_MIB, stats
        assert len(ctx.cache.entries()) == 1                  # the 0 MB cap keeps the last entry only
        assert ctx.temp.files() == []                         # every session's files went with it
    finally:
        ctx.close()
