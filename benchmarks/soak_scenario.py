"""The soak scenario: many consecutive analyses in one process through the app's handlers.

Three tiny videos and three vocabularies alternate; the feature cache is capped at 0 MB so every
analysis decodes and encodes its video again; every 10th analysis writes a segment preview and an
export into a session temp folder that is then removed. Used by tests/test_reliability.py and
benchmarks/bench_soak.py.
"""
from __future__ import annotations

import gc
import shutil
import time
from dataclasses import replace
from pathlib import Path

from shared_paths import OFFICIAL
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
                h.segment_preview(session, 0)
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
