"""Reading official AnomalyCLIP checkpoints safely, and our own self-contained format.

- **official** (`last.ckpt`, Lightning 1.8.3): a pickled dict whose `state_dict` holds the model
  (`net.*`, float32) and whose other entries hold training objects (`functools.partial`s,
  `src.*` classes, omegaconf configs, optimizer state). It is read with a restricted unpickler:
  tensors and plain containers are rebuilt; the known training classes become inert stubs that
  are never imported or called; any other global (`os.system`, `builtins.eval`, ...) refuses the
  file. The preset names the classes; sizes (emb, depth, input width) come from the shapes. The
  normal centroid is not in the file: pass it (array, `ncentroid.pt`, `.npy`) or put
  `ncentroid.pt` next to the checkpoint (or one folder up, as the official run layout has it).
- **ours** (`.safetensors`): every tensor (CLIP under `clipmodel.*`, the centroid as `ncentroid`)
  and a JSON header with the config (preset, class names, shapes), the CLIP description and free
  metadata. A run folder holding `best.safetensors` / `last.safetensors` is accepted.
"""
from __future__ import annotations

import collections
import os
import pickle
import re
import types
import zipfile
from dataclasses import replace
from pathlib import Path

import torch

from ..checkpoint import get_tokenizer, resolve_checkpoint_path, write_checkpoint_file
from ..checkpoint import read_checkpoint_header as read_vadclip_header
from ..clip_backbone import ClipError, clip_from_openai_state_dict, describe_clip
from ..safe_load import CheckpointError, UnsafeCheckpointError, load_state_dict_file
from .centroid import load_centroid
from .config import PRESETS, AnomalyCLIPConfig, get_preset
from .model import AnomalyCLIP

FORMAT_NAME = "vadclip-anomalyclip"
CENTROID_FILE = "ncentroid.pt"

# --------------------------------------------------------------------------------------------
# Restricted unpickling
# --------------------------------------------------------------------------------------------

_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("_codecs", "encode"): __import__("codecs").encode,       # how protocol 2 pickles bytes
}
for _builtins in ("builtins", "__builtin__"):
    for _name, _value in (("set", set), ("frozenset", frozenset), ("dict", dict), ("list", list),
                          ("tuple", tuple), ("slice", slice), ("complex", complex)):
        _ALLOWED_GLOBALS[(_builtins, _name)] = _value

# Training-time objects of a Lightning / hydra run: replaced by inert stubs, never imported.
_STUBBED_MODULES = ("src", "omegaconf", "hydra", "pytorch_lightning", "lightning", "lightning_fabric",
                    "lightning_utilities", "torchmetrics", "torch.optim", "torch.nn", "torch.torch_version",
                    "typing", "pathlib", "datetime", "numpy", "dotmap")
_STUBBED_GLOBALS = {("functools", "partial"), ("collections", "defaultdict"), ("argparse", "Namespace")}


class _Inert:
    """Stand-in for a pickled training object: accepts any construction and state, does nothing."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


def _stub(module: str, name: str) -> type:
    return type(f"Stub[{module}.{name}]", (_Inert,), {"__module__": __name__})


def _is_stubbed(module: str, name: str) -> bool:
    return (module, name) in _STUBBED_GLOBALS or any(
        module == m or module.startswith(m + ".") for m in _STUBBED_MODULES)


class RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds tensors and plain containers; stubs known training objects; refuses the rest."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if _is_stubbed(module, name):
            return _stub(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


def _restricted_load(file, **kwargs):
    return RestrictedUnpickler(file, **kwargs).load()


# what torch.load takes as `pickle_module` (it subclasses our Unpickler for tensor storages)
_restricted_pickle = types.SimpleNamespace(__name__="vadclip_restricted_pickle", Unpickler=RestrictedUnpickler,
                                           load=_restricted_load, UnpicklingError=pickle.UnpicklingError)


def read_lightning_checkpoint(path: str | os.PathLike) -> dict:
    """The dict of a Lightning `.ckpt`, unpickled without executing code (see module docstring).

    Raises `UnsafeCheckpointError` naming the refused global, or `CheckpointError`.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path.name}: no such file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path.name}: empty file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle)
    except pickle.UnpicklingError as e:
        text = str(e)
        if "is not allowed" in text:
            raise UnsafeCheckpointError(
                f"{path.name}: refused: loading it would import {text.split()[1]}, which could execute "
                "code. Only tensors, plain containers and the official training objects (stubbed, "
                "never imported) are accepted") from None
        raise CheckpointError(f"{path.name}: not a PyTorch checkpoint (unreadable pickle data)") from None
    except Exception as e:  # torch.load raises many types (RuntimeError, EOFError, KeyError...)
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path.name}: not a PyTorch checkpoint ({reason})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path.name}: not a Lightning checkpoint (found {type(obj).__name__})")
    return obj


# --------------------------------------------------------------------------------------------
# Official checkpoints
# --------------------------------------------------------------------------------------------

