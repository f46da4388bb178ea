"""Reading videos: probing, streaming frames in bounded batches, snippet sampling, prefetching.

Two backends decode: decord (fast random access; wheels only for x86-64 Linux and Windows) and
PyAV (everywhere). PyAV is required: it always reads the header and the frame timing, so a
`VideoInfo` is the same whichever backend then decodes; decord is preferred for decoding when it
is installed, opens the file and agrees with PyAV on the frame count.

Frame numbering and timing
    Frame i is the i-th frame in presentation order. `n_frames` is the number of video packets
    that carry a frame (packets the container marks as discarded are not counted), which is what
    a decoder outputs for a healthy file; a file whose frames then fail to decode raises
    `VideoError` from `iter_frames`. Frame times are the packets' presentation timestamps. The
    average rate is `fps = (n_frames - 1) / (t_last - t_first)` (one over the mean gap between
    consecutive frames: exact for constant-rate videos and the plain average for variable-rate
    ones) and `duration_s = n_frames / fps`. When timestamps are missing or a video has a single
    frame, the container's nominal rate is used instead.

Rotation
    Phone videos store sideways frames plus a display matrix. `VideoInfo.rotation` is the
    counter-clockwise rotation (0, 90, 180 or 270 degrees) that makes them upright, `width` and
    `height` are the upright size, and `iter_frames` always yields upright frames: decord 0.6
    applies the display matrix itself, PyAV frames are rotated here. Mirroring in the display
    matrix is ignored.

Errors
    Every problem with the file itself (missing, empty, not a video, corrupt, too large,
    undecodable) raises `VideoError`, a `ValueError` whose message starts with the file name.
    Decoder exceptions never escape the public functions.
"""
from __future__ import annotations

import hashlib
import os
import queue
import re
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Literal, TypeVar

import av
import numpy as np

from .constants import SNIPPET_FRAMES
from .errors import OptionError, UserError

Backend = Literal["auto", "decord", "pyav"]
DEFAULT_MAX_PIXELS = 4096 * 4096

T = TypeVar("T")


class VideoError(UserError):
    """A video file that cannot be read; the message is `"<file name>: <reason>"`."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{Path(path).name}: {reason}")

    def __reduce__(self):
        return type(self), (self.path, self.reason)


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` learnt about a video (sizes are upright, after rotation)."""

    path: str
    backend: str        # "decord" or "pyav": the backend `iter_frames` decodes with
    fps: float          # average frames per second (see the module docstring)
    n_frames: int
    width: int
    height: int
    rotation: int       # counter-clockwise degrees applied to the coded frames: 0, 90, 180, 270
    duration_s: float
    codec: str


# ---------------------------------------------------------------------------------------------
# probe


def probe(
    path: str | os.PathLike,
    backend: Backend = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> VideoInfo:
    """Read a video's header and frame timing, and pick the backend that will decode it.

    `backend="auto"` prefers decord and falls back to PyAV; "decord" or "pyav" forces one
    (a forced decord that cannot read the file raises `VideoError`). Frames larger than
    `max_pixels` (width * height) are refused before anything is decoded.
    """
    if backend not in ("auto", "decord", "pyav"):
        raise OptionError(f"unknown backend {backend!r}: use 'auto', 'decord' or 'pyav'")
    _check_file(path)
    with _open_pyav(path) as container:
        stream = _video_stream(path, container)
        coded_w, coded_h = stream.codec_context.width, stream.codec_context.height
        if coded_w <= 0 or coded_h <= 0:
            raise VideoError(path, "the header gives no frame size")
        if coded_w * coded_h > max_pixels:
            raise VideoError(
                path, f"frame size {coded_w}x{coded_h} is over the limit of {max_pixels} pixels"
            )
        codec = stream.codec_context.codec.canonical_name  # "av1", not the decoder "libdav1d"
        _limit_decoder(stream, coded_w, coded_h)
        scan = _scan_packets(path, container, stream)
        nominal_rate = stream.average_rate or stream.guessed_rate
    fps = _average_fps(path, scan, nominal_rate)
    n_frames, rotation = scan.n_frames, scan.rotation
    width, height = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)
    return VideoInfo(
        path=str(path),
        backend=_choose_backend(path, backend, n_frames),
        fps=fps,
        n_frames=n_frames,
        width=width,
        height=height,
        rotation=rotation,
        duration_s=n_frames / fps,
        codec=codec,
    )


