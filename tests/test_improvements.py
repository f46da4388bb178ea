"""The opt-in improvements: exact where they claim to be, off by default, and what each one changes."""
from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

import vadclip
from conftest import synth
from vadclip.config import ModelConfig, model_config
from vadclip.batches import uniform_extract
from vadclip.eval_scores import metrics_of_scores, score_eval_set_official
from vadclip.evaluate import evaluate, load_eval_set
from vadclip.improvements import TestTimeOptions as Options
from vadclip.improvements import (bin_membership, ensemble_scores, eval_scores_with_options,
                                  evaluate_with_options, map_back, resample_features, score_features_resampled,
                                  score_with_options, smooth_feature_scores, smooth_scores, smoothing_kernel)
from vadclip.inference import FeatureScores
from vadclip.model import LocalTemporal, VadCLIP

rng = np.random.default_rng(0)


# --------------------------------------------------------------------------- resampling

@pytest.mark.parametrize("method", ["bins", "linear"])
@pytest.mark.parametrize("n", [1, 37, 256])
def test_resampling_to_the_same_length_is_the_identity(method, n):
    x = rng.normal(size=(n, 8)).astype(np.float32)
    np.testing.assert_array_equal(resample_features(x, n, method), x)
    scores = rng.random((n, 5)).astype(np.float32)
    np.testing.assert_array_equal(map_back(scores, n, method), scores)


def test_bins_are_the_official_training_clip_and_map_back_by_bin():
    x = rng.normal(size=(5, 3)).astype(np.float32)
    # edges int32(linspace(0, 5, 3)) = 0, 2, 5: bins [0, 2) and [2, 5)
    np.testing.assert_array_equal(resample_features(x, 2, "bins"), uniform_extract(x, 2))
    np.testing.assert_allclose(resample_features(x, 2, "bins"), [x[:2].mean(0), x[2:].mean(0)], rtol=1e-6)
    np.testing.assert_array_equal(map_back(np.array([0.25, 0.75], np.float32), 5, "bins"),
                                  [0.25, 0.25, 0.75, 0.75, 0.75])


def test_bins_stretch_short_videos_and_average_back():
    # n=2 -> 4: edges 0, 0, 1, 1, 2; empty bins take their left edge: rows 0, 0, 1, 1
    assert bin_membership(2, 4).tolist() == [[True, False], [True, False], [False, True], [False, True]]
    x = np.array([[1.0], [3.0]], np.float32)
    np.testing.assert_array_equal(resample_features(x, 4, "bins"), [[1], [1], [3], [3]])
    np.testing.assert_array_equal(map_back(np.array([0.1, 0.3, 0.5, 0.9]), 2, "bins"), [0.2, 0.7])


