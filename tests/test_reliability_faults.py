"""Faults: SIGKILL of the app mid-analysis and mid-training, and out-of-memory while encoding.

The app (`python app.py`, benchmarks/app_server.AppServer) is killed with SIGKILL, which gives it no
chance to clean up, while it encodes a longer video and again while it trains; after each kill
it restarts on the same folders. Checks: every decision saved before the kill is still there,
every feature-cache entry loads, every checkpoint loads (or is absent, never corrupt), and the
restarted app serves analyses. An out-of-memory error in CLIP's image encoder makes the
extractor retry with smaller batches and give the same features.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import OFFICIAL, synth
from app_server import AppServer
from test_load import stored_decisions
from videos import write_video

from app.models import ZERO_SHOT
from vadclip.checkpoint import load_checkpoint
from vadclip.features import ExtractSettings, FeatureCache, extract_video_features

pytestmark = pytest.mark.skipif(not (OFFICIAL / "official_xd.pth").is_file(),
                                reason="fixture checkpoint not found")

ANOMALIES = "fighting\nriot\nexplosion"


def analyse(client, video: Path, model_key: str, samples: str = "4", threshold: float = 0.0):
    from gradio_client import handle_file

    return client.submit(handle_file(str(video)), "normal", ANOMALIES, model_key, "auto", samples,
                         threshold, "c", 0.0, 0.0, api_name="/analyse")


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def encoding(job) -> bool:
    """True once the analysis reports progress in the frame-encoding stage."""
    status = job.status()
    units = getattr(status, "progress_data", None) or []
    return any((u.desc or "").startswith("encoding") and (u.progress or 0) > 0.05 for u in units)


def check_cache(data_dir: Path) -> int:
    """Every feature-cache entry loads as a float32 array; returns how many there are."""
    cache = FeatureCache(data_dir / "feature_cache")
    entries = cache.entries()
    for path, _, _ in entries:
        arr = np.load(path, allow_pickle=False)
        assert arr.dtype == np.float32 and arr.ndim == 2 and np.isfinite(arr).all(), path
    return len(entries)


def checkpoints(models_dir: Path) -> list[Path]:
    return sorted(p for p in models_dir.rglob("*.safetensors") if not p.name.startswith("."))


def check_checkpoints(models_dir: Path) -> int:
    """Every checkpoint under `models_dir` loads (a corrupt file raises); returns how many."""
    found = checkpoints(models_dir)
    for path in found:
        load_checkpoint(path, device="cpu")
    return len(found)


@pytest.mark.slow     # two app start-ups: ~40 s on 2 idle cores
def test_sigkill_mid_analysis_and_mid_training_loses_nothing(tmp_path):
    root = tmp_path
    write_video(root / "short.mp4", n_frames=160, width=64, height=48, fps=25)
    write_video(root / "long.mp4", n_frames=3000, width=160, height=120, fps=25)     # 120 s
    synth("xd", root / "training" / "xd", n_train=8, n_test=4)
    env = dict(concurrency=1, VADCLIP_MAX_VIDEO_S=600)

    # 1. decisions, then SIGKILL while a long video is being encoded
    server = AppServer(root, **env).start()
    try:
        client = server.client()
        first = analyse(client, root / "short.mp4", server.model_key).result()
        assert len(first[3]["data"]) >= 1
        client.predict(1, "confirm", "kept after a crash", "", api_name="/decide_segment")
        decided = stored_decisions(root / "data")
        assert len(decided) == 1
        entries = check_cache(root / "data")
        job = analyse(client, root / "long.mp4", server.model_key, samples="16")
        wait_until(lambda: encoding(job), 120, "the long analysis to encode frames")
        server.kill()
    finally:
        server.kill()
    assert stored_decisions(root / "data") == decided, server.log_tail()
    # every entry loads (none half-written); the long video's entry is absent unless the kill
    # came just after its (atomic) write
    assert check_cache(root / "data") in (entries, entries + 1), server.log_tail()

    # 2. restart: the decision is there and the app serves; then SIGKILL mid-training
    server = AppServer(root, **env).start()
    try:
        client = server.client()
        again = analyse(client, root / "short.mp4", server.model_key).result()
        assert again[3]["data"][0][-1] == "confirmed"
        client.predict("xd/xd_train.csv", "xd/xd_test.csv", "xd/annotations.txt", "xd", ZERO_SHOT,
                       10000, 1e-4, 4, 0, api_name="/start_training")     # a fresh adapter
        wait_until(lambda: checkpoints(root / "models"), 120, "the training to write a checkpoint")
        time.sleep(0.7)                               # into the next save cycles
        server.kill()
    finally:
        server.kill()
    assert check_checkpoints(root / "models") >= 1           # loadable, never corrupt
    assert stored_decisions(root / "data") == decided

    # 3. the app's state reopens cleanly in-process (a third server start-up would only add
    #    ~15 s): the run is offered, the decision and the cache are intact, analyses work
    from app.handlers import AppContext, analyse as analyse_here
    from app.models import scan_models
    from app.state import Session
    from vadclip.results import DetectionParams

    runs = [c for c in scan_models(root / "models") if "run-xd" in c.key]
    assert len(runs) == 1 and "unreadable" not in runs[0].label
    ctx = AppContext.create(server.config())
    try:
        session = analyse_here(ctx, Session(), str(root / "short.mp4"), "normal", ANOMALIES,
                               server.model_key, "auto", 4, DetectionParams(threshold=0.0))
        assert session.scores.extras["cache_hit"] is True
        confirmed = ctx.store.items(status="confirmed")
        assert [r.note for r in confirmed] == ["kept after a crash"]
    finally:
        ctx.close()
    assert stored_decisions(root / "data") == decided
    check_cache(root / "data")


def test_encoder_out_of_memory_halves_the_batch(monkeypatch, tmp_path):
    from vadclip.clip_backbone import load_clip

    video = write_video(tmp_path / "v.mp4", n_frames=96, width=64, height=48, fps=25)
    clip_model, info = load_clip(str(OFFICIAL / "official_xd.pth"))
    settings = ExtractSettings(samples_per_snippet=8, batch_size=16)
    expected = extract_video_features(clip_model, info, video, settings).features
    sizes = []
    real = clip_model.encode_image

    def tight_memory(x, *args, **kwargs):
        sizes.append(len(x))
        if len(x) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(x, *args, **kwargs)

    monkeypatch.setattr(clip_model, "encode_image", tight_memory)
    got = extract_video_features(clip_model, info, video, settings).features
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert sizes[0] == 16 and max(sizes[1:]) <= 8 and set(sizes[-3:]) <= {2}
    assert sizes.count(16) == 1                     # later batches start at the size that worked

    def broken(x, *args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(clip_model, "encode_image", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        extract_video_features(clip_model, info, video, settings)


def test_feature_cache_sweeps_writes_a_killed_process_left(tmp_path):
    cache = FeatureCache(tmp_path / "cache", max_bytes=10_000)
    key = FeatureCache.key("0" * 64, "clip", ExtractSettings())
    cache.put(key, np.ones((4, 512), np.float32))
    stale = tmp_path / "cache" / f".{key}.npy.abc123.tmp"        # atomic_write's name pattern
    fresh = tmp_path / "cache" / f".{key}.npy.def456.tmp"
    stale.write_bytes(b"half a file")
    fresh.write_bytes(b"being written")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    reopened = FeatureCache(tmp_path / "cache", max_bytes=10_000)
    assert not stale.exists() and fresh.exists()                  # a live write is left alone
    assert [p for p, _, _ in reopened.entries()] == [cache.path(key)]
    np.testing.assert_array_equal(reopened.get(key), np.ones((4, 512), np.float32))
