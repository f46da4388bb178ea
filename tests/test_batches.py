"""Training datasets: the official resampling (bit-exact), batch composition, lists and folders."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vadclip import formats
from vadclip.batches import (FeatureClips, batch_loader, check_batching, epoch_batches, read_train_entries,
                              resample_features, uniform_extract)


# A literal transcription of the official tools.uniform_extract / pad / process_feat.
def official_uniform_extract(feat, t_max):
    new_feat = np.zeros((t_max, feat.shape[1])).astype(np.float32)
    r = np.linspace(0, len(feat), t_max + 1, dtype=np.int32)
    for i in range(t_max):
        if r[i] != r[i + 1]:
            new_feat[i, :] = np.mean(feat[r[i]:r[i + 1], :], 0)
        else:
            new_feat[i, :] = feat[r[i], :]
    return new_feat


def official_pad(feat, min_len):
    clip_length = feat.shape[0]
    if clip_length <= min_len:
        return np.pad(feat, ((0, min_len - clip_length), (0, 0)), mode="constant", constant_values=0)
    return feat


def official_process_feat(feat, length):
    clip_length = feat.shape[0]
    if feat.shape[0] > length:
        return official_uniform_extract(feat, length), length
    return official_pad(feat, length), clip_length


@pytest.mark.parametrize("n", [1, 37, 255, 256, 257, 300, 511, 513, 1000, 1499, 4097])
def test_resample_is_bit_identical_to_the_official_code(n):
    rng = np.random.default_rng(n)
    feat = (rng.normal(size=(n, 512)) * rng.uniform(0.1, 50)).astype(np.float32)
    ours, length = resample_features(feat, 256)
    theirs, their_length = official_process_feat(feat, 256)
    assert length == their_length
    assert ours.dtype == np.float32 and ours.shape == (256, 512)
    assert np.array_equal(ours, theirs)


def test_uniform_extract_with_empty_bins_matches_the_official_loop():
    feat = np.random.default_rng(0).normal(size=(100, 8)).astype(np.float32)   # N < T: empty bins
    assert np.array_equal(uniform_extract(feat, 256), official_uniform_extract(feat, 256))


def test_shuffled_batches_cover_every_file_once():
    is_normal = np.array([True, False] * 25)
    batches = epoch_batches(is_normal, 8, balanced=False, seed=234, epoch=0)
    assert [len(b) for b in batches] == [8] * 6 + [2]
    assert sorted(np.concatenate(batches).tolist()) == list(range(50))
    again = epoch_batches(is_normal, 8, balanced=False, seed=234, epoch=0)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))          # a function of (seed, epoch)
    other = epoch_batches(is_normal, 8, balanced=False, seed=234, epoch=1)
    assert not np.array_equal(np.concatenate(batches), np.concatenate(other))


def test_balanced_batches_take_normal_then_abnormal_and_drop_the_rest():
    is_normal = np.array([True] * 21 + [False] * 13)
    batches = epoch_batches(is_normal, 4, balanced=True, seed=1, epoch=3)
    assert len(batches) == 13 // 4                                            # the shorter group ends the epoch
    for b in batches:
        assert len(b) == 8 and is_normal[b[:4]].all() and not is_normal[b[4:]].any()
    used = np.concatenate(batches)
    assert len(set(used.tolist())) == len(used)                               # no file twice in an epoch


def test_check_batching_explains_too_few_videos():
    assert check_batching(np.array([True] * 5 + [False] * 5), 4, balanced=True) == []
    [problem] = check_batching(np.array([True] * 5 + [False] * 2), 4, balanced=True)
    assert "2 abnormal" in problem and "batch size" in problem
    assert check_batching(np.array([], dtype=bool), 4, balanced=False) == ["the training set is empty"]
    with pytest.raises(ValueError, match="batch size"):
        epoch_batches(np.array([True]), 0, balanced=False, seed=0, epoch=0)


def _write_list(tmp_path, rows):
    lines = ["path,label"]
    for name, n, label in rows:
        np.save(tmp_path / name, np.full((n, 512), float(n), dtype=np.float32))
        lines.append(f"{name},{label}")
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "train.csv"


def test_clips_from_an_official_list_with_crops_and_multi_labels(tmp_path, monkeypatch):
    csv_path = _write_list(tmp_path, [
        ("v1_label_B1-B2-0__0.npy", 300, "B1-B2-0"), ("v1_label_B1-B2-0__1.npy", 300, "B1-B2-0"),
        ("v2_label_A__0.npy", 40, "A"), ("v3_label_G-0-0__0.npy", 256, "G-0-0"),
    ])
    entries = read_train_entries(csv_path, "xd")
    clips = FeatureClips(entries, "xd", visual_length=256)
    assert len(clips) == 4                                                      # crops are separate rows
    assert clips.targets[0].tolist() == [0, 1, 1, 0, 0, 0, 0]
    assert clips.targets[2].tolist() == [1, 0, 0, 0, 0, 0, 0]
    assert clips.is_normal.tolist() == [False, False, True, False]

    reads = []
    load = formats.load_features
    monkeypatch.setattr(formats, "load_features", lambda path: reads.append(path) or load(path))
    batches = epoch_batches(clips.is_normal, 3, balanced=False, seed=0, epoch=0)
    seen = list(batch_loader(clips, batches, num_workers=0))
    assert len(reads) == 4 and len(set(reads)) == 4                             # each file read once per epoch
    features, targets, lengths = seen[0]
    assert features.shape == (3, 256, 512) and targets.shape == (3, 7) and lengths.dtype == torch.int64
    order = np.concatenate(batches)
    assert [int(l) for b in seen for l in b[2]] == [{0: 256, 1: 256, 2: 40, 3: 256}[i] for i in order]


def test_folder_layout_and_data_root(tmp_path):
    for folder, name in (("Normal", "a.npy"), ("Abuse", "b.npy"), ("RoadAccidents", "c.npy")):
        (tmp_path / "feats" / folder).mkdir(parents=True)
        np.save(tmp_path / "feats" / folder / name, np.zeros((3, 512), np.float32))
    entries = read_train_entries(tmp_path / "feats", "ucf", root=tmp_path)
    assert sorted(e.label for e in entries) == ["Abuse", "Normal", "RoadAccidents"]
    clips = FeatureClips(entries, "ucf")
    assert clips.is_normal.sum() == 1
    with pytest.raises(formats.DataError, match="outside the data root"):
        read_train_entries(tmp_path / "feats", "ucf", root=tmp_path / "elsewhere")


def test_list_paths_escaping_the_data_root_are_refused(tmp_path):
    (tmp_path / "root").mkdir()
    np.save(tmp_path / "outside.npy", np.zeros((3, 512), np.float32))
    (tmp_path / "root" / "train.csv").write_text("path,label\n../outside.npy,A\n")
    with pytest.raises(formats.DataError, match=r"'\.\.' is refused"):
        read_train_entries(tmp_path / "root" / "train.csv", "xd", root=tmp_path / "root")