def _check_file(path: str | os.PathLike) -> None:
    p = Path(path)
    if not p.exists():
        raise VideoError(path, "no such file")
    if not p.is_file():
        raise VideoError(path, "not a file")
    if p.stat().st_size == 0:
        raise VideoError(path, "empty file")


def _open_pyav(path: str | os.PathLike) -> av.container.InputContainer:
    try:
        return av.open(str(path), "r", metadata_errors="replace")
    except av.FFmpegError as error:
        raise VideoError(path, f"not a readable video file ({_reason(error)})") from None
    except OSError as error:
        raise VideoError(path, f"cannot open the file ({error.strerror or error})") from None


def _video_stream(path: str | os.PathLike, container) -> av.video.stream.VideoStream:
    """The first video stream that is not an attached picture (e.g. an MP3's cover art)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise VideoError(path, "not a video file (no video stream)")


def _limit_decoder(stream, width: int, height: int) -> None:
    """Make the decoder refuse frames far larger than the header's.

    A hostile stream can announce a small size and switch to a huge one after a few frames.
    Decoders check padded sizes and some scratch buffers against this limit (mpeg4 needs ~54k
    pixels even for 16x16 frames), hence the generous room; smaller changes are caught frame by
    frame.
    """
    limit = max(4 * width * height, 1 << 20)
    stream.codec_context.options = {"max_pixels": str(limit)}


@dataclass(frozen=True)
class _Scan:
    n_frames: int
    first_t: Fraction | None    # earliest / latest presentation time in seconds;
    last_t: Fraction | None     # None when a packet has no timestamp
    rotation: int


def _scan_packets(path, container, stream) -> _Scan:
    """Demux the whole stream once: count the frames, find their time span and the rotation.

    Only the first frame is decoded, to read its display matrix and to make sure the stream
    decodes at all.
    """
    n_frames, first_t, last_t, timed = 0, None, None, True
    first_frame = None
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue
            n_frames += 1
            if packet.pts is None or packet.time_base is None:
                timed = False
            else:
                t = packet.pts * packet.time_base
                first_t = t if first_t is None else min(first_t, t)
                last_t = t if last_t is None else max(last_t, t)
            if first_frame is None:
                first_frame = next(iter(stream.decode(packet)), None)
        if first_frame is None and n_frames:
            first_frame = next(iter(stream.decode(None)), None)  # flush delayed frames
    except av.FFmpegError as error:
        at = "the first frame" if first_frame is None else f"packet {n_frames}"
        raise VideoError(path, f"decoding failed at {at}: {_reason(error)}") from None
    if first_frame is None:
        raise VideoError(path, "no decodable video frames")
    rotation = int(round(first_frame.rotation / 90)) * 90 % 360  # display matrix, PyAV >= 14.1
    if not timed:
        first_t = last_t = None
    return _Scan(n_frames, first_t, last_t, rotation)


def _average_fps(path, scan: _Scan, nominal_rate: Fraction | None) -> float:
    if scan.n_frames > 1 and scan.first_t is not None and scan.last_t > scan.first_t:
        return float((scan.n_frames - 1) / (scan.last_t - scan.first_t))
    if nominal_rate:
        return float(nominal_rate)
    raise VideoError(path, "no frame timestamps and no frame rate in the header")


def _choose_backend(path, backend: Backend, n_frames: int) -> str:
    if backend == "pyav":
        return "pyav"
    decord = _import_decord()
    if decord is None:
        if backend == "decord":
            raise VideoError(path, "decord is not installed")
        return "pyav"
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
        decord_frames = len(reader)
        if decord_frames:
            reader.get_batch([0])  # some sizes open but fail to copy out (e.g. 48 pixels wide)
            reader.seek(0)
        del reader
    except Exception as error:  # decord raises its own DECORDError (and sometimes others)
        if backend == "decord":
            raise VideoError(path, f"decord cannot read it ({_reason(error)})") from None
        return "pyav"
    if decord_frames != n_frames:
        if backend == "decord":
            raise VideoError(path, f"decord counts {decord_frames} frames, PyAV {n_frames}")
        return "pyav"
    return "decord"


def _import_decord():
    """The decord module, or None where it is not installed (e.g. macOS, aarch64)."""
    try:
        import decord
    except Exception:  # ImportError, or a broken native library
        return None
    return decord


def _reason(error: BaseException) -> str:
    """A one-line reason from a PyAV or decord exception, without log prefixes."""
    if isinstance(error, av.FFmpegError) and error.strerror:
        return error.strerror
    lines = str(error).strip().splitlines()
    if not lines:
        return type(error).__name__
    return re.sub(r"\[[\d:]+\] \S+:\d+: ", "", lines[0])  # decord's "[10:01:02] file.cc:12: "


# ---------------------------------------------------------------------------------------------
# frames


def iter_frames(
    path: str | os.PathLike,
    batch_size: int = 64,
    indices: np.ndarray | Iterable[int] | None = None,
    info: VideoInfo | None = None,
    backend: Backend = "auto",
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream `(frame_indices [b], frames uint8 [b, H, W, 3])` RGB, upright, at native size.

    At most `batch_size` frames are held per batch. `indices` (strictly increasing frame
    numbers) selects a subset; by default every frame. `info` (from `probe`) avoids probing
    again and fixes the backend; otherwise the file is probed with `backend`.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if info is None:
        info = probe(path, backend=backend)
    wanted = _check_indices(indices, info.n_frames)
    if len(wanted) == 0:
        return
    if info.backend == "decord":
        yield from _iter_decord(path, info, wanted, batch_size)
    else:
        yield from _iter_pyav(path, info, wanted, batch_size)


def _check_indices(indices, n_frames: int) -> np.ndarray:
    if indices is None:
        return np.arange(n_frames, dtype=np.int64)
    wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(wanted) and (wanted[0] < 0 or wanted[-1] >= n_frames):
        raise ValueError(f"frame indices must lie in [0, {n_frames})")
    if np.any(np.diff(wanted) <= 0):
        raise ValueError("frame indices must be strictly increasing")
    return wanted


def _iter_decord(path, info: VideoInfo, wanted: np.ndarray, batch_size: int):
    decord = _import_decord()
    if decord is None:
        raise VideoError(path, "decord is not installed")
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
    except Exception as error:  # DECORDError
        raise VideoError(path, f"decord cannot read it ({_reason(error)})") from None
    try:
        for start in range(0, len(wanted), batch_size):
            chunk = wanted[start: start + batch_size]
            try:
                frames = reader.get_batch(chunk.tolist()).asnumpy()
            except Exception as error:  # DECORDError
                raise VideoError(path, f"decoding failed in frames {chunk[0]}-{chunk[-1]}: "
                                       f"{_reason(error)}") from None
            yield chunk, _decord_upright(path, frames, info)
    finally:
        try:
            reader.seek(0)  # an idle reader left mid-stream keeps growing (decord issue #197)
        except Exception:
            pass  # the file is broken; the reader is released all the same
        del reader


def _decord_upright(path, frames: np.ndarray, info: VideoInfo) -> np.ndarray:
    """decord 0.6 applies the display rotation itself; rotate here if a build does not."""
    size = frames.shape[1:3]
    if size == (info.height, info.width):
        return frames
    if info.rotation in (90, 270) and size == (info.width, info.height):
        return np.ascontiguousarray(np.rot90(frames, info.rotation // 90, axes=(1, 2)))
    raise VideoError(path, f"decord returned {size[1]}x{size[0]} frames, expected "
                           f"{info.width}x{info.height}")


def _iter_pyav(path, info: VideoInfo, wanted: np.ndarray, batch_size: int):
    turns = info.rotation // 90
    coded_w, coded_h = (info.height, info.width) if turns % 2 else (info.width, info.height)
    with _open_pyav(path) as container:
        stream = _video_stream(path, container)
        stream.thread_type = "AUTO"
        _limit_decoder(stream, coded_w, coded_h)
        decoded = container.decode(stream)
        batch_indices: list[int] = []
        batch: list[np.ndarray] = []
        next_wanted = 0
        frame_number = -1
        while next_wanted < len(wanted):
            try:
                frame = next(decoded, None)
            except av.FFmpegError as error:
                raise VideoError(
                    path, f"decoding failed at frame {frame_number + 1}: {_reason(error)}"
                ) from None
            if frame is None:
                raise VideoError(path, f"decoding failed at frame {frame_number + 1}: the "
                                       f"stream ended early (expected {info.n_frames} frames)")
            frame_number += 1
            if (frame.width, frame.height) != (coded_w, coded_h):
                raise VideoError(path, f"frame {frame_number} is {frame.width}x{frame.height}, "
                                       f"the video is {coded_w}x{coded_h}")
            if frame_number != wanted[next_wanted]:
                continue
            batch_indices.append(frame_number)
            batch.append(np.rot90(frame.to_ndarray(format="rgb24"), turns))
            next_wanted += 1
            if len(batch) == batch_size or next_wanted == len(wanted):
                yield np.array(batch_indices, dtype=np.int64), np.stack(batch)
                batch_indices, batch = [], []


def snippet_frame_indices(
    n_frames: int,
    frames_per_snippet: int = SNIPPET_FRAMES,
    samples_per_snippet: int = SNIPPET_FRAMES,
) -> np.ndarray:
    """Frame numbers `[N, samples_per_snippet]` to decode for N = n_frames // frames_per_snippet.

    The last partial snippet is dropped. Snippet k covers frames `[k*f, (k+1)*f)` (f =
    frames_per_snippet); with s samples it is split into s equal parts and the middle frame of
    each part is taken: `k*f + j*(f//s) + (f//s)//2` for j in 0..s-1. So for f = 16: s=16 takes
    every frame, s=8 offsets 1,3,..,15, s=4 offsets 2,6,10,14, s=2 offsets 4,12, s=1 offset 8.
    `samples_per_snippet` must divide `frames_per_snippet` (1, 2, 4, 8 or 16 for 16 frames).
    """
    f, s = frames_per_snippet, samples_per_snippet
    if f < 1 or s < 1 or s > f or f % s:
        valid = [d for d in range(1, f + 1) if f % d == 0] if f >= 1 else []
        raise OptionError(f"samples_per_snippet must be one of {valid}, got {s}")
    if n_frames < 0:
        raise ValueError("n_frames must be non-negative")
    step = f // s
    starts = np.arange(n_frames // f, dtype=np.int64)[:, None] * f
    return starts + np.arange(s, dtype=np.int64)[None, :] * step + step // 2


# ---------------------------------------------------------------------------------------------
# prefetching and hashing

_ITEM, _END, _ERROR = "item", "end", "error"


def prefetch(iterable: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Run `iterable` in a daemon thread, `depth` items ahead of the consumer.

    The producer's exception is raised in the consumer at the point where it occurred. When the
    consumer stops early (break, close, garbage collection), the producer stops after the item
    it is making, closes the source (so a generator's `finally` runs) and is joined.
    """
    if depth < 1:
        raise ValueError("depth must be at least 1")
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(message: tuple) -> bool:
        while not stop.is_set():
            try:
                items.put(message, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def produce() -> None:
        source = iter(iterable)
        try:
            for item in source:
                if not put((_ITEM, item)):
                    return
            put((_END, None))
        except BaseException as error:  # every failure goes to the consumer
            put((_ERROR, error))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="vadclip-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = items.get()
            if kind == _END:
                return
            if kind == _ERROR:
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


def content_hash(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of the file's bytes, read in chunks: the feature-cache key."""
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as error:
        raise VideoError(path, f"cannot read the file ({error.strerror or error})") from None
