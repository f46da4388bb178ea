"""AnomalyCLIP as one more detector: load_model, the detector, per-frame features, CLI score /
eval / extract --per-frame (fixture checkpoint ../shared/fixtures/anomalyclip, tiny videos)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import vadclip
from vadclip import anomalyclip
from vadclip import extract as extract_videos
from vadclip.anomalyclip.detector import AnomalyCLIPDetector
from vadclip.detectors import Detector
from vadclip.errors import OptionError, UserError, VocabularyError
from vadclip.features import ExtractSettings, FeatureCache, extract_video_features, snippet_means
from vadclip.safe_load import CheckpointError
from vadclip.scoring import score_video_features, video_features

from shared_paths import SHARED
from videos import write_video

FIXTURE = SHARED / "fixtures" / "anomalyclip"
VIDEOS = ("v0", "v1", "v2")
XD_MODEL_ORDER = ["Abuse", "Car_accident", "Explosion", "Fighting", "Normal", "Riot", "Shooting"]
XD_NORMAL_FIRST = ["Normal", "Abuse", "Car_accident", "Explosion", "Fighting", "Riot", "Shooting"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fx() -> dict:
    if not (FIXTURE / "official_xd.ckpt").is_file():
        pytest.skip(f"AnomalyCLIP parity fixtures not found at {FIXTURE} (../shared is absent)")
    return dict(np.load(FIXTURE / "parity_xd.npz"))


@pytest.fixture(scope="module")
def run_dir(fx, tmp_path_factory) -> Path:
    """A copy of the fixture's last.ckpt with the ncentroid.pt that normal_centroid gives beside it."""
    folder = tmp_path_factory.mktemp("official_run")
    shutil.copyfile(FIXTURE / "official_xd.ckpt", folder / "last.ckpt")
    lengths = fx["train_normal_lengths"]
    videos = np.split(fx["train_normal_features"], np.cumsum(lengths)[:-1])
    torch.save(torch.from_numpy(anomalyclip.normal_centroid(videos)), folder / "ncentroid.pt")
    return folder


@pytest.fixture(scope="module")
def loaded(run_dir):
    return vadclip.load_model(run_dir / "last.ckpt")


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("v") / "clip.mp4", 40, fps=8)


