"""Presets of the official VadCLIP recipe, as data.

A preset fixes the class vocabulary the checkpoint was trained with, the adapter's shape
(temporal layers, heads, attention window, prompt lengths) and the training recipe. Class names
are used at inference time only through the text encoder, so any vocabulary works with any preset.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace, asdict

from .errors import OptionError

# Dataset label codes -> preset class names (index 0 is always the normal class).
XD_CODE_TO_CLASS = {
    "A": "normal", "B1": "fighting", "B2": "shooting", "B4": "riot",
    "B5": "abuse", "B6": "car accident", "G": "explosion",
}
UCF_NAME_TO_CLASS = {
    "Normal": "normal", "Abuse": "abuse", "Arrest": "arrest", "Arson": "arson",
    "Assault": "assault", "Burglary": "burglary", "Explosion": "explosion",
    "Fighting": "fighting", "RoadAccidents": "roadAccidents", "Robbery": "robbery",
    "Shooting": "shooting", "Shoplifting": "shoplifting", "Stealing": "stealing",
    "Vandalism": "vandalism",
}


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the VadCLIP adapter (everything not stored in an official checkpoint)."""

    preset: str
    class_names: tuple[str, ...]
    visual_length: int = 256        # T: snippets per clip
    visual_width: int = 512         # D: CLIP embedding size
    visual_head: int = 1            # attention heads of the local temporal module
    visual_layers: int = 1          # transformer blocks of the local temporal module
    attn_window: int = 64           # width of the non-overlapping attention windows
    prompt_prefix: int = 10         # learnable prompt tokens before the class name
    prompt_postfix: int = 10        # learnable prompt tokens after the class name
    gcn_width: int = 256            # width of each GCN path (two paths are concatenated)
    # Improvement (issue 16), off = official: padded positions are masked out of the local
    # transformer's attention keys (the official code attends to padding; spec step 2).
    padding_aware_attention: bool = False

    def to_dict(self) -> dict:
        d = asdict(self)
        d["class_names"] = list(self.class_names)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d["class_names"] = tuple(d["class_names"])
        return cls(**d)


@dataclass(frozen=True)
class TrainRecipe:
    """Training hyper-parameters: a preset's official ones, or a run's (`train.effective_recipe`)."""

    lr: float
    milestones: tuple[int, ...]
    epochs: int = 10
    batch_size: int = 96            # xd: shuffled batch size; ucf: size of each of the two loaders
    balanced: bool = False          # ucf: each step takes batch_size normal + batch_size abnormal videos
    contrast_weight: float = 1e-4
    weight_decay: float = 0.01
    gamma: float = 0.1
    seed: int = 234
    select_metric: str = "ap_a"     # xd: A-branch AP; ucf: C-branch AUC ("auc_c")
    eval_every_steps: int = 0       # 0: evaluate once per epoch (xd); ucf: every 10 steps


@dataclass(frozen=True)
class Preset:
    model: ModelConfig
    train: TrainRecipe
    label_map: dict = field(default_factory=dict)   # dataset label code -> class name


PRESETS: dict[str, Preset] = {
    "xd": Preset(
        model=ModelConfig(
            preset="xd",
            class_names=tuple(XD_CODE_TO_CLASS.values()),
            visual_head=1, visual_layers=1, attn_window=64,
        ),
        train=TrainRecipe(lr=1e-5, milestones=(3, 6, 10), batch_size=96,
                          contrast_weight=1e-4, select_metric="ap_a"),
        label_map=XD_CODE_TO_CLASS,
    ),
    "ucf": Preset(
        model=ModelConfig(
            preset="ucf",
            class_names=tuple(UCF_NAME_TO_CLASS.values()),
            visual_head=1, visual_layers=2, attn_window=8,
        ),
        train=TrainRecipe(lr=2e-5, milestones=(4, 8), batch_size=64, balanced=True,
                          contrast_weight=1e-1, select_metric="auc_c", eval_every_steps=10),
        label_map=UCF_NAME_TO_CLASS,
    ),
}


def get_preset(name: str) -> Preset:
    """Return the preset called `name` ("xd" or "ucf"), with a clear error otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise OptionError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


def model_config(name: str, **overrides) -> ModelConfig:
    """The preset's ModelConfig, with optional field overrides."""
    return replace(get_preset(name).model, **overrides)