def is_official_checkpoint(path: str | os.PathLike) -> bool:
    """True for a torch zip file whose pickle names AnomalyCLIP's temporal model (nothing is unpickled)."""
    try:
        with zipfile.ZipFile(path) as z:
            pkl = next((n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            return pkl is not None and b"net.temporal_model.axial_attn." in z.read(pkl)
    except (OSError, zipfile.BadZipFile):
        return False


def _float32(t: torch.Tensor) -> torch.Tensor:
    """A dense copy (strided or overlapping views included), floating point as float32."""
    return t.contiguous().float() if t.is_floating_point() else t.contiguous()


def split_official_state_dict(state_dict: dict) -> tuple[dict, dict]:
    """Official `net.*` tensors -> (OpenAI-format CLIP tensors, AnomalyCLIP tensors in our names).

    `text_encoder.*` are CLIP's text tower (its trained `text_projection` included),
    `image_encoder.*` its `visual.*`, `token_embedding.weight` its token table; the rest keep their
    names. CLIP's `logit_scale` is the selector's.
    """
    sd = {k[len("net."):]: _float32(v) for k, v in state_dict.items()
          if isinstance(k, str) and k.startswith("net.") and isinstance(v, torch.Tensor)}
    clip, model = {}, {}
    for k, v in sd.items():
        if k.startswith("text_encoder."):
            clip[k[len("text_encoder."):]] = v
        elif k.startswith("image_encoder."):
            clip["visual." + k[len("image_encoder."):]] = v
        elif k == "token_embedding.weight":
            clip[k] = v
        else:
            model[k] = v
    if "selector_model.logit_scale" in model:
        clip["logit_scale"] = model["selector_model.logit_scale"]
    return clip, model


def _config_from_shapes(preset: str, tensors: dict, name: str) -> AnomalyCLIPConfig:
    """The preset's config with emb and depth read from the temporal model's tensors."""
    config = get_preset(preset)[0]
    proj = tensors.get("temporal_model.projection.weight")
    if proj is None or proj.ndim != 2:
        raise CheckpointError(f"{name}: not an AnomalyCLIP checkpoint (no temporal_model.projection.weight)")
    blocks = {int(m.group(1)) for k in tensors
              if (m := re.match(r"temporal_model\.axial_attn\.layers\.blocks\.(\d+)\.", k))}
    if not blocks or len(blocks) % 2:
        raise CheckpointError(f"{name}: incomplete axial transformer ({len(blocks)} blocks; expected pairs)")
    emb = int(proj.shape[0])
    if emb % config.heads:
        raise CheckpointError(f"{name}: temporal width {emb} is not divisible by {config.heads} heads")
    return replace(config, emb_dim=emb, depth=len(blocks) // 2)


def check_model_tensors(model: AnomalyCLIP, tensors: dict, name: str) -> None:
    """One CheckpointError listing every difference between the file's tensors (ours, CLIP and
    centroid excluded) and the model's: missing, unexpected, and shape mismatches by name."""
    expected = {k: v for k, v in model.state_dict().items()
                if not k.startswith("clipmodel.") and k != "ncentroid"}
    cfg = model.config
    problems = []
    ctx = tensors.get("prompt_learner.ctx")
    if ctx is not None and ctx.shape[0] != cfg.num_classes:
        other = [p for p, (c, _) in PRESETS.items() if c.num_classes == ctx.shape[0]]
        hint = f"; {ctx.shape[0]} classes is preset {other[0]!r}" if other else ""
        problems.append(f"prompt_learner.ctx has shape {list(ctx.shape)} ({ctx.shape[0]} classes) but preset "
                        f"{cfg.preset!r} has {cfg.num_classes} classes (expected "
                        f"{list(expected['prompt_learner.ctx'].shape)}{hint})")
    proj = tensors.get("temporal_model.projection.weight")
    if proj is not None and proj.shape[1] != cfg.temporal_input_dim:
        how = "[A logits, features]" if cfg.concat else "the features alone"
        problems.append(f"temporal_model.projection.weight has shape {list(proj.shape)} but preset {cfg.preset!r} "
                        f"feeds {how} ({cfg.temporal_input_dim} inputs)")
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    if missing:
        problems.append("missing tensors: " + ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else ""))
    if unexpected:
        problems.append("unexpected tensors: " + ", ".join(unexpected[:8]) + (" ..." if len(unexpected) > 8 else ""))
    reported = {"prompt_learner.ctx", "temporal_model.projection.weight"}
    for k, v in expected.items():
        if k in tensors and tuple(tensors[k].shape) != tuple(v.shape) and not (k in reported and problems):
            problems.append(f"{k} has shape {list(tensors[k].shape)}, expected {list(v.shape)}")
    if problems:
        raise CheckpointError(f"{name}: does not fit AnomalyCLIP preset {cfg.preset!r}: " + "; ".join(problems))


def _find_centroid_file(path: Path) -> Path | None:
    for folder in (path.parent, path.parent.parent):
        if (folder / CENTROID_FILE).is_file():
            return folder / CENTROID_FILE
    return None


def load_official_checkpoint(path: str | os.PathLike, preset: str = "xd", centroid=None,
                             device: str | torch.device = "cpu") -> AnomalyCLIP:
    """Load an official AnomalyCLIP `last.ckpt` as a model in eval mode, without running its code.

    `preset` ("xd", "ucf", "sht") names the classes, normal id and input layout; `centroid` is a
    [512] array / tensor or a path to `ncentroid.pt` / `.npy` (default: `ncentroid.pt` beside the
    checkpoint or one folder up). Raises `CheckpointError` (`UnsafeCheckpointError` for a file
    that would run code; a bad centroid too) or `OptionError` (unknown preset) with the reason.
    """
    path = Path(path)
    name = path.name
    obj = read_lightning_checkpoint(path)
    state = obj.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{name}: not a Lightning checkpoint (no state_dict)")
    clip_sd, tensors = split_official_state_dict(state)
    if not any(k.startswith("temporal_model.") for k in tensors):
        raise CheckpointError(f"{name}: not an AnomalyCLIP checkpoint (no net.temporal_model.* tensors)")
    config = _config_from_shapes(preset, tensors, name)
    if centroid is None:
        found = _find_centroid_file(path)
        if found is None:
            raise CheckpointError(
                f"{name}: the normal centroid is not stored in official checkpoints and no {CENTROID_FILE} "
                "was found beside it; pass centroid= (a [512] array, or the run's ncentroid.pt), or compute "
                "it with normal_centroid() from the normal training videos' features")
        centroid = found
    c = load_centroid(centroid, config.feature_dim)
    try:
        clip_model = clip_from_openai_state_dict(clip_sd)
    except ClipError as e:
        raise CheckpointError(f"{name}: its CLIP tensors cannot be used ({e})") from None
    info = describe_clip(clip_model, f"official AnomalyCLIP checkpoint {name}", random_weights=False)
    model = AnomalyCLIP(config, clip_model, info, get_tokenizer())
    check_model_tensors(model, tensors, name)
    model.load_state_dict(tensors, strict=False)
    with torch.no_grad():
        model.ncentroid.copy_(c)
    model.checkpoint_metadata = {"source": "official", "file": name,
                                 "epoch": obj.get("epoch") if isinstance(obj.get("epoch"), int) else None}
    return model.to(device).eval()


# --------------------------------------------------------------------------------------------
# Our format
# --------------------------------------------------------------------------------------------

def save_checkpoint(model: AnomalyCLIP, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write `model` (all tensors, centroid included) with its config to a `.safetensors` file, atomically.

    CLIP tensors are stored as float16 where that is exact (OpenAI weights are), else float32.
    """
    tensors = {}
    for k, v in model.state_dict().items():
        if k == "clipmodel.attn_mask":
            continue
        v = v.detach().cpu().contiguous()
        if k.startswith("clipmodel.") and v.is_floating_point() and torch.equal(v.half().to(v.dtype), v):
            v = v.half()
        tensors[k] = v
    return write_checkpoint_file(path, tensors, FORMAT_NAME, model.config.to_dict(), model.clip_info, metadata)


def read_checkpoint_header(path: str | os.PathLike) -> dict:
    """The parsed JSON header (config, clip, metadata) of one of our AnomalyCLIP checkpoints."""
    return read_vadclip_header(path, FORMAT_NAME, "an AnomalyCLIP")


def is_anomalyclip_checkpoint(path: str | os.PathLike) -> bool:
    """True for one of our AnomalyCLIP `.safetensors` files (or a run folder holding one)."""
    try:
        read_checkpoint_header(resolve_checkpoint_path(path))
        return True
    except CheckpointError:
        return False


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> AnomalyCLIP:
    """Load one of our AnomalyCLIP checkpoints (a `.safetensors` file or a run folder) in eval mode."""
    path = resolve_checkpoint_path(path)
    header = read_checkpoint_header(path)
    try:
        config = AnomalyCLIPConfig.from_dict(header["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path.name}: damaged AnomalyCLIP config ({e})") from None
    sd = load_state_dict_file(path)
    clip_sd = {k[len("clipmodel."):]: v for k, v in sd.items() if k.startswith("clipmodel.")}
    try:
        clip_model = clip_from_openai_state_dict(clip_sd)
    except ClipError as e:
        raise CheckpointError(f"{path.name}: its CLIP tensors cannot be used ({e})") from None
    info = describe_clip(clip_model, header["clip"]["source"], bool(header["clip"]["random_weights"]))
    model = AnomalyCLIP(config, clip_model, info, get_tokenizer())
    tensors = {k: _float32(v) for k, v in sd.items() if not k.startswith("clipmodel.")}
    if "ncentroid" not in tensors:
        raise CheckpointError(f"{path.name}: no ncentroid tensor")
    centroid = load_centroid(tensors.pop("ncentroid"), config.feature_dim)
    check_model_tensors(model, tensors, path.name)
    model.load_state_dict(tensors, strict=False)
    with torch.no_grad():
        model.ncentroid.copy_(centroid)
    model.checkpoint_metadata = header["metadata"]
    return model.to(device).eval()
