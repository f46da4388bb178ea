"""The official metrics of a test set from per-video scores, whatever produced the scores.

`evaluate.evaluate` scores a test set with one model the official way and computes the metrics;
this module splits the two so that other scorers (checkpoint ensembles, test-time resampling,
smoothing: `improvements`) are measured with exactly the same metric code:

    scores = score_eval_set_official(model, eval_set)     # = evaluate.score_eval_set
    result = metrics_of_scores(eval_set, scores)           # = evaluate.evaluate(model, eval_set)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import metrics
from .evaluate import EvalResult, EvalSet, score_eval_set
from .model import VadCLIP


@dataclass
class EvalScores:
    """Per-video snippet scores of a test set (lists in the test set's video order)."""

    coarse_c: list[np.ndarray]      # [N_i] C-branch anomaly scores
    coarse_a: list[np.ndarray]      # [N_i] A-branch anomaly scores, 1 - fine[:, normal]
    fine: list[np.ndarray]          # [N_i, C] class probabilities
    random_weights: bool = False


def score_eval_set_official(model: VadCLIP, eval_set: EvalSet) -> EvalScores:
    """The official test-time scores of every video (`evaluate.score_eval_set`)."""
    coarse_c, coarse_a, fine = score_eval_set(model, eval_set)
    return EvalScores(coarse_c, coarse_a, fine, model.clip_info.random_weights)


def metrics_of_scores(eval_set: EvalSet, scores: EvalScores) -> EvalResult:
    """Frame AUC / AP / AnoAUC of both branches and the detection mAP, as `evaluate.evaluate` computes them."""
    if [len(s) for s in scores.coarse_c] != eval_set.n_snippets:
        raise ValueError("scores do not match the test set's videos (count or lengths differ)")
    frames = metrics.snippets_to_frames
    gt = eval_set.frame_gt
    abnormal_frames = np.repeat(eval_set.abnormal_video, np.array(eval_set.n_snippets) * metrics.FRAMES_PER_SNIPPET)
    result = {}
    for branch, branch_scores in (("c", scores.coarse_c), ("a", scores.coarse_a)):
        s = frames(np.concatenate(branch_scores))
        result[f"auc_{branch}"] = metrics.frame_auc(s, gt)
        result[f"ap_{branch}"] = metrics.frame_ap(s, gt)
        result[f"anoauc_{branch}"] = (metrics.frame_auc(s[abnormal_frames], gt[abnormal_frames])
                                      if abnormal_frames.any() else float("nan"))
    map_percent = None
    if eval_set.det_segments is not None:
        map_percent = metrics.detection_map(scores.fine, eval_set.det_segments, eval_set.det_labels,
                                            eval_set.det_classlist, iou_thresholds=metrics.IOU_THRESHOLDS)
    return EvalResult(**result, map_percent=map_percent, n_videos=len(eval_set.names),
                      random_weights=scores.random_weights)
