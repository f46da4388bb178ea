"""The model choice: checkpoints found in the models folder or uploaded, and CLIP zero-shot.

`scan_models` lists what can be chosen; `ModelRegistry` loads a choice once per (checkpoint,
preset, device) and hands out a `LoadedModel`: a `vadclip.scoring.FeatureScorer` (the CLIP that
encodes frames plus the scoring of its features) and where it came from. The registry is created
by `build_demo` (one per app), never at import time.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from vadclip.checkpoint import get_tokenizer, load_model, read_checkpoint_header, resolve_checkpoint_path
from vadclip.clip_backbone import ClipInfo, load_clip
from vadclip.config import PRESETS
from vadclip.safe_load import CheckpointError
from vadclip.scoring import FeatureScorer

ZERO_SHOT = "zeroshot"
OFFICIAL_SUFFIXES = (".pth", ".pt")
PRESET_CHOICES = ("auto", *PRESETS)


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model dropdown."""

    key: str        # ZERO_SHOT, or the checkpoint's absolute path
    label: str      # what the user sees
    kind: str       # "official", "ours" or "zeroshot"


@dataclass
class LoadedModel:
    """A ready scorer (with the CLIP whose image features it expects) and where it came from."""

    key: str
    kind: str
    scorer: FeatureScorer
    preset: str | None = None

    @property
    def clip_model(self) -> nn.Module:
        return self.scorer.clip_model

    @property
    def clip_info(self) -> ClipInfo:
        return self.scorer.clip_info

    def check_vocabulary(self, class_names: list[str]) -> list[str]:
        """The cleaned names; ValueError for names the model cannot take (too long for CLIP's
        context, duplicates, ...), raised before any video is decoded."""
        return self.scorer.vocabulary(list(class_names))


def checkpoint_kind(path: Path) -> str | None:
    """"official" for .pth/.pt files, "ours" for .safetensors files or run folders, else None."""
    if path.is_dir():
        return "ours" if any((path / n).is_file() for n in ("best.safetensors", "last.safetensors")) else None
    if path.suffix in OFFICIAL_SUFFIXES:
        return "official"
    if path.suffix == ".safetensors":
        return "ours"
    return None


def describe_checkpoint(path: Path) -> str:
    """A short label: file name, and for ours the preset and best metric from the header."""
    kind = checkpoint_kind(path)
    if kind == "official":
        return f"{path.name} (official format)"
    try:
        header = read_checkpoint_header(resolve_checkpoint_path(path))
    except CheckpointError:
        return f"{path.name} (unreadable header)"
    preset = header["config"].get("preset", "?")
    metric = header["metadata"].get("best_metric") or header["metadata"].get("select_metric")
    value = header["metadata"].get("best_value")
    detail = f", {metric} {value:.3f}" if isinstance(value, (int, float)) and metric else ""
    random = ", RANDOM CLIP" if header["clip"].get("random_weights") else ""
    return f"{path.name} (ours, {preset}{detail}{random})"


def scan_models(models_dir: Path, extra: list[str] | tuple[str, ...] = ()) -> list[ModelChoice]:
    """Checkpoints directly in `models_dir` (files and run folders) and `extra` uploads, then
    CLIP zero-shot."""
    found: list[Path] = []
    if models_dir.is_dir():
        found = sorted(p for p in models_dir.iterdir() if checkpoint_kind(p) and not p.name.startswith("."))
    found += [Path(p) for p in extra if Path(p).exists() and Path(p).resolve() not in
              {f.resolve() for f in found}]
    choices = [ModelChoice(str(p.resolve()), describe_checkpoint(p), checkpoint_kind(p)) for p in found]
    choices.append(ModelChoice(ZERO_SHOT, "CLIP zero-shot (class names as prompts, no training)",
                               "zeroshot"))
    return choices


def preset_candidates(path: Path, preset: str) -> list[str]:
    """Presets to try for an official checkpoint: the chosen one, or a guess from the file name
    first and then the others (a wrong preset fails on tensor shapes: 2 temporal layers = ucf)."""
    if preset != "auto":
        return [preset]
    name = path.name.lower()
    hinted = [p for p in PRESETS if p in name]
    return hinted + [p for p in PRESETS if p not in hinted]


class ModelRegistry:
    """Loads model choices on demand and keeps them, one per (key, preset, device)."""

    def __init__(self, clip_source: str):
        self.clip_source = clip_source
        self._loaded: dict[tuple[str, str, str], LoadedModel] = {}
        self._lock = threading.Lock()

    def get(self, key: str, preset: str = "auto", device: str = "cpu") -> LoadedModel:
        """The loaded model for a dropdown value. Raises CheckpointError / ClipError / ValueError."""
        if preset not in PRESET_CHOICES:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESET_CHOICES)}")
        cache_key = (key, preset if key != ZERO_SHOT else "-", device)
        with self._lock:
            if cache_key not in self._loaded:
                self._loaded[cache_key] = self._load(key, preset, device)
            return self._loaded[cache_key]

    def _load(self, key: str, preset: str, device: str) -> LoadedModel:
        if key == ZERO_SHOT:
            clip_model, info = load_clip(self.clip_source, device=device)
            return LoadedModel(key, "zeroshot", FeatureScorer.zero_shot(clip_model, info, get_tokenizer()))
        path = Path(key)
        kind = checkpoint_kind(path)
        if kind is None:
            raise CheckpointError(f"{path.name}: not a checkpoint (.pth, .pt, .safetensors or a run folder)")
        if kind == "official":
            errors = []
            for candidate in preset_candidates(path, preset):
                try:
                    model = load_model(path, preset=candidate, device=device)
                    break
                except CheckpointError as e:
                    errors.append(str(e))
            else:
                raise CheckpointError(errors[0] if len(errors) == 1 else " / ".join(errors))
        else:
            model = load_model(path, device=device)
        return LoadedModel(key, kind, FeatureScorer.from_vadclip(model), preset=model.config.preset)
