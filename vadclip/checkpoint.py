"""Building VadCLIP models and reading / writing their checkpoints.

Two formats:
- **official** (`model_xd.pth`, `model_ucf.pth`): a plain state dict with the adapter's tensors and
  the whole OpenAI-format CLIP under ``clipmodel.*``. The preset supplies what the file lacks
  (attention window, prompt lengths, class names). Read with ``torch.load(weights_only=True)``.
- **ours** (`*.safetensors`): the same tensors (CLIP under ``clipmodel.*`` in open_clip naming) and
  a JSON config in the safetensors header (`ModelConfig`, CLIP description, free-form metadata such
  as training results). No pickle anywhere. A run folder of `vadclip train` holds `best.safetensors`.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import open_clip
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .clip_backbone import describe_clip, clip_from_openai_state_dict, load_clip, DEFAULT_CLIP
from .config import ModelConfig, get_preset, model_config
from .model import VadCLIP
from .safe_load import CheckpointError, load_state_dict_file
from .utils import atomic_write

BEST_FILE = "best.safetensors"     # a run folder's checkpoint of the best evaluation
LAST_FILE = "last.safetensors"     # ... and of the last step
CHECKPOINT_FILES = (BEST_FILE, LAST_FILE)   # what a run folder is loaded from, in this order
FORMAT_NAME = "vadclip"
FORMAT_VERSION = "1"
# Tensors of the adapter that every official checkpoint has, whatever the preset.
_REQUIRED_ADAPTER_KEYS = (
    "frame_position_embeddings.weight", "text_prompt_embeddings.weight", "classifier.weight",
    "linear.weight", "gc1.weight", "gc2.weight", "gc3.weight", "gc4.weight",
    "mlp1.c_fc.weight", "mlp2.c_fc.weight", "temporal.resblocks.0.attn.in_proj_weight",
)


def get_tokenizer():
    """CLIP's BPE tokenizer (ships with open_clip; no download)."""
    return open_clip.get_tokenizer("ViT-B-16")


def build_model(preset: str = "xd", clip: str = DEFAULT_CLIP, device: str | torch.device = "cpu",
                **overrides) -> VadCLIP:
    """A freshly initialised VadCLIP of `preset` on the CLIP named by `clip` (see load_clip)."""
    clip_model, info = load_clip(clip, device=device)
    config = model_config(preset, **overrides)
    return VadCLIP(config, clip_model, info, get_tokenizer()).to(device)


def _temporal_layers(state_dict: dict) -> int:
    layers = {int(m.group(1)) for k in state_dict if (m := re.match(r"temporal\.resblocks\.(\d+)\.", k))}
    return max(layers) + 1 if layers else 0


def _check_adapter_tensors(model: VadCLIP, state_dict: dict, name: str) -> None:
    """Raise one CheckpointError listing every disagreement between the file and the preset."""
    expected = model.adapter_state_dict()
    problems = []
    n_file, n_model = _temporal_layers(state_dict), model.config.visual_layers
    if n_file != n_model:
        other = [p for p in ("xd", "ucf") if get_preset(p).model.visual_layers == n_file]
        hint = f" (that is the {other[0]!r} preset)" if other else ""
        problems.append(f"it has {n_file} temporal layers but preset {model.config.preset!r} "
                        f"has {n_model}{hint}")
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing and n_file == n_model:
        problems.append("missing tensors: " + ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else ""))
    if unexpected and n_file == n_model:
        problems.append("unexpected tensors: " + ", ".join(unexpected[:8]) + (" ..." if len(unexpected) > 8 else ""))
    for k, v in expected.items():
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape):
            problems.append(f"{k} has shape {tuple(state_dict[k].shape)}, expected {tuple(v.shape)}")
    if problems:
        raise CheckpointError(f"{name}: does not fit preset {model.config.preset!r}: " + "; ".join(problems))


def load_official_checkpoint(path: str | os.PathLike, preset: str = "xd",
                             device: str | torch.device = "cpu") -> VadCLIP:
    """Load an official VadCLIP checkpoint (adapter + CLIP) as a model in eval mode.

    The CLIP is built from the file's ``clipmodel.*`` tensors (shapes inferred, float16 accepted).
    Raises `CheckpointError` naming the problem if the file is not a VadCLIP checkpoint or its
    shapes disagree with the preset.
    """
    name = Path(path).name
    sd = load_state_dict_file(path)
    if not all(k in sd for k in _REQUIRED_ADAPTER_KEYS):
        if any(k.startswith("clipmodel.") for k in sd) or "frame_position_embeddings.weight" in sd:
            missing = [k for k in _REQUIRED_ADAPTER_KEYS if k not in sd]
            raise CheckpointError(f"{name}: incomplete VadCLIP checkpoint, missing {', '.join(missing)}")
        raise CheckpointError(f"{name}: not a VadCLIP checkpoint (no adapter tensors such as "
                              "frame_position_embeddings.weight)")
    clip_sd = {k[len("clipmodel."):]: v for k, v in sd.items() if k.startswith("clipmodel.")}
    if not clip_sd:
        raise CheckpointError(f"{name}: VadCLIP checkpoint without its CLIP (no clipmodel.* tensors)")
    clip_model = clip_from_openai_state_dict(clip_sd)
    info = describe_clip(clip_model, f"official checkpoint {name}", random_weights=False)
    overrides = {"visual_length": int(sd["frame_position_embeddings.weight"].shape[0])}
    model = VadCLIP(model_config(preset, **overrides), clip_model, info, get_tokenizer())
    adapter = {k: v.float() for k, v in sd.items() if not k.startswith("clipmodel.")}
    _check_adapter_tensors(model, adapter, name)
    model.load_state_dict(adapter, strict=False)
    return model.to(device).eval()


