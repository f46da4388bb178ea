"""The model choice: checkpoints found in the models folder or uploaded, and CLIP zero-shot.

`scan_models` lists what can be chosen (VadCLIP and AnomalyCLIP checkpoints, official or ours);
`ModelRegistry` loads a choice once per (checkpoint, preset, device, centroid file) with
`vadclip.load_model` and keeps the `vadclip.LoadedModel` (the detector and where it came from).
The registry is created by `build_demo` (one per app), never at import time.

An official AnomalyCLIP ``.ckpt`` needs its normal centroid: ``<name>.ncentroid.pt`` beside it
(what the page's centroid upload writes), else ``ncentroid.pt`` beside it (the official run
layout; `vadclip.load_model` looks there itself).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from vadclip.anomalyclip.checkpoint import read_checkpoint_header as read_anomalyclip_header
from vadclip.checkpoint import read_checkpoint_header, resolve_checkpoint_path
from vadclip.factory import PRESET_CHOICES, ZERO_SHOT, LoadedModel, checkpoint_kind, load_model
from vadclip.safe_load import CheckpointError
from vadclip.seeds import SUMMARY_FILE, seed_checkpoints

__all__ = ["PRESET_CHOICES", "ZERO_SHOT", "ModelChoice", "ModelRegistry", "checkpoint_kind",
           "centroid_file", "describe_checkpoint", "needs_centroid", "scan_models"]

ANOMALYCLIP_OFFICIAL = "anomalyclip-official"
CENTROID_SUFFIX = ".ncentroid.pt"


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model dropdown."""

    key: str        # ZERO_SHOT, or the checkpoint's absolute path
    label: str      # what the user sees
    kind: str       # the checkpoint kind ("official", "ours", ...) or ZERO_SHOT


def describe_checkpoint(path: Path) -> str:
    """A short label: the file name and kind; for ours the preset and best metric from the header."""
    kind = checkpoint_kind(path)
    if kind == ANOMALYCLIP_OFFICIAL:
        return f"{path.name} (AnomalyCLIP, official format{'' if centroid_file(path) else ', needs its centroid'})"
    if kind == "seeds":
        try:
            runs = seed_checkpoints(path) or []
        except ValueError:
            return f"{path.name} (unreadable {SUMMARY_FILE})"
        return f"{path.name} (VadCLIP ensemble of {len(runs)} seed{'s' if len(runs) != 1 else ''})"
    if kind not in ("ours", "anomalyclip"):
        return f"{path.name} ({kind} format)"
    read = read_checkpoint_header if kind == "ours" else read_anomalyclip_header
    try:
        header = read(resolve_checkpoint_path(path))
    except CheckpointError:
        return f"{path.name} (unreadable header)"
    preset = header["config"].get("preset", "?")
    metric = header["metadata"].get("select_metric")
    value = header["metadata"].get("best_value")
    detail = f", {metric} {value:.3f}" if isinstance(value, (int, float)) and metric else ""
    random = ", RANDOM CLIP" if header["clip"].get("random_weights") else ""
    family = "AnomalyCLIP, ours" if kind == "anomalyclip" else "ours"
    return f"{path.name} ({family}, {preset}{detail}{random})"


def centroid_file(checkpoint: Path) -> Path | None:
    """The normal centroid file of an official AnomalyCLIP checkpoint: ``<name>.ncentroid.pt``
    beside it, else ``ncentroid.pt`` beside it, else None."""
    for candidate in (checkpoint.with_name(checkpoint.name + CENTROID_SUFFIX), checkpoint.with_name("ncentroid.pt")):
        if candidate.is_file():
            return candidate
    return None


def _is_centroid(path: Path) -> bool:
    """An AnomalyCLIP centroid file (``ncentroid.pt`` / ``<name>.ncentroid.pt``): not a model."""
    return path.name == "ncentroid.pt" or path.name.endswith(CENTROID_SUFFIX)


def needs_centroid(key: str) -> bool:
    """True for an official AnomalyCLIP checkpoint without a centroid file beside it."""
    path = Path(key)
    return key != ZERO_SHOT and checkpoint_kind(path) == ANOMALYCLIP_OFFICIAL and centroid_file(path) is None


def scan_models(models_dir: Path, extra: list[str] | tuple[str, ...] = ()) -> list[ModelChoice]:
    """Checkpoints directly in `models_dir` (files and run folders), a `--seeds` run folder (the
    ensemble of its runs) and the per-seed runs inside it (`seed_<s>/`), and `extra` uploads, then
    CLIP zero-shot."""
    found: list[Path] = []
    if models_dir.is_dir():
        entries = [p for p in models_dir.iterdir() if not p.name.startswith(".")]
        entries += [s for p in entries if p.is_dir() and checkpoint_kind(p) in (None, "seeds")
                    for s in p.glob("seed_*") if s.is_dir()]
        found = sorted(p for p in entries if not _is_centroid(p) and checkpoint_kind(p))
    found += [Path(p) for p in extra if Path(p).exists() and Path(p).resolve() not in
              {f.resolve() for f in found}]
    choices = [ModelChoice(str(p.resolve()), describe_checkpoint(p), checkpoint_kind(p)) for p in found]
    choices.append(ModelChoice(ZERO_SHOT, "CLIP zero-shot (class names as prompts, no training)", ZERO_SHOT))
    return choices


class ModelRegistry:
    """Loads model choices on demand and keeps them, one per (key, preset, device).

    Zero-shot runs on the app's CLIP (`clip_source`, VADCLIP_CLIP) whatever the preset.
    """

    def __init__(self, clip_source: str):
        self.clip_source = clip_source
        self._loaded: dict[tuple[str, str, str], LoadedModel] = {}
        self._lock = threading.Lock()

    def get(self, key: str, preset: str = "auto", device: str = "cpu") -> LoadedModel:
        """The loaded model for a dropdown value. Raises a UserError (CheckpointError, ClipError,
        OptionError) naming the problem."""
        if key == ZERO_SHOT and preset in PRESET_CHOICES:
            preset = "auto"         # the page always gives the vocabulary: one CLIP for any preset
        centroid = None
        if key != ZERO_SHOT and checkpoint_kind(Path(key)) == ANOMALYCLIP_OFFICIAL:
            centroid = centroid_file(Path(key))
        stamp = (str(centroid), centroid.stat().st_mtime_ns) if centroid is not None else None
        cache_key = (key, preset, device, stamp)       # a new centroid upload loads the model again
        with self._lock:
            if cache_key not in self._loaded:
                clip = self.clip_source if key == ZERO_SHOT else None
                self._loaded[cache_key] = load_model(key, preset=preset, device=device, clip=clip,
                                                     centroid=centroid)
            return self._loaded[cache_key]
