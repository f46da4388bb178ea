"""The AnomalyCLIP model: learned class prompts, recentred text directions, a BatchNorm'd
projection selector and a reversible axial transformer over 32 x 16 frame grids.

Notation: B videos or clips, F frames (a multiple of 512 = S x L, S = 32 segments of L = 16
frames), D = 512 feature width, C classes, A = C - 1 abnormal ones, E = emb_dim.
Submodule names follow the official code (`prompt_learner`, `selector_model`, `temporal_model`),
so an official checkpoint's `net.*` tensors load under the same names; the frozen CLIP is
`clipmodel` (open_clip naming), its `text_projection` trained. Each step is stated in
`../shared/spec/official-anomalyclip.md`.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from axial_attention import AxialImageTransformer
from torch import nn

from ..clip_backbone import ClipError, ClipInfo, encode_text_embeddings
from ..errors import VocabularyError
from ..prompt import CONTEXT_LENGTH, check_token_lengths, validate_class_names
from .config import AnomalyCLIPConfig


@dataclass
class AnomalyCLIPOutput:
    """One forward pass over [B, F, D] features (F in frame order)."""

    proj_raw: torch.Tensor      # [B, F, A] scalar projections (x - c) . d_j, before BatchNorm
    logits: torch.Tensor        # [B, F, A] after BatchNorm ("similarity" in the official code)
    scores: torch.Tensor        # [B, F] sigmoid anomaly score per frame
    temporal: torch.Tensor      # [B, F, E] axial transformer output, before the head


class PromptLearner(nn.Module):
    """Class-specific context `ctx [C, n_ctx, W]` between the frozen SOT embedding
    (`token_prefix [C, 1, W]`) and the embeddings of "<name> . EOT pad..." (`token_suffix`)."""

    def __init__(self, num_classes: int, n_ctx: int, width: int):
        super().__init__()
        self.ctx = nn.Parameter(torch.empty(num_classes, n_ctx, width))
        nn.init.normal_(self.ctx, std=0.02)
        self.register_buffer("token_prefix", torch.zeros(num_classes, 1, width))
        self.register_buffer("token_suffix", torch.zeros(num_classes, CONTEXT_LENGTH - 1 - n_ctx, width))


class SelectorModel(nn.Module):
    """BatchNorm of the projections (no affine part); `logit_scale` is stored but unused."""

    def __init__(self, num_abnormal: int):
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(4.6052))      # CLIP's log(100); unused
        self.bn_layer = nn.BatchNorm1d(num_abnormal, affine=False)


class ClassificationHead(nn.Module):
    def __init__(self, emb_dim: int):
        super().__init__()
        self.layer_norm = nn.LayerNorm(emb_dim)
        self.linear = nn.Linear(emb_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[..., E] -> [...] sigmoid scores."""
        return torch.sigmoid(self.linear(self.layer_norm(x))).squeeze(-1)


