"""Snippet feature extraction (vadclip.features): counts, parity with open_clip, crops, cache.

The CLIP is the fixture checkpoint's small one (32 px input, 512-d output): fast on CPU.
"""
from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch
from open_clip.transform import image_transform
from PIL import Image

from vadclip import features as F
from vadclip.clip_backbone import load_clip
from vadclip.features import (ExtractSettings, FeatureCache, backbone_id, cached_video_features,
                              extract_video_features, preprocess_frames)
from vadclip.video import VideoError, iter_frames, snippet_frame_indices

from videos import write_text, write_video

STD = torch.tensor(open_clip.constants.OPENAI_DATASET_STD).view(3, 1, 1)
MEAN = torch.tensor(open_clip.constants.OPENAI_DATASET_MEAN).view(3, 1, 1)
# One 8-bit grey level after CLIP normalisation (the largest step is in the channel with the
# smallest std).
ONE_LEVEL = 1 / 255 / float(STD.min())


@pytest.fixture(scope="module")
def clip(official_dir):
    return load_clip(official_dir / "official_xd.pth")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """50 frames (3 snippets + 2 frames), landscape 80x48."""
    return write_video(tmp_path_factory.mktemp("v") / "v.mp4", 50, width=80, height=48)


def reference_features(clip, path, samples: int) -> np.ndarray:
    """open_clip's own PIL preprocessing, frame by frame, and the snippet means taken by hand."""
    model, info = clip
    transform = image_transform(info.image_size, is_train=False)
    frames = np.concatenate([f for _, f in iter_frames(path)])
    with torch.no_grad():
        x = torch.stack([transform(Image.fromarray(f)) for f in frames])
        per_frame = model.encode_image(x).numpy()
    picks = snippet_frame_indices(len(frames), 16, samples)
    return per_frame[picks].mean(axis=1)


# --------------------------------------------------------------------------- preprocessing

@pytest.mark.parametrize("method, levels", [("uint8", 2), ("float", 1)])
@pytest.mark.parametrize("size", [(48, 64), (64, 48), (37, 101), (32, 32), (360, 640)])
def test_preprocess_matches_open_clip_pil_within_grey_levels(size, method, levels):
    rng = np.random.default_rng(sum(size))
    images = (rng.random((3, *size, 3)) * 255).astype(np.uint8)   # noise: the hardest case
    transform = image_transform(32, is_train=False)
    reference = torch.stack([transform(Image.fromarray(im)) for im in images])
    ours = preprocess_frames(torch.from_numpy(images), 32, method=method)
    assert ours.shape == (3, 3, 32, 32) and ours.dtype == torch.float32
    diff = (ours - reference).abs()
    # Measured on such noise: at most 2 levels (uint8 resize) / 1 level (float passes).
    assert diff.max() <= levels * ONE_LEVEL + 1e-5
    assert (diff > 1e-4).float().mean() < 0.01      # on under 1% of the values
    ten = preprocess_frames(torch.from_numpy(images), 32, ten_crop=True, method=method)
    torch.testing.assert_close(ten[:, 0], ours, atol=0, rtol=0)


def test_ten_crop_geometry_landscape_and_portrait():
    rng = np.random.default_rng(0)
    for h, w in [(32, 56), (48, 32)]:              # already S = 32 on the short side: no resize
        frame = torch.from_numpy((rng.random((1, h, w, 3)) * 255).astype(np.uint8))
        crops = preprocess_frames(frame, 32, ten_crop=True)[0]
        assert crops.shape == (10, 3, 32, 32)
        img = (frame[0].permute(2, 0, 1).float() / 255 - MEAN) / STD
        top, left = round((h - 32) / 2), round((w - 32) / 2)
        expected = [img[:, top:top + 32, left:left + 32], img[:, :32, :32], img[:, :32, -32:],
                    img[:, -32:, :32], img[:, -32:, -32:]]
        for k, want in enumerate(expected):
            torch.testing.assert_close(crops[k], want, atol=1e-6, rtol=0)
            torch.testing.assert_close(crops[k + 5], want.flip(-1), atol=1e-6, rtol=0)
        torch.testing.assert_close(crops[0], preprocess_frames(frame, 32)[0], atol=0, rtol=0)


