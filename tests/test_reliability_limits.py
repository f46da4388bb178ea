"""Limits and confinement through the app's handlers: crafted checkpoints, feature lists that
point outside the data root, huge frame headers, vocabulary size and label length, one job per
session, per-session temp files, and the feature-cache cap."""
from __future__ import annotations

import os
import shutil
import struct
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import OFFICIAL
from videos import write_video

from app import handlers as h
from app.config import AppConfig
from app.state import Session
from app.tempfiles import TempFiles
import vadclip.features
import vadclip.scoring
from vadclip.errors import UserError
from vadclip.prompt import MAX_CLASSES
from vadclip.results import DetectionParams
from vadclip.safe_load import CheckpointError

PARAMS = DetectionParams(threshold=0.3, branch="c", min_gap_s=0.0, min_duration_s=0.0)

def make_ctx(root: Path, **overrides) -> h.AppContext:
    (root / "models").mkdir(parents=True, exist_ok=True)
    if not (root / "models" / "official_xd.pth").exists():
        shutil.copy(OFFICIAL / "official_xd.pth", root / "models" / "official_xd.pth")
    config = AppConfig(models_dir=root / "models", data_dir=root / "data", data_root=root / "training",
                       clip=str(root / "models" / "official_xd.pth"), device="cpu", max_video_s=60)
    return h.AppContext.create(replace(config, **overrides))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    if not (OFFICIAL / "official_xd.pth").is_file():
        pytest.skip("fixture checkpoint not found")
    root = tmp_path_factory.mktemp("limits")
    ctx = make_ctx(root)
    video = write_video(root / "clip.mp4", n_frames=160, width=64, height=48, fps=25)
    yield ctx, h.model_choices(ctx, Session())[0].key, video, root
    ctx.close()


# ------------------------------------------------------------------------------- 1. safe loading

class _Exploit:
    """Unpickling this would run a shell command; weights-only loading must refuse it."""

    def __reduce__(self):
        return (os.system, ("touch pwned_by_upload",))


def test_crafted_pickle_upload_is_refused(app, tmp_path, monkeypatch):
    ctx, _, _, root = app
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pth"
    torch.save({"frame_position_embeddings.weight": torch.zeros(256, 512), "x": _Exploit()}, evil)
    before = sorted(p.name for p in (root / "models").iterdir())
    session = Session()
    with pytest.raises(CheckpointError, match="refused"):
        h.upload_model(ctx, session, str(evil))
    assert not (tmp_path / "pwned_by_upload").exists() and not Path("pwned_by_upload").exists()
    assert sorted(p.name for p in (root / "models").iterdir()) == before     # copy removed
    assert session.uploaded_models == []


# ------------------------------------------------------------------------------- 2. paths

def test_feature_list_rows_cannot_leave_the_data_root(app, tmp_path, monkeypatch):
    ctx, _, _, root = app
    data_root = root / "training"
    (data_root / "evil").mkdir(parents=True)
    outside = tmp_path / "outside.npy"
    np.save(outside, np.zeros((20, 512), np.float32))
    os.symlink(outside, data_root / "evil" / "link_label_A.npy")
    np.save(data_root / "evil" / "fine_label_A.npy", np.zeros((20, 512), np.float32))
    dotdot = os.path.relpath(outside, data_root / "evil")            # ../../../<tmp>/outside.npy
    rows = ["path,label", "../../../../../../etc/passwd,A", f"{dotdot},A", f"{outside},A",
            "link_label_A.npy,A", "fine_label_A.npy,A"]
    (data_root / "evil" / "list.csv").write_text("\n".join(rows) + "\n")
    opened = []
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda f, *a, **k: opened.append(str(f)) or real_load(f, *a, **k))

    ctx.trainer.job = None
    h.start_training(ctx, "evil/list.csv", None, None, "xd", None, 1, 1e-4, 2)
    ctx.trainer.wait(60)
    snap = ctx.trainer.snapshot()
    assert snap.state == "failed", snap.log
    assert "4 problem(s)" in snap.log, snap.log
    for row in (2, 3, 4, 5):                    # each bad row is named; the good one (6) is not
        assert f"row {row}:" in snap.log, (row, snap.log)
    assert "row 6:" not in snap.log
    assert not any("passwd" in p or p == str(outside) or "link_label" in p for p in opened), opened
    (tmp_path / "list.csv").write_text("path,label\n")
    with pytest.raises(ValueError, match="outside"):
        h.start_training(ctx, str(tmp_path / "list.csv"), None, None, "xd", None, 1, 1e-4, 2)
    os.symlink(tmp_path / "list.csv", data_root / "evil" / "linked.csv")
    with pytest.raises(ValueError, match="outside"):                  # a symlinked list out
        h.start_training(ctx, "evil/linked.csv", None, None, "xd", None, 1, 1e-4, 2)
    with pytest.raises(ValueError, match="outside"):
        h.start_training(ctx, "../models/list.csv", None, None, "xd", None, 1, 1e-4, 2)


