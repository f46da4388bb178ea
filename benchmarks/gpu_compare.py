"""The library's accelerator paths against CPU float32, on any device and precision.

Each `run_*` function computes one path (the VadCLIP forward, one training step, preprocessing,
video feature extraction, AnomalyCLIP scoring) on a given device under a given precision, the way
the library runs it, and returns its outputs as float64 CPU tensors. `compare` measures them
against the same function's CPU float32 run:

    ref = run_forward(model, batch, "cpu", "fp32")
    out = run_forward(model, batch, "cuda", "bf16")
    for c in compare("forward", out, ref, "cuda", "bf16"): print(c.line())

Precision "fp32" runs without autocast; "bf16" / "fp16" under `torch.autocast` of the device
(CPU autocast has both), as `ExtractSettings.precision` and `TrainConfig.amp` do. The same
checks run on the CPU in CI (bf16 / fp16 autocast on the CPU against float32) so that they keep
working while no GPU is at hand; tests/test_gpu.py runs them, benchmarks/gpu_check.sh on a GPU.

Errors: `rel` = ||out - ref||_2 / ||ref||_2 over the whole tensor (float64), and `max_abs` =
max |out - ref|, bounded only for quantities on a fixed scale (`BOUNDED`: probabilities, and
preprocessed pixels in 8-bit grey levels).
"""
from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass

import numpy as np
import open_clip
import torch

from bench_train_step import fake_batch
from vadclip.checkpoint import get_tokenizer
from vadclip.clip_backbone import describe_clip
from vadclip.config import model_config
from vadclip.features import ExtractSettings, extract_video_features, preprocess_frames
from vadclip.model import VadCLIP
from vadclip.train import TrainConfig, effective_recipe, make_optimizer, train_step

PRECISIONS = ("fp32", "bf16", "fp16")
AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Tolerance:
    rel: float                  # bound on ||out - ref|| / ||ref||
    abs: float | None = None    # bound on max |out - ref| for the BOUNDED quantities


# Per check and precision; "check/quantity" overrides the check's bound for that quantity.
# fp32: the same arithmetic in another order (cuDNN convolutions use TF32 by default, hence the
# looser image-encoder bound); bf16 / fp16: the matrix operands rounded to 8 / 11 significant bits
# in every layer. Measured on the CPU (autocast against float32, tiny and fixture models): forward
# bf16 rel <= 2.3e-2, fp16 <= 1.4e-3; training-step gradients bf16 <= 3.4e-2, fp16 <= 2.6e-3.
TOLERANCES: dict[str, dict[str, Tolerance]] = {
    "forward": {"fp32": Tolerance(1e-4, 1e-5), "bf16": Tolerance(5e-2, 2e-2), "fp16": Tolerance(1e-2, 3e-3)},
    "train_step": {"fp32": Tolerance(1e-5), "bf16": Tolerance(1e-2), "fp16": Tolerance(2e-3)},
    "train_step/grads": {"fp32": Tolerance(1e-3), "bf16": Tolerance(1e-1), "fp16": Tolerance(2e-2)},
    "extract": {"fp32": Tolerance(5e-3), "bf16": Tolerance(5e-2), "fp16": Tolerance(1e-2)},
    "anomalyclip": {"fp32": Tolerance(1e-4, 1e-5), "bf16": Tolerance(5e-2, 2e-2), "fp16": Tolerance(1e-2, 3e-3)},
    # Preprocessing is float32 whatever the precision; `abs` is in grey levels: the same resize on
    # two devices may round a value the other way (1 level); the CPU's uint8 resize is within 2.
    "preprocess": {"fp32": Tolerance(5e-3, 1.0 + 1e-3)},
    "preprocess_vs_uint8": {"fp32": Tolerance(5e-3, 2.0 + 1e-3)},
}
BOUNDED = frozenset({"p_c", "p_a", "scores", "class_probs", "pixels"})