def test_preprocess_rejects_bad_frames():
    with pytest.raises(ValueError, match="uint8"):
        preprocess_frames(torch.zeros(2, 8, 8, 3), 32)
    with pytest.raises(ValueError, match="uint8"):
        preprocess_frames(torch.zeros(8, 8, 3, dtype=torch.uint8), 32)
    with pytest.raises(ValueError, match="method"):
        preprocess_frames(torch.zeros(1, 8, 8, 3, dtype=torch.uint8), 32, method="pil")


# --------------------------------------------------------------------------- extraction

@pytest.mark.parametrize("samples", [16, 4, 1])
def test_features_equal_open_clip_per_frame_means(clip, video, samples):
    model, info = clip
    result = extract_video_features(model, info, video, ExtractSettings(samples_per_snippet=samples))
    assert result.features.shape == (3, 512) and result.features.dtype == np.float32
    assert result.info.n_frames == 50 and result.n_snippets == 3 and result.snippet_frames == 16
    reference = reference_features(clip, video, samples)
    # Differences come only from the rare 1-2 grey-level resize differences (module docstring);
    # on features of magnitude ~3, measured 2e-4 (CPU uint8 resize) and 1e-3 (float passes).
    np.testing.assert_allclose(result.features, reference, atol=3e-3, rtol=0)


def test_sampling_changes_features_and_batch_size_does_not(clip, video):
    model, info = clip
    full = extract_video_features(model, info, video, ExtractSettings(batch_size=64)).features
    # batches of 5 frames split snippets across batches: the sums must still add up
    small = extract_video_features(model, info, video, ExtractSettings(batch_size=5)).features
    np.testing.assert_allclose(small, full, atol=1e-5, rtol=0)
    one = extract_video_features(model, info, video, ExtractSettings(samples_per_snippet=1)).features
    assert np.abs(one - full).max() > 1e-2


def test_decoder_backends_agree(clip, video):
    model, info = clip
    settings = ExtractSettings(samples_per_snippet=4)
    pyav = extract_video_features(model, info, video, settings, backend="pyav")
    auto = extract_video_features(model, info, video, settings)
    assert pyav.info.backend == "pyav"
    np.testing.assert_allclose(pyav.features, auto.features, atol=1e-5, rtol=0)


def test_ten_crop_index_0_equals_single_crop(clip, video):
    model, info = clip
    settings = ExtractSettings(samples_per_snippet=4)
    single = extract_video_features(model, info, video, settings).features
    ten = extract_video_features(model, info, video,
                                 ExtractSettings(samples_per_snippet=4, ten_crop=True, batch_size=30))
    assert ten.features.shape == (10, 3, 512)
    np.testing.assert_allclose(ten.features[0], single, atol=1e-5, rtol=0)
    assert np.abs(ten.features[1] - single).max() > 1e-3   # the corners are other pixels


@pytest.mark.parametrize("n_frames, n_snippets", [(10, 0), (16, 1), (31, 1), (33, 2)])
def test_snippet_counts(clip, tmp_path, n_frames, n_snippets):
    model, info = clip
    path = write_video(tmp_path / "v.mp4", n_frames)
    progress = []
    result = extract_video_features(model, info, path, ExtractSettings(samples_per_snippet=2),
                                    on_progress=lambda d, t: progress.append((d, t)))
    assert result.features.shape == (n_snippets, 512)
    assert progress[-1] == (n_snippets, n_snippets)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    ten = extract_video_features(model, info, path, ExtractSettings(samples_per_snippet=2,
                                                                    ten_crop=True))
    assert ten.features.shape == (10, n_snippets, 512)


def test_unreadable_video_raises_video_error(clip, tmp_path):
    model, info = clip
    with pytest.raises(VideoError, match="bad.mp4"):
        extract_video_features(model, info, write_text(tmp_path / "bad.mp4"))


def test_settings_are_checked():
    for bad in (dict(samples_per_snippet=3), dict(batch_size=0), dict(precision="fp8")):
        with pytest.raises(ValueError):
            ExtractSettings(**bad)
    assert ExtractSettings(ten_crop=True, batch_size=64).frames_per_batch == 6
    assert ExtractSettings(ten_crop=True, batch_size=4).frames_per_batch == 1


