"""CLIP zero-shot scoring (vadclip.zeroshot) on the fixture checkpoint's small CLIP."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vadclip.checkpoint import get_tokenizer
from vadclip.zeroshot import ZeroShotScorer, zero_shot_prompts, zero_shot_scores

NAMES = ["normal", "fighting", "explosion"]


@pytest.fixture(scope="module")
def clip(official_dir):
    from vadclip.clip_backbone import load_clip
    return load_clip(official_dir / "official_xd.pth")


def test_scores_follow_the_documented_formula(clip):
    model, info = clip
    tok = get_tokenizer()
    feats = np.random.default_rng(0).normal(size=(12, 512)).astype(np.float32)
    out = zero_shot_scores(model, info, tok, feats, NAMES)

    with torch.no_grad():
        text = model.encode_text(tok([f"a video frame of {n}" for n in NAMES])).float()
    text = text / text.norm(dim=-1, keepdim=True)
    visual = torch.from_numpy(feats) / torch.from_numpy(feats).norm(dim=-1, keepdim=True)
    expected = (model.logit_scale.exp() * visual @ text.T).softmax(-1).numpy()

    np.testing.assert_allclose(out.fine, expected, atol=1e-5)
    np.testing.assert_allclose(out.fine.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out.coarse_a, 1 - expected[:, 0], atol=1e-5)
    np.testing.assert_array_equal(out.coarse_c, out.coarse_a)
    assert out.class_names == NAMES and out.random_weights is False
    assert out.fine.dtype == np.float32 and out.coarse_c.shape == (12,)


def test_scale_invariant_in_feature_norm(clip):
    model, info = clip
    feats = np.random.default_rng(1).normal(size=(5, 512)).astype(np.float32)
    a = zero_shot_scores(model, info, get_tokenizer(), feats, NAMES).fine
    b = zero_shot_scores(model, info, get_tokenizer(), feats * 7.5, NAMES).fine
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_scorer_callable_and_template(clip):
    model, info = clip
    scorer = ZeroShotScorer(model, info, get_tokenizer(), prompt_template="a photo of {}")
    feats = np.ones((3, 512), np.float32)
    out = scorer(feats, NAMES)
    assert out.fine.shape == (3, 3)
    assert "zero-shot" in scorer.description


@pytest.mark.parametrize("names, message", [
    ([], "normal class"),
    (["normal"], "normal class"),
    (["normal", ""], "empty class name"),
    (["normal", "fight", "Fight"], "duplicate"),
    (["normal", "word " * 80], "too long"),
])
def test_bad_vocabularies_are_refused(names, message):
    with pytest.raises(ValueError, match=message):
        zero_shot_prompts(get_tokenizer(), names)


def test_template_without_placeholder():
    with pytest.raises(ValueError, match="no '\\{\\}'"):
        zero_shot_prompts(get_tokenizer(), NAMES, prompt_template="a video frame")


def test_wrong_feature_width(clip):
    model, info = clip
    with pytest.raises(ValueError, match="dimensions"):
        zero_shot_scores(model, info, get_tokenizer(), np.zeros((4, 256), np.float32), NAMES)


def test_scorer_caches_text_features_per_name(clip, monkeypatch):
    import vadclip.zeroshot as zs

    model, info = clip
    scorer = ZeroShotScorer(model, info, get_tokenizer(), cache_size=4)
    feats = np.random.default_rng(2).normal(size=(4, 512)).astype(np.float32)
    first = scorer(feats, NAMES).fine
    fresh = zero_shot_scores(model, info, get_tokenizer(), feats, NAMES + ["riot"]).fine
    encoded = []
    real = zs.zero_shot_text_features
    monkeypatch.setattr(zs, "zero_shot_text_features",
                        lambda m, t, names, p: encoded.append(list(names)) or real(m, t, names, p))
    np.testing.assert_allclose(scorer(feats, NAMES).fine, first, atol=1e-6)     # all cached
    assert encoded == []
    np.testing.assert_allclose(scorer(feats, NAMES + ["riot"]).fine, fresh, atol=1e-5)
    assert encoded == [["riot", "normal"]]                  # only the new name (padded to two)
    scorer(feats, ["normal", "fire", "smoke"])              # evicts the oldest names (cache_size 4)
    assert len(scorer._text_cache) == 4
