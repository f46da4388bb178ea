"""The VadCLIP model: a temporal adapter and two branches on top of a frozen CLIP.

Notation: B videos, T snippets per clip (`visual_length`), D feature width, C classes.
Submodule names follow the official code so that its state dicts load as they are.
`../shared/spec/official-vadclip.md` states each step; comments cite its numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .clip_backbone import ClipInfo, encode_text_embeddings
from .config import ModelConfig
from .prompt import PromptTokens, tokenize_class_names


QUICK_GELU_SCALE = 1.702


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x), computed as silu(1.702 x) / 1.702 (silu has a fused backward)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x * QUICK_GELU_SCALE) / QUICK_GELU_SCALE


class QuickGELUMLP(nn.Module):
    """width -> 4*width -> width with QuickGELU (named like CLIP's MLPs: c_fc, c_proj).

    The 1.702 of QuickGELU is folded into the (small) weights rather than applied to the wide
    hidden activation: silu(1.702 h) = 1.702 * quick_gelu(h), so the hidden layer costs one silu
    forward and one silu backward. Same values as c_proj(gelu(c_fc(x))) up to rounding.
    """

    def __init__(self, width: int):
        super().__init__()
        self.c_fc = nn.Linear(width, width * 4)
        self.c_proj = nn.Linear(width * 4, width)

    def scaled_pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """1.702 * c_fc(x): silu of it is 1.702 * gelu(c_fc(x))."""
        k = QUICK_GELU_SCALE
        return F.linear(x, self.c_fc.weight * k, self.c_fc.bias * k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = F.silu(self.scaled_pre_activation(x))
        return F.linear(hidden, self.c_proj.weight / QUICK_GELU_SCALE, self.c_proj.bias)


class _SiluDot(torch.autograd.Function):
    """silu(h) @ w.T for a one-row w: [..., H], [1, H] -> [..., 1].

    Autograd would take the gradient of h through an [N, 1] x [1, H] matrix product, which CPU
    BLAS runs far below memory speed (0.5 s for a 96-video batch); here it is one broadcast
    multiply feeding silu's backward.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, h, w):
        act = F.silu(h)
        ctx.save_for_backward(h, act, w)
        return act @ w.t()

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad):
        h, act, w = ctx.saved_tensors
        grad_h = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_h = torch.ops.aten.silu_backward(grad * w.to(grad.dtype), h)
        if ctx.needs_input_grad[1]:
            grad_w = grad.reshape(1, -1) @ act.reshape(-1, act.shape[-1])
        return grad_h, grad_w


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input dtype (as CLIP does)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