def _clip_tensors_for_saving(model: VadCLIP) -> dict[str, torch.Tensor]:
    """CLIP tensors, stored as float16 when that is lossless (OpenAI weights are), else float32."""
    sd = {f"clipmodel.{k}": v.detach().cpu() for k, v in model.clipmodel.state_dict().items()
          if k != "attn_mask"}
    lossless = all(torch.equal(v, v.half().to(v.dtype)) for v in sd.values() if v.is_floating_point())
    return {k: (v.half() if lossless and v.is_floating_point() else v).contiguous() for k, v in sd.items()}


def save_checkpoint(model: VadCLIP, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write `model` (adapter + CLIP + config) to a `.safetensors` file atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.adapter_state_dict().items()}
    tensors.update(_clip_tensors_for_saving(model))
    return write_checkpoint_file(path, tensors, FORMAT_NAME, model.config.to_dict(), model.clip_info, metadata)


def write_checkpoint_file(path: str | os.PathLike, tensors: dict[str, torch.Tensor], format_name: str,
                          config: dict, clip_info, metadata: dict | None = None) -> Path:
    """Our checkpoint layout, for every model family: `tensors` in a `.safetensors` file whose
    header holds the format name and version and, as JSON, the model config, the CLIP's source and
    random-weights flag, and free-form metadata. Written atomically."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path.name}: our checkpoints are .safetensors files")
    header = {
        "format": format_name, "format_version": FORMAT_VERSION,
        "config": json.dumps(config),
        "clip": json.dumps({"source": clip_info.source, "random_weights": clip_info.random_weights}),
        "metadata": json.dumps(metadata or {}),
    }
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return path


def read_checkpoint_header(path: str | os.PathLike, format_name: str = FORMAT_NAME,
                           what: str = "a vadclip") -> dict:
    """The JSON header of one of our checkpoints of `format_name`: config, clip and metadata (parsed)."""
    name = Path(path).name
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except Exception as e:
        raise CheckpointError(f"{name}: not a readable safetensors file ({e})") from None
    if header.get("format") != format_name:
        raise CheckpointError(f"{name}: a safetensors file, but not {what} checkpoint "
                              f"(format {header.get('format')!r})")
    try:
        return {k: json.loads(header[k]) for k in ("config", "clip", "metadata")}
    except (KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{name}: damaged {what.split()[-1]} header ({e})") from None


def resolve_checkpoint_path(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run folder's best checkpoint (`BEST_FILE`, else `LAST_FILE`)."""
    path = Path(path)
    if path.is_dir():
        for candidate in CHECKPOINT_FILES:
            if (path / candidate).is_file():
                return path / candidate
        raise CheckpointError(f"{path.name}: folder without {' or '.join(CHECKPOINT_FILES)}")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file or folder")
    return path


def load_vadclip_checkpoint(path: str | os.PathLike,
                            device: str | torch.device = "cpu") -> tuple[VadCLIP, dict]:
    """One of our checkpoints (a `.safetensors` file or a run folder) -> (model in eval mode,
    its header: config, clip and metadata)."""
    path = resolve_checkpoint_path(path)
    header = read_checkpoint_header(path)
    sd = load_state_dict_file(path)
    clip_sd = {k[len("clipmodel."):]: v for k, v in sd.items() if k.startswith("clipmodel.")}
    clip_model = clip_from_openai_state_dict(clip_sd)
    info = describe_clip(clip_model, header["clip"]["source"], bool(header["clip"]["random_weights"]))
    config = ModelConfig.from_dict(header["config"])
    model = VadCLIP(config, clip_model, info, get_tokenizer())
    adapter = {k: v.float() for k, v in sd.items() if not k.startswith("clipmodel.")}
    _check_adapter_tensors(model, adapter, path.name)
    model.load_state_dict(adapter, strict=False)
    return model.to(device).eval(), header


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> VadCLIP:
    """Load one of our checkpoints (a `.safetensors` file or a run folder) in eval mode; its
    metadata (training results) is in `model.checkpoint_metadata`."""
    model, header = load_vadclip_checkpoint(path, device)
    model.checkpoint_metadata = header["metadata"]
    return model

