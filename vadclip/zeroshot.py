"""CLIP zero-shot scoring: anomaly scores from the class names alone, without a trained VadCLIP.

For a video's snippet features (CLIP `encode_image` outputs, one per 16-frame snippet) and a
vocabulary whose index 0 is the normal class:

1. each class name becomes a prompt, ``prompt_template.format(name)`` (default
   ``"a video frame of {}"``), encoded by CLIP's text tower (`encode_text`);
2. snippet and text features are L2-normalised, and their cosine similarities are multiplied by
   CLIP's learned temperature ``exp(logit_scale)`` (100 for OpenAI's CLIP);
3. ``fine = softmax`` over the classes, per snippet;
4. both coarse scores are ``1 - fine[:, 0]``, the probability of "not normal": zero-shot has no
   C-branch, so ``coarse_c`` and ``coarse_a`` are the same curve.

This is the plain CLIP baseline the VadCLIP paper compares against: it needs no training and no
checkpoint, and it is much weaker than a trained model. Its output is a `FeatureScores`, so the
rest of the pipeline (segments, timeline, review) treats it like a VadCLIP model's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .errors import VocabularyError
from .clip_backbone import ClipInfo
from .inference import FeatureScores, check_feature_array
from .prompt import CONTEXT_LENGTH, check_token_lengths, validate_class_names
from .text_cache import TEXT_CACHE_SIZE, TextFeatureCache

DEFAULT_PROMPT_TEMPLATE = "a video frame of {}"


def zero_shot_prompts(tokenizer, class_names: list[str],
                      prompt_template: str = DEFAULT_PROMPT_TEMPLATE) -> list[str]:
    """The prompts for `class_names`; ValueError if the vocabulary is invalid or a prompt is too long."""
    names = validate_class_names(class_names)
    if "{}" not in prompt_template:
        raise VocabularyError(f"prompt template {prompt_template!r} has no '{{}}' for the class name")
    prompts = [prompt_template.format(n) for n in names]
    limit = CONTEXT_LENGTH - 2                               # start and end tokens
    check_token_lengths(tokenizer, names, prompts, limit, f"CLIP's context (at most {limit} tokens per prompt)")
    return prompts


@torch.no_grad()
def zero_shot_text_features(clip_model: nn.Module, tokenizer, class_names: list[str],
                            prompt_template: str = DEFAULT_PROMPT_TEMPLATE) -> torch.Tensor:
    """[C, D] L2-normalised CLIP text features of the class prompts."""
    prompts = zero_shot_prompts(tokenizer, class_names, prompt_template)
    device = clip_model.token_embedding.weight.device
    text = clip_model.encode_text(tokenizer(prompts).to(device)).float()
    return nn.functional.normalize(text, dim=-1)


@torch.no_grad()
def zero_shot_scores(clip_model: nn.Module, clip_info: ClipInfo, tokenizer, features: np.ndarray,
                     class_names: list[str], prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
                     text_features: torch.Tensor | None = None) -> FeatureScores:
    """Score [N, D] snippet features against the class names with CLIP alone (see module docstring).

    `text_features` ([C, D] from `zero_shot_text_features` for these names) skips the text encoder.
    """
    arr = check_feature_array(features, clip_info.embed_dim)
    names = validate_class_names(class_names)
    text = (zero_shot_text_features(clip_model, tokenizer, names, prompt_template)
            if text_features is None else text_features)                                 # [C, D]
    visual = nn.functional.normalize(torch.from_numpy(arr).to(text.device), dim=-1)      # [N, D]
    scale = clip_model.logit_scale.exp().float() if hasattr(clip_model, "logit_scale") else 100.0
    fine = (scale * visual @ text.T).softmax(dim=-1).cpu().numpy()
    anomaly = (1.0 - fine[:, 0]).astype(np.float32)
    return FeatureScores(coarse_c=anomaly, coarse_a=anomaly.copy(), fine=fine.astype(np.float32),
                         class_names=names, random_weights=clip_info.random_weights)


@dataclass
class ZeroShotScorer:
    """A scorer (features [N, D], class names) -> FeatureScores backed by a CLIP's text tower.

    Prompt features are kept per class name (up to `cache_size` names): a class's prompt does not
    depend on the other classes, so re-scoring with an edited vocabulary only encodes new names.
    """

    clip_model: nn.Module
    clip_info: ClipInfo
    tokenizer: object
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE
    cache_size: int = TEXT_CACHE_SIZE
    _text_cache: TextFeatureCache = field(init=False, repr=False)

    def __post_init__(self):
        self._text_cache = TextFeatureCache(
            lambda names: zero_shot_text_features(self.clip_model, self.tokenizer, names, self.prompt_template),
            self.cache_size)

    def text_features(self, class_names: list[str]) -> torch.Tensor:
        """[C, D] normalised prompt features of `class_names` (cached per name)."""
        return self._text_cache(validate_class_names(class_names))

    def __call__(self, features: np.ndarray, class_names: list[str]) -> FeatureScores:
        return zero_shot_scores(self.clip_model, self.clip_info, self.tokenizer, features,
                                class_names, self.prompt_template,
                                text_features=self.text_features(class_names))

    @property
    def description(self) -> str:
        return f"CLIP zero-shot ({self.clip_info.source}, prompt {self.prompt_template!r})"