@dataclass(frozen=True)
class Comparison:
    """One quantity of one check, on one device and precision, against CPU float32."""

    check: str
    quantity: str
    device: str
    precision: str
    rel: float
    max_abs: float
    finite: bool
    tol_rel: float
    tol_abs: float | None

    @property
    def ok(self) -> bool:
        return self.finite and self.rel <= self.tol_rel and (
            self.tol_abs is None or self.quantity not in BOUNDED or self.max_abs <= self.tol_abs)

    def line(self) -> str:
        bound = f"rel <= {self.tol_rel:.0e}"
        if self.tol_abs is not None and self.quantity in BOUNDED:
            bound += f", abs <= {self.tol_abs:.3g}"
        return (f"{'ok  ' if self.ok else 'FAIL'} {self.check:<19} {self.quantity:<14} {self.device:<5} "
                f"{self.precision:<5} rel {self.rel:9.2e}  max_abs {self.max_abs:9.2e}  ({bound}"
                f"{'' if self.finite else ', NOT FINITE'})")

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def compare(check: str, out: dict[str, torch.Tensor], ref: dict[str, torch.Tensor], device: str,
            precision: str) -> list[Comparison]:
    """Every quantity of `out` against `ref` (same keys and shapes) under TOLERANCES[check]."""
    if out.keys() != ref.keys():
        raise ValueError(f"{check}: outputs {sorted(out)} differ from the reference's {sorted(ref)}")
    result = []
    for name in ref:
        tol = TOLERANCES.get(f"{check}/{name}", TOLERANCES[check])[precision]
        a, b = out[name].double().cpu(), ref[name].double().cpu()
        if a.shape != b.shape:
            raise ValueError(f"{check}/{name}: shape {tuple(a.shape)} vs reference {tuple(b.shape)}")
        finite = bool(torch.isfinite(a).all())
        diff = torch.nan_to_num(a - b, nan=float("inf"))
        rel = float(diff.norm() / b.norm().clamp_min(1e-300))
        max_abs = float(diff.abs().max()) if diff.numel() else 0.0
        result.append(Comparison(check, name, str(device), precision, rel, max_abs, finite, tol.rel, tol.abs))
    return result


def autocast(device: str | torch.device, precision: str):
    """The autocast context the library uses for `precision` ("fp32": none)."""
    dtype = AUTOCAST_DTYPES[precision]
    return torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None)


def _float64(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v).detach().double().cpu() for k, v in tensors.items()}


# ---------------------------------------------------------------------------------------------
# models and inputs


def tiny_clip(image_size: int = 32, seed: int = 0) -> torch.nn.Module:
    """A small random open_clip CLIP (visual width 64, text width 64, one layer each, D = 512):
    fast on a CPU, and the same code path as ViT-B/16."""
    torch.manual_seed(seed)
    clip = open_clip.model.CLIP(
        embed_dim=512, quick_gelu=True,
        vision_cfg=open_clip.model.CLIPVisionCfg(layers=1, width=64, head_width=64, patch_size=16,
                                                 image_size=image_size),
        text_cfg=open_clip.model.CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=1, layers=1))
    return clip.eval().requires_grad_(False)


def tiny_vadclip(visual_length: int = 32, seed: int = 0) -> VadCLIP:
    """A VadCLIP (xd preset, T = `visual_length`) on `tiny_clip`; random weights, labelled so."""
    clip = tiny_clip(seed=seed)
    info = describe_clip(clip, "tiny random CLIP", random_weights=True)
    config = model_config("xd", visual_length=visual_length, attn_window=8)
    return VadCLIP(config, clip, info, get_tokenizer()).eval()


@dataclass
class Batch:
    """A training-shaped batch: features [B, T, 512], lengths [B], multi_hot [B, C], class names."""

    features: torch.Tensor
    lengths: torch.Tensor
    multi_hot: torch.Tensor
    class_names: list[str]


def make_batch(model: VadCLIP, batch: int = 4, seed: int = 0) -> Batch:
    """Random snippet features (zero past each length, a third of the videos full length) and
    multi-hot labels for `model`'s preset vocabulary (the benchmarks' `fake_batch`)."""
    names = list(model.config.class_names)
    features, lengths, multi_hot = fake_batch(batch, model.config.visual_length, len(names), seed)
    return Batch(features, lengths, multi_hot, names)


