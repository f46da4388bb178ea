"""Evaluation metrics of the official VadCLIP protocol, as plain functions over arrays.

- Coarse detection: `frame_auc`, `frame_ap` (scikit-learn over all test frames concatenated) and
  `ano_auc` (the same AUC over abnormal videos only). Models score 16-frame snippets; expand them
  with `snippets_to_frames` first.
- Fine-grained detection: `detection_map` (mAP per IoU threshold) and `mean_detection_map` (their
  mean, the number the paper reports), computing exactly what the authors' `getDetectionMAP` does,
  quirks included (see `detection_map`), but vectorised with NumPy.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score, roc_auc_score

from .constants import SNIPPET_FRAMES

FRAMES_PER_SNIPPET = SNIPPET_FRAMES
IOU_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)

# Constants of the official detection protocol.
_RUN_THRESHOLD = 0.6      # a run is frames above max - 0.6 * (max - min) of the class's scores
_MIN_RUN_FRAMES = 2       # runs shorter than this (in frames) are dropped
_CLASS_SCORE_WEIGHT = 0.7  # segment score = max score in the run + 0.7 * video class score
_TOPK_DIVISOR = 16        # video class score = mean of the top int(F / 16) frame scores


# --------------------------------------------------------------------------------------------
# Frame-level AUC / AP
# --------------------------------------------------------------------------------------------

def snippets_to_frames(scores: ArrayLike, frames_per_snippet: int = FRAMES_PER_SNIPPET) -> np.ndarray:
    """Frame-level scores from snippet-level ones.

    scores [N, ...] (one row per snippet) -> [N * frames_per_snippet, ...], each row repeated
    `frames_per_snippet` times.
    """
    if frames_per_snippet < 1:
        raise ValueError(f"frames_per_snippet must be >= 1, got {frames_per_snippet}")
    return np.repeat(np.asarray(scores), frames_per_snippet, axis=0)


def _check_binary(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """1-D float scores and 0/1 integer labels of the same length, or ValueError."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 1 or labels.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D, got shapes {scores.shape} and {labels.shape}")
    if len(scores) != len(labels):
        raise ValueError(f"scores and labels differ in length: {len(scores)} vs {len(labels)} frames")
    if len(scores) == 0:
        raise ValueError("no frames to evaluate")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 (normal) or 1 (abnormal), got values {np.unique(labels)[:10]}")
    return scores, labels.astype(np.int64)


