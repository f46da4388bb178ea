"""Straightforward per-video / per-class loop versions of the VadCLIP forward pass.

Used only as baselines (benchmarks) and cross-checks (tests). They use the weights of a
`vadclip.VadCLIP` model but compute the way the official code does: a Python loop over videos for
the similarity adjacency, a loop over classes to assemble the prompts, and the distance adjacency
rebuilt with numpy on every call, the local transformer as one masked nn.MultiheadAttention over
the whole clip, and QuickGELU written as x * sigmoid(1.702 x).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vadclip.model import VadCLIP


def _similarity_adjacency_loop(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    sim = x @ x.transpose(1, 2)
    norm = x.norm(p=2, dim=2, keepdim=True)
    sim = sim / (norm @ norm.transpose(1, 2) + 1e-20)
    out = torch.zeros_like(sim)
    for i in range(len(lengths)):
        L = int(lengths[i])
        out[i, :L, :L] = F.threshold(sim[i, :L, :L], 0.7, 0).softmax(dim=1)
    return out


def _distance_adjacency_numpy(batch: int, length: int) -> torch.Tensor:
    pos = np.arange(length).reshape(-1, 1)
    dist = np.abs(pos - pos.T).astype(np.float32)
    d = torch.exp(-torch.from_numpy(dist) / torch.exp(torch.tensor(1.0)))
    return d.unsqueeze(0).repeat(batch, 1, 1)


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


def official_mlp(mlp, x: torch.Tensor) -> torch.Tensor:
    return mlp.c_proj(quick_gelu(mlp.c_fc(x)))


def official_temporal(temporal, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
    """The official local transformer: nn.MultiheadAttention over the whole clip with the window mask."""
    for block in temporal.resblocks:
        h = block.ln_1(x)
        x = x + block.attn(h, h, h, need_weights=False, attn_mask=attn_mask)[0]
        x = x + official_mlp(block.mlp, block.ln_2(x))
    return x


def _encode_text_loop(model: VadCLIP, class_names: list[str]) -> torch.Tensor:
    tokens = model.tokenizer(class_names)
    clip = model.clipmodel
    word = clip.token_embedding(tokens).float()
    pre, post = model.config.prompt_prefix, model.config.prompt_postfix
    x = model.text_prompt_embeddings.weight[None].repeat(len(class_names), 1, 1)
    eot = torch.zeros(len(class_names), dtype=torch.long)
    for i in range(len(class_names)):
        k = int(tokens[i].argmax())
        x[i, 0] = word[i, 0]
        x[i, pre + 1: pre + k] = word[i, 1:k]
        x[i, pre + k + post] = word[i, k]
        eot[i] = pre + k + post
    x = clip.transformer(x + clip.positional_embedding.float(), attn_mask=clip.attn_mask)
    x = clip.ln_final(x)
    return x[torch.arange(len(class_names)), eot] @ clip.text_projection.float()


def official_style_forward(model: VadCLIP, features: torch.Tensor, lengths: torch.Tensor,
                           class_names: list[str], text_features: torch.Tensor | None = None):
    """(text_features, logits_c, logits_a) computed with the official code's loops."""
    x = features.float() + model.frame_position_embeddings.weight[None]
    x = official_temporal(model.temporal, x, model.attn_mask)
    adj = _similarity_adjacency_loop(x, lengths)
    dis = _distance_adjacency_numpy(x.shape[0], x.shape[1])
    h1 = quick_gelu(model.gc1(x, adj))
    h2 = quick_gelu(model.gc3(x, dis))
    h1 = quick_gelu(model.gc2(h1, adj))
    h2 = quick_gelu(model.gc4(h2, dis))
    X = model.linear(torch.cat([h1, h2], dim=2))
    logits_c = model.classifier(X + official_mlp(model.mlp2, X))
    t0 = _encode_text_loop(model, class_names) if text_features is None else text_features
    v = logits_c.permute(0, 2, 1) @ X
    v = v / v.norm(dim=-1, keepdim=True)
    t = t0[None].expand(X.shape[0], -1, -1) + v.expand(-1, t0.shape[0], -1)
    t = t + official_mlp(model.mlp1, t)
    logits_a = (X / X.norm(dim=-1, keepdim=True)) @ (t / t.norm(dim=-1, keepdim=True)).permute(0, 2, 1) / 0.07
    return t0, logits_c, logits_a


def per_video_forward(model: VadCLIP, features: torch.Tensor, lengths: torch.Tensor, class_names: list[str]):
    """The same computation, one video at a time (batch of 1, text encoded once), outputs stacked."""
    t0 = _encode_text_loop(model, class_names)
    outs = [official_style_forward(model, features[i:i + 1], lengths[i:i + 1], class_names, t0)
            for i in range(features.shape[0])]
    return outs[0][0], torch.cat([o[1] for o in outs]), torch.cat([o[2] for o in outs])
