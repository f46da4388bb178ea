"""Reviews become training data (vadclip/reviews_dataset.py): which videos and labels, the files
in the official formats, and a fine-tune from a real review database end to end (`vadclip train
--from-reviews`, features read from a feature cache)."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

from vadclip.evaluate import load_eval_set
from vadclip.formats import DataError, read_feature_list
from vadclip.reviews_dataset import (ReviewedSegment, build_review_training_set, reviewed_videos,
                                     split_holdout)

from conftest import OFFICIAL, synth

REPO = Path(__file__).resolve().parents[1]


def seg(h: str, status: str, label: str = "fighting", start: int = 0, end: int = 64) -> ReviewedSegment:
    return ReviewedSegment(h, f"{h}.mp4", start, end, status, label)


def test_reviewed_videos_follow_the_official_semantics():
    reviews = [seg("a", "confirmed", "fighting", 0, 64), seg("a", "relabelled", "explosion", 128, 192),
               seg("b", "dismissed"), seg("b", "pending"),
               seg("c", "pending"),                                       # never reviewed: left out
               seg("d", "relabelled", "normal"),                           # relabelled normal: normal
               seg("e", "confirmed", "Riot")]
    videos = {v.content_hash: v for v in reviewed_videos(reviews, "xd")}
    assert set(videos) == {"a", "b", "d", "e"}
    assert videos["a"].codes == ["B1", "G"] and videos["a"].spans == [(0, 64, "B1"), (128, 192, "G")]
    assert not videos["b"].abnormal and not videos["d"].abnormal
    assert videos["e"].codes == ["B4"]
    ucf = {v.content_hash: v for v in reviewed_videos(
        [seg("a", "confirmed", "fighting", 0, 16), seg("a", "confirmed", "explosion", 32, 160)], "ucf")}
    assert ucf["a"].codes == ["Explosion"]                    # one class per video: the longest
    with pytest.raises(DataError, match="'dancing'"):
        reviewed_videos([seg("x", "confirmed", "dancing")], "xd")


def test_holdout_split_is_stratified_and_deterministic():
    videos = reviewed_videos([seg(f"n{k}", "dismissed") for k in range(6)]
                             + [seg(f"a{k}", "confirmed") for k in range(4)], "xd")
    train, test = split_holdout(videos, 0.3, seed=3)
    assert sum(v.abnormal for v in test) == 1 and sum(not v.abnormal for v in test) == 2
    assert len(train) + len(test) == 10
    assert [v.content_hash for v in split_holdout(videos, 0.3, seed=3)[1]] == [v.content_hash for v in test]


def test_training_set_files_read_back(tmp_path):
    rng = np.random.default_rng(0)
    reviews, features = [], {}
    for k in range(4):
        reviews.append(seg(f"abn{k}", "confirmed", "shooting", 32, 96))
        features[f"abn{k}"] = rng.normal(size=(10, 512)).astype(np.float32)
        reviews.append(seg(f"nor{k}", "dismissed"))
        features[f"nor{k}"] = rng.normal(size=(2, 12, 512)).astype(np.float32)      # two crops
    reviews.append(seg("uncached", "confirmed"))
    data = build_review_training_set(reviews, features.get, tmp_path / "set", "xd", holdout=0.3)
    assert data.skipped == ["uncached.mp4"] and len(data.test_videos) == 2
    train = read_feature_list(data.train_list, preset="xd")
    assert {e.label for e in train} == {"B2", "A"}
    assert sum(e.crop == 1 for e in train) == 3                      # every crop of the normal videos
    eval_set = load_eval_set(data.test_list, [str(p) for p in data.annotations], preset="xd")
    abnormal = int(np.flatnonzero(eval_set.abnormal_video)[0])
    start = sum(eval_set.n_snippets[:abnormal]) * 16
    assert eval_set.frame_gt[start + 32:start + 96].all() and not eval_set.frame_gt[start:start + 32].any()
    with pytest.raises(DataError, match="too few reviewed videos"):
        build_review_training_set(reviews[:3], features.get, tmp_path / "small", "xd")


@pytest.mark.slow
def test_fine_tune_from_reviews_end_to_end(tmp_path):
    """Simulated reviews of a synthetic benchmark in a real review database, features in a feature
    cache keyed for the checkpoint's CLIP, `vadclip train --from-reviews`: the held-out metrics
    before and after are reported and the fine-tuned checkpoint loads."""
    if not (OFFICIAL / "official_xd.pth").is_file():
        pytest.skip(f"fixture checkpoint not found under {OFFICIAL}")
    sys.path.insert(0, str(REPO / "benchmarks"))
    from review_simulation import simulate_reviews

    from vadclip.cli.main import main
    from vadclip.factory import load_model
    from vadclip.features import ExtractSettings, FeatureCache, backbone_id

    root = synth("xd", tmp_path / "synth", n_train=4, n_test=12, seed=1)
    db_url = f"sqlite:///{tmp_path / 'reviews.sqlite'}"
    features = simulate_reviews(root, db_url)
    init = str(OFFICIAL / "official_xd.pth")
    detector = load_model(init).detector
    cache = FeatureCache(tmp_path / "cache")
    backbone = backbone_id(detector.clip_info, detector.clip_model)
    for content_hash, array in features.items():      # what the app stored when it analysed them
        cache.put(FeatureCache.key(content_hash, backbone, ExtractSettings(samples_per_snippet=4)), array)
    out = tmp_path / "run"
    code = main(["train", "--from-reviews", db_url, "--init", init, "--feature-cache", str(tmp_path / "cache"),
                 "--out", str(out), "--batch-size", "2", "--max-steps", "2", "--device", "cpu"])
    assert code == 0
    rows = list(csv.DictReader(open(out / "reviews_data" / "test.csv")))
    assert len(rows) >= 2
    fine_tuned = load_model(out / "last.safetensors", preset="xd").detector.model
    start = load_model(init, preset="xd").detector.model
    changed = [name for name, p in fine_tuned.state_dict().items()
               if not name.startswith("clipmodel.") and not np.allclose(p.cpu().numpy(),
                                                                         start.state_dict()[name].cpu().numpy())]
    assert changed, "fine-tuning changed no weight"


    # the Train tab's handler: the same from the app's own database and feature cache; the run joins
    # the model choice
    from app import handlers as h
    from app.config import AppConfig
    from app.handlers import AppContext
    from app.models import scan_models

    config = AppConfig(models_dir=tmp_path / "models", data_dir=tmp_path / "cache_parent", db_url=db_url,
                       clip="random", device="cpu")
    (tmp_path / "cache_parent").mkdir()
    (tmp_path / "cache").rename(config.cache_dir)
    ctx = AppContext.create(config)
    try:
        result = h.fine_tune_on_reviews(ctx, init, "xd", holdout=0.3, batch_size=2, max_steps=1)
        assert "held-out reviewed videos" in h.fine_tune_markdown(result)
        assert result.checkpoint.parent.parent == config.models_dir
        assert any(result.checkpoint.parent.name in c.label or str(result.checkpoint.parent) in c.key
                   for c in scan_models(config.models_dir))
    finally:
        ctx.close()
