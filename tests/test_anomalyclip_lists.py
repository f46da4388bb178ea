"""AnomalyCLIP list/annotation/feature readers and the official clip sampling."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED
from vadclip.anomalyclip import lists, sampling
from vadclip.formats import DataError

FIXTURE = SHARED / "fixtures" / "anomalyclip" / "parity_xd.npz"
XD_NORMAL, XD_CLASSES = 4, 7


def synth_anomalyclip(out: Path, n_train: int = 8, n_test: int = 6, seed: int = 0) -> Path:
    tool = SHARED / "tools" / "synth_vad.py"
    if not tool.is_file():
        pytest.skip(f"{tool} not found (../shared is absent)")
    subprocess.run([sys.executable, str(tool), "--layout", "anomalyclip", "--preset", "xd", "--out", str(out),
                    "--seed", str(seed), "--n-train", str(n_train), "--n-test", str(n_test)],
                   check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    return synth_anomalyclip(tmp_path_factory.mktemp("synth_ac"))


def test_synthetic_lists_read_and_label_frames(synth_dir):
    root = synth_dir / "features"
    normal = lists.read_video_list(synth_dir / "Anomaly_Train_Normal.txt", root, XD_CLASSES, XD_NORMAL, "normal")
    abnormal = lists.read_video_list(synth_dir / "Anomaly_Train_Abnormal.txt", root, XD_CLASSES, XD_NORMAL, "abnormal")
    test = lists.read_video_list(synth_dir / "Anomaly_Test.txt", root, XD_CLASSES, XD_NORMAL, "test")
    assert len(normal) == len(abnormal) == 4 and len(test) == 6
    assert all(r.label == XD_NORMAL for r in normal) and all(r.label != XD_NORMAL for r in abnormal)
    rows = lists.feature_rows(normal + abnormal + test)
    assert rows == [r.num_frames for r in normal + abnormal + test]
    annotations = lists.read_temporal_annotations(synth_dir / "Temporal_Anomaly_Annotation_for_Testing_Videos.txt")
    assert lists.missing_annotations(test, annotations, XD_NORMAL) == []
    truth = {v["path"]: v for v in json.loads((synth_dir / "ground_truth.json").read_text())["test"]}
    for record, n in zip(test, rows[-len(test):]):
        labels = lists.frame_labels(record, annotations.get(record.name, ()), n, XD_NORMAL)
        expected = np.full(n, XD_NORMAL)
        for first, last in truth[record.path]["segments"]:      # the generator's own inclusive ranges
            expected[first:last + 1] = truth[record.path]["label"]
        np.testing.assert_array_equal(labels, expected)


def test_frame_labels_inclusive_and_offset_by_start_frame(tmp_path):
    record = lists.VideoRecord("a/v", start_frame=10, end_frame=29, label=5, feature_file=tmp_path / "v.npy")
    labels = lists.frame_labels(record, ((12, 14), (29, 40)), 20, XD_NORMAL)
    assert labels.tolist() == [4, 4, 5, 5, 5] + [4] * 14 + [5]


def test_every_list_problem_is_reported_at_once(tmp_path):
    (tmp_path / "f").mkdir()
    np.save(tmp_path / "f" / "ok.npy", np.zeros((20, 512), np.float32))
    bad = tmp_path / "list.txt"
    bad.write_text("ok 0 19 4\n"
                   "short 0 10\n"
                   "multi 0 10 1 2\n"
                   "words a b c\n"
                   "reversed 10 5 4\n"
                   "classless 0 5 9\n"
                   "abnormal 0 5 1\n"
                   "../escape 0 5 4\n"
                   "ok 0 19 4\n")
    with pytest.raises(DataError) as err:
        lists.read_video_list(bad, tmp_path / "f", XD_CLASSES, XD_NORMAL, "normal")
    text = str(err.value)
    assert "8 problem(s)" in text
    for needle in ("line 2", "line 3", "cannot be batched", "must be integers", "not a range",
                   "not a class index", "in the normal list", "features root", "listed twice"):
        assert needle in text, needle


def test_feature_file_problems_are_listed(tmp_path):
    root = tmp_path / "f"
    root.mkdir()
    np.save(root / "good.npy", np.ones((40, 512), np.float32))
    np.save(root / "narrow.npy", np.ones((40, 128), np.float32))
    nan = np.ones((40, 512), np.float32)
    nan[3, 3] = np.nan
    np.save(root / "nan.npy", nan)
    (tmp_path / "l.txt").write_text("good 0 39 1\nnarrow 0 39 1\nnan 0 39 1\nmissing 0 39 1\n")
    records = lists.read_video_list(tmp_path / "l.txt", root, XD_CLASSES, XD_NORMAL, "abnormal")
    with pytest.raises(DataError) as err:
        lists.feature_rows(records)
    text = str(err.value)
    assert "3 problem(s)" in text and "narrow" in text and "NaN" in text and "missing" in text


def test_annotation_problems(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("v1.mp4 Riot 10 20 30\nv2.mp4 Riot x 4\nv3.mp4 Riot 9 3\nv4.mp4 Normal -1 -1\nv4.mp4 Normal -1 -1\n")
    with pytest.raises(DataError) as err:
        lists.read_temporal_annotations(path)
    assert "4 problem(s)" in str(err.value)
    path.write_text("v1.mp4 Riot 10 20 30 40\nv4.mp4 Normal -1 -1\n")
    assert lists.read_temporal_annotations(path) == {"v1": ((10, 20), (30, 40)), "v4": ()}


def test_sampling_reproduces_the_fixture_starts():
    """The fixture's batch (2 abnormal + 2 normal clips) was drawn from RandomState(2) in batch order.

    The normal clips come from the fixture's normal videos (530 and 90 frames); the abnormal videos
    are not in the fixture, but their spacing fixes their length class: clip 0 has dist 21 (M in
    687..718), clip 1 dist 15 (M < 512).
    """
    if not FIXTURE.is_file():
        pytest.skip(f"{FIXTURE} not found (../shared is absent)")
    z = np.load(FIXTURE)
    starts = sampling.sample_start_indices(np.array([700, 300, 530, 90]), np.random.RandomState(2))
    np.testing.assert_array_equal(starts, z["train_start_indices"])
    normal = np.split(z["train_normal_features"], np.cumsum(z["train_normal_lengths"])[:-1])
    rows = sampling.clip_frame_indices(starts[2:], np.array([530, 90]))
    np.testing.assert_array_equal(normal[1][rows[0]], z["train_features"][2])
    np.testing.assert_array_equal(normal[0][rows[1]], z["train_features"][3])


def test_sampling_rule_and_wrap_around():
    rng = np.random.RandomState(0)
    lengths = np.array([90, 511, 512, 526, 527, 5000, 100000])
    dist = sampling.segment_spacing(lengths)
    assert dist.tolist() == [15, 15, 15, 15, 16, 155, 3124]
    starts = sampling.sample_start_indices(np.repeat(lengths, 200), rng)
    offsets = starts - np.arange(32) * np.repeat(dist, 200)[:, None]
    for i, d in enumerate(dist):
        block = offsets[i * 200:(i + 1) * 200]
        assert block.min() == 0 and block.max() == d - 15   # randint(dist - 14) hits both ends
    rows = sampling.clip_frame_indices(starts, np.repeat(lengths, 200))
    assert rows.shape == (len(starts), 512) and (rows < np.repeat(lengths, 200)[:, None]).all()
    # consecutive frames inside a segment, wrapping at the video's end
    short = sampling.clip_frame_indices(np.array([[80]]), np.array([90]))
    assert short[0].tolist() == [80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 0, 1, 2, 3, 4, 5]
