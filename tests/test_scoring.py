"""End-to-end video scoring (vadclip.scoring) on small videos with the fixture checkpoint's CLIP."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import vadclip
from vadclip import scoring
from vadclip import video as video_module
from vadclip.checkpoint import get_tokenizer
from vadclip.cli import main
from vadclip.clip_backbone import RANDOM_WEIGHTS_WARNING
from vadclip.config import get_preset
from vadclip.features import ExtractSettings, FeatureCache, cached_video_features
from vadclip.inference import score_features
from vadclip.results import DetectionParams, VideoScores
from vadclip.cli.score import format_summary, read_class_names
from vadclip.detectors import VadCLIPDetector, ZeroShotDetector
from vadclip.scoring import redetect, score_video, scores_from_features, snippet_times
from vadclip.segments import detect_segments
from vadclip.zeroshot import zero_shot_scores

from videos import write_empty, write_text, write_video

XD_NAMES = list(get_preset("xd").model.class_names)
OTHER_NAMES = ["normal", "fire", "robbery", "car crash"]
LOW = DetectionParams(threshold=0.0, min_gap_s=0.0, min_duration_s=0.0)   # every snippet flagged


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    return {
        "short": write_video(root / "short.mp4", 70, fps=16),          # 4 snippets, 6 frames left over
        "other": write_video(root / "other.mkv", 40, fps=25, codec="mpeg4"),
        "tiny": write_video(root / "tiny.mp4", 10, fps=16),
    }


@pytest.fixture(scope="module")
def fixture_ckpt(official_dir) -> Path:
    return official_dir / "official_xd.pth"


def test_snippet_times():
    start, end = snippet_times(3, 8.0)
    np.testing.assert_allclose(start, [0, 2, 4])
    np.testing.assert_allclose(end, [2, 4, 6])
    assert snippet_times(0, 25.0)[0].shape == (0,)
    start, end = snippet_times(1000, 29.97)
    np.testing.assert_allclose(end[-1], 16000 / 29.97)
    np.testing.assert_array_equal(start[1:], end[:-1])
    with pytest.raises(ValueError, match="fps"):
        snippet_times(3, 0.0)


def test_score_video_end_to_end(official_model, videos):
    scores = score_video(videos["short"], official_model, device="cpu")
    assert scores.n_snippets == 70 // 16 == 4
    assert scores.n_frames == 70 and scores.fps == pytest.approx(16.0)
    assert scores.duration_s == pytest.approx(70 / 16)
    np.testing.assert_allclose(scores.snippet_start_s, [0, 1, 2, 3])
    np.testing.assert_allclose(scores.snippet_end_s, [1, 2, 3, 4])
    assert scores.class_names == XD_NAMES and scores.fine.shape == (4, 7)
    np.testing.assert_allclose(scores.fine.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(scores.coarse_a, 1 - scores.fine[:, 0], atol=1e-6)
    assert scores.video == "short.mp4" and len(scores.content_hash) == 64
    assert scores.random_weights is False and "VadCLIP" in scores.model
    assert scores.extras["cache_hit"] is False and scores.samples_per_snippet == 16
    assert scores.segments == detect_segments(scores.coarse_c, scores.fine, scores.class_names,
                                              scores.snippet_start_s, scores.snippet_end_s,
                                              scores.params, scores.fps)

    d = json.loads(scores.to_json())
    assert {"fps", "duration_s", "snippets", "segments", "class_names", "params"} <= set(d)
    assert set(d["snippets"]) == {"start_s", "end_s", "coarse_c", "coarse_a", "fine"}
    back = VideoScores.from_dict(d)
    np.testing.assert_allclose(back.coarse_c, scores.coarse_c)
    assert back.segments == scores.segments


def test_scores_equal_score_features_on_direct_features(official_model, videos):
    scores = score_video(videos["other"], official_model, params=LOW)
    feats, hit = cached_video_features(official_model.clipmodel, official_model.clip_info,
                                       videos["other"], settings=ExtractSettings(), device="cpu")
    assert not hit and feats.features.shape == (2, 512)
    direct = score_features(official_model, feats.features)
    np.testing.assert_allclose(scores.coarse_c, direct.coarse_c, atol=1e-6)
    np.testing.assert_allclose(scores.coarse_a, direct.coarse_a, atol=1e-6)
    np.testing.assert_allclose(scores.fine, direct.fine, atol=1e-6)
    assert len(scores.segments) == 1                       # threshold 0: the whole video
    seg = scores.segments[0]
    assert (seg.start_frame, seg.end_frame) == (0, 32) and seg.end_s == pytest.approx(32 / 25)


def test_rescore_with_new_vocabulary_and_redetect(official_model, videos):
    fresh = score_video(videos["short"], official_model, OTHER_NAMES, params=LOW)
    feats, _ = cached_video_features(official_model.clipmodel, official_model.clip_info, videos["short"])
    rescored = scores_from_features(
        feats.features, official_model, OTHER_NAMES, video="short.mp4", content_hash=fresh.content_hash,
        fps=fresh.fps, n_frames=fresh.n_frames, samples_per_snippet=16, params=LOW)
    assert rescored.class_names == OTHER_NAMES
    np.testing.assert_allclose(rescored.fine, fresh.fine, atol=1e-6)
    np.testing.assert_allclose(rescored.coarse_c, fresh.coarse_c, atol=1e-6)
    assert rescored.segments == fresh.segments and rescored.segments[0].label in OTHER_NAMES[1:]

    strict = DetectionParams(threshold=1.0, branch="a")
    again = redetect(fresh, strict)
    assert again.params == strict and again.segments == []
    np.testing.assert_array_equal(again.coarse_a, fresh.coarse_a)
    assert redetect(again, LOW).segments == fresh.segments

    with pytest.raises(ValueError, match="snippet features for"):
        scores_from_features(feats.features[:2], official_model, None, video="v", content_hash="h",
                             fps=16.0, n_frames=70, samples_per_snippet=16)
    with pytest.raises(ValueError, match="needs at least 16 frames"):
        scores_from_features(feats.features[:0], official_model, None, video="v", content_hash="h",
                             fps=16.0, n_frames=15, samples_per_snippet=16)


def test_cache_hit_does_not_decode(official_model, videos, tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path / "cache")
    first = score_video(videos["short"], official_model, cache=cache)
    assert first.extras["cache_hit"] is False

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded despite a cache hit")

    monkeypatch.setattr(video_module, "_iter_pyav", no_decoding)
    monkeypatch.setattr(video_module, "_iter_decord", no_decoding)
    stages = []
    second = score_video(videos["short"], official_model, ["normal", "riot"], cache=cache,
                         on_progress=lambda stage, f: stages.append((stage, f)))
    assert second.extras["cache_hit"] is True and second.class_names == ["normal", "riot"]
    cached = cache.get(second.extras["cache_key"])            # the app re-scores from this
    rescored = scores_from_features(cached, official_model, None, video="v", content_hash="h",
                                    fps=second.fps, n_frames=second.n_frames, samples_per_snippet=16)
    np.testing.assert_allclose(rescored.coarse_c, first.coarse_c, atol=1e-6)
    assert [s for s, _ in stages][0] == "probe" and stages[-1] == ("score", 1.0)
    assert {s for s, _ in stages} == {"probe", "encode", "score"}
    assert all(0.0 <= f <= 1.0 for _, f in stages)


def test_progress_and_sampling(official_model, videos):
    stages = []
    scores = score_video(videos["short"], official_model, settings=ExtractSettings(samples_per_snippet=2),
                         on_progress=lambda stage, f: stages.append((stage, f)), video_name="upload.mp4")
    assert scores.samples_per_snippet == 2 and scores.video == "upload.mp4"
    encode = [f for s, f in stages if s == "encode"]
    assert encode[0] == 0.0 and encode[-1] == 1.0 and encode == sorted(encode)


def test_zero_shot_scorer(official_model, videos):
    clip, info = official_model.clipmodel, official_model.clip_info
    scorer = ZeroShotDetector(clip, info, get_tokenizer(), default_class_names=OTHER_NAMES)
    scores = score_video(videos["short"], scorer, params=LOW)
    feats, _ = cached_video_features(clip, info, videos["short"])
    expected = zero_shot_scores(clip, info, get_tokenizer(), feats.features, OTHER_NAMES)
    np.testing.assert_allclose(scores.fine, expected.fine, atol=1e-6)
    assert scores.branches == ("a",)             # zero-shot has no C-branch: one curve, 1 - P(normal)
    np.testing.assert_allclose(scores.coarse_a, expected.coarse_a, atol=1e-6)
    assert scores.class_names == OTHER_NAMES and "zero-shot" in scores.model
    default = ZeroShotDetector(clip, info, get_tokenizer())
    assert default.vocabulary(None) == XD_NAMES


def test_random_weights_are_flagged_everywhere(official_model, videos):
    info = replace(official_model.clip_info, random_weights=True)
    scorer = ZeroShotDetector(official_model.clipmodel, info, get_tokenizer(),
                              default_class_names=OTHER_NAMES)
    scores = score_video(videos["other"], scorer)
    assert scores.random_weights is True
    assert RANDOM_WEIGHTS_WARNING in scores.model
    assert scores.to_dict()["warning"] == RANDOM_WEIGHTS_WARNING
    assert RANDOM_WEIGHTS_WARNING in format_summary(scores).splitlines()[1]


@pytest.mark.parametrize("names, message", [
    (["normal"], "normal class"),
    (["normal", "fire", "Fire"], "duplicate"),
    (["normal", "word " * 80], "too long"),
])
def test_bad_vocabulary_fails_before_decoding(official_model, videos, monkeypatch, names, message):
    monkeypatch.setattr(scoring, "probe", lambda *a, **k: pytest.fail("probed"))
    with pytest.raises(ValueError, match=message):
        score_video(videos["short"], official_model, names)


def test_bad_videos(official_model, videos, tmp_path):
    cases = [
        (write_text(tmp_path / "notes.mp4"), "notes.mp4: not a readable video"),
        (write_empty(tmp_path / "empty.mp4"), "empty.mp4: empty file"),
        (videos["tiny"], "tiny.mp4: needs at least 16 frames"),
        (tmp_path / "missing.mp4", "missing.mp4: no such file"),
    ]
    for path, message in cases:
        with pytest.raises(vadclip.video.VideoError, match=message):
            score_video(path, official_model)
    with pytest.raises(vadclip.video.VideoError, match="longer than the limit of 2 s"):
        score_video(videos["short"], official_model, max_duration_s=2.0)


def test_read_class_names(tmp_path):
    assert read_class_names(" normal, fire ,riot", None) == ["normal", "fire", "riot"]
    f = tmp_path / "classes.txt"
    f.write_text("normal\n\nfire\n  car crash \n")
    assert read_class_names(None, str(f)) == ["normal", "fire", "car crash"]
    assert read_class_names(None, None) is None
    with pytest.raises(ValueError, match="cannot read"):
        read_class_names(None, str(tmp_path / "nope.txt"))


def test_cli_in_process(fixture_ckpt, videos, tmp_path, capsys):
    out = tmp_path / "scores.json"
    rc = main(["score", str(videos["short"]), "--checkpoint", str(fixture_ckpt), "--threshold", "0",
               "--min-gap", "0", "--min-duration", "0", "--classes", "normal,fire,riot",
               "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "--json", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "short.mp4" in printed and "1 anomalous segment(s)" in printed and "RANDOM" not in printed
    scores = VideoScores.from_dict(json.loads(out.read_text()))
    assert scores.class_names == ["normal", "fire", "riot"] and scores.params.threshold == 0.0
    assert len(scores.segments) == 1 and scores.segments[0].end_frame == 64

    rc = main(["score", str(videos["short"]), "--checkpoint", str(fixture_ckpt), "--zero-shot",
               "--branch", "a", "--cache-dir", str(tmp_path / "cache"), "--json", "-"])
    captured = capsys.readouterr()
    assert rc == 0 and "zero-shot" in captured.err
    assert json.loads(captured.out)["extras"]["cache_hit"] is True


@pytest.mark.parametrize("extra, message", [
    (["--classes", "normal"], "normal class"),
    (["--threshold", "1.5"], "threshold must be in"),
    (["--samples-per-snippet", "3"], "samples_per_snippet"),
    (["--clip", "random"], "--clip is only for --zero-shot"),
])
def test_cli_bad_options(fixture_ckpt, videos, capsys, extra, message):
    rc = main(["score", str(videos["short"]), "--checkpoint", str(fixture_ckpt), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1


def test_cli_bad_inputs(fixture_ckpt, videos, tmp_path, capsys):
    notes = write_text(tmp_path / "clip.mp4")
    for argv, message in [
        ([str(notes), "--checkpoint", str(fixture_ckpt)], "clip.mp4: not a readable video"),
        ([str(videos["tiny"]), "--checkpoint", str(fixture_ckpt)], "needs at least 16 frames"),
        ([str(videos["short"]), "--checkpoint", str(fixture_ckpt), "--max-duration", "1"], "longer than"),
        ([str(videos["short"])], "give --checkpoint"),
        ([str(videos["short"]), "--checkpoint", str(notes)], "clip.mp4"),
    ]:
        assert main(["score", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_cli_subprocess(fixture_ckpt, videos):
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "vadclip", "score", str(videos["other"]), "--checkpoint", str(fixture_ckpt),
         "--device", "cpu", "--json", "-"],
        cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["video"] == "other.mkv" and len(d["snippets"]["coarse_c"]) == 2
    assert d["snippets"]["end_s"][-1] == pytest.approx(32 / 25, rel=1e-6)
    assert "detection: branch c, threshold 0.5" in proc.stderr


def test_vadclip_scorer_encodes_only_new_class_names(official_model, monkeypatch):
    encoded = []
    real = type(official_model).encode_text
    monkeypatch.setattr(type(official_model), "encode_text",
                        lambda self, names: encoded.append(list(names)) or real(self, names))
    scorer = VadCLIPDetector(official_model)
    feats = np.random.default_rng(0).normal(size=(20, 512)).astype(np.float32)
    first = scorer.score(feats, ["normal", "fighting"])
    again = scorer.score(feats, ["normal", "fighting"])
    np.testing.assert_array_equal(first.class_probs, again.class_probs)
    edited = scorer.score(feats, ["normal", "fighting", "riot"])
    assert encoded == [["normal", "fighting"], ["riot", "normal"]]
    reference = score_features(official_model, feats, ["normal", "fighting", "riot"])
    np.testing.assert_allclose(edited.class_probs, reference.fine, atol=1e-5)
    np.testing.assert_allclose(edited.curves["c"], reference.coarse_c, atol=1e-6)