# ---------------------------------------------------------------------------------------------
# the paths


def run_forward(model: VadCLIP, batch: Batch, device: str, precision: str) -> dict[str, torch.Tensor]:
    """One eval-mode forward pass: text features, both branches' logits and probabilities at the
    valid positions (padding positions are left out)."""
    m = copy.deepcopy(model).to(device).eval()
    with torch.no_grad(), autocast(device, precision):
        out = m(batch.features.to(device), batch.lengths.to(device), batch.class_names)
    T = batch.features.shape[1]
    valid = (torch.arange(T)[None, :] < batch.lengths[:, None]).to(device)
    logits_c, logits_a = out.logits_c.float()[valid], out.logits_a.float()[valid]
    return _float64({"text_features": out.text_features.float(), "logits_c": logits_c, "logits_a": logits_a,
                     "p_c": logits_c.sigmoid(), "p_a": logits_a.softmax(-1)})


def run_train_step(model: VadCLIP, batch: Batch, device: str, precision: str) -> dict[str, torch.Tensor]:
    """One `vadclip.train.train_step` with the preset's AdamW: its losses and the adapter's
    gradients (one vector). (The updated weights are not compared: a first AdamW step moves each
    weight by about lr * sign(gradient), so rounding-level gradients move by an arbitrary sign.)"""
    m = copy.deepcopy(model).to(device).train()
    recipe = effective_recipe(TrainConfig(preset=m.config.preset))
    optimizer, _ = make_optimizer(m, recipe)
    losses = train_step(m, optimizer, batch.features.to(device), batch.multi_hot.to(device),
                        batch.lengths.to(device), batch.class_names, recipe.contrast_weight,
                        amp_dtype=AUTOCAST_DTYPES[precision])
    grads = torch.cat([p.grad.float().flatten() for p in m.adapter_parameters()])
    return _float64({**{k: torch.tensor(v) for k, v in losses.items()}, "grads": grads})


def run_preprocess(frames: torch.Tensor, image_size: int, device: str, method: str = "auto",
                   ten_crop: bool = False) -> dict[str, torch.Tensor]:
    """`preprocess_frames` of uint8 [b, H, W, 3] frames on `device`, back in grey levels 0..255."""
    x = preprocess_frames(frames.to(device), image_size, ten_crop=ten_crop, method=method).double().cpu()
    mean = torch.tensor(open_clip.constants.OPENAI_DATASET_MEAN, dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor(open_clip.constants.OPENAI_DATASET_STD, dtype=torch.float64).view(3, 1, 1)
    return {"pixels": (x * std + mean) * 255.0}


def run_extract(clip_model: torch.nn.Module, clip_info, path: str | os.PathLike, device: str,
                precision: str, samples_per_snippet: int = 4, batch_size: int = 64) -> dict[str, torch.Tensor]:
    """`extract_video_features` (decode, preprocess on the device, encode) of a video file."""
    settings = ExtractSettings(samples_per_snippet=samples_per_snippet, batch_size=batch_size, precision=precision)
    m = copy.deepcopy(clip_model).to(device)
    result = extract_video_features(m, clip_info, path, settings, device=device)
    return {"features": torch.from_numpy(result.features).double()}


def run_anomalyclip(checkpoint: str | os.PathLike, centroid: np.ndarray, features: np.ndarray,
                    device: str, precision: str) -> dict[str, torch.Tensor]:
    """AnomalyCLIP scoring (`vadclip.anomalyclip.score_frames`) of [N, D] features, loaded on `device`."""
    from vadclip import anomalyclip

    model = anomalyclip.load_official_checkpoint(checkpoint, preset="xd", centroid=centroid, device=device)
    with torch.no_grad(), autocast(device, precision):
        out = anomalyclip.score_frames(model, features)
    return _float64({"scores": out.scores, "class_probs": out.class_probs})


def report(comparisons: list[Comparison]) -> str:
    """One line per comparison, failures marked."""
    return "\n".join(c.line() for c in comparisons)
