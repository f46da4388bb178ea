"""Pictures and clips of detected segments: thumbnails, thumbnail strips, trimmed mp4 clips."""
from __future__ import annotations

import base64
import io
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from vadclip.results import DetectedSegment
from vadclip.video import VideoInfo, iter_frames

THUMB_WIDTH = 160
CLIP_MAX_WIDTH = 480
CLIP_MAX_S = 20.0


def frames_at(path: str, info: VideoInfo, indices: list[int]) -> dict[int, np.ndarray]:
    """RGB frames at the given frame numbers (duplicates and order do not matter)."""
    wanted = sorted({min(max(int(i), 0), info.n_frames - 1) for i in indices})
    frames: dict[int, np.ndarray] = {}
    for idx, batch in iter_frames(path, batch_size=16, indices=wanted, info=info):
        frames.update(zip(idx.tolist(), batch))
    return frames


def resized(frame: np.ndarray, width: int) -> Image.Image:
    image = Image.fromarray(frame)
    if image.width > width:
        image = image.resize((width, max(1, round(image.height * width / image.width))), Image.BILINEAR)
    return image


def jpeg_bytes(frame: np.ndarray, width: int = THUMB_WIDTH) -> bytes:
    buffer = io.BytesIO()
    resized(frame, width).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def thumbnail_markdown(jpeg: bytes | None) -> str:
    """A JPEG as an inline markdown image (for table cells); empty when there is none."""
    if not jpeg:
        return ""
    return f"![thumbnail](data:image/jpeg;base64,{base64.b64encode(jpeg).decode('ascii')})"


def middle_frame(segment: DetectedSegment) -> int:
    return (segment.start_frame + max(segment.end_frame - 1, segment.start_frame)) // 2


def segment_thumbnails(path: str, info: VideoInfo, segments: list[DetectedSegment]) -> dict[int, bytes]:
    """A small JPEG of each segment's middle frame, by segment index (one pass over the video)."""
    if not segments:
        return {}
    frames = frames_at(path, info, [middle_frame(s) for s in segments])
    return {n: jpeg_bytes(frames[min(middle_frame(s), info.n_frames - 1)])
            for n, s in enumerate(segments)}


def segment_strip(path: str, info: VideoInfo, segment: DetectedSegment,
                  count: int = 6) -> list[tuple[Image.Image, str]]:
    """`count` frames spread evenly over the segment, each captioned with its time."""
    last = max(segment.end_frame - 1, segment.start_frame)
    indices = np.unique(np.linspace(segment.start_frame, last, count).round().astype(int)).tolist()
    frames = frames_at(path, info, indices)
    return [(resized(frames[min(i, info.n_frames - 1)], 320), f"{i / info.fps:.1f} s")
            for i in indices]


def write_segment_clip(path: str, info: VideoInfo, segment: DetectedSegment,
                       out_dir: str | Path | None = None, context_s: float = 0.5,
                       max_s: float = CLIP_MAX_S) -> Path:
    """An H.264 mp4 of the segment (plus `context_s` either side, at most `max_s` long)."""
    start = max(0, int((segment.start_s - context_s) * info.fps))
    end = min(info.n_frames, int(round((segment.end_s + context_s) * info.fps)), start + int(max_s * info.fps))
    end = max(end, start + 1)
    scale = min(1.0, CLIP_MAX_WIDTH / info.width)
    width, height = (max(2, int(info.width * scale) // 2 * 2), max(2, int(info.height * scale) // 2 * 2))
    out_dir = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="vadclip-clip-"))
    out = out_dir / f"segment-{segment.start_frame}-{segment.end_frame}.mp4"
    rate = Fraction(info.fps).limit_denominator(1001)
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "26", "preset": "veryfast", "movflags": "+faststart"}
        for _, batch in iter_frames(path, batch_size=32, indices=range(start, end), info=info):
            for frame in batch:
                image = Image.fromarray(frame).resize((width, height), Image.BILINEAR)
                container.mux(stream.encode(av.VideoFrame.from_image(image)))
        container.mux(stream.encode())
    return out
