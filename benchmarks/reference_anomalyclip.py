"""The official AnomalyCLIP test computation, transcribed plainly (baseline and cross-check).

Uses the weights of a `vadclip.anomalyclip.AnomalyCLIP` model but computes as the official
`test_step` does for one video (batch 1): the test dataset's wrap-around padding, the prompt
learner and the text encoder over all 77 positions on every call, the selector on the flattened
frames, the temporal model's rearranges and `axial_attention`'s own reversible forward, then the
softmax / joint probabilities and `test_epoch_end`'s normal column. No caching, no batching tricks.
With `per_grid=True` each of the s interleaved grids goes through the axial transformer alone.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from vadclip.anomalyclip.model import AnomalyCLIP


def official_text_features(model: AnomalyCLIP) -> torch.Tensor:
    """PromptLearner.forward + TextEncoder.forward: [C, D]."""
    pl, clip = model.prompt_learner, model.clipmodel
    prompts = torch.cat([pl.token_prefix, pl.ctx, pl.token_suffix], dim=1)
    tokenized = model.tokenizer([f"{' '.join(['X'] * model.config.n_ctx)} {n.replace('_', ' ')}."
                                 for n in model.config.class_names])
    x = prompts + clip.positional_embedding
    x = clip.transformer(x, attn_mask=clip.attn_mask)
    x = clip.ln_final(x)
    return x[torch.arange(x.shape[0]), tokenized.argmax(dim=-1)] @ clip.text_projection


def official_test_step(model: AnomalyCLIP, features: np.ndarray, per_grid: bool = False) -> dict:
    """One video's official test outputs: scores [N], class_probs [N, C] (normal column
    inserted), and the padded logits [F', A], proj_raw [F', A], temporal [F', E]."""
    cfg = model.config
    feats = torch.as_tensor(np.asarray(features, dtype=np.float32))
    num_frames = feats.shape[0]
    segment_size = math.ceil(num_frames / (cfg.num_segments * cfg.seg_length))
    padded = cfg.num_segments * cfg.seg_length * segment_size
    image_features = feats[[i % num_frames for i in range(padded)]]                 # wrap around
    ncentroid = model.ncentroid

    text_features = official_text_features(model)
    k = cfg.normal_id
    text = torch.cat((text_features[:k], text_features[k + 1:]), dim=0) - ncentroid
    text = text / text.norm(dim=-1, keepdim=True)
    proj_raw = (image_features - ncentroid) @ text.T
    similarity = model.selector_model.bn_layer(proj_raw)

    image_features = image_features - ncentroid
    inputs = torch.cat((similarity, image_features), dim=-1) if cfg.concat else image_features

    tm = model.temporal_model
    h = tm.projection(inputs)
    S, L, E = cfg.num_segments, cfg.seg_length, h.shape[-1]
    h = h.reshape(1, S, segment_size, L, E)                          # (b n s l) d -> b n s l d
    h = h.permute(0, 2, 1, 3, 4).reshape(segment_size, S, L, E)      # -> (b s) n l d
    h = h.permute(0, 3, 1, 2)                                        # -> b d n l
    if per_grid:
        h = torch.cat([tm.axial_attn(h[j:j + 1]) for j in range(segment_size)])
    else:
        h = tm.axial_attn(h)
    h = h.permute(0, 2, 3, 1)                                        # b d n l -> b n l d
    h = h.reshape(1, segment_size, S, L, E).permute(0, 2, 1, 3, 4)   # (b s) n l d -> b n s l d
    temporal = h.reshape(-1, E)                                      # -> (b n s l) d
    scores = tm.classifier.linear(tm.classifier.layer_norm(temporal)).sigmoid().view(-1)

    softmax_similarity = torch.softmax(similarity, dim=1)
    class_probs = softmax_similarity * scores.unsqueeze(1)
    class_probs, abnormal_scores = class_probs[:num_frames], scores[:num_frames]
    normal_probs = (1 - abnormal_scores).unsqueeze(1)
    class_probs = torch.cat((class_probs[:, :k], normal_probs, class_probs[:, k:]), dim=1)
    return {"scores": abnormal_scores, "class_probs": class_probs, "logits": similarity,
            "proj_raw": proj_raw, "temporal": temporal}
