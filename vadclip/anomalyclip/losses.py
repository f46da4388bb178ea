"""AnomalyCLIP's segment selection and its seven training losses, for a whole batch at once.

A training batch holds B clips, the abnormal half first, each clip a 32 x 16 grid of frames
(spec "Training"). With ``h = B // 2``, S segments of L frames and A abnormal classes:

- selection (no gradient): segment sums of the logits ``[B, S, A]``; a Bernoulli keep mask
  ``[B, S]`` sets dropped segments to -1e6 for the top-k and +1e6 for the bottom-k (so when fewer
  than k segments survive, dropped ones fill up the k); an abnormal clip of class y takes its top-k
  and bottom-k segments by the column of y, a normal clip its top-k by the sum over the A columns;
- losses: the two direction losses on the logits, the three NLL losses on the joint probabilities
  (abnormal class j: ``softmax(logits)_j * score``, normal: ``1 - score``; ``log`` unclamped as in
  the official code), smoothness (a sum over the abnormal half's scores flattened, crossing clip
  boundaries) and sparsity.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

DROP_LOW, DROP_HIGH = -1e6, 1e6      # what dropped segments score for the top-k / the bottom-k
LOSS_NAMES = ("dir_abn", "dir_nor", "topk_abn", "bottomk_abn", "topk_nor", "smooth", "sparse")


@dataclass(frozen=True)
class Selection:
    """Selected segment indices (``torch.topk`` order), each ``[B // 2, k]``."""

    topk_abn: torch.Tensor
    topk_nor: torch.Tensor
    bottomk_abn: torch.Tensor


def draw_keep_mask(batch_size: int, num_segments: int, dropout: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """The official keep mask ``[B, S]`` (float32, CPU): 1 keeps a segment with probability 1 - dropout.

    The official selector draws a top-k mask, then a bottom-k mask, and (equal dropouts) uses the
    bottom-k one for both; both draws are made here so that the generator advances the same way.
    `generator` None is torch's global generator, as in the official code.
    """
    p = torch.full((batch_size, num_segments), 1.0 - dropout)
    torch.bernoulli(p, generator=generator)          # the top-k mask, replaced by the bottom-k one
    return torch.bernoulli(p, generator=generator)


def abnormal_column(labels: torch.Tensor, normal_id: int) -> torch.Tensor:
    """Class index -> column among the A abnormal classes (the normal class removed)."""
    return labels - (labels > normal_id).long()


def select_segments(logits: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor, normal_id: int,
                    num_segments: int = 32, topk: int = 3, bottomk: int = 3) -> Selection:
    """Top-k / bottom-k segments of every clip from logits ``[B, F, A]`` (F = S * L), labels ``[B]``."""
    B, F, A = logits.shape
    h = B // 2
    with torch.no_grad():
        sums = logits.detach().view(B, num_segments, F // num_segments, A).sum(dim=2)      # [B, S, A]
        dropped = (keep.to(sums.device) == 0).unsqueeze(2)                                # [B, S, 1]
        high = torch.where(dropped, torch.full_like(sums, DROP_LOW), sums)
        low = torch.where(dropped, torch.full_like(sums, DROP_HIGH), sums)
        column = abnormal_column(labels[:h], normal_id).view(h, 1, 1).expand(h, num_segments, 1)
        topk_abn = high[:h].gather(2, column).squeeze(2).topk(topk, dim=1, largest=True).indices
        bottomk_abn = low[:h].gather(2, column).squeeze(2).topk(bottomk, dim=1, largest=False).indices
        topk_nor = high[h:].sum(dim=2).topk(topk, dim=1, largest=True).indices
    return Selection(topk_abn=topk_abn, topk_nor=topk_nor, bottomk_abn=bottomk_abn)


def _segments(x: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Frames of the selected segments: x ``[n, F, ...]``, index ``[n, k]`` -> ``[n, k, L, ...]``."""
    grid = x.reshape(x.shape[0], num_segments, -1, *x.shape[2:])
    return grid[torch.arange(x.shape[0], device=x.device).unsqueeze(1), index]


def anomalyclip_losses(logits: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, selection: Selection,
                       normal_id: int, num_segments: int = 32, smooth_weight: float = 8e-4,
                       sparse_weight: float = 8e-3) -> dict[str, torch.Tensor]:
    """The seven official losses (weights applied) and their sum ``"loss"``.

    logits ``[B, F, A]`` (after BatchNorm), scores ``[B, F]`` (sigmoid), labels ``[B]`` (class ids,
    abnormal half first); `selection` from `select_segments` on the same logits.
    """
    B = logits.shape[0]
    h = B // 2
    column = abnormal_column(labels[:h], normal_id)                                       # [h]

    top_logits = _segments(logits[:h], selection.topk_abn, num_segments)                 # [h, k, L, A]
    own = column.view(h, 1, 1, 1).expand(*top_logits.shape[:3], 1)
    dir_abn = -top_logits.gather(3, own).mean()
    dir_nor = logits[h:].max(dim=2).values.mean()

    top_scores = _segments(scores[:h], selection.topk_abn, num_segments)                 # [h, k, L]
    p_class = torch.softmax(top_logits, dim=3).gather(3, own).squeeze(3) * top_scores
    topk_abn = -torch.log(p_class).mean()
    bottom_scores = _segments(scores[:h], selection.bottomk_abn, num_segments)
    bottomk_abn = -torch.log(1 - bottom_scores).mean()
    normal_scores = _segments(scores[h:], selection.topk_nor, num_segments)
    topk_nor = -torch.log(1 - normal_scores).mean()

    abnormal = scores[:h].reshape(-1)
    smooth = smooth_weight * (abnormal[1:] - abnormal[:-1]).pow(2).sum()
    sparse = sparse_weight * abnormal.mean()

    terms = {"dir_abn": dir_abn, "dir_nor": dir_nor, "topk_abn": topk_abn, "bottomk_abn": bottomk_abn,
             "topk_nor": topk_nor, "smooth": smooth, "sparse": sparse}
    return {"loss": sum(terms.values()), **terms}