# ------------------------------------------------------------------------------- 3. limits

def huge_header_video(path: Path, width: int, height: int) -> Path:
    """A tiny MJPEG AVI whose headers (AVI and every JPEG SOF) claim `width` x `height`."""
    small = write_video(path.with_suffix(".small.avi"), n_frames=20, width=64, height=48, codec="mjpeg")
    data = bytearray(small.read_bytes())
    at = data.find(b"\xff\xc0")
    while at >= 0:
        if data[at + 4] == 8:
            struct.pack_into(">HH", data, at + 5, height, width)
        at = data.find(b"\xff\xc0", at + 2)
    struct.pack_into("<II", data, data.find(b"avih") + 8 + 32, width, height)
    struct.pack_into("<ii", data, data.find(b"strf") + 12, width, height)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("size, message", [(16384, "no frame size"), (8192, "over the limit")])
def test_huge_frame_headers_are_refused_before_decoding(app, tmp_path, monkeypatch, size, message):
    ctx, key, _, _ = app
    video = huge_header_video(tmp_path / f"huge{size}.avi", size, size)
    assert video.stat().st_size < 100_000
    monkeypatch.setattr(vadclip.features, "extract_video_features",
                        lambda *a, **k: pytest.fail("decoded a huge video"))
    with pytest.raises(ValueError, match=message):
        h.analyse(ctx, Session(), str(video), "normal", "fighting", key, "auto", 4, PARAMS)
    with pytest.raises(UserError, match=message):
        h.check_video_upload(str(video))


def test_vocabulary_size_and_label_length_limits(app, monkeypatch):
    ctx, key, video, _ = app
    monkeypatch.setattr(vadclip.scoring, "probe", lambda *a, **k: pytest.fail("read the video for a bad vocabulary"))
    too_many = "\n".join(f"class {i}" for i in range(MAX_CLASSES + 1))
    with pytest.raises(ValueError, match=f"at most {MAX_CLASSES}"):
        h.analyse(ctx, Session(), str(video), "normal", too_many, key, "auto", 4, PARAMS)
    with pytest.raises(ValueError, match="too long"):
        h.analyse(ctx, Session(), str(video), "normal", "fighting\n" + "very " * 80 + "long",
                  key, "auto", 4, PARAMS)


def test_video_duration_limit(app, tmp_path):
    ctx, key, _, root = app
    short_limit = make_ctx(root, max_video_s=2, data_dir=root / "data-2s")
    try:
        with pytest.raises(UserError, match="longer than the limit of 2 s"):
            h.analyse(short_limit, Session(), str(app[2]), "normal", "fighting", key, "auto", 4, PARAMS)
    finally:
        short_limit.close()


def test_one_job_per_session():
    jobs = h.SessionJobs()
    with jobs.hold("alice", "an analysis"):
        with pytest.raises(UserError, match="already running an analysis"):
            with jobs.hold("alice", "an analysis"):
                pass
        with jobs.hold("bob", "an analysis"):          # another session is not blocked
            assert jobs.running() == {"alice": "an analysis", "bob": "an analysis"}
    with pytest.raises(RuntimeError):
        with jobs.hold("alice", "an analysis"):
            raise RuntimeError("the analysis failed")
    assert jobs.running() == {}                         # released after a failure too
    with jobs.hold("alice", "an analysis"):
        pass


# ------------------------------------------------------------------------------- temp files

