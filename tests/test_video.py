"""Tests of vadclip.video: probing, streaming frames on both backends, snippets, prefetch."""
from __future__ import annotations

import hashlib
import importlib.util
import pickle
import shutil
import threading
import time
from fractions import Fraction

import av
import numpy as np
import pytest

from vadclip import video
from vadclip.video import (
    VideoError,
    content_hash,
    iter_frames,
    prefetch,
    probe,
    snippet_frame_indices,
)
from videos import (
    frame_index,
    write_corrupted,
    write_empty,
    write_text,
    write_truncated,
    write_video,
)

HAS_DECORD = importlib.util.find_spec("decord") is not None
needs_decord = pytest.mark.skipif(not HAS_DECORD, reason="decord is not installed here")
BACKENDS = ["pyav", pytest.param("decord", marks=needs_decord)]
CAN_WRITE_ROTATION = hasattr(av.video.stream.VideoStream, "set_display_rotation")  # PyAV >= 18

# (file name, codec, codec name reported by probe)
FORMATS = [
    ("h264.mp4", "h264", "h264"),
    ("mpeg4.mp4", "mpeg4", "mpeg4"),
    ("mjpeg.avi", "mjpeg", "mjpeg"),
    ("vp9.webm", "libvpx-vp9", "vp9"),
    ("h264.mkv", "h264", "h264"),
    ("h264.mov", "h264", "h264"),
]
VFR_PTS_MS = np.cumsum([0] + [20, 60, 20, 100, 40] * 6)[:30].tolist()  # uneven gaps, 0..1400 ms


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Every test video, written once (40 frames of 64x48 at 25 fps unless named otherwise)."""
    root = tmp_path_factory.mktemp("videos")
    paths = {name: write_video(root / name, 40, codec=codec) for name, codec, _ in FORMATS}
    paths["short.mp4"] = write_video(root / "short.mp4", 10)
    paths["vfr.mp4"] = write_video(root / "vfr.mp4", 30, pts_ms=VFR_PTS_MS)
    paths["vfr.mkv"] = write_video(root / "vfr.mkv", 30, pts_ms=VFR_PTS_MS)
    for rotation in (90, 180, 270) if CAN_WRITE_ROTATION else ():
        name = f"rot{rotation}.mp4"
        paths[name] = write_video(root / name, 20, width=64, height=96, rotation=rotation)
    return paths


def read_all(path, **kwargs) -> tuple[list[np.ndarray], list[np.ndarray]]:
    batches = list(iter_frames(path, **kwargs))
    return [i for i, _ in batches], [f for _, f in batches]


# --- probe ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,codec,codec_name", FORMATS)
def test_probe_counts_frames_and_fps_exactly(videos, name, codec, codec_name, backend):
    info = probe(videos[name], backend=backend)
    assert info.backend == backend
    assert (info.n_frames, info.fps, info.duration_s) == (40, 25.0, 1.6)
    assert (info.width, info.height, info.rotation) == (64, 48, 0)
    assert info.codec == codec_name
    assert info.path == str(videos[name])


@needs_decord
def test_auto_prefers_decord(videos):
    assert probe(videos["h264.mp4"]).backend == "decord"


def test_auto_falls_back_to_pyav_without_decord(videos, monkeypatch):
    monkeypatch.setattr(video, "_import_decord", lambda: None)
    assert probe(videos["h264.mp4"]).backend == "pyav"
    with pytest.raises(VideoError, match="decord is not installed"):
        probe(videos["h264.mp4"], backend="decord")


@pytest.mark.skipif("libsvtav1" not in av.codecs_available, reason="no AV1 encoder in PyAV")
def test_av1_falls_back_to_pyav(tmp_path):
    """decord 0.6 cannot open AV1; PyAV decodes it."""
    path = write_video(tmp_path / "av1.mp4", 20, codec="libsvtav1")
    info = probe(path)
    assert (info.backend, info.codec, info.n_frames) == ("pyav", "av1", 20)
    _, frames = read_all(path, info=info)
    assert [frame_index(f) for f in np.concatenate(frames)] == list(range(20))


@pytest.mark.parametrize("backend", BACKENDS)
def test_short_video_is_valid(videos, backend):
    info = probe(videos["short.mp4"], backend=backend)
    assert info.n_frames == 10
    assert snippet_frame_indices(info.n_frames).shape == (0, 16)
    indices, frames = read_all(videos["short.mp4"], info=info)
    assert np.concatenate(indices).tolist() == list(range(10))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["vfr.mp4", "vfr.mkv"])
def test_variable_frame_rate_reports_average_fps(videos, name, backend):
    info = probe(videos[name], backend=backend)
    expected_fps = float(Fraction(29) / Fraction(1400, 1000))  # 29 gaps over 1.4 s
    assert info.n_frames == 30
    assert info.fps == pytest.approx(expected_fps, rel=1e-12)
    assert info.duration_s == pytest.approx(30 / expected_fps, rel=1e-12)
    _, frames = read_all(videos[name], info=info)
    assert [frame_index(f) for f in np.concatenate(frames)] == list(range(30))


@pytest.mark.skipif(not CAN_WRITE_ROTATION, reason="this PyAV cannot write a display matrix")
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_video_comes_out_upright(videos, rotation, backend):
    name = f"rot{rotation}.mp4"
    info = probe(videos[name], backend=backend)
    assert (info.rotation, info.width, info.height) == (rotation, 64, 96)
    _, frames = read_all(videos[name], info=info, batch_size=8)
    frames = np.concatenate(frames)
    assert frames.shape == (20, 96, 64, 3)
    assert [frame_index(f) for f in frames] == list(range(20))


def test_raw_stream_without_timestamps_uses_the_nominal_rate(tmp_path):
    """A raw H.264 stream has no timestamps (and decord 0.6 cannot open it)."""
    path = write_video(tmp_path / "raw.h264", 20)
    info = probe(path)
    assert (info.backend, info.n_frames, info.fps) == ("pyav", 20, 25.0)
    _, frames = read_all(path, info=info)
    assert [frame_index(f) for f in np.concatenate(frames)] == list(range(20))


@pytest.mark.parametrize("sizes", [((64, 48), (640, 480)), ((640, 480), (64, 48))])
def test_frame_size_change_mid_stream_is_refused(tmp_path, sizes):
    """A hostile stream can announce a small size and switch to a huge one after a few frames."""
    parts = [write_video(tmp_path / f"part{i}.h264", 20, width=w, height=h)
             for i, (w, h) in enumerate(sizes)]
    path = tmp_path / "switch.h264"
    path.write_bytes(parts[0].read_bytes() + parts[1].read_bytes())
    info = probe(path)
    assert (info.width, info.height) == sizes[0]
    with pytest.raises(VideoError, match="switch.h264: "):
        read_all(path, info=info)


def test_max_pixels_refuses_large_frames_before_decoding(videos):
    with pytest.raises(VideoError, match=r"h264\.mp4: frame size 64x48 is over the limit"):
        probe(videos["h264.mp4"], max_pixels=64 * 48 - 1)
    assert probe(videos["h264.mp4"], max_pixels=64 * 48).n_frames == 40


# --- bad files --------------------------------------------------------------------------------


def make_bad_file(kind: str, folder, good) -> tuple:
    """(path, file name) of a bad file of the given kind."""
    if kind == "empty":
        path = write_empty(folder / "empty.mp4")
    elif kind == "text":
        path = write_text(folder / "notes.mp4")
    elif kind == "truncated":
        path = write_truncated(folder / "truncated.mp4", good)
    elif kind == "corrupted":
        path = write_corrupted(folder / "corrupted.mp4", good, n_bytes=500)
    elif kind == "audio-only":
        path = folder / "audio.m4a"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("aac", rate=16000)
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts = 16000, 0
            container.mux(stream.encode(frame))
            container.mux(stream.encode())
    elif kind == "missing":
        path = folder / "missing.mp4"
    elif kind == "directory":
        path = folder / "folder.mp4"
        path.mkdir()
    return path, path.name


BAD_KINDS = ["empty", "text", "truncated", "corrupted", "audio-only", "missing", "directory"]


@pytest.mark.parametrize("backend", ["auto", "pyav"])
@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_file_raises_video_error_naming_the_file(videos, tmp_path, kind, backend):
    path, name = make_bad_file(kind, tmp_path, videos["h264.mp4"])
    with pytest.raises(VideoError) as caught:
        info = probe(path, backend=backend)
        read_all(path, info=info)
    assert str(caught.value).startswith(f"{name}: ")
    assert caught.value.path == str(path)


def test_bad_file_messages(videos, tmp_path):
    reasons = {}
    for kind in ["empty", "text", "audio-only", "missing"]:
        path, _ = make_bad_file(kind, tmp_path, videos["h264.mp4"])
        with pytest.raises(VideoError) as caught:
            probe(path)
        reasons[kind] = caught.value.reason
    assert reasons["empty"] == "empty file"
    assert reasons["text"].startswith("not a readable video file")
    assert reasons["audio-only"] == "not a video file (no video stream)"
    assert reasons["missing"] == "no such file"


def test_video_error_is_a_value_error_and_pickles():
    error = pickle.loads(pickle.dumps(VideoError("/tmp/x/clip.mp4", "empty file")))
    assert isinstance(error, ValueError)
    assert (str(error), error.path, error.reason) == ("clip.mp4: empty file", "/tmp/x/clip.mp4",
                                                      "empty file")


# --- frames -----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_iter_frames_streams_every_frame_in_bounded_batches(videos, backend):
    indices, frames = read_all(videos["h264.mp4"], batch_size=7, backend=backend)
    assert [len(i) for i in indices] == [7, 7, 7, 7, 7, 5]
    assert all(f.dtype == np.uint8 and f.shape[1:] == (48, 64, 3) for f in frames)
    assert np.concatenate(indices).tolist() == list(range(40))
    assert [frame_index(f) for f in np.concatenate(frames)] == list(range(40))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("samples", [1, 2, 4, 8, 16])
def test_iter_frames_selects_snippet_frames(videos, backend, samples):
    wanted = snippet_frame_indices(40, samples_per_snippet=samples).ravel()
    info = probe(videos["vp9.webm"], backend=backend)
    indices, frames = read_all(videos["vp9.webm"], batch_size=3, indices=wanted, info=info)
    assert all(len(i) <= 3 for i in indices)
    assert np.concatenate(indices).tolist() == wanted.tolist()
    assert [frame_index(f) for f in np.concatenate(frames)] == wanted.tolist()


@needs_decord
@pytest.mark.parametrize("name", ["h264.mp4", "mjpeg.avi", "vp9.webm"])
def test_decord_and_pyav_give_the_same_frames(videos, name):
    wanted = snippet_frame_indices(40, samples_per_snippet=4).ravel()
    by_backend = {}
    for backend in ("decord", "pyav"):
        info = probe(videos[name], backend=backend)
        _, frames = read_all(videos[name], indices=wanted, info=info)
        by_backend[backend] = np.concatenate(frames).astype(np.int16)
    # Identical here; allow rounding differences between the two bundled FFmpeg builds.
    assert np.abs(by_backend["decord"] - by_backend["pyav"]).max() <= 2


def test_iter_frames_rejects_bad_indices(videos):
    info = probe(videos["h264.mp4"], backend="pyav")
    for indices in ([3, 2], [1, 1], [-1, 2], [39, 40]):
        with pytest.raises(ValueError) as caught:
            list(iter_frames(videos["h264.mp4"], indices=indices, info=info))
        assert not isinstance(caught.value, VideoError)
    assert list(iter_frames(videos["h264.mp4"], indices=[], info=info)) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_iter_frames_can_stop_early(videos, backend):
    frames = iter_frames(videos["h264.mp4"], batch_size=4, backend=backend)
    first_indices, _ = next(frames)
    frames.close()
    assert first_indices.tolist() == [0, 1, 2, 3]


# --- snippets ---------------------------------------------------------------------------------


def test_snippet_frame_indices_layout():
    expected_offsets = {1: [8], 2: [4, 12], 4: [2, 6, 10, 14], 8: [1, 3, 5, 7, 9, 11, 13, 15],
                        16: list(range(16))}
    for samples, offsets in expected_offsets.items():
        indices = snippet_frame_indices(50, samples_per_snippet=samples)
        assert indices.shape == (3, samples)  # 50 // 16 = 3 snippets; frames 48, 49 dropped
        assert indices.dtype == np.int64
        assert indices.tolist() == [[16 * k + o for o in offsets] for k in range(3)]
    assert snippet_frame_indices(64).ravel().tolist() == list(range(64))
    assert snippet_frame_indices(15, samples_per_snippet=4).shape == (0, 4)


@pytest.mark.parametrize("samples", [0, 3, 5, 12, 32])
def test_snippet_frame_indices_rejects_other_sample_counts(samples):
    with pytest.raises(ValueError, match=r"\[1, 2, 4, 8, 16\]"):
        snippet_frame_indices(64, samples_per_snippet=samples)


# --- prefetch ---------------------------------------------------------------------------------


def test_prefetch_yields_everything_in_order():
    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))
    assert list(prefetch([], depth=1)) == []


def test_prefetch_raises_the_producer_error_after_earlier_items():
    def failing():
        yield 1
        yield 2
        raise RuntimeError("boom")

    received = []
    with pytest.raises(RuntimeError, match="boom"):
        for item in prefetch(failing()):
            received.append(item)
    assert received == [1, 2]


def test_prefetch_runs_ahead_by_at_most_depth():
    produced = []

    def counting():
        for i in range(50):
            produced.append(i)
            yield i

    items = prefetch(counting(), depth=2)
    assert next(items) == 0
    deadline = time.monotonic() + 5
    while len(produced) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # room to overshoot, if it would
    assert len(produced) == 4  # 1 handed out + 2 queued + 1 waiting to be queued
    items.close()


def test_prefetch_stops_the_producer_when_the_consumer_stops():
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    items = prefetch(endless(), depth=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert closed.is_set()  # close() joins the producer, which closed the source
    assert not any(t.name == "vadclip-prefetch" and t.is_alive() for t in threading.enumerate())


def test_prefetch_of_iter_frames_gives_the_same_batches(videos):
    """Decoding in the prefetch thread gives the same batches as decoding inline."""
    direct = [i.tolist() for i, _ in iter_frames(videos["h264.mp4"], batch_size=16)]
    fetched = [i.tolist() for i, _ in prefetch(iter_frames(videos["h264.mp4"], batch_size=16))]
    assert fetched == direct


# --- content hash -----------------------------------------------------------------------------


def test_content_hash_is_the_sha256_of_the_bytes(videos, tmp_path):
    path = videos["h264.mp4"]
    digest = content_hash(path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert content_hash(path) == digest
    copy = shutil.copy(path, tmp_path / "renamed.bin")
    assert content_hash(copy) == digest
    assert content_hash(videos["mpeg4.mp4"]) != digest
    with pytest.raises(VideoError, match="missing.mp4: cannot read the file"):
        content_hash(tmp_path / "missing.mp4")


def test_sizes_decord_cannot_copy_out_fall_back_to_pyav(tmp_path):
    path = write_video(tmp_path / "narrow.mp4", 20, width=48, height=64)
    info = probe(path)
    frames = np.concatenate([f for _, f in iter_frames(path, info=info)])
    assert frames.shape == (20, 64, 48, 3)
    assert [frame_index(f) for f in frames] == list(range(20))
