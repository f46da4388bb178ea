"""Segment detection (vadclip.segments): worked examples, edge cases and properties."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vadclip.results import DetectionParams
from vadclip.segments import UNLABELLED, detect_segments, flagged_runs

NAMES = ["normal", "fighting", "explosion"]
FPS = 16.0   # one snippet of 16 frames = exactly 1 s, so times are easy to read


def times(n: int, fps: float = FPS) -> tuple[np.ndarray, np.ndarray]:
    start = np.arange(n) * 16 / fps
    return start, start + 16 / fps


def fine_for(n: int, anomaly_class: int = 1) -> np.ndarray:
    fine = np.full((n, 3), 0.1)
    fine[:, anomaly_class] = 0.8
    return fine


def detect(coarse, fine=None, names=NAMES, fps=FPS, **params):
    coarse = np.asarray(coarse, dtype=np.float64)
    fine = fine_for(len(coarse)) if fine is None else fine
    return detect_segments(coarse, fine, names, *times(len(coarse), fps),
                           DetectionParams(**params), fps)


def test_worked_example():
    coarse = [0.1, 0.9, 0.8, 0.2, 0.7, 0.1, 0.1, 0.1, 0.6, 0.95, 0.1]
    fine = fine_for(11)
    fine[8:10] = [[0.1, 0.2, 0.7], [0.1, 0.3, 0.6]]
    segs = detect(coarse, fine, min_gap_s=1.0, min_duration_s=1.0)
    # snippets 1-2 and 4 are 1 s apart (not < 1 s): not merged; 8-9 stand alone.
    assert [(s.start_s, s.end_s) for s in segs] == [(1.0, 3.0), (4.0, 5.0), (8.0, 10.0)]
    assert [(s.start_frame, s.end_frame) for s in segs] == [(16, 48), (64, 80), (128, 160)]
    assert [s.label for s in segs] == ["fighting", "fighting", "explosion"]
    assert segs[2].confidence == pytest.approx(0.65)
    assert segs[0].peak_score == pytest.approx(0.9) and segs[0].mean_score == pytest.approx(0.85)
    assert segs[2].peak_score == pytest.approx(0.95) and segs[2].mean_score == pytest.approx(0.775)


def test_merging_and_dropping():
    coarse = [0.9, 0.1, 0.9, 0.1, 0.1, 0.9]
    merged = detect(coarse, min_gap_s=1.5, min_duration_s=0.0)
    assert [(s.start_s, s.end_s) for s in merged] == [(0.0, 3.0), (5.0, 6.0)]
    assert merged[0].mean_score == pytest.approx((0.9 + 0.1 + 0.9) / 3)   # gap snippets count
    long_only = detect(coarse, min_gap_s=1.5, min_duration_s=2.0)
    assert [(s.start_s, s.end_s) for s in long_only] == [(0.0, 3.0)]
    apart = detect(coarse, min_gap_s=0.0, min_duration_s=0.0)
    assert len(apart) == 3


def test_threshold_is_inclusive():
    segs = detect([0.5, 0.49999], min_duration_s=0.0, threshold=0.5)
    assert [(s.start_frame, s.end_frame) for s in segs] == [(0, 16)]


@pytest.mark.parametrize("coarse, expected", [
    ([], []),
    ([0.1, 0.2, 0.3], []),
    ([0.9, 0.9, 0.9], [(0.0, 3.0)]),
])
def test_empty_none_and_all_flagged(coarse, expected):
    segs = detect(coarse, fine_for(len(coarse)), min_duration_s=0.0)
    assert [(s.start_s, s.end_s) for s in segs] == expected


def test_normal_only_vocabulary_labels_anomaly():
    coarse = np.array([0.2, 0.9, 0.7])
    segs = detect(coarse, np.ones((3, 1)), names=["normal"], min_duration_s=0.0)
    assert len(segs) == 1 and segs[0].label == UNLABELLED == "anomaly"
    assert segs[0].confidence == pytest.approx(0.8)


def test_label_never_normal_even_when_normal_dominates():
    fine = np.tile([0.9, 0.04, 0.06], (4, 1))
    segs = detect([0.9] * 4, fine, min_duration_s=0.0)
    assert segs[0].label == "explosion" and segs[0].confidence == pytest.approx(0.06)


def test_frames_follow_snippets_at_any_fps():
    segs = detect([0.1, 0.9, 0.9, 0.1], fine_for(4), fps=25.0, min_duration_s=0.0)
    assert (segs[0].start_frame, segs[0].end_frame) == (16, 48)
    assert segs[0].start_s == pytest.approx(16 / 25) and segs[0].end_s == pytest.approx(48 / 25)


@pytest.mark.parametrize("change, message", [
    (dict(coarse=np.array([0.1, np.nan])), "NaN"),
    (dict(fine=np.array([[0.5, 0.5, np.nan], [0.3, 0.3, 0.4]])), "NaN"),
    (dict(fine=np.ones((2, 2))), "fine scores must be"),
    (dict(start=np.zeros(3)), "one entry per snippet"),
    (dict(names=[]), "class_names is empty"),
    (dict(fps=0.0), "fps must be"),
])
def test_bad_inputs(change, message):
    args = dict(coarse=np.array([0.1, 0.9]), fine=fine_for(2), names=NAMES,
                start=times(2)[0], end=times(2)[1], fps=FPS)
    args.update(change)
    with pytest.raises(ValueError, match=message):
        detect_segments(args["coarse"], args["fine"], args["names"], args["start"], args["end"],
                        DetectionParams(), args["fps"])


def test_flagged_runs():
    starts, ends = flagged_runs(np.array([1, 1, 0, 1, 0, 0, 1], bool))
    assert starts.tolist() == [0, 3, 6] and ends.tolist() == [2, 4, 7]


# --- properties ----------------------------------------------------------------------------

curves = st.lists(st.floats(0.0, 1.0), min_size=0, max_size=60)
fps_values = st.sampled_from([8.0, 16.0, 24.0, 25.0, 29.97, 30.0])
seconds = st.floats(0.0, 5.0)


def random_fine(n: int, seed: int, c: int = 3) -> np.ndarray:
    x = np.random.default_rng(seed).random((n, c)) + 1e-3
    return x / x.sum(1, keepdims=True)


@settings(max_examples=150, deadline=None)
@given(curves, fps_values, st.floats(0.0, 1.0), seconds, seconds, st.integers(0, 10**6))
def test_segments_are_valid(coarse, fps, threshold, gap, min_dur, seed):
    n = len(coarse)
    start, end = times(n, fps)
    params = DetectionParams(threshold=threshold, min_gap_s=gap, min_duration_s=min_dur)
    segs = detect_segments(np.array(coarse), random_fine(n, seed), NAMES, start, end, params, fps)
    duration = n * 16 / fps
    flagged = np.array(coarse) >= threshold
    covered = np.zeros(n, bool)
    for i, s in enumerate(segs):
        a, b = s.start_frame // 16, s.end_frame // 16
        assert 0 <= s.start_s < s.end_s <= duration + 1e-9                  # within the video
        assert s.end_s - s.start_s >= min_dur - 1e-9                         # min duration
        assert s.start_frame % 16 == 0 and s.end_frame % 16 == 0 and a < b
        assert flagged[a] and flagged[b - 1]                                 # tight ends
        assert s.label in NAMES[1:]
        assert s.mean_score <= s.peak_score + 1e-12 and s.peak_score >= threshold
        assert s.peak_score == pytest.approx(max(coarse[a:b]))
        if i:
            prev = segs[i - 1]
            assert prev.end_frame < s.start_frame                            # disjoint, ordered
            assert s.start_s - prev.end_s >= gap - 1e-9                      # gaps respected
        covered[a:b] = True
    # Every flagged snippet is inside a segment unless its (merged) run was too short.
    kept = detect_segments(np.array(coarse), random_fine(n, seed), NAMES, start, end,
                           DetectionParams(threshold=threshold, min_gap_s=gap, min_duration_s=0.0), fps)
    kept_cover = np.zeros(n, bool)
    for s in kept:
        kept_cover[s.start_frame // 16: s.end_frame // 16] = True
    assert np.all(kept_cover[flagged])
    dropped = [s for s in kept if not any(k.start_frame == s.start_frame and k.end_frame == s.end_frame
                                          for k in segs)]
    assert all(s.end_s - s.start_s < min_dur for s in dropped)
    assert np.all(covered <= kept_cover)


@settings(max_examples=100, deadline=None)
@given(curves, st.floats(0.0, 1.0), seconds, seconds)
def test_merging_is_monotone_in_min_gap(coarse, threshold, gap_a, gap_b):
    small, large = sorted([gap_a, gap_b])
    n = len(coarse)
    fine, (start, end) = random_fine(n, 0), times(n)

    def cover(gap):
        segs = detect_segments(np.array(coarse), fine, NAMES, start, end,
                               DetectionParams(threshold=threshold, min_gap_s=gap, min_duration_s=0.0), FPS)
        mask = np.zeros(n, bool)
        for s in segs:
            mask[s.start_frame // 16: s.end_frame // 16] = True
        return len(segs), mask

    n_small, cover_small = cover(small)
    n_large, cover_large = cover(large)
    assert n_large <= n_small                       # a larger gap only merges more
    assert np.all(cover_small <= cover_large)       # ...and covers at least as much


@settings(max_examples=100, deadline=None)
@given(curves, st.integers(0, 10**6))
def test_label_is_argmax_of_mean_fine(coarse, seed):
    n = len(coarse)
    fine = random_fine(n, seed, c=5)
    names = ["normal", "a", "b", "c", "d"]
    segs = detect_segments(np.array(coarse), fine, names, *times(n),
                           DetectionParams(min_duration_s=0.0), FPS)
    for s in segs:
        mean = fine[s.start_frame // 16: s.end_frame // 16].mean(0)
        assert s.confidence == pytest.approx(mean[1:].max())
        assert names[1 + int(mean[1:].argmax())] == s.label
