"""The official VadCLIP fine-grained detection mAP, restated loop by loop (benchmark baseline only).

This is a plain re-statement of the computation in the authors' `xd_detectionMAP.py` /
`ucf_detectionMAP.py`, written in the same style (per-frame Python loops, set-based IoU, greedy
matching over Python lists) so that it runs at the same speed. It is *not* part of the library:
`vadclip.metrics.detection_map` is the vectorised implementation, and the tests check that both
agree. Differences from the authors' files, none of which changes a result:

- the class list, IoU thresholds and snippet length are arguments instead of constants;
- a label that is not in the class list is ignored (as in the UCF file; the XD file would raise);
- the official `smooth` is the identity and its threshold set `arange(0.6, 0.7, 0.1)` is `[0.6]`;
  both are written out as such.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def official_detection_map(
    snippet_scores: Sequence[np.ndarray],
    segments: Sequence[Sequence[Sequence[int]]],
    labels: Sequence[Sequence[str]],
    classlist: Sequence[str],
    iou_thresholds: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5),
    frames_per_snippet: int = 16,
) -> list[float]:
    """mAP (percent) per IoU threshold; same inputs and output as `vadclip.metrics.detection_map`."""
    frame_scores = [np.repeat(np.asarray(p), frames_per_snippet, axis=0) for p in snippet_scores]
    return [_map_at(frame_scores, th, segments, labels, list(classlist)) for th in iou_thresholds]


def _nms(spans: np.ndarray, overlap: float = 0.6) -> list[int]:
    """Greedy 1-D non-maximum suppression; `spans [N, 2]` (start, end) are sorted by score."""
    lengths = spans[:, 1] - spans[:, 0]
    order = list(range(len(spans)))
    keep = []
    while order:
        best, rest = order[0], order[1:]
        keep.append(best)
        survivors = []
        for j in rest:
            inter = max(0.0, min(spans[best, 1], spans[j, 1]) - max(spans[best, 0], spans[j, 0]))
            if inter / (lengths[best] + lengths[j] - inter) <= overlap:
                survivors.append(j)
        order = survivors
    return keep


def _map_at(frame_scores, th, segments, labels, classlist) -> float:
    # Video-level class score: mean of the top int(F/16) frame scores; a class whose score is not
    # positive is zeroed for that video.
    class_scores, masked = [], []
    for p in frame_scores:
        desc = -p
        for c in range(desc.shape[1]):
            desc[:, c].sort()
        desc = -desc
        top = desc[: int(desc.shape[0] / 16)]
        cs = np.mean(top, axis=0) if len(top) else np.full(desc.shape[1], np.nan)  # empty -> NaN
        class_scores.append(cs)
        masked.append(p * (cs > 0.0))

    aps = []
    for c in range(len(classlist)):
        # Predictions: runs of frames above the per-video threshold.
        predictions = []
        for v, p in enumerate(masked):
            x = p[:, c]
            threshold = np.max(x) - (np.max(x) - np.min(x)) * np.float64(0.6)
            on = np.concatenate([np.zeros(1), (x > threshold).astype("float32"), np.zeros(1)])
            steps = [on[t] - on[t - 1] for t in range(1, len(on))]
            starts = [t for t, d in enumerate(steps) if d == 1]
            ends = [t for t, d in enumerate(steps) if d == -1]
            found = []
            for s, e in zip(starts, ends):
                if e - s >= 2:
                    found.append([v, s, e, np.max(x[s:e]) + 0.7 * class_scores[v][c]])
            if found:
                found = np.array(found)
                found = found[np.argsort(-found[:, 3])]
                predictions.extend(list(found[_nms(found[:, 1:3], 0.6)]))
        if len(predictions) == 0:
            return 0.0  # official: one class without any prediction zeroes the whole mAP
        predictions = np.array(predictions)
        predictions = predictions[np.argsort(-predictions[:, 3])]

        ground_truth = [[v, seg[0], seg[1]] for v in range(len(segments))
                        for seg, lab in zip(segments[v], labels[v]) if lab == classlist[c]]
        n_gt = len(ground_truth)

        # Greedy matching in score order, frames as integer sets.
        tp = []
        for v, s, e, _ in predictions:
            hit, best_iou, best_j = 0.0, 0.0, None
            for j, (gv, gs, ge) in enumerate(ground_truth):
                if gv == v:
                    g = set(range(int(gs), int(ge)))
                    q = set(range(int(s), int(e)))
                    iou = float(len(g & q)) / float(len(g | q))
                    if iou >= th:
                        hit = 1.0
                        if iou > best_iou:
                            best_iou, best_j = iou, j
            if hit:
                del ground_truth[best_j]
            tp.append(hit)
        tp = np.array(tp)
        tp_cum = np.cumsum(tp)
        fp_cum = np.cumsum(1.0 - tp)
        aps.append(0.0 if tp.sum() == 0 else np.sum(tp_cum / (tp_cum + fp_cum) * tp) / n_gt)
    return float(100 * np.mean(aps))