def test_session_temp_files_go_with_the_session(app):
    ctx, key, video, _ = app
    session = h.analyse(ctx, Session(), str(video), "normal", "fighting\nriot", key, "auto", 4, PARAMS)
    assert session.scores.segments
    folder = ctx.temp.session_dir("session-a")
    export = h.export_reviews(ctx, "csv", "all", session, folder)
    other = h.export_reviews(ctx, "json", "all", session, ctx.temp.session_dir("session-b"))
    assert export.parent == folder and export.stat().st_size > 0
    ctx.end_session("session-a")
    assert not export.exists() and other.exists()
    ctx.end_session("session-b")
    assert ctx.temp.files() == []


def test_old_temp_files_are_swept(tmp_path):
    temp = TempFiles(tmp_path / "tmp", max_age_s=60)
    old = temp.session_dir("gone") / "clip.mp4"
    new = temp.session_dir("alive") / "export.csv"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    os.utime(old.parent, (hour_ago, hour_ago))
    assert temp.sweep() == 1
    assert not old.exists() and new.exists()
    assert temp.sweep(now=time.time() + 7200) == 1 and temp.files() == []
    assert temp.session_dir("../../etc").parent == temp.root          # ids cannot leave the root


def test_restart_sweeps_what_a_killed_app_left(app):
    ctx, _, _, root = app
    leftover = ctx.temp.session_dir("killed") / "segment-0-16.mp4"
    leftover.write_bytes(b"clip")
    stale = time.time() - 2 * 3600
    os.utime(leftover, (stale, stale))
    again = make_ctx(root)                    # same data folder: same temp root, swept on start
    try:
        assert not leftover.exists()
    finally:
        again.close()


# ------------------------------------------------------------------------------- cache cap

def test_feature_cache_cap_from_the_environment(app, tmp_path):
    ctx, key, _, root = app
    assert AppConfig.from_env({"VADCLIP_CACHE_MB": "0.03"}).cache_bytes == int(0.03 * 1024**2)
    assert AppConfig.from_env({}).cache_mb == 2048
    with pytest.raises(ValueError, match="VADCLIP_"):
        AppConfig.from_env({"VADCLIP_CACHE_MB": "-1"})
    capped = make_ctx(root, data_dir=tmp_path / "data", cache_mb=0.03)    # ~31 KB: one 10-snippet entry
    try:
        assert capped.cache.max_bytes == int(0.03 * 1024**2)
        videos = [write_video(tmp_path / f"v{i}.mp4", n_frames=160 + 16 * i, width=64, height=48)
                  for i in range(3)]
        for video in videos:
            h.analyse(capped, Session(), str(video), "normal", "fighting", key, "auto", 4, PARAMS)
            assert capped.cache.size_bytes() <= capped.cache.max_bytes or len(capped.cache.entries()) == 1
        assert len(capped.cache.entries()) == 1                # the older entries were evicted
        again = h.analyse(capped, Session(), str(videos[-1]), "normal", "riot", key, "auto", 4, PARAMS)
        assert again.scores.extras["cache_hit"] is True        # the newest entry is kept
    finally:
        capped.close()


# ------------------------------------------------------------------------------- 6. fuzzing

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(normal=st.text(max_size=30), anomalies=st.text(max_size=200))
def test_parse_vocabulary_fuzz(normal, anomalies):
    try:
        names = h.parse_vocabulary(normal, anomalies)
    except UserError as e:
        message = str(e)
        assert "\n" not in message and ("empty" in message or "duplicate" in message)
        lines = [n.strip() for n in anomalies.splitlines() if n.strip()]
        normal_name = normal.strip() or "normal"
        lowered = [n.lower() for n in [normal_name, *lines]]
        assert not lines or len(set(lowered)) < len(lowered)
        return
    assert names[0] == (normal.strip() or "normal")
    assert names[1:] == [n.strip() for n in anomalies.splitlines() if n.strip()]
    assert len({n.lower() for n in names}) == len(names)
    assert all(n and n == n.strip() for n in names)


@given(st.lists(st.sampled_from(["fight", "Fight", "riot", " riot ", "", "normal", "NORMAL", "x"]),
                max_size=8))
def test_parse_vocabulary_duplicates_are_named(lines):
    anomalies = "\n".join(lines)
    try:
        names = h.parse_vocabulary("normal", anomalies)
    except UserError as e:
        assert "empty" in str(e) or "duplicate" in str(e)
        return
    assert len({n.lower() for n in names}) == len(names)
