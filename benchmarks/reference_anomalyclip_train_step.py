"""A plain per-clip transcription of the official AnomalyCLIP training step, as a baseline for
`vadclip.anomalyclip.train.train_step`.

The structure of the official code (`AnomalyCLIP.forward`, `SelectorModel`, `TemporalModel`,
`ComputeLoss`), written out with the same loops: frames flattened to ``[B * F, D]``, the top-k /
bottom-k chosen and gathered one clip at a time, the direction losses collected class by class,
the joint probabilities of every frame built with a concatenation and gathered with expanded
indices, the smoothness term through a shifted copy. The temporal model runs in the official
``[b, d, n, l]`` layout through the model's own `axial_attention.AxialImageTransformer`. Text
features come from the model (the same prompt learner and text tower in both steps).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn

if TYPE_CHECKING:
    from vadclip.anomalyclip.model import AnomalyCLIP


def official_forward(model: AnomalyCLIP, features: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor):
    """features [B, S*L, D] -> (logits [B*F, A], scores [B*F], idx_topk_abn, idx_topk_nor, idx_bottomk_abn)."""
    cfg = model.config
    S, L, k = cfg.num_segments, cfg.seg_length, cfg.normal_id
    B, _, D = features.shape
    image_features = features.reshape(-1, D)
    text_features = model.text_features()
    ncentroid = model.ncentroid

    # SelectorModel.forward
    text_abn = torch.cat((text_features[:k], text_features[k + 1:]), dim=0) - ncentroid
    centred = image_features - ncentroid
    text_abn = text_abn / text_abn.norm(dim=-1, keepdim=True)
    logits = model.selector_model.bn_layer(centred @ text_abn.T)
    logits = logits.view(-1, S * L, logits.shape[-1])
    A = logits.shape[-1]
    mask = keep.unsqueeze(2).expand([-1, -1, A]).to(logits.device)

    logits_sum = torch.sum(logits.view(-1, S, L, A), dim=2)
    top_drop = torch.where(mask == 0, torch.ones_like(logits_sum) * -1e6, logits_sum)
    bottom_drop = torch.where(mask == 0, torch.ones_like(logits_sum) * 1e6, logits_sum)
    alabels = labels[: B // 2]
    alabels = torch.where(alabels > k, alabels - 1, alabels)
    idx_topk_abn, idx_bottomk_abn = [], []
    for a_top, a_bottom, y in zip(top_drop[: B // 2], bottom_drop[: B // 2], alabels):
        idx_topk_abn.append(torch.topk(a_top[:, y], 3, dim=0, largest=True)[1].unsqueeze(0))
        idx_bottomk_abn.append(torch.topk(a_bottom[:, y], 3, dim=0, largest=False)[1].unsqueeze(0))
    idx_topk_abn, idx_bottomk_abn = torch.cat(idx_topk_abn), torch.cat(idx_bottomk_abn)
    idx_topk_nor = torch.topk(torch.sum(top_drop[B // 2:], dim=2), k=3, dim=1, largest=True)[1]
    logits = logits.view(-1, A)

    # TemporalModel.forward (training layout)
    tm = model.temporal_model
    x = centred
    if cfg.concat:
        x = torch.cat((logits, x), dim=-1)
    x = tm.projection(x)
    E = x.shape[-1]
    x = x.view(-1, S, L, E).permute(0, 3, 1, 2)
    x = tm.axial_attn(x)
    x = x.permute(0, 2, 3, 1).reshape(-1, E)
    scores = torch.sigmoid(tm.classifier.linear(tm.classifier.layer_norm(x))).view(-1)
    return logits, scores, idx_topk_abn.detach(), idx_topk_nor.detach(), idx_bottomk_abn.detach()


def official_losses(logits, scores, labels, idx_topk_abn, idx_topk_nor, idx_bottomk_abn, normal_id: int,
                    S: int = 32, L: int = 16, smooth_weight: float = 8e-4, sparse_weight: float = 8e-3) -> dict:
    """`ComputeLoss.__call__` (weights 1 except smooth and sparse) with its loops."""
    A = logits.shape[1]
    C = A + 1
    B = labels.shape[0]
    alabels, nlabels = labels[: B // 2], labels[B // 2:]
    lg = logits.view(B, S, L, A)
    # the selected segments' frames, clip by clip (SelectorModel.select_topk / select_bottomk)
    top = torch.cat([torch.gather(lg[i], 0, idx_topk_abn[i].view(-1, 1, 1).expand(-1, L, A))
                     for i in range(B // 2)]).view(-1, A)
    alabels_top = alabels.repeat_interleave(3 * L)
    alabels_top = torch.where(alabels_top > normal_id, alabels_top - 1, alabels_top)
    picked = []
    for c in range(A):
        rows = (alabels_top == c).nonzero(as_tuple=True)[0]
        if rows.nelement():
            picked.append(top[rows, c])
    dir_abn = -1.0 * torch.cat(picked).mean()
    dir_nor = logits[logits.shape[0] // 2:].max(dim=1)[0].mean()

    probs = torch.softmax(logits, dim=1) * scores.unsqueeze(1)
    probs = torch.cat((probs[:, :normal_id], (1 - scores).unsqueeze(1), probs[:, normal_id:]), dim=1)
    probs = probs.view(-1, S, L, C)
    a_probs, n_probs = probs[: B // 2], probs[B // 2:]
    gather = lambda p, idx: torch.gather(p, 1, idx.unsqueeze(2).unsqueeze(3).expand([-1, -1, L, C])).view(-1, C)
    nll = nn.NLLLoss()
    topk_abn = nll(torch.log(gather(a_probs, idx_topk_abn)), alabels.repeat_interleave(3 * L))
    bottomk_abn = nll(torch.log(gather(a_probs, idx_bottomk_abn)),
                      torch.full((B // 2 * 3 * L,), normal_id, dtype=torch.long, device=logits.device))
    topk_nor = nll(torch.log(gather(n_probs, idx_topk_nor)), nlabels.repeat_interleave(3 * L))

    abn_scores = scores[: scores.shape[0] // 2]
    shifted = torch.zeros_like(abn_scores)
    shifted[:-1] = abn_scores[1:]
    shifted[-1] = abn_scores[-1]
    smooth = smooth_weight * torch.sum((shifted - abn_scores) ** 2)
    sparse = sparse_weight * torch.mean(abn_scores)
    terms = {"dir_abn": dir_abn, "dir_nor": dir_nor, "topk_abn": topk_abn, "bottomk_abn": bottomk_abn,
             "topk_nor": topk_nor, "smooth": smooth, "sparse": sparse}
    total = dir_abn + dir_nor + topk_abn + bottomk_abn + topk_nor + smooth + sparse
    return {"loss": total, **terms}


def official_train_step(model: AnomalyCLIP, optimizer: torch.optim.Optimizer, features: torch.Tensor,
                        labels: torch.Tensor, keep: torch.Tensor) -> dict[str, float]:
    """One optimizer step the official way; the loss terms as floats."""
    cfg = model.config
    logits, scores, i_top_a, i_top_n, i_bot_a = official_forward(model, features, labels, keep)
    losses = official_losses(logits, scores, labels, i_top_a, i_top_n, i_bot_a, cfg.normal_id,
                             cfg.num_segments, cfg.seg_length)
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    optimizer.step()
    return {name: value.detach().item() for name, value in losses.items()}
