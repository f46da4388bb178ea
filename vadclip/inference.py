"""Scoring pre-extracted snippet features with a VadCLIP model (the official test-time path)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .errors import UserError
from .model import VadCLIP
from .utils import in_groups


@dataclass
class FeatureScores:
    """Per-snippet scores of one video (N snippets, C classes)."""

    coarse_c: np.ndarray      # [N] C-branch anomaly score, sigmoid(logit_c)
    coarse_a: np.ndarray      # [N] A-branch anomaly score, 1 - softmax(logit_a)[normal]
    fine: np.ndarray          # [N, C] class probabilities, softmax(logit_a)
    class_names: list[str]
    random_weights: bool = False   # True when the CLIP under the model has random weights


def chunk_features(features: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, D] -> ([ceil(N/T), T, D] chunks, last zero-padded; [n_chunks] lengths)."""
    n, d = features.shape
    n_chunks = -(-n // length)
    padded = features.new_zeros(n_chunks * length, d)
    padded[:n] = features
    lengths = torch.full((n_chunks,), length, dtype=torch.long)
    lengths[-1] = n - (n_chunks - 1) * length
    return padded.view(n_chunks, length, d), lengths


def check_feature_array(features: np.ndarray, dim: int) -> np.ndarray:
    """Check a [N, D] feature array; return it as float32. Raises ValueError naming the problem."""
    arr = np.asarray(features)
    if arr.ndim != 2 or arr.shape[0] < 1:
        raise UserError(f"features must be a [N, {dim}] array with N >= 1, got shape {arr.shape}")
    if arr.shape[1] != dim:
        raise UserError(f"features have {arr.shape[1]} dimensions, the model expects {dim}")
    if not np.issubdtype(arr.dtype, np.number):
        raise UserError(f"features must be numeric, got {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise UserError("features contain NaN or Inf")
    return arr


@torch.no_grad()
def score_features(model: VadCLIP, features: np.ndarray, class_names: list[str] | None = None,
                   max_chunks_per_batch: int = 64, text_features: torch.Tensor | None = None) -> FeatureScores:
    """Score a [N, D] array of snippet features (any N >= 1) like the official test code.

    The video is cut into chunks of T snippets (the last zero-padded), all chunks run as a batch
    (in groups of `max_chunks_per_batch` to bound memory; halved on an out-of-memory error), and
    the first N outputs are kept.
    `class_names` defaults to the model's preset vocabulary; `text_features` ([C, D] from
    `model.encode_text`) skips the text encoder when scoring many videos with one vocabulary.
    """
    names = list(class_names) if class_names is not None else list(model.config.class_names)
    arr = check_feature_array(features, model.config.visual_width)
    was_training = model.training
    model.eval()
    device = model.frame_position_embeddings.weight.device
    chunks, lengths = chunk_features(torch.from_numpy(arr), model.config.visual_length)
    t0 = model.encode_text(names) if text_features is None else text_features

    def run(start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        out = model(chunks[start:stop].to(device), lengths[start:stop].to(device), names, text_features=t0)
        return out.logits_c.reshape(-1), out.logits_a.reshape(-1, len(names))

    try:
        outputs, _ = in_groups(run, len(chunks), max_chunks_per_batch, device)
    finally:
        model.train(was_training)
    logits_c, logits_a = zip(*outputs)
    n = arr.shape[0]
    lc = torch.cat(logits_c)[:n].float()
    la = torch.cat(logits_a)[:n].float()
    fine = la.softmax(dim=-1)
    return FeatureScores(
        coarse_c=torch.sigmoid(lc).cpu().numpy(),
        coarse_a=(1 - fine[:, 0]).cpu().numpy(),
        fine=fine.cpu().numpy(),
        class_names=names,
        random_weights=model.clip_info.random_weights,
    )
