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
    app_preset = ["normal", "fighting", "shooting", "riot", "abuse", "car accident", "explosion"]
    with pytest.raises(VocabularyError, match="another order"):    # would score each with another's prompt
        det.vocabulary(app_preset)


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


# --------------------------------------------------------------------------- the app's handlers

@pytest.fixture(scope="module")
def app_ctx(fx, run_dir, loaded, tmp_path_factory, official_dir):
    """An app whose models folder holds the official VadCLIP fixture and whose CLIP (zero-shot) is
    the AnomalyCLIP fixture's, saved in our format."""
    from app import handlers as h
    from app.config import AppConfig

    root = tmp_path_factory.mktemp("app")
    (root / "models").mkdir()
    shutil.copy(official_dir / "official_xd.pth", root / "models" / "official_xd.pth")
    clip = anomalyclip.save_checkpoint(loaded.detector.model, root / "anomalyclip_clip.safetensors")
    write_video(root / "clip.mp4", n_frames=100, width=64, height=48, fps=25)        # 4 s
    ctx = h.AppContext.create(AppConfig(models_dir=root / "models", data_dir=root / "data",
                                        data_root=root / "training", clip=str(clip), device="cpu", max_video_s=30))
    yield ctx, root
    ctx.close()


def test_app_upload_official_ckpt_then_its_centroid(app_ctx, run_dir, tmp_path):
    from app import handlers as h
    from app.models import needs_centroid
    from app.state import Session

    ctx, root = app_ctx
    session = Session()
    key = h.upload_model(ctx, session, str(run_dir / "last.ckpt"))
    assert needs_centroid(key) and h.model_vocabulary(ctx, key, "auto") is None
    label = next(c.label for c in h.model_choices(ctx, session) if c.key == key)
    assert "AnomalyCLIP" in label and "needs its centroid" in label
    shutil.copyfile(run_dir / "ncentroid.pt", root / "models" / "ncentroid.pt")        # never listed as a model
    assert "ncentroid.pt" not in [Path(c.key).name for c in h.model_choices(ctx, session)]
    (root / "models" / "ncentroid.pt").unlink()
    with pytest.raises(CheckpointError, match="centroid"):
        ctx.registry.get(key, "auto", "cpu")
    (tmp_path / "bad.pt").write_bytes(b"not a tensor")
    with pytest.raises(CheckpointError):
        h.upload_centroid(ctx, key, str(tmp_path / "bad.pt"))
    assert needs_centroid(key)                                   # nothing kept from the bad upload
    with pytest.raises(UserError, match="official AnomalyCLIP"):
        h.upload_centroid(ctx, str(root / "models" / "official_xd.pth"), str(run_dir / "ncentroid.pt"))
    written = h.upload_centroid(ctx, key, str(run_dir / "ncentroid.pt"))
    assert written.name == "last.ckpt.ncentroid.pt" and not needs_centroid(key)
    assert h.model_vocabulary(ctx, key, "auto") == ("Normal", "\n".join(XD_NORMAL_FIRST[1:]))
    assert h.model_vocabulary(ctx, str(root / "models" / "official_xd.pth"), "auto") is None   # free vocabulary


def _anomalyclip_key(ctx, run_dir: Path) -> str:
    """An official AnomalyCLIP checkpoint in the models folder, its centroid beside it (`xd.ckpt.ncentroid.pt`)."""
    models = ctx.config.models_dir
    if not (models / "xd.ckpt").is_file():
        shutil.copyfile(run_dir / "last.ckpt", models / "xd.ckpt")
        shutil.copyfile(run_dir / "ncentroid.pt", models / "xd.ckpt.ncentroid.pt")
    return str((models / "xd.ckpt").resolve())


def test_app_analyse_with_anomalyclip(app_ctx, run_dir):
    from app import handlers as h
    from app.plots import timeline_figure
    from app.state import Session

    ctx, root = app_ctx
    key = _anomalyclip_key(ctx, run_dir)
    normal, anomalies = h.model_vocabulary(ctx, key, "auto")
    params = vadclip.DetectionParams(threshold=0.0, min_duration_s=0.0)
    session = h.analyse(ctx, Session(), str(root / "clip.mp4"), normal, anomalies, key, "auto", 4, params)
    scores = session.scores
    assert scores.snippet_frames == 1 and scores.n_snippets == 100 and scores.branches == ("score",)
    assert len(scores.segments) == 1 and len(session.review_ids) == 1
    assert "100 frames scored one by one" in h.summary_markdown(scores) and "'score' curve" in h.summary_markdown(scores)
    fig = timeline_figure(scores)
    assert [t.name for t in fig.data][:1] == ["AnomalyCLIP score (per frame)"]
    with pytest.raises(VocabularyError, match="not added or removed"):
        h.analyse(ctx, Session(), str(root / "clip.mp4"), "normal", "fight\nriot", key, "auto", 4, params)
    reworded = h.rescore(ctx, session, "calm", anomalies.replace("Riot", "street riot"), key, "auto", params)
    assert reworded.scores.class_names[0] == "calm" and "street riot" in reworded.scores.class_names
    # zero-shot on the same CLIP re-scores the per-frame features as 16-frame means, nothing decoded
    from app.models import ZERO_SHOT
    zero_shot = h.rescore(ctx, session, "normal", "fighting\nriot", ZERO_SHOT, "auto", params)
    assert (zero_shot.scores.snippet_frames, zero_shot.scores.n_snippets, zero_shot.scores.samples_per_snippet) == (16, 6, 16)
    back = h.rescore(ctx, zero_shot, normal, anomalies, key, "auto", params)      # the session kept its frames
    np.testing.assert_array_equal(back.scores.coarse(), scores.coarse())
    snippets = h.analyse(ctx, Session(), str(root / "clip.mp4"), "normal", "fighting\nriot", ZERO_SHOT, "auto", 1,
                         params)
    with pytest.raises(UserError, match="press Analyse"):            # snippets cannot become frames
        h.rescore(ctx, snippets, normal, anomalies, key, "auto", params)
    with pytest.raises(UserError, match="another CLIP"):
        h.rescore(ctx, session, "normal", "fighting", str(root / "models" / "official_xd.pth"), "auto", params)


