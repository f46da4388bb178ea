"""Scoring one video's per-frame features with AnomalyCLIP (the official test computation).

Official test step, per video of N frames: wrap-around padding to F' = 512 s frames (frame i %
N), s interleaved 32 x 16 grids, eval BatchNorm, sigmoid scores and joint class probabilities,
the first N frames kept. Here the text directions come from the model's per-vocabulary cache,
the per-frame steps (selector, input projection) run once per frame of the unpadded video, and
the interleaved grids are gathered from their output and run in batches of `max_grids_per_batch`
(halved on an out-of-memory error) to bound memory on long videos.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..inference import check_feature_array
from ..utils import in_groups
from .model import AnomalyCLIP

FRAME_BLOCK = 65536     # frames per block of the per-frame steps (bounds their memory)


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


def _frame_steps(model: AnomalyCLIP, features: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[n, D] frames -> (logits [n, A], temporal model input projected to [n, E])."""
    x, _, logits = model.frame_logits(features, directions)
    return logits, model.temporal_model.projection(model.temporal_input(x, logits))


@torch.no_grad()
def score_frames(model: AnomalyCLIP, features: np.ndarray | torch.Tensor, class_names: list[str] | None = None,
                 max_grids_per_batch: int = 16) -> FrameScores:
    """Score one video's [N, 512] per-frame CLIP features (any N >= 1) like the official test code.

    `class_names` may reword the model's classes (same count and order); default: its own.
    Raises a `UserError` on malformed features (shape, NaN / Inf) or class names (`VocabularyError`).
    """
    names = model.check_class_names(class_names)
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    arr = check_feature_array(features, model.config.feature_dim)
    cfg = model.config
    device = model.ncentroid.device
    was_training = model.training
    model.eval()
    try:
        directions = model.cached_directions(names)
        frames = torch.from_numpy(arr).to(device)
        # per-frame steps (selector, input projection) on the unpadded frames, in row blocks
        parts = [_frame_steps(model, block, directions) for block in frames.split(FRAME_BLOCK)]
        logits = torch.cat([p[0] for p in parts])                                  # [N, A]
        h = torch.cat([p[1] for p in parts])                                       # [N, E]
        index = grid_frame_index(len(arr), cfg.num_segments, cfg.seg_length).to(device)   # [s, S, L]
        outputs, _ = in_groups(lambda start, stop: model.grid_scores(h[index[start:stop]])[1],
                               index.shape[0], max_grids_per_batch, device)
    finally:
        model.train(was_training)
    # grid order [s, S, L] -> frame order [S, s, L]; the first N frames are the video
    scores = torch.cat(outputs).transpose(0, 1).reshape(-1)[:len(arr)]
    probs = model.class_probs(logits, scores)
    return FrameScores(
        scores=scores.float().cpu().numpy(),
        class_probs=probs.float().cpu().numpy(),
        class_names=names,
        normal_id=cfg.normal_id,
        logits=logits.float().cpu().numpy(),
        random_weights=model.clip_info.random_weights,
    )
