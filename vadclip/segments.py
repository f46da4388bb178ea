"""Cutting anomalous segments out of a per-snippet score curve.

`detect_segments` turns a coarse anomaly curve (one score per 16-frame snippet) and the
fine-grained class probabilities into `DetectedSegment`s, following `DetectionParams`
(defaults: threshold 0.5 on the detector's default curve, gaps under 1 s merged, segments under 1 s dropped):

1. flag every snippet whose coarse score is >= `threshold`;
2. merge consecutive flagged runs when the time between them (start of the next run minus end
   of the previous one) is < `min_gap_s`;
3. drop merged runs lasting < `min_duration_s` (end of last snippet minus start of first);
4. label each kept run with the anomaly class (index >= 1; index 0 is the normal class) of
   highest mean fine-grained probability over its snippets; `confidence` is that mean.
   A vocabulary with the normal class only has nothing to label with: such segments are
   labelled ``"anomaly"`` (`UNLABELLED`) and their confidence is their mean coarse score.

Times come from the snippet start / end times; frames are snippet-aligned: a segment over
snippets ``a..b`` covers frames ``[a * snippet_frames, (b + 1) * snippet_frames)``.
Everything is vectorised over snippets; Python only loops over the (few) segments found.
"""
from __future__ import annotations

import numpy as np

from .results import DetectedSegment, DetectionParams

UNLABELLED = "anomaly"   # label used when the vocabulary has no anomaly class
_EPS = 1e-9              # tolerance on second comparisons (snippet times are float sums)


def flagged_runs(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of True in a boolean [N] array as (starts, ends), ends one past the last index."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def merge_runs(starts: np.ndarray, ends: np.ndarray, start_s: np.ndarray, end_s: np.ndarray,
               min_gap_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Merge runs (snippet index ranges) separated by less than `min_gap_s` seconds."""
    if len(starts) < 2:
        return starts, ends
    gaps = start_s[starts[1:]] - end_s[ends[:-1] - 1]
    breaks = gaps >= min_gap_s - _EPS
    return starts[np.concatenate([[True], breaks])], ends[np.concatenate([breaks, [True]])]


def _check_inputs(coarse, fine, class_names, start_s, end_s, fps, snippet_frames):
    coarse = np.asarray(coarse, dtype=np.float64).reshape(-1)
    fine = np.asarray(fine, dtype=np.float64)
    start_s = np.asarray(start_s, dtype=np.float64).reshape(-1)
    end_s = np.asarray(end_s, dtype=np.float64).reshape(-1)
    n = coarse.shape[0]
    if len(class_names) < 1:
        raise ValueError("class_names is empty")
    if fine.ndim != 2 or fine.shape != (n, len(class_names)):
        raise ValueError(f"fine scores must be [{n}, {len(class_names)}] (snippets x classes), "
                         f"got {list(fine.shape)}")
    if start_s.shape[0] != n or end_s.shape[0] != n:
        raise ValueError(f"snippet times must have one entry per snippet ({n}), got "
                         f"{start_s.shape[0]} starts and {end_s.shape[0]} ends")
    for name, arr in (("coarse scores", coarse), ("fine scores", fine),
                      ("snippet start times", start_s), ("snippet end times", end_s)):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contain NaN or Inf")
    if np.any(end_s < start_s):
        raise ValueError("a snippet ends before it starts")
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    if snippet_frames < 1:
        raise ValueError(f"snippet_frames must be >= 1, got {snippet_frames}")
    return coarse, fine, start_s, end_s


def detect_segments(coarse: np.ndarray, fine: np.ndarray, class_names: list[str],
                    snippet_start_s: np.ndarray, snippet_end_s: np.ndarray,
                    params: DetectionParams, fps: float, snippet_frames: int = 16) -> list[DetectedSegment]:
    """Segments of `coarse` [N] above `params.threshold`, labelled from `fine` [N, C].

    See the module docstring for the rules. `fps` is the video's frame rate (checked to be
    positive; times are read from `snippet_start_s` / `snippet_end_s`). Returns the segments in
    time order; an empty list when N = 0 or nothing is flagged. Raises ValueError on NaN scores
    or inconsistent shapes.
    """
    coarse, fine, start_s, end_s = _check_inputs(coarse, fine, list(class_names), snippet_start_s,
                                                 snippet_end_s, fps, snippet_frames)
    starts, ends = flagged_runs(coarse >= params.threshold)
    starts, ends = merge_runs(starts, ends, start_s, end_s, params.min_gap_s)
    duration = end_s[ends - 1] - start_s[starts] if len(starts) else np.zeros(0)
    keep = duration >= params.min_duration_s - _EPS
    starts, ends = starts[keep], ends[keep]
    if len(starts) == 0:
        return []

    counts = (ends - starts).astype(np.float64)
    coarse_sum = np.concatenate([[0.0], np.cumsum(coarse)])
    mean_score = (coarse_sum[ends] - coarse_sum[starts]) / counts
    bounds = np.stack([starts, ends], axis=1).reshape(-1)       # [s0, e0, s1, e1, ...]
    peak = np.maximum.reduceat(np.append(coarse, -np.inf), bounds)[::2]
    if fine.shape[1] > 1:
        fine_sum = np.concatenate([np.zeros((1, fine.shape[1])), np.cumsum(fine, axis=0)])
        fine_mean = (fine_sum[ends] - fine_sum[starts]) / counts[:, None]     # [S, C]
        best = fine_mean[:, 1:].argmax(axis=1) + 1
        labels = [class_names[i] for i in best]
        confidence = fine_mean[np.arange(len(best)), best]
    else:
        labels = [UNLABELLED] * len(starts)
        confidence = mean_score

    return [
        DetectedSegment(
            start_s=float(start_s[s]), end_s=float(end_s[e - 1]),
            start_frame=int(s) * snippet_frames, end_frame=int(e) * snippet_frames,
            label=str(label), confidence=float(c), peak_score=float(p), mean_score=float(m),
        )
        for s, e, label, c, p, m in zip(starts, ends, labels, confidence, peak, mean_score)
    ]
