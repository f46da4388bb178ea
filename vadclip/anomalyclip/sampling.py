"""The official training clip sampling, for a whole batch at once.

A training clip is `num_segments` (32) segments of `seg_length` (16) consecutive frames. For a video
of M frames (M from its list line), the segments are spaced ``dist = (M - 15) // 32`` apart when
``M >= 512``, else ``497 // 32 = 15``; segment n starts at ``n * dist + randint(dist - 14)`` and its
frame indices wrap around the video's feature rows.

The random offsets come from a `numpy.random.RandomState`: one ``randint(dist - 14, size=32)`` per
clip in batch order, the draws of the official dataset (a single call with per-segment bounds
consumes the generator exactly as those per-clip calls do, so the same state gives the same clips).
"""
from __future__ import annotations

import numpy as np


def segment_spacing(num_frames: np.ndarray, num_segments: int = 32, seg_length: int = 16) -> np.ndarray:
    """``dist`` per video: ``(M - L + 1) // S`` for ``M >= S * L``, else ``(S * L - L + 1) // S``."""
    num_frames = np.asarray(num_frames, dtype=np.int64)
    span = np.maximum(num_frames, num_segments * seg_length)
    return (span - seg_length + 1) // num_segments


def sample_start_indices(num_frames: np.ndarray, rng: np.random.RandomState, num_segments: int = 32,
                         seg_length: int = 16) -> np.ndarray:
    """Segment start frames ``[B, S]`` (int64) for videos of `num_frames` ``[B]`` frames."""
    dist = segment_spacing(num_frames, num_segments, seg_length)                 # [B]
    high = np.repeat(dist - seg_length + 2, num_segments)                         # randint's exclusive bound
    offsets = rng.randint(high).reshape(len(dist), num_segments) if len(dist) else np.zeros((0, num_segments), np.int64)
    return np.arange(num_segments, dtype=np.int64) * dist[:, None] + offsets.astype(np.int64)


def clip_frame_indices(start_indices: np.ndarray, num_rows: np.ndarray, seg_length: int = 16) -> np.ndarray:
    """Feature rows ``[B, S * L]`` of the clips: L consecutive frames per start, modulo the rows."""
    start_indices = np.asarray(start_indices, dtype=np.int64)
    frames = start_indices[:, :, None] + np.arange(seg_length, dtype=np.int64)   # [B, S, L]
    rows = np.asarray(num_rows, dtype=np.int64)[:, None, None]
    return (frames % rows).reshape(len(start_indices), -1)