def test_linear_round_trip_through_a_finer_grid_is_exact():
    x = rng.normal(size=(40, 6)).astype(np.float32)
    fine = resample_features(x, 79, "linear")                # positions j / 2
    np.testing.assert_array_equal(fine[::2], x)
    np.testing.assert_allclose(fine[1::2], (x[:-1] + x[1:]) / 2, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(map_back(fine, 40, "linear"), x)


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown resampling method 'cubic'"):
        resample_features(np.zeros((3, 2)), 4, "cubic")
    with pytest.raises(ValueError, match="unknown resampling method"):
        Options(resample="cubic")


def test_resampled_scoring_short_video_is_the_official_path(official_model, parity):
    feats = parity["video_features"][:200]
    official = vadclip.score_features(official_model, feats)
    ours = score_features_resampled(official_model, feats)
    for key in ("coarse_c", "coarse_a", "fine"):
        np.testing.assert_array_equal(getattr(ours, key), getattr(official, key))


def test_resampled_scoring_at_the_model_length_is_the_official_path(official_model, parity):
    feats = parity["video_features"][:256]                   # exactly T: one unpadded chunk either way
    official = vadclip.score_features(official_model, feats)
    for method in ("bins", "linear"):
        ours = score_features_resampled(official_model, feats, method, resample_short=True)
        for key in ("coarse_c", "coarse_a", "fine"):
            np.testing.assert_allclose(getattr(ours, key), getattr(official, key), atol=1e-6, rtol=0)


def test_resampled_scoring_of_a_long_video(official_model, parity):
    feats = parity["video_features"]                         # 600 snippets > T = 256
    ours = score_features_resampled(official_model, feats, "bins")
    with torch.no_grad():
        clip = torch.from_numpy(uniform_extract(feats, 256))[None]
        out = official_model(clip, torch.tensor([256]), list(official_model.config.class_names))
    expected_c = torch.sigmoid(out.logits_c[0, :, 0]).numpy()
    member = bin_membership(600, 256)
    bin_of_row = member.argmax(axis=0)                       # every row in exactly one bin
    assert (member.sum(axis=0) == 1).all()
    np.testing.assert_allclose(ours.coarse_c, expected_c[bin_of_row], atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours.fine.sum(axis=1), 1, atol=1e-5)
    official = vadclip.score_features(official_model, feats)
    assert not np.allclose(ours.coarse_c, official.coarse_c, atol=1e-3)   # it does change long videos


# --------------------------------------------------------------------------- ensembles

def fake_scores(n: int = 30, c: int = 4, seed: int = 0) -> FeatureScores:
    r = np.random.default_rng(seed)
    fine = r.dirichlet(np.ones(c), size=n).astype(np.float32)
    return FeatureScores(r.random(n).astype(np.float32), 1 - fine[:, 0], fine, [f"c{i}" for i in range(c)])


def test_ensemble_of_identical_members_is_exactly_the_member():
    s = fake_scores()
    for k in (1, 2, 3, 7):
        e = ensemble_scores([s] * k)
        for key in ("coarse_c", "coarse_a", "fine"):
            np.testing.assert_array_equal(getattr(e, key), getattr(s, key))


def test_ensemble_is_the_mean_of_probabilities():
    a, b = fake_scores(seed=1), fake_scores(seed=2)
    e = ensemble_scores([a, b])
    np.testing.assert_allclose(e.coarse_c, (a.coarse_c + b.coarse_c) / 2, rtol=1e-6)
    np.testing.assert_allclose(e.fine, (a.fine + b.fine) / 2, rtol=1e-6)
    np.testing.assert_allclose(e.coarse_a, 1 - e.fine[:, 0], rtol=1e-6)
    with pytest.raises(ValueError, match="at least one member"):
        ensemble_scores([])
    with pytest.raises(ValueError, match="members disagree"):
        ensemble_scores([a, fake_scores(n=31)])


# --------------------------------------------------------------------------- smoothing

def test_smoothing_width_one_is_the_identity():
    x = rng.random((50, 3)).astype(np.float32)
    np.testing.assert_array_equal(smooth_scores(x, 1), x)
    np.testing.assert_array_equal(smooth_scores(x, 1, "gaussian"), x)


def test_moving_average_by_hand_with_cut_ends():
    out = smooth_scores(np.array([0.0, 3.0, 6.0, 3.0]), 3)
    np.testing.assert_allclose(out, [1.5, 3.0, 4.0, 4.5])
    out5 = smooth_scores(np.array([5.0, 0.0, 0.0, 0.0, 0.0, 0.0]), 5)
    np.testing.assert_allclose(out5, [5 / 3, 5 / 4, 1.0, 0, 0, 0])


@pytest.mark.parametrize("n", [1, 2, 4, 9, 10, 30])
@pytest.mark.parametrize("width,kind", [(5, "mean"), (17, "gaussian"), (9, "mean")])
def test_smoothing_against_a_plain_loop_even_when_the_video_is_shorter_than_the_window(n, width, kind):
    x = rng.random((n, 3))
    kernel, half = smoothing_kernel(width, kind), width // 2
    expected = np.empty_like(x)
    for i in range(n):                          # the window's rows inside the video, renormalised
        rows = [j for j in range(i - half, i + half + 1) if 0 <= j < n]
        w = np.array([kernel[j - i + half] for j in rows])
        expected[i] = (w[:, None] * x[rows]).sum(axis=0) / w.sum()
    out = smooth_scores(x, width, kind)
    assert out.shape == x.shape
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_smoothing_keeps_constants_and_probability_rows():
    np.testing.assert_allclose(smooth_scores(np.full(20, 0.3), 7, "gaussian"), 0.3, rtol=1e-12)
    s = smooth_feature_scores(fake_scores(), 5, "gaussian")
    np.testing.assert_allclose(s.fine.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(s.coarse_a, 1 - s.fine[:, 0], atol=1e-7)
    k = smoothing_kernel(7, "gaussian")
    np.testing.assert_allclose(k, k[::-1])
    assert k.argmax() == 3 and k[0] < k[1] < k[3]


@pytest.mark.parametrize("width", [0, 2, -1, 2.0])
def test_smoothing_width_must_be_odd_positive(width):
    with pytest.raises(ValueError, match="odd integer >= 1"):
        smooth_scores(np.zeros(5), width)


# --------------------------------------------------------------------------- all together

def test_default_options_are_the_official_path(official_model, parity):
    assert Options().official
    feats = parity["video_features"]
    official = vadclip.score_features(official_model, feats)
    ours = score_with_options([official_model], feats)
    for key in ("coarse_c", "coarse_a", "fine"):
        np.testing.assert_array_equal(getattr(ours, key), getattr(official, key))


@pytest.fixture(scope="module")
def xd_eval_set(tmp_path_factory):
    out = synth("xd", tmp_path_factory.mktemp("synth_xd"), n_train=2, n_test=12, seed=3)
    return load_eval_set(out / "xd_test.csv", [out / "annotations.txt", out / "annotations_multiclasses.txt"],
                         preset="xd")


def test_evaluate_with_default_options_is_evaluate(official_model, xd_eval_set):
    ours = evaluate_with_options([official_model], xd_eval_set).as_dict()
    theirs = evaluate(official_model, xd_eval_set).as_dict()
    assert ours == theirs


def test_evaluate_with_every_option_on_a_test_set(official_model, xd_eval_set):
    options = Options(resample="bins", smooth_width=5)
    scores = eval_scores_with_options([official_model, official_model], xd_eval_set, options)
    single = eval_scores_with_options([official_model], xd_eval_set, options)
    for a, b in zip(scores.fine, single.fine):
        np.testing.assert_array_equal(a, b)                    # identical members: the member
    # per video, the test-set path equals the one-video path
    for v in (0, 5, 11):
        one = score_with_options([official_model], xd_eval_set.features[v], options)
        np.testing.assert_allclose(single.coarse_c[v], one.coarse_c, atol=1e-6, rtol=0)
    result = metrics_of_scores(xd_eval_set, scores).as_dict()
    assert 0 <= result["auc_c"] <= 1 and result["map_avg"] is not None
    assert metrics_of_scores(xd_eval_set, score_eval_set_official(official_model, xd_eval_set)).as_dict() == \
        evaluate(official_model, xd_eval_set).as_dict()


# --------------------------------------------------------------------------- padding-aware attention

def test_padding_aware_attention_is_off_by_default_and_round_trips():
    assert model_config("xd").padding_aware_attention is False
    assert model_config("ucf").padding_aware_attention is False
    on = model_config("ucf", padding_aware_attention=True)
    assert ModelConfig.from_dict(on.to_dict()) == on
    old = {k: v for k, v in model_config("xd").to_dict().items() if k != "padding_aware_attention"}
    assert ModelConfig.from_dict(old).padding_aware_attention is False     # checkpoints written before


@pytest.mark.parametrize("window, layers", [(64, 1), (8, 2), (48, 1)])   # 48 does not tile 256
def test_padding_aware_temporal_ignores_padding(window, layers):
    torch.manual_seed(0)
    module = LocalTemporal(32, layers, 1, window).eval()
    T, L = 256, 150
    mask = vadclip.model.window_attention_mask(T, window)
    x = torch.randn(2, T, 32)
    x[1, L:] = torch.randn(T - L, 32) * 5                   # video 1: same real part, other padding
    x[1, :L] = x[0, :L]
    lengths = torch.tensor([L, L])
    padding = torch.zeros(T, 32)
    with torch.no_grad():
        official = module(x, lengths, padding, mask)
        module.padding_aware = True
        aware = module(x, lengths, padding, mask)
        # a shorter clip (less padding after the same real positions, same windows up to L)
        T2 = 192
        short = module(x[:1, :T2].contiguous(), lengths[:1], padding[:T2], vadclip.model.window_attention_mask(T2, window))
    assert not torch.equal(official[0, :L], official[1, :L])          # the official code attends to padding
    torch.testing.assert_close(aware[0, :L], aware[1, :L], atol=1e-6, rtol=0)
    torch.testing.assert_close(short[0, :L], aware[0, :L], atol=1e-6, rtol=0)   # same windows cover 0..L
    assert torch.isfinite(aware).all()


def test_padding_aware_model(official_model, parity):
    config = replace(official_model.config, padding_aware_attention=True)
    model = VadCLIP(config, copy.deepcopy(official_model.clipmodel), official_model.clip_info,
                    official_model.tokenizer)
    model.load_state_dict(official_model.state_dict())
    model.eval()
    assert model.temporal.padding_aware and not official_model.temporal.padding_aware
    names = list(parity["class_names"])
    feats, lengths = torch.from_numpy(parity["batch_features"]), torch.from_numpy(parity["batch_lengths"])
    with torch.no_grad():
        off = official_model(feats, lengths, names)
        on = model(feats, lengths, names)
    # off: the official outputs (the parity fixture), unchanged
    np.testing.assert_allclose(off.logits_a.numpy(), parity["logits_a"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(off.logits_c.numpy(), parity["logits_c"], atol=1e-4, rtol=0)
    # on: the full-length video (no padding) is unchanged, the padded ones change
    torch.testing.assert_close(on.logits_c[0], off.logits_c[0], atol=1e-5, rtol=0)
    assert not torch.allclose(on.logits_c[2, :37], off.logits_c[2, :37], atol=1e-4)
    assert torch.isfinite(on.logits_a).all()
