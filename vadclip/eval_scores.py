"""The official metrics of a test set from per-video scores, whatever produced the scores.

The definitions live in `evaluate` (one place for the metrics); this module names the split for
other scorers (checkpoint ensembles, test-time resampling, smoothing: `improvements`):

    scores = score_eval_set_official(model, eval_set)     # = evaluate.score_eval_set
    result = metrics_of_scores(eval_set, scores)           # = evaluate.evaluate(model, eval_set)
"""
from __future__ import annotations

from .evaluate import EvalScores, metrics_of_scores, score_eval_set_official

__all__ = ["EvalScores", "metrics_of_scores", "score_eval_set_official"]