def run_cli(*argv, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vadclip", *map(str, argv)], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=300)


# --------------------------------------------------------------------------- load_model and the detector

def test_load_model_official_ckpt_with_centroid_beside_it(fx, run_dir, loaded):
    assert loaded.kind == "anomalyclip-official" and loaded.preset == "xd" and loaded.path == run_dir / "last.ckpt"
    det = loaded.detector
    assert isinstance(det, AnomalyCLIPDetector) and isinstance(det, Detector)
    assert (det.kind, det.frames_per_row, det.fixed_vocabulary, det.branches) == ("anomalyclip", 1, True, ("score",))
    assert det.default_class_names == XD_NORMAL_FIRST and not det.random_weights
    np.testing.assert_allclose(det.model.ncentroid.numpy(), fx["ncentroid"], atol=0)
    for preset, centroid in (("xd", fx["ncentroid"]), ("auto", run_dir / "ncentroid.pt")):
        again = vadclip.load_model(FIXTURE / "official_xd.ckpt", preset=preset, centroid=centroid)
        assert again.preset == "xd" and again.kind == "anomalyclip-official"


def test_load_model_official_errors_are_user_errors(run_dir, tmp_path):
    with pytest.raises(CheckpointError, match="--centroid"):
        vadclip.load_model(FIXTURE / "official_xd.ckpt")                 # no ncentroid.pt beside it
    with pytest.raises(CheckpointError, match="preset 'ucf'"):
        vadclip.load_model(run_dir / "last.ckpt", preset="ucf")
    with pytest.raises(OptionError, match="no such file"):
        vadclip.load_model(run_dir / "last.ckpt", centroid=tmp_path / "absent.pt")
    np.save(tmp_path / "bad.npy", np.zeros(7, np.float32))
    with pytest.raises(UserError, match=r"\[512\] vector"):
        vadclip.load_model(run_dir / "last.ckpt", centroid=tmp_path / "bad.npy")


def test_load_model_our_format_and_run_folder(loaded, fx, tmp_path):
    file = anomalyclip.save_checkpoint(loaded.detector.model, tmp_path / "run" / "best.safetensors",
                                       metadata={"epoch": 2})
    feats = fx["v1_features"]
    a = loaded.detector.score(feats, XD_NORMAL_FIRST)
    for ref in (file, tmp_path / "run"):
        ours = vadclip.load_model(ref)
        assert ours.kind == "anomalyclip" and ours.preset == "xd" and ours.metadata == {"epoch": 2}
        b = ours.detector.score(feats, XD_NORMAL_FIRST)
        np.testing.assert_allclose(b.curves["score"], a.curves["score"], atol=1e-6)
    with pytest.raises(OptionError, match="store their normal centroid"):
        vadclip.load_model(file, centroid=fx["ncentroid"])
    with pytest.raises(CheckpointError, match="not 'ucf'"):
        vadclip.load_model(file, preset="ucf")


@pytest.mark.parametrize("video_id", VIDEOS)
def test_detector_scores_equal_score_frames_normal_first(fx, loaded, video_id):
    det = loaded.detector
    out = anomalyclip.score_frames(det.model, fx[f"{video_id}_features"])
    got = det.score(fx[f"{video_id}_features"], det.vocabulary(None))
    np.testing.assert_array_equal(got.curves["score"], out.scores)
    order = [XD_MODEL_ORDER.index(n) for n in XD_NORMAL_FIRST]
    np.testing.assert_array_equal(got.class_probs, out.class_probs[:, order])
    np.testing.assert_allclose(got.class_probs, fx[f"{video_id}_class_probs"][:, order], atol=1e-5)
    assert got.frames_per_row == 1 and got.class_names == XD_NORMAL_FIRST


def test_vocabulary_reworded_ok_added_or_removed_refused(fx, loaded):
    det = loaded.detector
    reworded = ["nothing happens", "abuse of a person", "car crash", "explosion", "fight", "riot", "gunfire"]
    assert det.vocabulary(reworded) == reworded
    out = det.score(fx["v1_features"], reworded)
    expected = anomalyclip.score_frames(det.model, fx["v1_features"], det.model_order(reworded))
    np.testing.assert_array_equal(out.curves["score"], expected.scores)
    for names in (XD_NORMAL_FIRST + ["Robbery"], XD_NORMAL_FIRST[:-1]):
        with pytest.raises(VocabularyError, match="not added or removed"):
            det.vocabulary(names)


# --------------------------------------------------------------------------- per-frame features

def test_per_frame_features_same_path_cache_and_snippet_means(loaded, video, tmp_path):
    det = loaded.detector
    per_frame = extract_video_features(det.clip_model, det.clip_info, video, ExtractSettings(frames_per_row=1))
    snippets = extract_video_features(det.clip_model, det.clip_info, video, ExtractSettings())
    assert per_frame.features.shape == (40, 512) and per_frame.features.dtype == np.float32
    assert per_frame.snippet_frames == 1 and snippets.features.shape == (2, 512)
    np.testing.assert_allclose(snippet_means(per_frame.features), snippets.features, atol=1e-5)
    cache = FeatureCache(tmp_path / "cache")
    first = video_features(video, det, settings=ExtractSettings(samples_per_snippet=4), cache=cache)
    again = video_features(video, det, cache=cache)
    assert not first.cache_hit and again.cache_hit and first.cache_key == again.cache_key
    assert first.settings.frames_per_row == 1 and first.settings.samples_per_row == 1
    np.testing.assert_array_equal(first.features, per_frame.features)
    snippet_key = FeatureCache.key(first.content_hash, first.cache_key and
                                   vadclip.features.backbone_id(det.clip_info, det.clip_model), ExtractSettings())
    assert snippet_key != first.cache_key
    with pytest.raises(OptionError, match="every frame"):
        ExtractSettings(frames_per_row=1, samples_per_snippet=4)


def test_score_video_per_frame_rows_segments_and_labels(loaded, video, fx):
    det = loaded.detector
    features = video_features(video, det)
    scores = score_video_features(features, det, params=vadclip.DetectionParams(threshold=0.0, min_duration_s=0))
    assert scores.snippet_frames == 1 and scores.n_snippets == 40 and scores.branches == ("score",)
    np.testing.assert_allclose(scores.snippet_end_s - scores.snippet_start_s, 1 / 8)
    out = anomalyclip.score_frames(det.model, features.features)
    np.testing.assert_array_equal(scores.coarse("score"), out.scores)
    assert len(scores.segments) == 1                       # threshold 0: the whole video
    seg = scores.segments[0]
    label = XD_NORMAL_FIRST[1 + int(scores.fine[:, 1:].mean(axis=0).argmax())]
    assert (seg.start_frame, seg.end_frame, seg.label) == (0, 40, label)
    back = vadclip.VideoScores.from_dict(json.loads(scores.to_json()))
    np.testing.assert_array_equal(back.coarse(), scores.coarse())


# --------------------------------------------------------------------------- CLI

def test_cli_score_json_per_frame_rows(run_dir, video, tmp_path):
    out = tmp_path / "s.json"
    r = run_cli("score", video, "--checkpoint", run_dir / "last.ckpt", "--preset", "xd", "--centroid",
                run_dir / "ncentroid.pt", "--json", out, "--threshold", "0.3")
    assert r.returncode == 0, r.stderr
    assert "40 rows, one per frame" in r.stdout and "AnomalyCLIP (preset xd" in r.stdout
    d = json.loads(out.read_text())
    assert d["snippet_frames"] == 1 and d["samples_per_snippet"] == 1 and d["branches"] == ["score"]
    assert d["class_names"] == XD_NORMAL_FIRST and d["params"]["branch"] == "score"
    assert set(d["snippets"]) == {"start_s", "end_s", "coarse_score", "fine"}
    assert len(d["snippets"]["coarse_score"]) == 40 and np.asarray(d["snippets"]["fine"]).shape == (40, 7)
    r = run_cli("score", video, "--checkpoint", FIXTURE / "official_xd.ckpt")
    assert r.returncode == 2 and "--centroid" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("score", video, "--checkpoint", run_dir / "last.ckpt", "--classes", "normal,fight")
    assert r.returncode == 2 and "not added or removed" in r.stderr and "Traceback" not in r.stderr


def _official_test_set(fx, root: Path) -> tuple[Path, Path]:
    """The fixture's three test videos as an official list + temporal annotation + .npy files."""
    (root / "feats").mkdir(parents=True)
    lines, ann = [], []
    for v in VIDEOS:
        feats, labels = fx[f"{v}_features"], fx[f"{v}_frame_labels"]
        np.save(root / "feats" / f"{v}.npy", feats)
        label = int(fx[f"{v}_video_label"])
        lines.append(f"feats/{v} 0 {len(feats) - 1} {label}")
        abnormal = np.flatnonzero(labels != 4)
        if len(abnormal):                          # inclusive ranges of consecutive abnormal frames
            cuts = np.flatnonzero(np.diff(abnormal) > 1)
            starts, ends = abnormal[np.r_[0, cuts + 1]], abnormal[np.r_[cuts, len(abnormal) - 1]]
            ann.append(f"{v}.mp4 {XD_MODEL_ORDER[label]} " + " ".join(f"{s} {e}" for s, e in zip(starts, ends)))
        else:
            ann.append(f"{v}.mp4 Normal -1 -1")
    (root / "Anomaly_Test.txt").write_text("\n".join(lines) + "\n")
    (root / "test_annotation.txt").write_text("\n".join(ann) + "\n")
    return root / "Anomaly_Test.txt", root / "test_annotation.txt"


def test_cli_eval_official_test_list_matches_metrics_fixture(fx, run_dir, tmp_path):
    test_list, annotation = _official_test_set(fx, tmp_path / "data")
    out = tmp_path / "m.json"
    r = run_cli("eval", "--checkpoint", run_dir / "last.ckpt", "--test-list", test_list, "--annotations",
                annotation, "--features-root", tmp_path / "data", "--json", out)
    assert r.returncode == 0, r.stderr
    assert "AUC-ROC" in r.stdout and "Riot" in r.stdout and "3 videos, 1920 frames" in r.stdout
    got = json.loads(out.read_text())
    assert got["method"] == "anomalyclip" and got["n_frames"] == 1920
    expected = json.loads((FIXTURE / "metrics_xd.json").read_text())
    model = vadclip.load_model(run_dir / "last.ckpt").detector.model
    outs = [anomalyclip.score_frames(model, fx[f"{v}_features"]) for v in VIDEOS]
    direct = anomalyclip.frame_metrics(np.concatenate([o.scores for o in outs]),
                                       np.concatenate([o.class_probs for o in outs]),
                                       np.concatenate([fx[f"{v}_frame_labels"] for v in VIDEOS]), normal_id=4)
    as_float = lambda v: np.asarray([np.nan if x is None else x for x in np.atleast_1d(v)], dtype=float)
    for key, value in expected.items():
        np.testing.assert_allclose(as_float(got[key]), np.asarray(value, dtype=float), rtol=0, atol=1e-6, err_msg=key)
        np.testing.assert_allclose(as_float(got[key]), np.asarray(direct[key], dtype=float), rtol=0, atol=1e-12,
                                   err_msg=key)
    # a broken annotation: one clear error, no traceback, before scoring
    annotation.write_text("v0.mp4 Riot 300\n")
    r = run_cli("eval", "--checkpoint", run_dir / "last.ckpt", "--method", "anomalyclip", "--test-list", test_list,
                "--annotations", annotation)
    assert r.returncode == 2 and "temporal annotation" in r.stderr and "Traceback" not in r.stderr


def test_cli_extract_per_frame(loaded, video, tmp_path):
    det = loaded.detector
    clip_file = anomalyclip.save_checkpoint(det.model, tmp_path / "ours.safetensors")   # its CLIP is a --clip source
    r = run_cli("extract", video.parent, "--out", tmp_path / "out", "--per-frame", "--clip", clip_file, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "40 frames" in r.stdout
    arr = np.load(tmp_path / "out" / "clip.npy")
    assert arr.shape == (40, 512) and arr.dtype == np.float32
    direct = extract_video_features(det.clip_model, det.clip_info, video, ExtractSettings(frames_per_row=1)).features
    np.testing.assert_allclose(arr, direct, atol=1e-5)
    assert (tmp_path / "out" / "features.csv").read_text().splitlines() == ["path,label", "clip.npy,Normal"]
    again = extract_videos.extract(video.parent, tmp_path / "out", clip=clip_file,
                                    settings=ExtractSettings(frames_per_row=1), progress=False)
    assert again.skipped == ["clip"]                       # resumable: the per-frame record matches
    snip = extract_videos.extract(video.parent, tmp_path / "out", clip=clip_file, progress=False)
    assert snip.extracted == ["clip"] and np.load(tmp_path / "out" / "clip.npy").shape == (2, 512)
    r = run_cli("extract", video.parent, "--out", tmp_path / "o2", "--per-frame", "--samples-per-snippet", "4",
                "--clip", clip_file, "--no-progress")
    assert r.returncode == 2 and "every frame" in r.stderr and "Traceback" not in r.stderr
