"""The official VadCLIP training losses, batched over videos of different lengths.

Shapes: B videos, T positions (padded), C classes; `lengths [B]` are the valid positions.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def topk_per_video(lengths: torch.Tensor) -> torch.Tensor:
    """k = int(L / 16 + 1) for each video length L."""
    return torch.div(lengths, 16, rounding_mode="floor").long() + 1


def topk_mean(values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean of the top-k values over the first L positions of each video.

    values [B, T, K] (K channels pooled independently), lengths [B] -> [B, K], k per video from
    `topk_per_video`. Vectorised: one topk with the largest k, then a rank mask.
    """
    B, T, _ = values.shape
    lengths = lengths.to(values.device)
    k = topk_per_video(lengths)
    valid = torch.arange(T, device=values.device)[None, :] < lengths[:, None]        # [B, T]
    masked = values.masked_fill(~valid[..., None], float("-inf"))
    top = masked.topk(int(k.max().clamp(max=T)), dim=1).values                         # [B, kmax, K]
    keep = torch.arange(top.shape[1], device=values.device)[None, :] < k[:, None]       # [B, kmax]
    top = top.masked_fill(~keep[..., None], 0.0)
    return top.sum(dim=1) / k[:, None].to(values.dtype)


def loss_c(logits_c: torch.Tensor, lengths: torch.Tensor, abnormal: torch.Tensor) -> torch.Tensor:
    """C-branch MIL loss: BCE of the top-k mean of sigmoid(logit_c) against the video label.

    logits_c [B, T, 1]; abnormal [B] (1 for any abnormal video, 0 for normal).
    """
    video_score = topk_mean(torch.sigmoid(logits_c), lengths).squeeze(-1)
    return F.binary_cross_entropy(video_score, abnormal.to(video_score.dtype))


def loss_mil_align(logits_a: torch.Tensor, lengths: torch.Tensor, multi_hot: torch.Tensor) -> torch.Tensor:
    """MIL-Align: cross-entropy of the per-class top-k mean logits against the normalised labels.

    logits_a [B, T, C]; multi_hot [B, C] video labels (index 0 = normal).
    """
    video_logits = topk_mean(logits_a, lengths)                                         # [B, C]
    target = multi_hot.to(video_logits.dtype)
    target = target / target.sum(dim=1, keepdim=True)
    return -(target * F.log_softmax(video_logits, dim=1)).sum(dim=1).mean()


def loss_contrastive(text_features: torch.Tensor) -> torch.Tensor:
    """Mean |cos| between the normal class embedding and each abnormal one (before its weight)."""
    t = F.normalize(text_features, dim=-1)
    return (t[1:] @ t[0]).abs().sum() / (t.shape[0] - 1)


def total_loss(out, lengths: torch.Tensor, multi_hot: torch.Tensor, contrast_weight: float) -> dict[str, torch.Tensor]:
    """All three losses and their weighted sum for one `VadCLIPOutput`."""
    lc = loss_c(out.logits_c, lengths, 1 - multi_hot[:, 0])
    la = loss_mil_align(out.logits_a, lengths, multi_hot)
    lt = loss_contrastive(out.text_features)
    return {"loss": lc + la + contrast_weight * lt, "loss_c": lc, "loss_a": la, "loss_contrast": lt}
