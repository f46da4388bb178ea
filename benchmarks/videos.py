"""Small synthetic test videos written with PyAV, plus a few deliberately broken files.

Every frame of a video written by `write_video` encodes its own index, so tests can check frame
order and identity despite lossy compression: the top half of the frame holds `INDEX_BITS`
vertical black/white stripes (the index in binary, most significant bit on the left) and the
bottom half is mid grey. `frame_index` reads the number back and returns -1 for a frame that is
not upright (the grey half is not at the bottom), so it also checks rotation handling.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import numpy as np

INDEX_BITS = 8
ENCODERS = {"h264": "libx264", "mpeg4": "mpeg4", "mjpeg": "mjpeg", "libvpx-vp9": "libvpx-vp9"}
_PIX_FMT = {"mjpeg": "yuvj420p"}
_BLACK, _WHITE, _GREY = 16, 240, 128


def index_frame(index: int, width: int, height: int) -> np.ndarray:
    """The RGB frame [height, width, 3] that encodes `index % 2**INDEX_BITS` (see the module
    docstring)."""
    index %= 2**INDEX_BITS
    frame = np.full((height, width, 3), _GREY, np.uint8)
    edges = np.linspace(0, width, INDEX_BITS + 1).astype(int)
    for bit in range(INDEX_BITS):
        on = (index >> (INDEX_BITS - 1 - bit)) & 1
        frame[: height // 2, edges[bit]:edges[bit + 1]] = _WHITE if on else _BLACK
    return frame


def frame_index(frame: np.ndarray) -> int:
    """Read back the index drawn by `index_frame` (modulo 2**INDEX_BITS); -1 if the frame is
    not upright."""
    grey = frame.astype(np.float32).mean(axis=2)
    height, width = grey.shape
    bottom = grey[height // 2 + 2:]
    if abs(bottom.mean() - _GREY) > 20:
        return -1
    edges = np.linspace(0, width, INDEX_BITS + 1).astype(int)
    index = 0
    for bit in range(INDEX_BITS):
        # Skip two pixels at each stripe edge: compression blurs the borders.
        stripe = grey[2: height // 2 - 2, edges[bit] + 2: edges[bit + 1] - 2]
        level = stripe.mean()
        if abs(level - _GREY) < 40:  # neither black nor white: e.g. a grey half at the top
            return -1
        index = (index << 1) | int(level > _GREY)
    return index


def write_video(
    path: str | Path,
    n_frames: int,
    width: int = 64,
    height: int = 48,
    fps: int = 25,
    codec: str = "h264",
    rotation: int = 0,
    pts_ms: Sequence[int] | None = None,
) -> Path:
    """Write a test video whose frame i shows `index_frame(i, width, height)`.

    The container follows the file suffix (.mp4, .mov, .mkv, .avi, .webm, raw .h264). `codec`
    is a key of `ENCODERS` or any PyAV encoder name (e.g. "libsvtav1"). `rotation` (0, 90, 180,
    270) writes the frames the way a phone does: the coded frames are the upright ones turned
    clockwise by `rotation` degrees, and a display matrix (PyAV >= 18 `set_display_rotation`,
    counter-clockwise degrees) turns them back. `width` and `height` are always the upright
    size, so only a reader that applies the rotation sees upright frames (`frame_index` returns
    -1 for the others). `pts_ms` gives each frame's presentation time in milliseconds instead
    of the constant rate `fps` (a variable frame rate; the stream time base is then 1/1000 s).
    """
    path = Path(path)
    if pts_ms is not None and len(pts_ms) != n_frames:
        raise ValueError("pts_ms needs one time per frame")
    if rotation % 90:
        raise ValueError("rotation must be a multiple of 90 degrees")
    turns = -(rotation // 90)  # np.rot90 turns counter-clockwise
    time_base = Fraction(1, 1000) if pts_ms is not None else Fraction(1, fps)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(ENCODERS.get(codec, codec), rate=fps)
        stream.width, stream.height = (height, width) if turns % 2 else (width, height)
        stream.pix_fmt = _PIX_FMT.get(codec, "yuv420p")
        stream.codec_context.time_base = time_base
        if codec == "mjpeg":
            stream.codec_context.qmax = 4  # keep the stripes crisp
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(n_frames):
            coded = np.ascontiguousarray(np.rot90(index_frame(i, width, height), turns))
            frame = av.VideoFrame.from_ndarray(coded, format="rgb24")
            frame.pts = pts_ms[i] if pts_ms is not None else i
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_empty(path: str | Path) -> Path:
    """A zero-length file."""
    path = Path(path)
    path.write_bytes(b"")
    return path


def write_text(path: str | Path) -> Path:
    """A text file (give it a video suffix to pretend it is a video)."""
    path = Path(path)
    path.write_text("This is not a video.\n" * 50)
    return path


def write_truncated(path: str | Path, source: str | Path, keep: float = 0.5) -> Path:
    """The first `keep` fraction of `source`'s bytes."""
    data = Path(source).read_bytes()
    path = Path(path)
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def write_corrupted(
    path: str | Path, source: str | Path, n_bytes: int = 2000, seed: int = 0
) -> Path:
    """`source` with `n_bytes` random bytes written over the middle of the file."""
    data = bytearray(Path(source).read_bytes())
    start = max(0, len(data) // 2 - n_bytes // 2)
    noise = np.random.default_rng(seed).integers(0, 256, n_bytes, dtype=np.uint8).tobytes()
    data[start: start + n_bytes] = noise[: len(data) - start]
    path = Path(path)
    path.write_bytes(bytes(data))
    return path
