"""What a detector is: CLIP image features of a video in, anomaly curves and class probabilities out.

A detector names the CLIP whose `encode_image` makes its features (`clip_model`, `clip_info`),
how many frames one feature row covers (`frames_per_row`: 16 for VadCLIP's snippet means, 1 for
a per-frame model), its vocabulary rule and the coarse anomaly curves it gives (`branches`, the
first one being the default for cutting segments). Everything after `score` (segments, plots,
exports, the review queue) works from `DetectorScores` alone, whatever the detector.

Three detectors live here: `VadCLIPDetector` (a trained VadCLIP model, curves "c" and "a"),
`VadCLIPEnsemble` (several of them on one CLIP, their mean) and `ZeroShotDetector` (CLIP alone,
one curve "a" = 1 - P(normal)). Another model family implements
the same `Detector` protocol and registers its checkpoint kind with `vadclip.factory`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from .clip_backbone import ClipInfo
from .config import get_preset
from .constants import RANDOM_WEIGHTS_WARNING, SNIPPET_FRAMES
from .errors import VocabularyError
from .inference import FeatureScores, score_features
from .model import VadCLIP
from .prompt import validate_class_names
from .safe_load import CheckpointError
from .text_cache import TextFeatureCache
from .zeroshot import DEFAULT_PROMPT_TEMPLATE, ZeroShotScorer, zero_shot_prompts


@dataclass
class DetectorScores:
    """Scores of the N feature rows of one video for C classes (index 0 = the normal class)."""

    curves: dict[str, np.ndarray]   # branch name -> [N] float32 coarse anomaly score in [0, 1]
    class_probs: np.ndarray         # [N, C] float32 class probabilities (rows sum to 1)
    class_names: list[str]
    frames_per_row: int             # video frames covered by one row (16: a snippet; 1: a frame)
    random_weights: bool = False    # True: the CLIP has random weights, the scores are meaningless


@runtime_checkable
class Detector(Protocol):
    """Anything that scores [N, D] CLIP image features of a video against class names."""

    kind: str                       # "vadclip", "zero-shot", ...
    description: str                # one line for the user (preset, CLIP, warnings)
    clip_model: nn.Module           # the CLIP whose encode_image makes the features
    clip_info: ClipInfo
    frames_per_row: int             # 16: one row per 16-frame snippet; 1: one row per frame
    fixed_vocabulary: bool          # True: only the trained classes (names may be reworded)
    random_weights: bool
    default_class_names: list[str]
    branches: tuple[str, ...]       # names of the coarse curves; the first is the default

    def vocabulary(self, class_names: list[str] | None) -> list[str]:
        """The class names to score with (`default_class_names` if None), checked; raises
        `VocabularyError` for names this detector cannot take."""
        ...

    def score(self, features: np.ndarray, class_names: list[str]) -> DetectorScores:
        """Score [N, D] feature rows against `class_names` (already checked by `vocabulary`)."""
        ...


def check_fixed_vocabulary(class_names: list[str], trained: list[str]) -> None:
    """For a detector trained on a fixed class set: the names may be reworded, not added or removed."""
    if len(class_names) != len(trained):
        raise VocabularyError(f"this model knows exactly {len(trained)} classes ({', '.join(trained)}); "
                              f"got {len(class_names)}: rename them if you like, but keep their number "
                              "and order")


class TrainedDetector:
    """What a detector wrapping a trained model (`model.clipmodel`, `model.clip_info`,
    `model.config.preset`) shares: its CLIP, the random-weights flag and its description."""

    method = ""          # the method's name in descriptions, e.g. "VadCLIP"

    def __init__(self, model: nn.Module):
        self.model = model

    @property
    def clip_model(self) -> nn.Module:
        return self.model.clipmodel

    @property
    def clip_info(self) -> ClipInfo:
        return self.model.clip_info

    @property
    def random_weights(self) -> bool:
        return self.model.clip_info.random_weights

    @property
    def description(self) -> str:
        return f"{self.method} (preset {self.model.config.preset}, {self.model.clip_info.label})"


class VadCLIPDetector(TrainedDetector):
    """A trained VadCLIP model: C-branch ("c", sigmoid score) and A-branch ("a", 1 - P(normal)).

    Its learned prompt takes any vocabulary (free vocabulary). Text features are kept per class
    name, so re-scoring with an edited vocabulary only encodes the new names; the model must not
    be trained further meanwhile.
    """

    kind = "vadclip"
    method = "VadCLIP"
    frames_per_row = SNIPPET_FRAMES
    fixed_vocabulary = False
    branches = ("c", "a")

    def __init__(self, model: VadCLIP):
        super().__init__(model)
        self._text_features = TextFeatureCache(model.encode_text)

    @property
    def default_class_names(self) -> list[str]:
        return list(self.model.config.class_names)

    def vocabulary(self, class_names: list[str] | None) -> list[str]:
        names = validate_class_names(self.default_class_names if class_names is None else class_names)
        self.model.prompt_tokens(names)           # raises VocabularyError for names too long
        return names

    def score(self, features: np.ndarray, class_names: list[str]) -> DetectorScores:
        names = list(class_names)
        s = score_features(self.model, features, names, text_features=self._text_features(names))
        return DetectorScores(curves={"c": s.coarse_c, "a": s.coarse_a}, class_probs=s.fine,
                              class_names=s.class_names, frames_per_row=self.frames_per_row,
                              random_weights=s.random_weights)


class VadCLIPEnsemble:
    """Several VadCLIP models on one CLIP (e.g. the runs of `vadclip train --seeds`) as one detector:
    the mean of the members' per-snippet probabilities (`improvements.ensemble_scores`, the
    checkpoint ensembles of issue 16; DeSC 2026 ensembles streams). The members must share the CLIP
    (their features are the same); they then hold one copy of it."""

    kind = "vadclip-ensemble"
    frames_per_row = SNIPPET_FRAMES
    fixed_vocabulary = False
    branches = ("c", "a")

    def __init__(self, members: list[VadCLIPDetector]):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        first = members[0].model
        reference = first.clipmodel.state_dict()
        for i, member in enumerate(members[1:], start=2):
            theirs = member.model.clipmodel.state_dict()
            if theirs.keys() != reference.keys() or not all(torch.equal(theirs[k], reference[k]) for k in reference):
                raise CheckpointError(f"ensemble member {i} has another CLIP than member 1; the members of an "
                                      "ensemble must be trained on the same CLIP features")
            if member.model.config.preset != first.config.preset:
                raise CheckpointError(f"ensemble member {i} is a {member.model.config.preset!r} model, "
                                      f"member 1 a {first.config.preset!r} one")
            member.model.clipmodel = first.clipmodel          # one copy of the shared, frozen CLIP
        self.members = members

    @property
    def clip_model(self) -> nn.Module:
        return self.members[0].clip_model

    @property
    def clip_info(self) -> ClipInfo:
        return self.members[0].clip_info

    @property
    def random_weights(self) -> bool:
        return self.members[0].random_weights

    @property
    def description(self) -> str:
        model = self.members[0].model
        return f"VadCLIP ensemble of {len(self.members)} (preset {model.config.preset}, {model.clip_info.label})"

    @property
    def default_class_names(self) -> list[str]:
        return self.members[0].default_class_names

    def vocabulary(self, class_names: list[str] | None) -> list[str]:
        names = self.members[0].vocabulary(class_names)
        for member in self.members[1:]:
            member.vocabulary(names)
        return names

    def score(self, features: np.ndarray, class_names: list[str]) -> DetectorScores:
        from .improvements import ensemble_scores

        members = [m.score(features, class_names) for m in self.members]
        mean = ensemble_scores([FeatureScores(s.curves["c"], s.curves["a"], s.class_probs, s.class_names,
                                              s.random_weights) for s in members])
        return DetectorScores(curves={"c": mean.coarse_c, "a": mean.coarse_a}, class_probs=mean.fine,
                              class_names=mean.class_names, frames_per_row=self.frames_per_row,
                              random_weights=mean.random_weights)


class ZeroShotDetector:
    """Plain CLIP zero-shot (see `vadclip.zeroshot`): one curve "a" = 1 - P(normal), no training.

    `default_class_names` defaults to the xd preset's vocabulary.
    """

    kind = "zero-shot"
    frames_per_row = SNIPPET_FRAMES
    fixed_vocabulary = False
    branches = ("a",)

    def __init__(self, clip_model: nn.Module, clip_info: ClipInfo, tokenizer=None,
                 prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
                 default_class_names: list[str] | None = None):
        if tokenizer is None:
            from .checkpoint import get_tokenizer
            tokenizer = get_tokenizer()
        self.clip_model = clip_model
        self.clip_info = clip_info
        self.tokenizer = tokenizer
        self.prompt_template = prompt_template
        self.default_class_names = list(default_class_names if default_class_names is not None
                                        else get_preset("xd").model.class_names)
        self._scorer = ZeroShotScorer(clip_model, clip_info, tokenizer, prompt_template)

    @property
    def random_weights(self) -> bool:
        return self.clip_info.random_weights

    @property
    def description(self) -> str:
        text = self._scorer.description
        return f"{text} [{RANDOM_WEIGHTS_WARNING}]" if self.random_weights else text

    def vocabulary(self, class_names: list[str] | None) -> list[str]:
        names = validate_class_names(self.default_class_names if class_names is None else class_names)
        zero_shot_prompts(self.tokenizer, names, self.prompt_template)   # prompt length check
        return names

    def score(self, features: np.ndarray, class_names: list[str]) -> DetectorScores:
        s = self._scorer(features, list(class_names))
        return DetectorScores(curves={"a": s.coarse_a}, class_probs=s.fine, class_names=s.class_names,
                              frames_per_row=self.frames_per_row, random_weights=s.random_weights)


def as_detector(model: VadCLIP | Detector) -> Detector:
    """A `Detector` for a VadCLIP model, or the detector itself."""
    if isinstance(model, VadCLIP):
        return VadCLIPDetector(model)
    if isinstance(model, Detector):
        return model
    raise TypeError(f"expected a VadCLIP model or a Detector, got {type(model).__name__}")
