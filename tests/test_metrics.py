"""Tests of vadclip.metrics: official fixture parity, agreement with the official-style loop
implementation on random inputs, hand-computable cases and input errors."""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from vadclip.metrics import (ano_auc, detection_map, frame_ap, frame_auc, mean_detection_map,
                             snippets_to_frames)

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VADCLIP_SHARED", Path(__file__).resolve().parents[2] / "shared"))
FIXTURES = SHARED / "fixtures" / "official"


def _load_reference():
    spec = importlib.util.spec_from_file_location(
        "official_detection_map", ROOT / "benchmarks" / "official_detection_map.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.official_detection_map


official_detection_map = _load_reference()


# ------------------------------------------------------------------------------------------
# Frame AUC / AP / AnoAUC
# ------------------------------------------------------------------------------------------

def test_snippets_to_frames():
    np.testing.assert_array_equal(snippets_to_frames([1.0, 2.0], 3), [1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(snippets_to_frames([[1, 2], [3, 4]], 2),
                                  [[1, 2], [1, 2], [3, 4], [3, 4]])
    assert snippets_to_frames(np.zeros((5, 7))).shape == (80, 7)
    with pytest.raises(ValueError, match="frames_per_snippet"):
        snippets_to_frames([1.0], 0)


def test_frame_auc_and_ap_by_hand():
    scores, labels = [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]
    # positive/negative pairs ranked correctly: (0.35>0.1), (0.8>0.1), (0.8>0.4) -> 3 of 4
    assert frame_auc(scores, labels) == pytest.approx(0.75)
    # ranking 0.8(+), 0.4(-), 0.35(+), 0.1(-): AP = (1/1 + 2/3) / 2
    assert frame_ap(scores, labels) == pytest.approx((1 + 2 / 3) / 2)
    assert frame_auc(np.array([0.2, 0.9]), np.array([False, True])) == 1.0
    assert frame_ap([0.3, 0.5], [1, 1]) == 1.0      # AP is defined without negatives


def test_ano_auc_uses_abnormal_videos_only():
    scores = [np.array([0.9, 0.9]), np.array([0.1, 0.8]), np.array([0.3, 0.2, 0.7])]
    labels = [np.array([0, 0]), np.array([0, 1]), np.array([0, 0, 1])]
    # over all frames the normal video's 0.9s outrank every abnormal frame: 6 of 10 pairs
    assert frame_auc(np.concatenate(scores), np.concatenate(labels)) == pytest.approx(0.6)
    # abnormal videos only: negatives 0.1, 0.3, 0.2 all below positives 0.8, 0.7
    assert ano_auc(scores, labels) == 1.0


@pytest.mark.parametrize("fn", [frame_auc, frame_ap])
def test_frame_metric_errors(fn):
    with pytest.raises(ValueError, match="length"):
        fn([0.1, 0.2], [0, 1, 1])
    with pytest.raises(ValueError, match="0 \\(normal\\) or 1"):
        fn([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="NaN"):
        fn([0.1, np.nan], [0, 1])
    with pytest.raises(ValueError, match="1-D"):
        fn([[0.1, 0.2]], [[0, 1]])
    with pytest.raises(ValueError, match="no frames"):
        fn([], [])
    with pytest.raises(ValueError, match="undefined"):
        fn([0.1, 0.2, 0.3], [0, 0, 0])


def test_auc_undefined_with_one_class():
    with pytest.raises(ValueError, match="AUC is undefined: all 3 frames are labelled 1"):
        frame_auc([0.1, 0.2, 0.3], [1, 1, 1])


def test_ano_auc_errors():
    with pytest.raises(ValueError, match="no video has an abnormal frame"):
        ano_auc([[0.1, 0.2]], [[0, 0]])
    with pytest.raises(ValueError, match="every frame of the abnormal videos"):
        ano_auc([[0.1, 0.2], [0.5]], [[0, 0], [1]])
    with pytest.raises(ValueError, match="2 videos but labels for 1"):
        ano_auc([[0.1], [0.2]], [[0]])


# ------------------------------------------------------------------------------------------
# Detection mAP: official fixtures
# ------------------------------------------------------------------------------------------

def _fixture(name: str):
    if not FIXTURES.is_dir():
        pytest.skip(f"official fixtures not found at {FIXTURES} (set VADCLIP_SHARED)")
    arrays = np.load(FIXTURES / f"detection_map_{name}.npz")
    meta = json.loads((FIXTURES / f"detection_map_{name}.json").read_text())
    scores = np.split(arrays["snippet_scores"], np.cumsum(arrays["snippets_per_video"])[:-1])
    return scores, meta


@pytest.mark.parametrize("name", ["xd", "ucf"])
def test_detection_map_matches_official_fixture(name):
    scores, meta = _fixture(name)
    args = (scores, meta["segments_frames"], meta["labels"], meta["classlist"])
    result = detection_map(*args, iou_thresholds=meta["iou_thresholds"])
    np.testing.assert_allclose(result, meta["map_percent"], rtol=0, atol=1e-6)
    assert mean_detection_map(*args) == pytest.approx(meta["map_avg_percent"], abs=1e-6)


def test_detection_map_float32_scores_fixture():
    """float32 inputs (what the official test script feeds) agree with the loop version."""
    scores, meta = _fixture("xd")
    scores = [s.astype(np.float32) for s in scores[:30]]
    args = (scores, meta["segments_frames"][:30], meta["labels"][:30], meta["classlist"])
    np.testing.assert_allclose(detection_map(*args), official_detection_map(*args), rtol=0, atol=1e-9)


# ------------------------------------------------------------------------------------------
# Detection mAP: agreement with the official-style loops on random inputs
# ------------------------------------------------------------------------------------------

def _random_case(rng: np.random.Generator, frames_per_snippet: int):
    """A few videos of random class scores (some tied, constant or 1-snippet) and random ground
    truth (some touching the video ends, some labelled with a code outside the class list)."""
    n_classes = int(rng.integers(2, 5))
    classlist = [f"c{i}" for i in range(n_classes)]
    dtype = np.float32 if rng.random() < 0.5 else np.float64
    scores, segments, labels = [], [], []
    for _ in range(int(rng.integers(1, 9))):
        n = 1 if rng.random() < 0.15 else int(rng.integers(2, 40))
        x = rng.random((n, n_classes))
        kind = rng.integers(4)
        if kind == 1:
            x = np.round(x, 1)                                        # many exact ties
        elif kind == 2:
            x = np.repeat(rng.random((n // 4 + 1, n_classes)), 4, axis=0)[:n]  # plateaus
        elif kind == 3:
            x[:, rng.integers(n_classes)] = 0.3                       # a constant class
        scores.append(x.astype(dtype))
        n_frames = n * frames_per_snippet
        segs, labs = [], []
        for _ in range(int(rng.integers(0, 4))):
            start = int(rng.integers(0, n_frames))
            end = int(rng.integers(start, n_frames + 1))
            if rng.random() < 0.3:
                start, end = (0, n_frames) if rng.random() < 0.5 else (start, n_frames)
            segs.append([start, end])
            labs.append(str(rng.choice(classlist + ["other"])))
        segments.append(segs)
        labels.append(labs)
    return scores, segments, labels, classlist


@pytest.mark.parametrize("seed", range(12))
def test_detection_map_agrees_with_official_loops(seed):
    rng = np.random.default_rng(seed)
    nonzero = 0
    for frames_per_snippet in (16, 16, 16, 1, 5):
        case = _random_case(rng, frames_per_snippet)
        expected = official_detection_map(*case, frames_per_snippet=frames_per_snippet)
        result = detection_map(*case, frames_per_snippet=frames_per_snippet)
        np.testing.assert_allclose(result, expected, rtol=0, atol=1e-9)
        nonzero += max(expected) > 0
    assert nonzero > 0   # the seeds exercise the matching, not just the all-zero path


# ------------------------------------------------------------------------------------------
# Detection mAP: hand-computable cases and quirks of the official protocol
# ------------------------------------------------------------------------------------------

def test_detection_map_by_hand():
    # One video of 4 snippets = 64 frames. Class A is high on the second half -> prediction
    # frames [32, 64); class B on the first half -> [0, 32).
    scores = [np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])]
    # A: ground truth touching the video end, IoU 1. B: [0, 8) inside [0, 32), IoU 0.25.
    result = detection_map(scores, [[[32, 64], [0, 8]]], [["A", "B"]], ["A", "B"])
    np.testing.assert_allclose(result, [100, 100, 50, 50, 50])
    assert mean_detection_map(scores, [[[32, 64], [0, 8]]], [["A", "B"]], ["A", "B"]) == 70


def test_detection_map_precision_over_videos():
    # Class A predicted in both videos: video 0 scores 1 + 0.7 * 1 = 1.7 (false positive),
    # video 1 scores 0.5 + 0.7 * 0.5 = 0.85 (true positive at rank 2). Two A ground truths, one
    # never found: AP = (1/2) / 2. Class B: one hit out of one -> AP 1.
    scores = [np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]),
              np.array([[0.0, 0.5], [0.0, 0.5], [0.5, 0.0], [0.5, 0.0]])]
    segments = [[[0, 32]], [[32, 64], [0, 16]]]
    labels = [["B"], ["A", "A"]]
    np.testing.assert_allclose(detection_map(scores, segments, labels, ["A", "B"]),
                               [100 * (0.25 + 1) / 2] * 5)


def test_each_ground_truth_matches_once():
    # Two identical ground truths and one prediction: one hit, one miss -> AP 0.5 for A.
    scores = [np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])]
    result = detection_map(scores, [[[32, 64], [32, 64], [0, 32]]], [["A", "A", "B"]], ["A", "B"])
    np.testing.assert_allclose(result, [75.0] * 5)


def test_unknown_labels_never_match():
    # UCF quirk: normal videos are labelled "A" while the class list says "Normal".
    scores = [np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])]
    result = detection_map(scores, [[[0, 32], [32, 64]]], [["A", "Abuse"]], ["Normal", "Abuse"])
    np.testing.assert_allclose(result, [50.0] * 5)


