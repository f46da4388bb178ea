"""The official AnomalyCLIP test metrics (its `test_epoch_end`, torchmetrics 0.11.0 definitions).

All test frames of all videos concatenated: binary ROC-AUC / AP of the anomaly scores, one-vs-rest
ROC-AUC / AP of the joint class probabilities, Youden's threshold, and per-class top-1 / top-5
accuracy of the thresholded predictions. Where torchmetrics returns a value for a degenerate case,
the same value is returned here: ROC-AUC 0 for a class without positive (or negative) frames, AP
NaN for a class without positive frames, accuracy NaN for a class without frames.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..metrics import frame_ap, frame_auc


def _roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    if positive.all() or not positive.any():
        return 0.0                      # torchmetrics: a zero TPR (or FPR) curve, area 0
    return frame_auc(scores, positive.astype(np.int64))


def _average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    if not positive.any():
        return float("nan")             # torchmetrics: recall 0 / 0
    return frame_ap(scores, positive.astype(np.int64))


def youden_threshold(scores: np.ndarray, positive: np.ndarray) -> float:
    """The score threshold maximising TPR - FPR on torchmetrics' exact ROC (float32 arithmetic,
    first maximum; its curve starts at threshold 1.0)."""
    s = scores.astype(np.float32)
    order = np.argsort(-s, kind="stable")
    s_sorted, pos_sorted = s[order], positive[order].astype(np.float32)
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s_sorted) - 1]     # last index of each value
    tps = np.cumsum(pos_sorted, dtype=np.float32)[last]
    fps = (last + 1).astype(np.float32) - tps
    tps, fps = np.r_[np.float32(0), tps], np.r_[np.float32(0), fps]
    thresholds = np.r_[np.float32(1), s_sorted[last]]
    tpr = tps / tps[-1] if tps[-1] > 0 else np.zeros_like(tps)
    fpr = fps / fps[-1] if fps[-1] > 0 else np.zeros_like(fps)
    return float(thresholds[np.argmax(tpr - fpr)])


def _check(scores, class_probs, frame_labels, normal_id) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float32)
    p = np.asarray(class_probs, dtype=np.float32)
    y = np.asarray(frame_labels)
    if s.ndim != 1 or len(s) == 0:
        raise ValueError(f"scores must be a non-empty 1-D array, got shape {s.shape}")
    if p.ndim != 2 or p.shape[0] != len(s) or p.shape[1] < 2:
        raise ValueError(f"class_probs must be [N={len(s)}, C >= 2], got shape {p.shape}")
    if y.shape != s.shape:
        raise ValueError(f"frame_labels must be [N={len(s)}], got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"frame_labels must be integer class ids, got {y.dtype}")
    C = p.shape[1]
    if not 0 <= normal_id < C:
        raise ValueError(f"normal_id {normal_id} outside the {C} classes")
    if y.min() < 0 or y.max() >= C:
        raise ValueError(f"frame_labels must be class ids in [0, {C}), got values in [{y.min()}, {y.max()}]")
    if not (np.isfinite(s).all() and np.isfinite(p).all()):
        raise ValueError("scores and class_probs must be finite (no NaN / Inf)")
    if s.min() < 0 or s.max() > 1 or p.min() < 0 or p.max() > 1:
        raise ValueError("scores and class_probs must be probabilities in [0, 1]")
    return s, p, y.astype(np.int64)


def frame_metrics(scores: ArrayLike, class_probs: ArrayLike, frame_labels: ArrayLike, normal_id: int) -> dict:
    """The official metrics over all test frames.

    scores [N] anomaly scores, class_probs [N, C] joint probabilities (normal column included),
    frame_labels [N] class ids (normal_id = normal frame). Returns a dict with `auc_roc`,
    `auc_pr`, `mc_auroc` [C], `mc_aupr` [C], `mean_mc_auroc`, `mean_mc_aupr` (NaN-means over
    the abnormal classes, zeros counted as absent), `optimal_threshold` (Youden), and
    `top1_accuracy` [C], `top5_accuracy` [C] (a frame is predicted normal below the threshold,
    else by its most probable abnormal classes; top-5 puts normal first when predicted normal).
    """
    s, p, y = _check(scores, class_probs, frame_labels, normal_id)
    C = p.shape[1]
    abnormal = y != normal_id
    threshold = youden_threshold(s, abnormal)

    mc_auroc = np.array([_roc_auc(p[:, k], y == k) for k in range(C)])
    mc_aupr = np.array([_average_precision(p[:, k], y == k) for k in range(C)])

    def abnormal_mean(values: np.ndarray) -> float:
        v = np.delete(values, normal_id)
        v = np.where(v == 0, np.nan, v)
        return float(np.nanmean(v)) if not np.isnan(v).all() else float("nan")

    # predictions: normal below the threshold, else the abnormal classes by joint probability
    p_abn = np.delete(p, normal_id, axis=1)
    k5 = min(5, p_abn.shape[1])
    ranked = np.argsort(-p_abn, axis=1, kind="stable")[:, :k5]
    ranked = ranked + (ranked >= normal_id)                          # back to class ids
    is_normal = s < threshold
    top1 = np.where(is_normal, normal_id, ranked[:, 0])
    top5 = np.where(is_normal[:, None], np.c_[np.full(len(s), normal_id), ranked[:, :k5 - 1]], ranked)
    top1_acc, top5_acc = [], []
    for k in range(C):
        rows = y == k
        top1_acc.append(float(np.mean(top1[rows] == k)) if rows.any() else float("nan"))
        top5_acc.append(float(np.mean((top5[rows] == k).any(axis=1))) if rows.any() else float("nan"))

    return {
        "auc_roc": _roc_auc(s, abnormal),
        "auc_pr": _average_precision(s, abnormal),
        "mc_auroc": mc_auroc.tolist(),
        "mc_aupr": mc_aupr.tolist(),
        "mean_mc_auroc": abnormal_mean(mc_auroc),
        "mean_mc_aupr": abnormal_mean(mc_aupr),
        "optimal_threshold": threshold,
        "top1_accuracy": top1_acc,
        "top5_accuracy": top5_acc,
    }