def self_attention(attn: nn.MultiheadAttention, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """nn.MultiheadAttention's self-attention on [N, L, D], computed with its weights through SDPA."""
    N, L, D = x.shape
    heads = attn.num_heads
    qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias)                    # [N, L, 3D]
    q, k, v = qkv.view(N, L, 3, heads, D // heads).permute(2, 0, 3, 1, 4)       # 3 x [N, H, L, D/H]
    mask = None if attn_mask is None else attn_mask.to(q.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return F.linear(out.transpose(1, 2).reshape(N, L, D), attn.out_proj.weight, attn.out_proj.bias)


class ResidualAttentionBlock(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = LayerNorm(width)
        self.mlp = QuickGELUMLP(width)
        self.ln_2 = LayerNorm(width)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self_attention(self.attn, self.ln_1(x), attn_mask)
        return x + self.mlp(self.ln_2(x))


class LocalTemporal(nn.Module):
    """Spec step 2: transformer blocks whose attention stays inside non-overlapping windows.

    Attention, LayerNorm and MLP never mix windows, so when the windows tile T each window runs
    through the blocks as its own short sequence (the [T, T] masked attention's work divided by
    T / window). A window that starts at or past a video's length holds only zero padding plus
    position embeddings, the same in every video: such windows are computed once per batch.
    When the windows do not tile T (the last one is longer) the blocks run on whole clips with the
    additive [T, T] `attn_mask`.
    """

    def __init__(self, width: int, layers: int, heads: int, window: int, padding_aware: bool = False):
        super().__init__()
        self.window = window
        self.padding_aware = padding_aware       # improvement: see `_forward_padding_aware`
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def blocks(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, attn_mask)
        return x

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, padding: torch.Tensor,
                attn_mask: torch.Tensor) -> torch.Tensor:
        """x [B, T, D] (zero past `lengths` but for `padding`, the [T, D] position embeddings) -> [B, T, D]."""
        if self.padding_aware:
            return self._forward_padding_aware(x, lengths, attn_mask)
        B, T, D = x.shape
        size = min(self.window, T)
        if T % size:
            return self.blocks(x, attn_mask)
        n_windows = T // size
        windows = x.reshape(B, n_windows, size, D)
        starts = torch.arange(n_windows, device=x.device) * size
        empty = starts[None, :] >= lengths[:, None]                                # [B, nW]: padding only
        if not bool(empty.any()):
            return self.blocks(windows.reshape(B * n_windows, size, D)).view(B, T, D)
        out_live = self.blocks(windows[~empty])                                     # [n_live, size, D]
        needed = empty.any(dim=0).nonzero().squeeze(1)                              # window indices
        out_empty = self.blocks(padding.view(n_windows, size, D)[needed])           # [n_needed, size, D]
        shared = out_empty.new_zeros(n_windows, size, D).index_put((needed,), out_empty)
        out = shared.expand(B, -1, -1, -1).index_put(tuple((~empty).nonzero().t()), out_live.to(shared.dtype))
        return out.view(B, T, D)

    # --- improvement (issue 16), opt-in through ModelConfig.padding_aware_attention -------------
    def _forward_padding_aware(self, x: torch.Tensor, lengths: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """Like `forward`, but no position attends to a padded key (positions >= its video's length).

        A window of padding only keeps the official (unmasked) attention, so every query has a key.
        Real positions' outputs then depend on the real positions only.
        """
        B, T, D = x.shape
        key_real = torch.arange(T, device=x.device)[None, :] < lengths[:, None]          # [B, T]
        size = min(self.window, T)
        if T % size:                                  # windows do not tile T: one [T, T] mask per video
            window_ok = torch.isfinite(attn_mask)                                          # [T, T]
            allowed = window_ok[None] & key_real[:, None, :]                               # [B, T, T]
            allowed = torch.where(allowed.any(dim=-1, keepdim=True), allowed, window_ok[None])
            mask = x.new_zeros(B, 1, T, T).masked_fill(~allowed[:, None], float("-inf"))
            return self.blocks(x, mask)
        key_real = key_real.reshape(B * (T // size), size)                                 # per window
        key_real = key_real | ~key_real.any(dim=-1, keepdim=True)                          # padding-only: all
        mask = x.new_zeros(len(key_real), 1, 1, size).masked_fill(~key_real[:, None, None, :], float("-inf"))
        return self.blocks(x.reshape(-1, size, D), mask).view(B, T, D)


class GraphConvolution(nn.Module):
    """out = adj @ (x W) + residual(x); the residual is a k=5 Conv1d when widths differ."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        nn.init.xavier_uniform_(self.weight)
        self.residual = (nn.Conv1d(in_features, out_features, kernel_size=5, padding=2)
                         if in_features != out_features else nn.Identity())

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        out = adj @ (x @ self.weight)
        if isinstance(self.residual, nn.Conv1d):
            return out + self.residual(x.transpose(1, 2)).transpose(1, 2)
        return out + x


class DistanceAdj(nn.Module):
    """Holds the official checkpoint's unused `sigma`; the distance adjacency itself is constant."""

    def __init__(self):
        super().__init__()
        self.sigma = nn.Parameter(torch.full((1,), 0.1), requires_grad=False)


def window_attention_mask(length: int, window: int) -> torch.Tensor:
    """Additive [T, T] mask: 0 inside the non-overlapping windows, -inf elsewhere.

    Windows are [i*w, (i+1)*w) for i < int(T/w); the last one runs to T.
    """
    n_windows = max(1, length // window)
    win = torch.clamp(torch.arange(length) // window, max=n_windows - 1)
    same = win[:, None] == win[None, :]
    return torch.zeros(length, length).masked_fill(~same, float("-inf"))


def distance_adjacency(length: int) -> torch.Tensor:
    """[T, T] matrix exp(-|i-j| / e), unnormalised (spec step 3)."""
    pos = torch.arange(length, dtype=torch.float32)
    dist = (pos[:, None] - pos[None, :]).abs()
    return torch.exp(-dist / torch.exp(torch.tensor(1.0)))


def similarity_adjacency(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Batched [B, T, T] similarity adjacency (spec step 3).

    Cosine similarity, entries <= 0.7 set to 0, row softmax over the [:L, :L] block of each video,
    zero outside it.
    """
    B, T, _ = x.shape
    norm = x.norm(dim=-1, keepdim=True)
    sim = (x @ x.transpose(1, 2)) / (norm @ norm.transpose(1, 2) + 1e-20)
    sim = F.threshold(sim, 0.7, 0.0)
    valid = torch.arange(T, device=x.device)[None, :] < lengths[:, None]       # [B, T]
    sim = sim.masked_fill(~valid[:, None, :], float("-inf"))                    # drop columns >= L
    adj = sim.softmax(dim=-1)
    return adj.masked_fill(~valid[:, :, None], 0.0)                             # zero rows >= L


@dataclass
class VadCLIPOutput:
    """One forward pass. Logits are raw (before sigmoid / softmax)."""

    text_features: torch.Tensor     # [C, D] class embeddings t0, before the visual prompt
    logits_c: torch.Tensor          # [B, T, 1] C-branch
    logits_a: torch.Tensor          # [B, T, C] A-branch (cosine similarity / 0.07)
    visual_features: torch.Tensor   # [B, T, D] adapter output X


class VadCLIP(nn.Module):
    """VadCLIP adapter + branches on a frozen open_clip CLIP (`self.clipmodel`)."""

    def __init__(self, config: ModelConfig, clip_model: nn.Module, clip_info: ClipInfo, tokenizer):
        super().__init__()
        if clip_info.embed_dim != config.visual_width:
            raise ValueError(f"CLIP embeds in {clip_info.embed_dim} dims but the adapter expects "
                             f"{config.visual_width}")
        self.config = config
        self.clip_info = clip_info
        self.tokenizer = tokenizer
        width, T = config.visual_width, config.visual_length

        self.temporal = LocalTemporal(width, config.visual_layers, config.visual_head, config.attn_window,
                                      padding_aware=config.padding_aware_attention)
        half = config.gcn_width
        self.gc1 = GraphConvolution(width, half)
        self.gc2 = GraphConvolution(half, half)
        self.gc3 = GraphConvolution(width, half)
        self.gc4 = GraphConvolution(half, half)
        self.disAdj = DistanceAdj()
        self.linear = nn.Linear(2 * half, width)
        self.gelu = QuickGELU()
        self.mlp1 = QuickGELUMLP(width)
        self.mlp2 = QuickGELUMLP(width)
        self.classifier = nn.Linear(width, 1)
        self.frame_position_embeddings = nn.Embedding(T, width)
        self.text_prompt_embeddings = nn.Embedding(77, clip_info.text_width)
        nn.init.normal_(self.frame_position_embeddings.weight, std=0.01)
        nn.init.normal_(self.text_prompt_embeddings.weight, std=0.01)

        self.clipmodel = clip_model.eval().requires_grad_(False)
        self.register_buffer("attn_mask", window_attention_mask(T, config.attn_window), persistent=False)
        self.register_buffer("dist_adj", distance_adjacency(T), persistent=False)

    # CLIP stays in eval mode whatever mode the adapter is put in.
    def train(self, mode: bool = True) -> "VadCLIP":
        super().train(mode)
        self.clipmodel.eval()
        return self

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """The trainable part's tensors (everything but CLIP), official key names."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("clipmodel.")}

    def adapter_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("clipmodel.") and p.requires_grad]

    # --- visual side -------------------------------------------------------------------------
    def encode_video(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Spec steps 1-3: [B, T, D] snippet features -> [B, T, D] visual features X."""
        B, T, _ = features.shape
        valid = torch.arange(T, device=features.device)[None, :] < lengths[:, None]      # [B, T]
        position = self.frame_position_embeddings.weight[:T]
        x = features.float().masked_fill(~valid[..., None], 0.0) + position[None]
        x = self.temporal(x, lengths, position, self.attn_mask)
        adj_sim = similarity_adjacency(x, lengths)
        adj_dis = self.dist_adj
        h_sim = self.gelu(self.gc1(x, adj_sim))
        h_dis = self.gelu(self.gc3(x, adj_dis))
        h_sim = self.gelu(self.gc2(h_sim, adj_sim))
        h_dis = self.gelu(self.gc4(h_dis, adj_dis))
        return self.linear(torch.cat([h_sim, h_dis], dim=-1))

    def c_branch(self, X: torch.Tensor) -> torch.Tensor:
        """Spec step 4: classifier(X + mlp2(X)), [B, T, D] -> [B, T, 1] logits.

        The classifier is linear and mlp2 feeds nothing else, so the classifier is folded into
        mlp2's output projection: its [4D -> D] product becomes [4D -> 1] (the same value, one
        wide matrix product fewer forward and two fewer backward).
        """
        mlp, cls = self.mlp2, self.classifier
        w_hidden = cls.weight @ mlp.c_proj.weight / QUICK_GELU_SCALE                # [1, 4D]
        bias = cls.bias + cls.weight @ mlp.c_proj.bias                              # [1]
        return F.linear(X, cls.weight, bias) + _SiluDot.apply(mlp.scaled_pre_activation(X), w_hidden)

    # --- text side ---------------------------------------------------------------------------
    def prompt_tokens(self, class_names: list[str]) -> PromptTokens:
        return tokenize_class_names(self.tokenizer, class_names, self.config.prompt_prefix,
                                    self.config.prompt_postfix, device=self.text_prompt_embeddings.weight.device)

    def encode_text(self, class_names: list[str]) -> torch.Tensor:
        """Spec step 5: class names -> [C, D] embeddings t0 through the learned prompt."""
        tokens = self.prompt_tokens(class_names)
        clip = self.clipmodel
        word = clip.token_embedding(tokens.ids).float()                          # [C, 77, W]
        prompt = self.text_prompt_embeddings.weight[None].expand(len(class_names), -1, -1)
        src = tokens.source_index                                                 # [C, 77]
        taken = word.gather(1, src.clamp(min=0)[..., None].expand_as(prompt))
        x = torch.where((src >= 0)[..., None], taken, prompt)
        # stops at the last end-of-text token: about 25 of the 77 positions with the 10+10 prompt
        return encode_text_embeddings(clip, x, tokens.eot_position)

    # --- both branches -----------------------------------------------------------------------
    def forward(self, features: torch.Tensor, lengths: torch.Tensor, class_names: list[str],
                text_features: torch.Tensor | None = None) -> VadCLIPOutput:
        """features [B, T, D], lengths [B] -> `VadCLIPOutput`; positions past a length count as zero padding.

        `text_features` ([C, D], from `encode_text`) can be passed to skip the text encoder.
        """
        if features.ndim != 3 or features.shape[1] != self.config.visual_length:
            raise ValueError(f"features must be [B, {self.config.visual_length}, D], got {tuple(features.shape)}")
        lengths = torch.as_tensor(lengths, device=features.device)
        X = self.encode_video(features, lengths)
        logits_c = self.c_branch(X)                                                 # step 4
        t0 = self.encode_text(class_names) if text_features is None else text_features
        v = F.normalize(logits_c.transpose(1, 2) @ X, dim=-1)                       # step 6: [B, 1, D]
        t = t0[None] + v                                                            # [B, C, D]
        t = t + self.mlp1(t)
        # step 7: cosine similarity / 0.07; X's norm divides the small [B, T, C] product, not X itself
        logits_a = (X @ F.normalize(t, dim=-1).transpose(1, 2)) / (X.norm(dim=-1, keepdim=True).clamp_min(1e-12) * 0.07)
        return VadCLIPOutput(text_features=t0, logits_c=logits_c, logits_a=logits_a, visual_features=X)
