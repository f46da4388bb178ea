"""AnomalyCLIP as a `vadclip.detectors.Detector`, and its checkpoint kinds for `vadclip.load_model`.

`AnomalyCLIPDetector` scores per-frame CLIP features (`frames_per_row` 1) with `score_frames`
(the official test computation): one curve, ``"score"`` (the per-frame sigmoid anomaly score),
and the joint class probabilities. Its vocabulary is the model's trained classes, shown normal
class first as every detector's is (the model's own order puts normal at `config.normal_id`);
names may be reworded, not added or removed: AnomalyCLIP learned one prompt context per class
(the model's own names in another order are refused too: each would get another's prompt).

Importing this module registers two checkpoint kinds with `vadclip.factory` (tried before
VadCLIP's, because they read the file's content rather than its suffix):

- ``"anomalyclip-official"``: an official Lightning ``last.ckpt`` (`is_official_checkpoint`).
  `preset` "auto" reads the preset from the number of learned prompts (xd 7, ucf 14, sht 18
  classes; this reads the file once more: pass the preset to skip it). The normal centroid is
  `centroid=` (an array, ``ncentroid.pt`` or ``.npy``), else ``ncentroid.pt`` beside the
  checkpoint (or one folder up), else a `CheckpointError` saying to pass it.
- ``"anomalyclip"``: our ``.safetensors`` file or a training run folder (centroid inside).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..detectors import DetectorScores, TrainedDetector
from ..errors import OptionError, VocabularyError
from ..factory import CheckpointKind, LoadedModel, register_checkpoint_kind
from ..prompt import validate_class_names
from ..safe_load import CheckpointError
from .checkpoint import (CENTROID_FILE, _find_centroid_file, is_anomalyclip_checkpoint, is_official_checkpoint,
                         load_checkpoint, load_official_checkpoint, read_lightning_checkpoint,
                         split_official_state_dict)
from .config import PRESETS
from .model import AnomalyCLIP
from .scoring import score_frames

SCORE_BRANCH = "score"      # the one curve: the per-frame sigmoid anomaly score


class AnomalyCLIPDetector(TrainedDetector):
    """An AnomalyCLIP model as a detector: per-frame rows, one curve, fixed vocabulary."""

    kind = "anomalyclip"
    method = "AnomalyCLIP"
    frames_per_row = 1
    fixed_vocabulary = True
    branches = (SCORE_BRANCH,)

    def __init__(self, model: AnomalyCLIP):
        super().__init__(model)
        cfg = model.config
        # vocabulary position k (normal first) -> the model's class index
        self._order = [cfg.normal_id] + [i for i in range(cfg.num_classes) if i != cfg.normal_id]

    @property
    def default_class_names(self) -> list[str]:
        names = self.model.config.class_names
        return [names[i] for i in self._order]

    def model_order(self, class_names: list[str]) -> list[str]:
        """Normal-first names -> the same names in the model's class order."""
        names = [""] * len(class_names)
        for k, i in enumerate(self._order):
            names[i] = class_names[k]
        return names

    def vocabulary(self, class_names: list[str] | None) -> list[str]:
        names = validate_class_names(self.default_class_names if class_names is None else class_names)
        trained = self.default_class_names
        if len(names) != len(trained):
            raise VocabularyError(
                f"this AnomalyCLIP model learned one prompt per class for exactly {len(trained)} classes "
                f"({', '.join(trained)}); got {len(names)}. Class names may be reworded (same number, same "
                "order, normal first) but not added or removed: a new class would have no learned prompt")
        plain = [_plain(n) for n in names]
        if plain != [_plain(n) for n in trained] and sorted(plain) == sorted(_plain(n) for n in trained):
            raise VocabularyError(
                f"these are this AnomalyCLIP model's classes in another order; its prompts are learned per "
                f"position, so keep its order (normal first): {', '.join(trained)}")
        self.model.check_class_names(self.model_order(names))     # prompt length check
        return names

    def score(self, features: np.ndarray, class_names: list[str]) -> DetectorScores:
        names = list(class_names)
        out = score_frames(self.model, features, self.model_order(names))
        return DetectorScores(curves={SCORE_BRANCH: out.scores}, class_probs=out.class_probs[:, self._order],
                              class_names=names, frames_per_row=self.frames_per_row,
                              random_weights=out.random_weights)


def _plain(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").replace("-", " ").split())


# ---------------------------------------------------------------------------------------------
# checkpoint kinds


def official_preset(path: Path) -> str:
    """The preset of an official checkpoint, from its number of learned class prompts."""
    _, tensors = split_official_state_dict(read_lightning_checkpoint(path).get("state_dict") or {})
    ctx = tensors.get("prompt_learner.ctx")
    if ctx is None:
        raise CheckpointError(f"{path.name}: not an AnomalyCLIP checkpoint (no net.prompt_learner.ctx)")
    found = [name for name, (config, _) in PRESETS.items() if config.num_classes == ctx.shape[0]]
    if not found:
        counts = ", ".join(f"{n} {c.num_classes}" for n, (c, _) in PRESETS.items())
        raise CheckpointError(f"{path.name}: {ctx.shape[0]} learned class prompts, which is no AnomalyCLIP "
                              f"preset ({counts})")
    return found[0]


def _load_official(path: Path, preset: str, device: str | torch.device, centroid=None) -> LoadedModel:
    if preset != "auto" and preset not in PRESETS:
        raise OptionError(f"{path.name}: an AnomalyCLIP checkpoint; its preset is one of {', '.join(PRESETS)} "
                          f"(or auto), not {preset!r}")
    if centroid is None and _find_centroid_file(path) is None:
        raise CheckpointError(
            f"{path.name}: an official AnomalyCLIP checkpoint does not store its normal centroid, and there is "
            f"no {CENTROID_FILE} beside it: pass the run's {CENTROID_FILE} (vadclip score/eval --centroid FILE; "
            "in the app, the centroid upload; in Python, centroid=), or compute it with "
            "anomalyclip.normal_centroid() from the normal training videos' per-frame features")
    chosen = official_preset(path) if preset == "auto" else preset
    model = load_official_checkpoint(path, preset=chosen, centroid=centroid, device=device)
    return LoadedModel(AnomalyCLIPDetector(model), "anomalyclip-official", preset=chosen, path=path,
                       metadata=dict(model.checkpoint_metadata))


def _load_ours(path: Path, preset: str, device: str | torch.device, centroid=None) -> LoadedModel:
    if centroid is not None:
        raise OptionError(f"{path.name}: our AnomalyCLIP checkpoints store their normal centroid; "
                          "centroid is only for official .ckpt files")
    model = load_checkpoint(path, device=device)
    if preset != "auto" and preset != model.config.preset:
        raise CheckpointError(f"{path.name}: an AnomalyCLIP {model.config.preset!r} checkpoint, not {preset!r}")
    return LoadedModel(AnomalyCLIPDetector(model), "anomalyclip", preset=model.config.preset, path=path,
                       metadata=dict(model.checkpoint_metadata))


def _is_official(path: Path) -> bool:
    return path.is_file() and is_official_checkpoint(path)


def _is_ours(path: Path) -> bool:
    return (path.is_dir() or path.suffix == ".safetensors") and is_anomalyclip_checkpoint(path)


OFFICIAL_KIND = CheckpointKind("anomalyclip-official", _is_official, _load_official, takes_centroid=True)
OURS_KIND = CheckpointKind("anomalyclip", _is_ours, _load_ours, takes_centroid=True)

register_checkpoint_kind(OURS_KIND, first=True)
register_checkpoint_kind(OFFICIAL_KIND, first=True)