class TemporalModel(nn.Module):
    """Linear(in, E), the axial transformer on [G, S, L, E] grids, and the score head.

    `axial_attn` is `axial_attention.AxialImageTransformer` (the official code's own module, whose
    weights and state-dict names are used). `axial_grids` computes its values directly in the
    grid-major [G, S, L, E] layout: one q/k/v product per attention, the convolutions on
    channels-last tensors, no chunk / cat / permute copies of the streams. Training goes through
    this path with ordinary autograd by default: the same gradients as the official reversible
    network up to float rounding, the forward computed once.
    `reversible = True` (opt-in) trains through `axial_attn`'s own reversible forward as the
    official code does: activations are recomputed in the backward pass instead of kept, which
    costs a second forward (a CPU step takes about 1.4x as long) and saves activation memory (for
    a memory-bound GPU).
    """

    def __init__(self, input_dim: int, emb_dim: int, depth: int, heads: int, num_segments: int,
                 seg_length: int):
        super().__init__()
        self.projection = nn.Linear(input_dim, emb_dim)
        self.axial_attn = AxialImageTransformer(dim=emb_dim, depth=depth, heads=heads,
                                                dim_heads=emb_dim // heads, reversible=True,
                                                axial_pos_emb_shape=(num_segments, seg_length))
        self.classifier = ClassificationHead(emb_dim)
        self.reversible = False

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The input projection [..., in] -> [..., E] (`_pointwise` in CPU training)."""
        return _pointwise(x, self.projection.weight, self.projection.bias)

    def axial_grids(self, x: torch.Tensor) -> torch.Tensor:
        """The axial transformer on grids x [G, S, L, E] -> [G, S, L, E]."""
        if self.reversible and self.training and torch.is_grad_enabled():
            out = self.axial_attn(x.permute(0, 3, 1, 2))              # official layout [G, E, S, L]
            return out.permute(0, 2, 3, 1)
        pos = self.axial_attn.pos_emb
        x = x + pos.param_0.permute(0, 2, 3, 1) + pos.param_1.permute(0, 2, 3, 1)
        x1 = x2 = x                                                   # the two reversible streams
        for block in self.axial_attn.layers.blocks:
            x1 = x1 + _grid_fn(block.f.net, x2)
            x2 = x2 + _grid_fn(block.g.net, x1)
        return (x1 + x2) / 2


def _pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear(x, weight, bias)` on x [..., I] with the rows a multiple of 16; in CPU training
    (autograd on) computed as a 1x1 convolution over rows of 16 in channels-last memory.

    The same sums in another order: oneDNN's convolution kernels use the CPU's widest vector
    units where MKL's matrix product may not (AMD CPUs: about 2x faster forward and backward).
    Elsewhere (evaluation, GPUs) it is `F.linear`, so evaluation outputs do not change.
    """
    if x.device.type != "cpu" or not torch.is_grad_enabled() or x.numel() % (16 * x.shape[-1]):
        return F.linear(x, weight, bias)
    rows = x.reshape(-1, 1, 16, x.shape[-1]).permute(0, 3, 1, 2)          # [n, I, 1, 16], channels-last
    out = F.conv2d(rows, weight[:, :, None, None], bias)
    return out.permute(0, 2, 3, 1).reshape(*x.shape[:-1], weight.shape[0])


