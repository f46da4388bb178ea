"""Pictures of detected segments: thumbnails and thumbnail strips (the player itself shows the video)."""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from vadclip.results import DetectedSegment
from vadclip.video import VideoInfo, iter_frames

THUMB_WIDTH = 160


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
