"""The frozen CLIP under VadCLIP, built with open_clip.

Where the CLIP comes from (`ClipSource`):
- ``"openai"`` (default): open_clip's ``ViT-B-16`` with the ``openai`` weights (downloaded from the
  Hugging Face hub into its cache on first use).
- ``"random"``: ``ViT-B-16-quickgelu`` with random weights. For tests and timing only; every score
  computed with it is flagged (`ClipInfo.random_weights`).
- a path: an OpenAI-format state dict (``.pt``/``.pth``), an open_clip checkpoint, a
  ``.safetensors`` file, or an official VadCLIP checkpoint (its ``clipmodel.*`` tensors).
- an open_clip model name with a pretrained tag, ``"NAME:TAG"`` (e.g. ``"ViT-B-16:openai"``).

OpenAI-format tensors are turned into an open_clip model with shapes inferred from the tensors
(QuickGELU, text heads = width // 64), float16 tensors accepted, weights kept in float32 unless a
dtype is asked for.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import open_clip
import torch
from torch import nn

from .constants import RANDOM_WEIGHTS_WARNING
from .errors import UserError
from .safe_load import load_state_dict_file

DEFAULT_CLIP = "openai"

# Keys that OpenAI's state dicts may carry besides the weights.
_OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")


@dataclass(frozen=True)
class ClipInfo:
    """What CLIP a model runs on; shown next to every score."""

    source: str                 # "openai", "random", a path, or "NAME:TAG"
    image_size: int             # input resolution of the visual tower
    embed_dim: int              # output width of encode_image / encode_text
    text_width: int             # width of the text transformer (= prompt embedding width)
    random_weights: bool = False

    @property
    def label(self) -> str:
        return RANDOM_WEIGHTS_WARNING if self.random_weights else f"CLIP: {self.source}"


class ClipError(UserError):
    """A CLIP source that cannot be loaded; the message names it and why."""


def _strip_prefix(state_dict: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def is_openai_state_dict(state_dict: dict) -> bool:
    """True for OpenAI-format CLIP tensors (ViT visual tower + text tower, no prefix)."""
    return "visual.proj" in state_dict and "token_embedding.weight" in state_dict


def clip_from_openai_state_dict(state_dict: dict) -> nn.Module:
    """Build an open_clip CLIP (float32) from OpenAI-format tensors, shapes inferred from them."""
    sd = {k: v for k, v in state_dict.items() if k not in _OPENAI_EXTRA_KEYS}
    if not is_openai_state_dict(sd):
        raise ClipError("not an OpenAI-format CLIP state dict (no visual.proj / token_embedding)")
    if "visual.layer1.0.conv1.weight" in sd:
        raise ClipError("ResNet CLIP backbones are not supported; VadCLIP uses a ViT")
    try:
        model = open_clip.model.build_model_from_openai_state_dict(sd, quick_gelu=True, cast_dtype=None)
    except Exception as e:  # shape mismatches from inconsistent tensors
        raise ClipError(f"inconsistent CLIP tensors: {e}") from None
    # The builder loads the tensors into float16 weights (OpenAI's release is float16); load them
    # again into the float32 model so float32 tensors (e.g. AnomalyCLIP's trained
    # text_projection) keep their exact values.
    model = model.float()
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
    return model.eval()


def encode_text_embeddings(model: nn.Module, x: torch.Tensor, eot_position: torch.Tensor) -> torch.Tensor:
    """CLIP's text tower on token embeddings x [C, 77, W]: the output at eot_position [C] -> [C, D].

    The text mask is causal, so positions after the last end-of-text token never reach an output
    read here: the transformer stops there (exact, and far fewer positions for short prompts).
    """
    n = int(eot_position.max()) + 1
    x = x[:, :n] + model.positional_embedding[:n].float()
    x = model.transformer(x, attn_mask=model.attn_mask[:n, :n])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), eot_position]
    return x @ model.text_projection.float()


def describe_clip(model: nn.Module, source: str, random_weights: bool) -> ClipInfo:
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    return ClipInfo(
        source=source,
        image_size=int(size),
        embed_dim=int(model.text_projection.shape[1]),
        text_width=int(model.token_embedding.weight.shape[1]),
        random_weights=random_weights,
    )


def _check_text_tower(model: nn.Module, source: str) -> None:
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection")
    missing = [n for n in needed if getattr(model, n, None) is None]
    if missing or not isinstance(model.text_projection, (torch.Tensor, nn.Parameter)):
        raise ClipError(f"{source}: open_clip model without a plain CLIP text tower ({missing or 'text_projection'})")


def load_clip(source: str | os.PathLike = DEFAULT_CLIP, device: str | torch.device = "cpu",
              cache_dir: str | None = None) -> tuple[nn.Module, ClipInfo]:
    """Load a frozen CLIP (eval mode, no gradients) and describe it.

    `source` is one of the forms in the module docstring. Returns the open_clip model and its
    `ClipInfo`. Raises `ClipError` with the reason when it cannot be loaded.
    """
    source = str(source)
    random_weights = False
    if source == "random":
        model = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None)
        random_weights = True
    elif source == "openai":
        model = _create_pretrained("ViT-B-16", "openai", cache_dir)
    elif os.path.exists(source):
        model = clip_from_file(source)
    elif ":" in source and not os.path.sep in source:
        name, tag = source.split(":", 1)
        model = _create_pretrained(name, tag, cache_dir)
    else:
        raise ClipError(f"CLIP source {source!r}: no such file, and not 'openai', 'random' or 'NAME:TAG'")
    _check_text_tower(model, source)
    model = model.to(device).eval().requires_grad_(False)
    return model, describe_clip(model, source, random_weights)


def hub_endpoint() -> tuple[str, int]:
    """(host, port) of the Hugging Face hub that downloads go to (`HF_ENDPOINT` if set)."""
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the hub can be asked at all: not offline by setting, and a connection opens in time.

    Behind a proxy the direct connection proves nothing, so the answer is then True (the download
    itself will tell).
    """
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    try:
        socket.create_connection(hub_endpoint(), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def cached_hub_weights(hf_hub: str, cache_dir: str | None = None) -> str | None:
    """The local copy of open_clip's hub weights `org/repo/[file]` if it is cached, else None."""
    from huggingface_hub import try_to_load_from_cache
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    repo_id, filename = os.path.split(hf_hub)       # open_clip's convention: "org/repo/" or "org/repo/file"
    names = [filename] if filename else [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]
    for name in names:
        found = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
        if isinstance(found, str):
            return found
    return None


def _create_pretrained(name: str, tag: str, cache_dir: str | None) -> nn.Module:
    """open_clip's NAME with pretrained TAG. Without a reachable hub, the cached copy or a clear
    error at once (rather than a minute of download retries)."""
    cfg = open_clip.get_pretrained_cfg(name, tag) or {}
    pretrained, quick_gelu = tag, False
    if cfg.get("hf_hub") and not hub_reachable():
        pretrained = cached_hub_weights(cfg["hf_hub"], cache_dir)
        if pretrained is None:
            host = hub_endpoint()[0]
            raise ClipError(
                f"could not load CLIP {name}/{tag}: {host} cannot be reached and its weights "
                f"({cfg['hf_hub'].rstrip('/')}) are not in the local Hugging Face cache. Without internet, "
                "pass a local checkpoint with --clip PATH (an official VadCLIP checkpoint contains its CLIP).")
        quick_gelu = bool(cfg.get("quick_gelu", False))       # the tag would have set it
    try:
        return open_clip.create_model(name, pretrained=pretrained, cache_dir=cache_dir, require_pretrained=True,
                                      force_quick_gelu=quick_gelu)
    except Exception as e:
        raise ClipError(
            f"could not load CLIP {name}/{tag} through open_clip ({type(e).__name__}: {e}). "
            "Without internet, pass a local checkpoint with --clip PATH "
            "(an official VadCLIP checkpoint contains its CLIP)."
        ) from None


def clip_from_file(path: str | os.PathLike) -> nn.Module:
    """A CLIP from a local file: OpenAI format, or inside a VadCLIP checkpoint (official or ours,
    both keep it under ``clipmodel.``)."""
    sd = load_state_dict_file(path)
    name = Path(path).name
    if any(k.startswith("clipmodel.") for k in sd):
        sd = _strip_prefix(sd, "clipmodel.")
    if is_openai_state_dict(sd):
        return clip_from_openai_state_dict(sd)
    raise ClipError(f"{name}: not a CLIP checkpoint (no OpenAI-format visual/text tensors found)")