def _grid_fn(fn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One f or g of the axial transformer on x [G, S, L, E]: an axial attention (a
    PermuteToFrom(PreNorm(SelfAttention))) or the convolutional feed-forward (a Sequential)."""
    if isinstance(fn, nn.Sequential):
        return _conv_feed_forward(fn, x)
    # the official permutation ends with (attended axis, channels) of the [G, E, S, L] layout
    axis = {2: 1, 3: 2}[fn.permutation[-2]]
    return _axial_self_attention(fn.fn, x, axis)


def _axial_self_attention(prenorm: nn.Module, x: torch.Tensor, axis: int) -> torch.Tensor:
    """Pre-LayerNorm multi-head self-attention along `axis` (1: segments, 2: frames) of x [G, S, L, E]
    (q, k and v from one matrix product; softmax(q k^T / sqrt(e)) v per head)."""
    attn = prenorm.fn
    G, S, L, _ = x.shape
    h, e = attn.heads, attn.dim_heads
    qkv = _pointwise(prenorm.norm(x), torch.cat([attn.to_q.weight, attn.to_kv.weight]))
    # [G, S, L, 3, h, e] -> [3, G, other axis, h, attended axis, e]
    order = (3, 0, 2, 4, 1, 5) if axis == 1 else (3, 0, 1, 4, 2, 5)
    q, k, v = qkv.view(G, S, L, 3, h, e).permute(order).unbind(0)
    weights = (q @ k.transpose(-1, -2)).mul_(e ** -0.5).softmax(dim=-1)
    back = (0, 3, 1, 2, 4) if axis == 1 else (0, 1, 3, 2, 4)
    return _pointwise((weights @ v).permute(back).reshape(G, S, L, h * e), attn.to_out.weight, attn.to_out.bias)


def _conv_feed_forward(seq: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Channel LayerNorm ((x - mean) / (std + eps) * g + b, biased std), 3x3 conv to 4E,
    LeakyReLU, 3x3 conv back to E, on x [G, S, L, E] (convolutions in channels-last memory)."""
    norm, conv1, act, conv2 = seq
    centred = x - x.mean(dim=-1, keepdim=True)
    std = centred.square().mean(dim=-1, keepdim=True).sqrt()
    u = centred / (std + norm.eps) * norm.g.reshape(-1) + norm.b.reshape(-1)
    hidden = F.leaky_relu_(conv1(u.permute(0, 3, 1, 2)), act.negative_slope)     # in place, as officially
    return conv2(hidden).permute(0, 2, 3, 1)


class _DirectionsCache:
    """Directions per vocabulary, valid for one version of the weights; copies start empty."""

    def __init__(self):
        self._entries: dict = {}
        self._version = None
        self._lock = threading.Lock()

    def get(self, names: tuple, version: tuple, compute) -> torch.Tensor:
        with self._lock:
            if version != self._version:
                self._entries, self._version = {}, version
            if names not in self._entries:
                self._entries[names] = compute()
            return self._entries[names]

    def __deepcopy__(self, memo) -> "_DirectionsCache":
        return _DirectionsCache()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()


class AnomalyCLIP(nn.Module):
    """AnomalyCLIP on a frozen open_clip CLIP (`self.clipmodel`; its `text_projection` is trained).

    `ncentroid [D]` (the mean normal training feature) is a buffer; set it before use.
    """

    def __init__(self, config: AnomalyCLIPConfig, clip_model: nn.Module, clip_info: ClipInfo, tokenizer):
        super().__init__()
        if clip_info.embed_dim != config.feature_dim:
            raise ClipError(f"CLIP embeds in {clip_info.embed_dim} dims but the model expects {config.feature_dim}")
        self.config = config
        self.clip_info = clip_info
        self.tokenizer = tokenizer
        C, A = config.num_classes, config.num_classes - 1
        self.clipmodel = clip_model.eval().requires_grad_(False)
        self.clipmodel.text_projection.requires_grad_(True)
        self.prompt_learner = PromptLearner(C, config.n_ctx, clip_info.text_width)
        self.selector_model = SelectorModel(A)
        if isinstance(getattr(clip_model, "logit_scale", None), torch.Tensor):
            with torch.no_grad():                        # the official selector holds CLIP's own
                self.selector_model.logit_scale.copy_(clip_model.logit_scale)
        self.temporal_model = TemporalModel(config.temporal_input_dim, config.emb_dim, config.depth,
                                            config.heads, config.num_segments, config.seg_length)
        self.register_buffer("ncentroid", torch.zeros(config.feature_dim))
        self._directions_cache = _DirectionsCache()
        with torch.no_grad():
            self.reset_prompt_embeddings()

    # CLIP stays in eval mode whatever mode the model is put in.
    def train(self, mode: bool = True) -> "AnomalyCLIP":
        super().train(mode)
        self.clipmodel.eval()
        return self

    # --- text side ---------------------------------------------------------------------------
    def check_class_names(self, class_names) -> list[str]:
        """The model's own names when None; else the same number of (possibly reworded) names."""
        if class_names is None:
            return list(self.config.class_names)
        names = validate_class_names(class_names)
        C = self.config.num_classes
        if len(names) != C:
            raise VocabularyError(
                f"this AnomalyCLIP model learned one prompt per class for its {C} classes "
                f"({', '.join(self.config.class_names)}); got {len(names)} names. Class names may be "
                "reworded, in the same order, but not added or removed")
        return names

    def prompt_token_ids(self, class_names: list[str]) -> torch.Tensor:
        """[C, 77] CLIP token ids of the official prompts "X X X X X X X X <name>." (_ -> space)."""
        prefix = " ".join(["X"] * self.config.n_ctx)
        texts = [f"{prefix} {n.replace('_', ' ')}." for n in class_names]
        check_token_lengths(self.tokenizer, class_names, texts, CONTEXT_LENGTH - 2,
                            f"the prompt (at most {CONTEXT_LENGTH - 2} CLIP tokens with its context)")
        return self.tokenizer(texts).to(self.ncentroid.device)

    def prompt_embeddings(self, class_names: list[str], ids: torch.Tensor) -> torch.Tensor:
        """[C, 77, W] prompt embeddings: SOT, ctx_k, then the embedded name tokens. The stored
        suffix buffers serve the model's own names; reworded names are embedded afresh."""
        pl = self.prompt_learner
        if list(class_names) == list(self.config.class_names):
            suffix = pl.token_suffix
        else:
            suffix = self.clipmodel.token_embedding(ids[:, 1 + self.config.n_ctx:]).float()
        return torch.cat([pl.token_prefix, pl.ctx, suffix], dim=1)

    @torch.no_grad()
    def reset_prompt_embeddings(self) -> None:
        """Fill token_prefix / token_suffix from CLIP's token table for the config's class names
        (as the official PromptLearner does at construction)."""
        names = list(self.config.class_names)
        emb = self.clipmodel.token_embedding(self.prompt_token_ids(names)).float()
        self.prompt_learner.token_prefix.copy_(emb[:, :1])
        self.prompt_learner.token_suffix.copy_(emb[:, 1 + self.config.n_ctx:])

    def text_features(self, class_names: list[str] | None = None) -> torch.Tensor:
        """[C, D]: CLIP's text tower on the learned prompts, at each prompt's end token."""
        names = self.check_class_names(class_names)
        ids = self.prompt_token_ids(names)
        x = self.prompt_embeddings(names, ids)
        return encode_text_embeddings(self.clipmodel, x, ids.argmax(dim=-1))

    def directions(self, text_features: torch.Tensor) -> torch.Tensor:
        """[A, D]: the abnormal classes' text features recentred on ncentroid, unit length."""
        k = self.config.normal_id
        t = torch.cat([text_features[:k], text_features[k + 1:]]) - self.ncentroid
        return t / t.norm(dim=-1, keepdim=True)

    def cached_directions(self, class_names: list[str] | None = None) -> torch.Tensor:
        """`directions(text_features(names))` without gradient, computed once per vocabulary.

        The cache key includes the version counters of the tensors the directions depend on,
        so a training step or a weight load (in-place updates) computes them afresh.
        """
        names = tuple(self.check_class_names(class_names))
        watched = (self.prompt_learner.ctx, self.prompt_learner.token_prefix, self.prompt_learner.token_suffix,
                   self.clipmodel.text_projection, self.ncentroid)
        version = tuple((t._version, t.data_ptr()) for t in watched)

        def compute() -> torch.Tensor:
            with torch.no_grad():
                return self.directions(self.text_features(list(names)))

        return self._directions_cache.get(names, version, compute)

    # --- video side --------------------------------------------------------------------------
    def frame_logits(self, features: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per frame, any layout [..., D] -> (x - c [..., D], proj_raw [..., A], logits [..., A]).

        BatchNorm uses the statistics of all frames given in training mode, the running ones in eval.
        """
        x = features.float() - self.ncentroid
        proj = x @ directions.t()
        logits = self.selector_model.bn_layer(proj.reshape(-1, proj.shape[-1])).view(proj.shape)
        return x, proj, logits

    def temporal_input(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return torch.cat([logits, x], dim=-1) if self.config.concat else x

    def grid_scores(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected inputs on grids h [G, S, L, E] -> (temporal [G, S, L, E], scores [G, S, L])."""
        out = self.temporal_model.axial_grids(h)
        return out, self.temporal_model.classifier(out)

    def forward(self, features: torch.Tensor, directions: torch.Tensor | None = None) -> AnomalyCLIPOutput:
        """features [B, F, D] -> `AnomalyCLIPOutput`; F = 512 s frames.

        Each video is laid out as s interleaved 32 x 16 grids, frame f = (n s + j) 16 + l going to
        grid j, row n, column l (the official test layout; in training s = 1: one grid per clip).
        `directions` [A, D] defaults to those of the model's class names, computed in this call
        (so gradients reach the prompt context and text projection).
        """
        cfg = self.config
        if features.ndim != 3 or features.shape[-1] != cfg.feature_dim or features.shape[1] % cfg.grid_frames:
            raise ValueError(f"features must be [B, F, {cfg.feature_dim}] with F a multiple of "
                             f"{cfg.grid_frames}, got {tuple(features.shape)}")
        if directions is None:
            directions = self.directions(self.text_features())
        B, Fr, _ = features.shape
        S, L, s = cfg.num_segments, cfg.seg_length, Fr // cfg.grid_frames
        x, proj, logits = self.frame_logits(features, directions)
        h = self.temporal_model.project(self.temporal_input(x, logits))              # [B, F, E]
        E = h.shape[-1]
        grids = h.view(B, S, s, L, E).transpose(1, 2).reshape(B * s, S, L, E)
        out, scores = self.grid_scores(grids)
        temporal = out.reshape(B, s, S, L, E).transpose(1, 2).reshape(B, Fr, E)
        scores = scores.reshape(B, s, S, L).transpose(1, 2).reshape(B, Fr)
        return AnomalyCLIPOutput(proj_raw=proj, logits=logits, scores=scores, temporal=temporal)

    def class_probs(self, logits: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Joint probabilities [..., C] from logits [..., A] and scores [...]: softmax(logits) *
        score for the abnormal classes, 1 - score inserted at normal_id (rows sum to 1)."""
        k = self.config.normal_id
        p = logits.softmax(dim=-1) * scores[..., None]
        return torch.cat([p[..., :k], (1 - scores)[..., None], p[..., k:]], dim=-1)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """The official four AdamW groups (all at the same learning rate)."""
        return {
            "selector": list(self.selector_model.parameters()),
            "temporal": list(self.temporal_model.parameters()),
            "ctx": [self.prompt_learner.ctx],
            "text_projection": [self.clipmodel.text_projection],
        }