def test_timeline_pools_long_results_for_drawing_only():
    from app.plots import MAX_POINTS, pooled_rows, timeline_figure

    n = 18_000
    rng = np.random.default_rng(0)
    curve = rng.random(n).astype(np.float32)
    curve[12_345] = 1.0
    fine = rng.dirichlet(np.ones(3), size=n).astype(np.float32)
    start = np.arange(n) / 30.0
    scores = vadclip.VideoScores(video="long.mp4", content_hash="x", fps=30.0, n_frames=n, duration_s=n / 30,
                                 snippet_frames=1, samples_per_snippet=1, snippet_start_s=start,
                                 snippet_end_s=start + 1 / 30, curves={"score": curve}, fine=fine,
                                 class_names=["normal", "a", "b"], segments=[],
                                 params=vadclip.DetectionParams(branch="score"), model="m")
    s, e, curves, pooled = pooled_rows(scores)
    assert len(s) <= MAX_POINTS and curves["score"].max() == 1.0 and s[0] == 0 and e[-1] == start[-1] + 1 / 30
    np.testing.assert_allclose(pooled.mean(axis=0), fine.mean(axis=0), atol=1e-3)
    k = -(-n // MAX_POINTS)
    np.testing.assert_allclose(pooled[0], fine[:k].mean(axis=0), atol=1e-6)
    fig = timeline_figure(scores)
    assert all(len(t.x) <= MAX_POINTS + 1 for t in fig.data)
    assert scores.coarse().shape == (n,)                     # the result itself is untouched


def test_app_compare_two_models_features_once_per_clip_sampling(app_ctx, run_dir, monkeypatch):
    from app import handlers as h
    from app.handlers import analysis
    from app.models import ZERO_SHOT
    from app.plots import comparison_figure
    from vadclip.features import same_image_tower

    ctx, root = app_ctx
    key = _anomalyclip_key(ctx, run_dir)
    vad_key = str((root / "models" / "official_xd.pth").resolve())
    video = str(root / "clip.mp4")
    normal, anomalies = "normal", "fighting\nshooting\nriot\nabuse\ncar accident\nexplosion"
    params = vadclip.DetectionParams(threshold=0.4, branch="c", min_duration_s=0.0)
    calls = []
    real = analysis.video_features
    monkeypatch.setattr(analysis, "video_features", lambda *a, **k: calls.append(k["settings"]) or real(*a, **k))

    # VadCLIP (its own CLIP, snippets) + AnomalyCLIP (per frame): two extractions, each model its curve
    result = h.compare(ctx, video, normal, anomalies, [(vad_key, "auto"), (key, "auto")], 4, params)
    vad, ac = result.scores
    assert (vad.snippet_frames, vad.params.branch, ac.snippet_frames, ac.params.branch) == (16, "c", 1, "score")
    assert ac.class_names == XD_NORMAL_FIRST and vad.class_names[1] == "fighting"
    assert len(calls) == 2 and any("another CLIP" in n for n in result.notes)
    assert any("own trained classes" in n and "another order" in n for n in result.notes)   # xd names, other order
    fig = comparison_figure(result.scores)
    assert len([t for t in fig.data if t.showlegend is not False]) == 2
    assert "segment(s)" in h.comparison_markdown(result)

    # zero-shot on the app's CLIP (= AnomalyCLIP's): one per-frame extraction, snippet means derived
    calls.clear()
    result = h.compare(ctx, video, normal, anomalies, [(ZERO_SHOT, "auto"), (key, "auto")], 16, params)
    zs, ac2 = result.scores
    det = ctx.registry.get(ZERO_SHOT).detector
    assert same_image_tower(det.clip_model, ctx.registry.get(key).detector.clip_model)
    assert not same_image_tower(det.clip_model, ctx.registry.get(vad_key).detector.clip_model)
    assert [s.frames_per_row for s in calls] == [1] and any("snippet means" in n for n in result.notes)
    direct = vadclip.score_video(video, det, zs.class_names, params=zs.params)
    np.testing.assert_allclose(zs.coarse(), direct.coarse(), atol=1e-5)
    np.testing.assert_allclose(zs.fine, direct.fine, atol=1e-5)
    np.testing.assert_array_equal(ac2.coarse(), ac.coarse())
    # 4 of 16 frames per snippet is another sampling: extracted apart, and said so
    calls.clear()
    result = h.compare(ctx, video, normal, anomalies, [(ZERO_SHOT, "auto"), (key, "auto")], 4, params)
    assert len(calls) == 2 and any("4 of 16 frames" in n for n in result.notes)
    with pytest.raises(UserError, match="two different models"):
        h.compare(ctx, video, normal, anomalies, [(key, "auto"), (key, "auto")], 4, params)
