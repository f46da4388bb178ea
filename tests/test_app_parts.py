"""The app's building blocks: settings, the review store, plots, exports, UI construction."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app import export
from app.config import AppConfig, add_arguments
from app.plots import timeline_figure, training_figure
from app.review_db import ReviewStore
from vadclip.results import DetectedSegment, DetectionParams, VideoScores

REPO = Path(__file__).resolve().parents[1]


def fake_scores(segments: list[tuple[int, int, str]], random_weights: bool = False,
                content_hash: str = "abc") -> VideoScores:
    n, names = 20, ["normal", "fighting", "explosion"]
    rng = np.random.default_rng(0)
    fine = rng.dirichlet(np.ones(3), n).astype(np.float32)
    start = np.arange(n) * 16 / 25.0
    segs = [DetectedSegment(start_s=a * 16 / 25, end_s=b * 16 / 25, start_frame=a * 16, end_frame=b * 16,
                            label=label, confidence=0.7, peak_score=0.9, mean_score=0.8)
            for a, b, label in segments]
    return VideoScores(video="v.mp4", content_hash=content_hash, fps=25.0, n_frames=n * 16,
                       duration_s=n * 16 / 25, snippet_frames=16, samples_per_snippet=4,
                       snippet_start_s=start, snippet_end_s=start + 16 / 25,
                       curves={"c": rng.random(n).astype(np.float32), "a": 1 - fine[:, 0]},
                       fine=fine, class_names=names, segments=segs, params=DetectionParams(),
                       model="test model", random_weights=random_weights)


# ------------------------------------------------------------------------------- settings

def test_config_from_env_and_flags(tmp_path):
    env = {"VADCLIP_MODELS_DIR": str(tmp_path / "m"), "VADCLIP_DATA_DIR": str(tmp_path / "d"),
           "VADCLIP_MAX_VIDEO_S": "30", "VADCLIP_CLIP": "random", "VADCLIP_CONCURRENCY": "2"}
    config = AppConfig.from_env(env)
    assert config.models_dir == tmp_path / "m" and config.max_video_s == 30.0
    assert config.clip == "random" and config.concurrency == 2
    assert config.training_root == tmp_path / "d"
    assert config.database_url == f"sqlite:///{(tmp_path / 'd' / 'reviews.sqlite').resolve()}"
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = config.with_args(parser.parse_args(["--max-video-s", "5", "--data-root", str(tmp_path)]))
    assert flags.max_video_s == 5.0 and flags.training_root == tmp_path and flags.clip == "random"
    assert AppConfig.from_env({}).clip == "openai"


@pytest.mark.parametrize("env, message", [
    ({"VADCLIP_MAX_VIDEO_S": "ten"}, "bad VADCLIP_"),
    ({"VADCLIP_MAX_UPLOAD_MB": "0"}, "must be positive"),
    ({"VADCLIP_CONCURRENCY": "0"}, "at least 1"),
])
def test_config_rejects_bad_values(env, message):
    with pytest.raises(ValueError, match=message):
        AppConfig.from_env(env)


def test_app_py_help_and_bad_env():
    out = subprocess.run([sys.executable, "app.py", "--help"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and "--max-video-s" in out.stdout and "VADCLIP_" in out.stdout
    bad = subprocess.run([sys.executable, "app.py"], cwd=REPO, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "VADCLIP_QUEUE_SIZE": "many"})
    assert bad.returncode == 2 and "bad VADCLIP_* environment variable" in bad.stderr
    assert "Traceback" not in bad.stderr


# ------------------------------------------------------------------------------- review store

def test_review_store_sqlite_wal_and_sync(tmp_path):
    url = f"sqlite:///{tmp_path / 'db' / 'reviews.sqlite'}"
    store = ReviewStore(url)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    first = store.sync_segments(fake_scores([(0, 4, "fighting"), (10, 14, "explosion")]), {0: b"jpeg"})
    assert [r.status for r in first] == ["pending", "pending"] and first[0].thumbnail == b"jpeg"
    store.decide(first[0].id, "confirmed", note="yes")
    second = store.sync_segments(fake_scores([(0, 4, "fighting"), (12, 16, "fighting")]))
    assert second[0].id == first[0].id and second[0].status == "confirmed"
    ids = {r.id for r in store.items()}
    assert first[1].id not in ids                                    # stale pending item dropped
    assert len(store.items(content_hash="abc")) == 2 and len(store.items(status="confirmed")) == 1
    store.close()
    again = ReviewStore(url)                                         # restart
    assert again.get(first[0].id).note == "yes"
    with pytest.raises(ValueError, match="unknown review status"):
        again.decide(first[0].id, "approved")
    with pytest.raises(ValueError, match="already labelled"):
        again.decide(first[0].id, "relabelled", new_label="fighting")
    again.close()


def test_export_files(tmp_path):
    store = ReviewStore(f"sqlite:///{tmp_path / 'r.sqlite'}")
    records = store.sync_segments(fake_scores([(0, 4, "fighting")], random_weights=True))
    csv_path = export.write_csv(records, out_dir=tmp_path)
    header = csv_path.read_text().splitlines()[0].split(",")
    assert tuple(header) == export.EXPORT_COLUMNS
    doc = export.write_json(records, fake_scores([(0, 4, "fighting")], random_weights=True), out_dir=tmp_path)
    text = doc.read_text()
    assert "RANDOM WEIGHTS" in text and '"analysis"' in text
    store.close()


# ------------------------------------------------------------------------------- plots

def test_timeline_figure():
    scores = fake_scores([(0, 4, "fighting"), (10, 14, "explosion")])
    fig = timeline_figure(scores, selected=1)
    kinds = [t.type for t in fig.data]
    assert kinds == ["scatter", "scatter", "heatmap"]
    assert list(fig.data[2].y) == scores.class_names
    assert len(fig.layout.shapes) == 2 * 2 + 1                       # 2 segments x 2 rows + threshold
    labels = [a.text for a in fig.layout.annotations]
    assert any("#1 fighting" in t for t in labels) and any("#2 explosion" in t for t in labels)
    assert fig.layout.xaxis.range == (0, scores.duration_s)
    warned = timeline_figure(scores, warning="RANDOM CLIP WEIGHTS")
    assert "RANDOM CLIP WEIGHTS" in warned.layout.title.text
    assert timeline_figure(fake_scores([])).to_json()


def test_training_figure():
    events = [{"kind": "step", "step": 1, "loss": 2.0}, {"kind": "step", "step": 2, "loss": 1.5},
              {"kind": "eval", "step": 2, "metrics": {"ap_a": 0.4, "auc_c": 0.7, "n_videos": 4}}]
    fig = training_figure(events)
    assert [t.name for t in fig.data] == ["loss", "auc_c", "ap_a"]
    assert training_figure([]).to_json()


# ------------------------------------------------------------------------------- UI

def make_demo(tmp_path, official_dir):
    from app.ui import build_demo

    (tmp_path / "models").mkdir(exist_ok=True)
    config = AppConfig(models_dir=tmp_path / "models", data_dir=tmp_path / "data",
                       clip=str(official_dir / "official_xd.pth"), max_upload_mb=50)
    return build_demo(config), config


def test_build_demo(tmp_path, official_dir):
    import gradio as gr

    from app.ui import launch_options
    from app.wiring import gpu_decorator

    demo, config = make_demo(tmp_path, official_dir)
    assert isinstance(demo, gr.Blocks)
    assert demo.vadclip_context.config is config
    options = launch_options(config)
    assert options["max_file_size"] == "50mb"
    assert str(config.assets_dir.resolve()) in options["allowed_paths"]
    demo.vadclip_context.close()
    assert gpu_decorator()(len) is len                                # no `spaces` package here


def test_public_api_is_the_documented_set(tmp_path, official_dir):
    """Only the endpoints the README documents are public; every internal event is private."""
    import re

    demo, _ = make_demo(tmp_path, official_dir)
    public = set(demo.get_api_info()["named_endpoints"])
    demo.vadclip_context.close()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    api_line = re.search(r"`gradio_client`\s+API:(.{0,400}?)\n\n", readme, re.S)
    assert api_line, "README: the app section lists the `gradio_client` API"
    documented = set(re.findall(r"`(/[a-z_]+)", api_line.group(1)))
    assert public == documented == {"/analyse", "/rescore", "/decide_segment", "/export_reviews",
                                     "/start_training", "/compare"}


def test_guard_shows_user_errors_and_hides_bugs(caplog):
    import gradio as gr

    from app.wiring import BUG_MESSAGE, guard
    from vadclip.errors import UserError
    from vadclip.video import VideoError

    def user_error(x):
        raise VideoError("clip.mp4", "no video stream")

    def bug(x):
        raise KeyError("secret internal detail")

    def plain_value_error(x):                   # not a UserError: a bug, however it is spelt
        raise ValueError("internal detail")

    with pytest.warns(UserWarning, match="clip.mp4: no video stream"):   # gr.Warning outside a request
        skipped = guard(user_error, 2)(1)
    assert isinstance(skipped, tuple) and len(skipped) == 2
    with pytest.raises(gr.Error, match="clip.mp4: no video stream"):      # the API's way
        guard(user_error, 1, user_errors="error")(1)
    for fn in (bug, plain_value_error):
        with pytest.raises(gr.Error) as info:
            guard(fn, 1)(1)
        assert info.value.message == BUG_MESSAGE and "internal detail" not in info.value.message
    assert "secret internal detail" in caplog.text and "Traceback" in caplog.text
    assert issubclass(VideoError, UserError)


def test_ui_defaults_come_from_the_library(tmp_path, official_dir):
    import gradio as gr

    from app import handlers as h
    from vadclip.config import PRESETS, get_preset

    demo, _ = make_demo(tmp_path, official_dir)
    train_preset = [b for b in demo.blocks.values() if isinstance(b, gr.Radio) and b.label == "Preset"]
    by_label = {getattr(b, "label", None): b for b in demo.blocks.values()}
    demo.vadclip_context.close()
    params = DetectionParams()
    assert by_label["Threshold"].value == params.threshold
    assert by_label["Merge gaps shorter than (s)"].value == params.min_gap_s
    assert by_label["Drop segments shorter than (s)"].value == params.min_duration_s
    assert by_label["Detection branch"].value == (params.branch or h.MODEL_DEFAULT_BRANCH)
    preset = next(iter(PRESETS))
    recipe = get_preset(preset).train
    assert [b.value for b in train_preset] == [preset]
    assert (by_label["Epochs"].value, by_label["Learning rate"].value, by_label["Batch size"].value) == (
        recipe.epochs, recipe.lr, recipe.batch_size)