def test_single_snippet_video_has_no_prediction():
    one = [np.array([[0.9, 0.1]])]
    assert detection_map(one, [[[0, 16]]], [["A"]], ["A", "B"]) == [0.0] * 5
    # ... and does not disturb the other videos
    two = [np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]), np.array([[0.9, 0.1]])]
    result = detection_map(two, [[[32, 64], [0, 32]], [[0, 16]]], [["A", "B"], ["A"]], ["A", "B"])
    np.testing.assert_allclose(result, [50 + 50 / 2] * 5)  # A: 1 of 2 ground truths found


def test_class_without_any_prediction_zeroes_everything():
    # Class B is constant in every video, so it never crosses its threshold: the official code
    # then returns 0 for the whole mAP, although class A is detected perfectly.
    scores = [np.array([[0.0, 0.5], [0.0, 0.5], [1.0, 0.5], [1.0, 0.5]])]
    assert detection_map(scores, [[[32, 64]]], [["A"]], ["A", "B"]) == [0.0] * 5
    assert detection_map([np.full((6, 3), 0.2)], [[]], [[]], ["a", "b", "c"]) == [0.0] * 5


def test_detection_map_input_errors():
    good = ([np.ones((4, 2))], [[[0, 16]]], [["A"]], ["A", "B"])
    with pytest.raises(ValueError, match=r"must be \[n >= 1, 2\]"):
        detection_map([np.ones((4, 3))], *good[1:])
    with pytest.raises(ValueError, match=r"must be \[n >= 1, 2\]"):
        detection_map([np.ones((0, 2))], *good[1:])
    with pytest.raises(ValueError, match="NaN"):
        detection_map([np.full((4, 2), np.nan)], *good[1:])
    with pytest.raises(ValueError, match="one of each per video"):
        detection_map(good[0] * 2, *good[1:])
    with pytest.raises(ValueError, match="1 segments but 2 labels"):
        detection_map(good[0], good[1], [["A", "B"]], good[3])
    with pytest.raises(ValueError, match="no videos"):
        detection_map([], [], [], ["A"])
    for bad in ([0.0, 0.5], [1.5], []):
        with pytest.raises(ValueError, match="iou_thresholds"):
            detection_map(*good, iou_thresholds=bad)
    with pytest.raises(ValueError, match="frames_per_snippet"):
        detection_map(*good, frames_per_snippet=0)