def test_precision_bf16_on_cpu_is_close(clip, video):
    model, info = clip
    fp32 = extract_video_features(model, info, video, ExtractSettings(samples_per_snippet=2))
    bf16 = extract_video_features(model, info, video,
                                  ExtractSettings(samples_per_snippet=2, precision="bf16"))
    assert bf16.features.dtype == np.float32
    np.testing.assert_allclose(bf16.features, fp32.features, atol=0.1, rtol=0.05)


# --------------------------------------------------------------------------- cache

def test_cache_key_and_backbone_id(clip):
    model, info = clip
    base = FeatureCache.key("ab" * 32, "clip", ExtractSettings())
    assert base == FeatureCache.key("ab" * 32, "clip", ExtractSettings(batch_size=3, precision="bf16"))
    others = {FeatureCache.key("cd" * 32, "clip", ExtractSettings()),
              FeatureCache.key("ab" * 32, "other", ExtractSettings()),
              FeatureCache.key("ab" * 32, "clip", ExtractSettings(samples_per_snippet=8)),
              FeatureCache.key("ab" * 32, "clip", ExtractSettings(ten_crop=True))}
    assert base not in others and len(others) == 4
    assert backbone_id(info) == backbone_id(info)
    changed = load_clip(info.source)[0]
    with torch.no_grad():
        changed.visual.proj.add_(1.0)
    assert backbone_id(info, model) != backbone_id(info, changed)


def test_cache_hit_does_not_decode(clip, video, tmp_path, monkeypatch):
    model, info = clip
    cache = FeatureCache(tmp_path / "cache")
    settings = ExtractSettings(samples_per_snippet=2)
    first, hit = cached_video_features(model, info, video, settings, cache=cache)
    assert not hit and len(cache.entries()) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cache hit must not decode frames")

    monkeypatch.setattr(F, "iter_frames", no_decoding)
    progress = []
    second, hit = cached_video_features(model, info, video, settings, cache=cache,
                                        on_progress=lambda d, t: progress.append((d, t)))
    assert hit and progress == [(3, 3)]
    np.testing.assert_array_equal(second.features, first.features)
    assert second.info == first.info
    with pytest.raises(AssertionError, match="must not decode"):   # other settings: a miss
        cached_video_features(model, info, video, ExtractSettings(samples_per_snippet=1), cache=cache)


def test_cache_lru_eviction(tmp_path):
    arr = np.zeros((100, 512), np.float32)       # 204,928 bytes as .npy
    cache = FeatureCache(tmp_path, max_bytes=2 * 205_000)
    keys = [FeatureCache.key(f"{i:064x}", "clip", ExtractSettings()) for i in range(3)]
    cache.put(keys[0], arr)
    cache.put(keys[1], arr + 1)
    assert cache.get(keys[0]) is not None        # key 0 now used more recently than key 1
    cache.put(keys[2], arr + 2)
    assert cache.get(keys[1]) is None
    np.testing.assert_array_equal(cache.get(keys[0]), arr)
    np.testing.assert_array_equal(cache.get(keys[2]), arr + 2)
    assert cache.size_bytes() <= cache.max_bytes
    tiny = FeatureCache(tmp_path / "tiny", max_bytes=10)     # the newest entry is always kept
    tiny.put(keys[0], arr)
    tiny.put(keys[1], arr)
    assert [p.stem for p, _, _ in tiny.entries()] == [keys[1]]


def test_cache_corrupt_entry_is_a_miss_and_is_replaced(clip, video, tmp_path):
    model, info = clip
    cache = FeatureCache(tmp_path)
    settings = ExtractSettings(samples_per_snippet=1)
    good, _ = cached_video_features(model, info, video, settings, cache=cache)
    (entry,) = [p for p, _, _ in cache.entries()]
    entry.write_bytes(entry.read_bytes()[:100])          # truncated
    assert cache.get(entry.stem) is None and not entry.exists()
    again, hit = cached_video_features(model, info, video, settings, cache=cache)
    assert not hit and entry.exists()
    np.testing.assert_allclose(again.features, good.features, atol=1e-6)
    np.save(entry, np.zeros((7, 512), np.float32))       # readable, wrong shape for the video
    third, hit = cached_video_features(model, info, video, settings, cache=cache)
    assert not hit and third.features.shape == (3, 512)


def test_cache_rejects_bad_keys(tmp_path):
    cache = FeatureCache(tmp_path)
    with pytest.raises(ValueError, match="not a feature-cache key"):
        cache.get("../../etc/passwd")
