"""Scoring one video's per-frame features with AnomalyCLIP (the official test computation).

Official test step, per video of N frames: wrap-around padding to F' = 512 s frames (frame i %
N), s interleaved 32 x 16 grids, eval BatchNorm, sigmoid scores and joint class probabilities,
the first N frames kept. Here the text directions come from the model's per-vocabulary cache,
the grids of a video are gathered straight from the unpadded features, and they run in batches
of `max_grids_per_batch` (halved on an out-of-memory error) to bound memory on long videos.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..inference import validate_features
from ..utils import in_groups
from .model import AnomalyCLIP


@dataclass
class FrameScores:
    """Per-frame outputs of one video (N frames, C classes, A = C - 1)."""

    scores: np.ndarray          # [N] anomaly score (sigmoid)
    class_probs: np.ndarray     # [N, C] joint probabilities; column normal_id = 1 - score
    class_names: list[str]
    normal_id: int
    logits: np.ndarray          # [N, A] BatchNorm'd projections on the abnormal directions
    random_weights: bool = False   # True when the CLIP under the model has random weights


def grid_frame_index(num_frames: int, num_segments: int = 32, seg_length: int = 16) -> torch.Tensor:
    """[s, S, L] frame indices of the official test layout: grid j, row n, column l holds frame
    ((n s + j) L + l) % N of the video wrapped around to s = ceil(N / (S L)) grids."""
    s = -(-num_frames // (num_segments * seg_length))
    j = torch.arange(s)[:, None, None]
    n = torch.arange(num_segments)[None, :, None]
    l = torch.arange(seg_length)[None, None, :]
    return ((n * s + j) * seg_length + l) % num_frames


@torch.no_grad()
def score_frames(model: AnomalyCLIP, features: np.ndarray | torch.Tensor, class_names: list[str] | None = None,
                 max_grids_per_batch: int = 64) -> FrameScores:
    """Score one video's [N, 512] per-frame CLIP features (any N >= 1) like the official test code.

    `class_names` may reword the model's classes (same count and order); default: its own.
    Raises ValueError on malformed features (shape, NaN / Inf) or class names.
    """
    names = model.check_class_names(class_names)
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    arr = validate_features(features, model.config.feature_dim)
    cfg = model.config
    device = model.ncentroid.device
    was_training = model.training
    model.eval()
    try:
        directions = model.cached_directions(names)
        frames = torch.from_numpy(arr).to(device)
        index = grid_frame_index(len(arr), cfg.num_segments, cfg.seg_length).to(device)

        def run(start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
            x, _, logits = model.frame_logits(frames[index[start:stop]], directions)      # [g, S, L, *]
            h = model.temporal_model.projection(model.temporal_input(x, logits))
            return logits, model.grid_scores(h)[1]

        outputs, _ = in_groups(run, index.shape[0], max_grids_per_batch, device)
    finally:
        model.train(was_training)
    logits = torch.cat([o[0] for o in outputs])                     # [s, S, L, A]
    scores = torch.cat([o[1] for o in outputs])                     # [s, S, L]
    n = len(arr)
    # grid order [s, S, L] -> frame order [S, s, L]
    logits = logits.transpose(0, 1).reshape(-1, logits.shape[-1])[:n]
    scores = scores.transpose(0, 1).reshape(-1)[:n]
    probs = model.class_probs(logits, scores)
    return FrameScores(
        scores=scores.float().cpu().numpy(),
        class_probs=probs.float().cpu().numpy(),
        class_names=names,
        normal_id=cfg.normal_id,
        logits=logits.float().cpu().numpy(),
        random_weights=model.clip_info.random_weights,
    )