def frame_auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Frame-level ROC AUC.

    scores [F] anomaly scores, labels [F] 0/1 ground truth (all test frames concatenated).
    Raises ValueError when the labels hold only one class (the AUC is undefined).
    """
    scores, labels = _check_binary(scores, labels)
    if labels.min() == labels.max():
        raise ValueError(f"AUC is undefined: all {len(labels)} frames are labelled {labels[0]}; "
                         "it needs both normal (0) and abnormal (1) frames")
    return float(roc_auc_score(labels, scores))


def frame_ap(scores: ArrayLike, labels: ArrayLike) -> float:
    """Frame-level average precision (area under the precision-recall curve, sklearn's AP).

    scores [F] anomaly scores, labels [F] 0/1 ground truth. Raises ValueError when no frame is
    abnormal (the AP is undefined).
    """
    scores, labels = _check_binary(scores, labels)
    if labels.max() == 0:
        raise ValueError(f"AP is undefined: none of the {len(labels)} frames is abnormal (1)")
    return float(average_precision_score(labels, scores))


def ano_auc(scores: Sequence[ArrayLike], labels: Sequence[ArrayLike]) -> float:
    """Frame-level ROC AUC over the abnormal videos only (AnoAUC).

    scores, labels: one 1-D array of frame scores / 0/1 frame labels per video. A video is abnormal
    when at least one of its frames is labelled 1; the frames of the abnormal videos are
    concatenated and scored as in `frame_auc`.
    """
    if len(scores) != len(labels):
        raise ValueError(f"got scores for {len(scores)} videos but labels for {len(labels)}")
    checked = [_check_binary(s, y) for s, y in zip(scores, labels)]
    abnormal = [(s, y) for s, y in checked if y.any()]
    if not abnormal:
        raise ValueError("AnoAUC is undefined: no video has an abnormal frame")
    s = np.concatenate([s for s, _ in abnormal])
    y = np.concatenate([y for _, y in abnormal])
    if y.all():
        raise ValueError("AnoAUC is undefined: every frame of the abnormal videos is abnormal")
    return frame_auc(s, y)


# --------------------------------------------------------------------------------------------
# Fine-grained detection mAP (official protocol)
# --------------------------------------------------------------------------------------------

def detection_map(
    snippet_scores: Sequence[ArrayLike],
    segments: Sequence[ArrayLike],
    labels: Sequence[Sequence[str]],
    classlist: Sequence[str],
    iou_thresholds: Sequence[float] = IOU_THRESHOLDS,
    frames_per_snippet: int = FRAMES_PER_SNIPPET,
) -> list[float]:
    """Fine-grained detection mAP (percent) at each IoU threshold, the official VadCLIP protocol.

    Inputs, one entry per video:
      snippet_scores: [n_i, C] class probabilities per snippet (C = len(classlist)); each row
        stands for `frames_per_snippet` frames.
      segments: ground-truth segments [[start_frame, end_frame), ...] (end exclusive).
      labels: the class code of each segment, matched against `classlist` by equality; a code not
        in `classlist` is a ground truth of no class (e.g. UCF's normal `A` vs `Normal`).
    Returns one mAP per threshold in `iou_thresholds`; the paper reports their mean
    (`mean_detection_map`).

    Protocol, per video with frame scores p [F, C]:
      - class score cs[c] = mean of the top int(F/16) frames of p[:, c]; a class with cs <= 0
        gets no prediction in that video;
      - predictions: runs [s, e) of frames with p[:, c] > max - 0.6 * (max - min), e - s >= 2,
        scored max(p[s:e, c]) + 0.7 * cs[c] (NMS at IoU 0.6 follows, but runs of one threshold
        never overlap, so it keeps them all);
      - per class over all videos, in descending score order, each prediction is a true positive
        if an unmatched ground truth of its video and class has IoU >= threshold (IoU on frames
        as integer sets); it takes the one with the best IoU (the first on ties). AP = sum of
        the precision at each true positive / #ground truths (0 without ground truth);
      - mAP = 100 * mean of the AP over every class of `classlist`. As in the official code, if
        any class gets no prediction in any video, the mAP is 0 at every threshold.
    Predictions with exactly equal scores are ordered as the official code orders them (the same
    NumPy default argsort calls on the same arrays); that order is unspecified by NumPy and may
    change with its version or the CPU, and so may the mAP when scores tie (e.g. saturated
    float32 probabilities of exactly 1.0).
    """
    thresholds = np.asarray(iou_thresholds, dtype=np.float64)
    if thresholds.ndim != 1 or len(thresholds) == 0 or not ((thresholds > 0) & (thresholds <= 1)).all():
        raise ValueError(f"iou_thresholds must be a non-empty list of values in (0, 1], got {iou_thresholds}")
    if frames_per_snippet < 1:
        raise ValueError(f"frames_per_snippet must be >= 1, got {frames_per_snippet}")
    if len(snippet_scores) == 0:
        raise ValueError("no videos to evaluate")
    if not (len(snippet_scores) == len(segments) == len(labels)):
        raise ValueError(f"got {len(snippet_scores)} score arrays, {len(segments)} segment lists and "
                         f"{len(labels)} label lists; need one of each per video")

    n_classes = len(classlist)
    preds = _predictions(snippet_scores, n_classes, frames_per_snippet)
    gts = _ground_truth(segments, labels, classlist)

    if np.bincount(preds["cls"], minlength=n_classes).min() == 0:
        return [0.0] * len(thresholds)
    ap = np.stack([_class_ap(preds[preds["cls"] == c], gts[gts["cls"] == c], thresholds)
                   for c in range(n_classes)], axis=1)                         # [T, C]
    return [float(m) for m in 100 * ap.mean(axis=1)]


def mean_detection_map(
    snippet_scores: Sequence[ArrayLike],
    segments: Sequence[ArrayLike],
    labels: Sequence[Sequence[str]],
    classlist: Sequence[str],
    iou_thresholds: Sequence[float] = IOU_THRESHOLDS,
    frames_per_snippet: int = FRAMES_PER_SNIPPET,
) -> float:
    """The mean over `iou_thresholds` of `detection_map` (percent): the reported "AVG" mAP."""
    return float(np.mean(detection_map(snippet_scores, segments, labels, classlist,
                                       iou_thresholds, frames_per_snippet)))


_PRED = np.dtype([("video", np.int64), ("cls", np.int64), ("start", np.int64), ("end", np.int64),
                  ("score", np.float64)])
_GT = np.dtype([("video", np.int64), ("cls", np.int64), ("start", np.int64), ("end", np.int64)])


def _predictions(snippet_scores: Sequence[ArrayLike], n_classes: int, frames_per_snippet: int) -> np.ndarray:
    """All videos' predicted segments, a structured array with fields video, cls, start, end
    (frames, end exclusive) and score."""
    found = []
    for v, scores in enumerate(snippet_scores):
        scores = np.asarray(scores)
        if not np.issubdtype(scores.dtype, np.floating):
            scores = scores.astype(np.float64)
        if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] != n_classes:
            raise ValueError(f"video {v}: snippet scores must be [n >= 1, {n_classes}], got {scores.shape}")
        if not np.isfinite(scores).all():
            raise ValueError(f"video {v}: snippet scores contain NaN or infinite values")
        found.append(_video_predictions(scores, frames_per_snippet, v))
    return np.concatenate(found)


def _video_predictions(scores: np.ndarray, frames_per_snippet: int, video: int) -> np.ndarray:
    """Predicted segments of one video; scores [n, C] per snippet.

    Works on snippets: with every snippet repeated f times, frame runs are snippet runs times f and
    run maxima, minima and thresholds are unchanged. The arithmetic (dtypes, reduction order)
    mirrors the official frame-level code so that scores agree to the last bit.
    """
    n, _ = scores.shape
    f = frames_per_snippet
    k = n * f // _TOPK_DIVISOR                          # top-k frames for the class score
    if k == 0:                                          # official: mean of nothing = NaN -> no runs
        return np.empty(0, _PRED)
    top_snippets = -np.sort(-scores, axis=0)[: -(-k // f)]
    class_score = np.repeat(top_snippets, f, axis=0)[:k].mean(axis=0)               # [C]

    hi, lo = scores.max(axis=0), scores.min(axis=0)
    threshold = hi - (hi - lo).astype(np.float64) * _RUN_THRESHOLD                  # [C]
    above = (scores > threshold) & (class_score > 0)                                # [n, C]

    # Runs per class: +1 / -1 steps of the zero-padded mask, class-major so starts and ends pair up.
    padded = np.zeros((above.shape[1], n + 2), dtype=np.int8)
    padded[:, 1:-1] = above.T
    steps = np.diff(padded, axis=1)                                                 # [C, n + 1]
    cls, start = np.nonzero(steps == 1)
    _, end = np.nonzero(steps == -1)
    keep = (end - start) * f >= _MIN_RUN_FRAMES
    cls, start, end = cls[keep], start[keep], end[keep]

    # Maximum inside each run: one reduceat over the class-major scores (plus a sentinel so that
    # a run ending at the last snippet has a valid end index).
    flat = np.concatenate([scores.T.ravel(), scores[:1, 0]])
    bounds = np.stack([cls * n + start, cls * n + end], axis=1).ravel()
    run_max = np.maximum.reduceat(flat, bounds)[::2] if len(bounds) else flat[:0]

    out = np.empty(len(cls), _PRED)
    out["video"], out["cls"] = video, cls
    out["start"], out["end"] = start * f, end * f
    out["score"] = run_max + _CLASS_SCORE_WEIGHT * class_score[cls]
    # Official order within the video: per class, descending score by NumPy's default argsort
    # (this only matters for exact ties).
    order = [np.flatnonzero(cls == c)[np.argsort(-out["score"][cls == c])] for c in np.unique(cls)]
    return out[np.concatenate(order)] if order else out


def _ground_truth(segments: Sequence[ArrayLike], labels: Sequence[Sequence[str]],
                  classlist: Sequence[str]) -> np.ndarray:
    """All ground-truth segments whose label is in `classlist`, in (video, listed) order; a
    structured array with fields video, cls, start, end."""
    index = {}
    for i, name in enumerate(classlist):
        index.setdefault(name, i)
    rows = []
    for v, (segs, labs) in enumerate(zip(segments, labels)):
        segs = np.asarray(segs, dtype=np.int64).reshape(-1, 2)
        if len(segs) != len(labs):
            raise ValueError(f"video {v}: {len(segs)} segments but {len(labs)} labels")
        rows += [(v, index[lab], s, e) for (s, e), lab in zip(segs.tolist(), labs) if lab in index]
    return np.array(rows, dtype=_GT)


def _class_ap(preds: np.ndarray, gts: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """AP of one class at each IoU threshold: [T].

    Greedy matching, vectorised: a prediction can only compete with earlier predictions of its own
    video, so the r-th candidate prediction of every video is matched in the same round.
    """
    preds = preds[np.argsort(-preds["score"])]     # the official (default, unstable) sort
    n_pred, n_thr = len(preds), len(thresholds)
    tp = np.zeros((n_thr, n_pred), dtype=bool)
    if len(gts) and n_pred:
        # IoU of each prediction with the ground truths of its video (padded to the largest count).
        first = np.searchsorted(gts["video"], preds["video"], side="left")
        count = np.searchsorted(gts["video"], preds["video"], side="right") - first
        slot = np.arange(max(count.max(), 1))
        valid = slot < count[:, None]                                                 # [P, G]
        gt_idx = np.where(valid, first[:, None] + slot, 0)
        g_start, g_end = gts["start"][gt_idx], gts["end"][gt_idx]
        p_start, p_end = preds["start"][:, None], preds["end"][:, None]
        inter = np.clip(np.minimum(p_end, g_end) - np.maximum(p_start, g_start), 0, None)
        union = (p_end - p_start) + np.clip(g_end - g_start, 0, None) - inter
        iou = np.where(valid, inter / union, -1.0)

        # Only predictions that reach the lowest threshold with some ground truth can match.
        cand = np.flatnonzero((iou >= thresholds.min()).any(axis=1))
        rank = _rank_within(preds["video"][cand])
        matched = np.zeros((n_thr, len(gts)), dtype=bool)
        for r in range(rank.max() + 1 if len(cand) else 0):
            sel = cand[rank == r]                                  # at most one per video
            ok = (iou[sel] >= thresholds[:, None, None]) & ~matched[:, gt_idx[sel]]  # [T, m, G]
            best = np.argmax(np.where(ok, iou[sel], -1.0), axis=-1)                  # [T, m]
            hit = ok.any(axis=-1)
            t, m = np.nonzero(hit)
            matched[t, gt_idx[sel[m], best[t, m]]] = True
            tp[:, sel] = hit

    precision = np.cumsum(tp, axis=1) / np.arange(1, n_pred + 1)
    return (precision * tp).sum(axis=1) / max(len(gts), 1)


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... for the successive occurrences of each value of `groups` (in array order)."""
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    rank = np.empty(len(groups), dtype=np.int64)
    rank[order] = np.arange(len(groups)) - np.searchsorted(sorted_groups, sorted_groups, side="left")
    return rank
