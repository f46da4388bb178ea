"""Memory bound: many consecutive analyses through the app's handlers do not grow the process.

Three tiny videos and three vocabularies alternate; the feature cache is capped at 0 MB so it
keeps only the last entry and every analysis decodes and encodes its video again (the whole
pipeline runs each time). Every few analyses a segment preview (trimmed clip) and an export are
written into the session's temp folder, which is removed as a session end would. RSS is read
from /proc after a warm-up and after the run. The long version is benchmarks/bench_soak.py.
"""
from __future__ import annotations

import gc
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import OFFICIAL
from videos import write_video

from app import handlers as h
from app.config import AppConfig
from app.state import Session
from vadclip.results import DetectionParams

VOCABULARIES = ("fighting\nriot\nexplosion", "shooting\nabuse", "car accident\nfighting\nshooting")
PARAMS = DetectionParams(threshold=0.3, branch="c", min_gap_s=0.0, min_duration_s=0.0)


def rss_mib() -> float:
    """Resident memory of this process in MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def soak_setup(root: Path) -> tuple[h.AppContext, str, list[Path]]:
    """An app context on `root` (fixture checkpoint, feature cache capped at 0 MB) and 3 videos."""
    (root / "models").mkdir(parents=True, exist_ok=True)
    shutil.copy(OFFICIAL / "official_xd.pth", root / "models" / "official_xd.pth")
    videos = [write_video(root / f"soak{i}.mp4", n_frames=80 + 32 * i, width=64, height=48, fps=25)
              for i in range(3)]
    config = AppConfig(models_dir=root / "models", data_dir=root / "data",
                       clip=str(root / "models" / "official_xd.pth"), device="cpu", cache_mb=0)
    ctx = h.AppContext.create(config)
    return ctx, h.model_choices(ctx, Session())[0].key, videos


def soak(ctx: h.AppContext, model_key: str, videos: list[Path], n: int, start: int = 0) -> None:
    """`n` analyses, alternating videos and vocabularies; a preview and an export every 10th."""
    for i in range(start, start + n):
        session = h.analyse(ctx, Session(), str(videos[i % len(videos)]), "normal",
                            VOCABULARIES[(i // len(videos)) % len(VOCABULARIES)], model_key, "auto", 4,
                            replace(PARAMS, threshold=0.2 + 0.1 * (i % 4)))
        if i % 10 == 0:
            out_dir = ctx.temp.session_dir(f"soak-{i}")
            if session.scores.segments:
                h.segment_preview(session, 0, out_dir)
            h.export_reviews(ctx, "json", "all", session, out_dir)
            ctx.end_session(f"soak-{i}")


def measure(ctx, model_key, videos, warmup: int, n: int) -> dict[str, float]:
    """RSS after `warmup` analyses and after `n` more (MiB), and the time per analysis."""
    soak(ctx, model_key, videos, warmup)
    gc.collect()
    before = rss_mib()
    start = time.perf_counter()
    soak(ctx, model_key, videos, n, start=warmup)
    elapsed = time.perf_counter() - start
    gc.collect()
    after = rss_mib()
    return {"warmup": warmup, "analyses": n, "rss_before_mib": before, "rss_after_mib": after,
            "growth_mib": after - before, "s_per_analysis": elapsed / n}


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
