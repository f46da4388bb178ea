"""Tests of vadclip.formats: the official feature-list, label and annotation formats."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vadclip.config import get_preset
from vadclip.formats import (
    DataError,
    FeatureListEntry,
    Segment,
    detect_annotation_format,
    detection_classlist,
    detection_ground_truth,
    frame_ground_truth,
    frame_labels,
    group_by_video,
    is_normal_label,
    load_features,
    multi_hot,
    parse_codes,
    parse_label,
    read_annotations,
    read_feature_list,
    scan_feature_folder,
    split_feature_file_name,
    check_feature_files,
    xd_label_from_name,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
ANNOTATIONS = SHARED / "data" / "annotations"
SYNTH = SHARED / "tools" / "synth_vad.py"

needs_annotations = pytest.mark.skipif(
    not ANNOTATIONS.is_dir(), reason=f"shared annotation files not found at {ANNOTATIONS}")
needs_synth = pytest.mark.skipif(
    not SYNTH.is_file(), reason=f"synthetic benchmark generator not found at {SYNTH}")


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def save(path: Path, array) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(array))
    return path


# --------------------------------------------------------------------------- synthetic benchmarks

@pytest.fixture(scope="session", params=["xd", "ucf"])
def synth(request, tmp_path_factory) -> tuple[str, Path]:
    """A small synthetic benchmark in the official layout: (preset, folder)."""
    preset = request.param
    out = tmp_path_factory.mktemp(f"synth_{preset}")
    subprocess.run([sys.executable, str(SYNTH), "--preset", preset, "--out", str(out), "--seed", "0",
                    "--n-train", "20", "--n-test", "12"], check=True, capture_output=True)
    return preset, out


def annotation_file(preset: str, folder: Path, multiclass: bool = False) -> Path:
    if preset == "ucf":
        return folder / "Temporal_Anomaly_Annotation.txt"
    return folder / ("annotations_multiclasses.txt" if multiclass else "annotations.txt")


@needs_synth
def test_synth_lists_parse(synth):
    preset, folder = synth
    class_names = get_preset(preset).model.class_names
    for split, count in (("train", 20), ("test", 12)):
        entries = read_feature_list(folder / f"{preset}_{split}.csv", preset=preset)
        assert len(entries) == count
        for entry in entries:
            assert entry.path.is_absolute() and entry.path.is_file()
            assert entry.path.name == f"{entry.name}__0.npy" and entry.crop == 0
            names = parse_label(entry.label, preset)
            vector = multi_hot(names, class_names)
            assert vector.sum() == len(names) >= 1
            assert (vector[0] == 1) == is_normal_label(entry.label)
            if preset == "xd":     # the official names carry the label
                assert xd_label_from_name(entry.name) == entry.label
        check_feature_files(entries)


@needs_synth
def test_synth_annotations_match_names(synth):
    preset, folder = synth
    truth = {video["name"]: video for video in json.loads((folder / "ground_truth.json").read_text())["test"]}
    entries = read_feature_list(folder / f"{preset}_test.csv", preset=preset)
    assert [e.name for e in entries] == list(truth)
    files = [annotation_file(preset, folder)] + ([annotation_file(preset, folder, True)] if preset == "xd" else [])
    for file in files:
        annotations = read_annotations(file, preset=preset)
        assert set(annotations) <= set(truth)
        for entry in entries:
            abnormal = not is_normal_label(entry.label)
            assert (entry.name in annotations) == (abnormal or preset == "ucf")
            if abnormal:
                want = [(s, e) for _, s, e in truth[entry.name]["segments"]]
                assert [(s.start_frame, s.end_frame) for s in annotations[entry.name]] == want
            elif preset == "ucf":
                assert annotations[entry.name] == []
        check_feature_files(entries, annotations=annotations)


@needs_synth
def test_synth_ground_truth(synth):
    preset, folder = synth
    truth = json.loads((folder / "ground_truth.json").read_text())["test"]
    entries = read_feature_list(folder / f"{preset}_test.csv", preset=preset)
    n_snippets = [load_features(e.path).shape[0] for e in entries]
    annotations = read_annotations(annotation_file(preset, folder, multiclass=True))

    gt = frame_ground_truth(entries, annotations, n_snippets)
    assert gt.dtype == np.uint8 and len(gt) == 16 * sum(n_snippets)
    offset = 0
    for video, n in zip(truth, n_snippets):
        assert video["frames"] == 16 * n
        want = np.zeros(16 * n, dtype=np.uint8)
        for _, s, e in video["segments"]:
            want[s:e] = 1
        np.testing.assert_array_equal(gt[offset:offset + 16 * n], want)
        offset += 16 * n

    segments, labels = detection_ground_truth(entries, annotations, n_snippets)
    classlist = detection_classlist(preset)
    for video, n, segs, labs in zip(truth, n_snippets, segments, labels):
        if video["segments"]:
            assert segs == [[s, e] for _, s, e in video["segments"]]
            assert labs == [c for c, _, _ in video["segments"]]
            assert all(label in classlist for label in labs)
        else:
            assert segs == [[0, 16 * n]] and labs == ["A"]


@needs_synth
def test_scan_feature_folder(synth, tmp_path):
    preset, folder = synth
    entries = read_feature_list(folder / f"{preset}_train.csv", preset=preset)
    root = tmp_path / "features"
    for entry in entries:
        code = parse_codes(entry.label, preset)[0]
        class_folder = get_preset(preset).label_map[code] if preset == "ucf" else code
        save(root / class_folder / entry.path.name, np.load(entry.path))
    scanned = {e.name: e for e in scan_feature_folder(root, preset)}
    assert set(scanned) == {e.name for e in entries}
    for entry in entries:
        assert parse_codes(scanned[entry.name].label, preset)[0] == parse_codes(entry.label, preset)[0]
    if preset == "xd":         # the official flat layout: the label is in the file name
        flat = scan_feature_folder(entries[0].path.parent, "xd")
        assert sorted((e.name, e.label) for e in flat) == sorted((e.name, e.label) for e in entries)


# --------------------------------------------------------------------------- real annotation files

@needs_annotations
def test_real_xd_annotations():
    binary = read_annotations(ANNOTATIONS / "annotations.txt", preset="xd")
    multi = read_annotations(ANNOTATIONS / "annotations_multiclasses.txt", preset="xd")
    assert len(binary) == len(multi) == 500 and set(binary) == set(multi)
    # 14 lines write the name with ".mp4"; it is dropped so names equal feature-file names
    assert "v=U6MC8JJJZSY__#1_label_G-0-0" in binary and not any(n.endswith(".mp4") for n in binary)
    codes = set(detection_classlist("xd")) - {"A"}
    assert {s.label for segs in multi.values() for s in segs} <= codes
    for name, segs in binary.items():
        assert segs and "_label_" in name
        label_codes = parse_codes(xd_label_from_name(name), "xd")
        assert {s.label for s in segs} == ({label_codes[0]} if len(label_codes) == 1 else {None})
    # Frame labels of the two files agree except where annotations_multiclasses.txt splits or adds
    # segments (the official frame AUC/AP uses annotations.txt).
    differ = [name for name in binary
              if not np.array_equal(frame_labels(binary[name], 6000), frame_labels(multi[name], 6000))]
    assert len(differ) == 5


@needs_annotations
def test_real_ucf_annotations():
    annotations = read_annotations(ANNOTATIONS / "Temporal_Anomaly_Annotation.txt", preset="ucf")
    test_videos = [Path(line.strip()).stem for line in (ANNOTATIONS / "Anomaly_Test.txt").read_text().split()]
    assert sorted(annotations) == sorted(test_videos) and len(test_videos) == 290
    normal = [name for name in annotations if name.startswith("Normal_Videos")]
    assert len(normal) == 150 and all(annotations[name] == [] for name in normal)
    for name, segs in annotations.items():
        if name not in normal:
            assert 1 <= len(segs) <= 2 and name.startswith(segs[0].label)
    assert [(s.start_frame, s.end_frame) for s in annotations["Vandalism017_x264"]] == [(270, 330), (780, 840)]


@needs_annotations
def test_annotation_format_detection():
    for file, fmt in (("annotations.txt", "xd_binary"), ("annotations_multiclasses.txt", "xd_multiclass"),
                      ("Temporal_Anomaly_Annotation.txt", "ucf")):
        assert detect_annotation_format((ANNOTATIONS / file).read_text().splitlines()) == fmt
    with pytest.raises(DataError, match="does not belong to preset 'ucf'"):
        read_annotations(ANNOTATIONS / "annotations.txt", preset="ucf")


# --------------------------------------------------------------------------- names, labels, frames

def test_feature_file_names():
    assert split_feature_file_name("v=S-7rRLrxnVQ__#1_label_B4-0-0__0.npy") == ("v=S-7rRLrxnVQ__#1_label_B4-0-0", 0)
    assert split_feature_file_name("Abuse028_x264__5.npy") == ("Abuse028_x264", 5)
    assert split_feature_file_name("my_video.npy") == ("my_video", None)
    with pytest.raises(DataError):
        split_feature_file_name("video.mp4")


def test_labels():
    assert parse_codes("B1-B2-0", "xd") == ["B1", "B2"]
    assert parse_label("B1-B2-0", "xd") == ["fighting", "shooting"]
    assert parse_label("A", "xd") == ["normal"]
    assert parse_label("B6-0-0", "xd") == ["car accident"]
    assert parse_label("RoadAccidents", "ucf") == ["roadAccidents"]
    assert parse_label("Normal", "ucf") == ["normal"]
    names = get_preset("xd").model.class_names
    np.testing.assert_array_equal(multi_hot(["fighting", "explosion"], names), [0, 1, 0, 0, 0, 0, 1])
    assert all(is_normal_label(x) for x in ("A", "A-0-0", "Normal"))
    assert not any(is_normal_label(x) for x in ("B1-0-0", "Abuse", "Normal-B1"))
    assert detection_classlist("xd") == ["A", "B1", "B2", "B4", "B5", "B6", "G"]
    assert detection_classlist("ucf")[:2] == ["Normal", "Abuse"] and len(detection_classlist("ucf")) == 14


@pytest.mark.parametrize("label, preset, message", [
    ("B1-B9-0", "xd", "'B9'.*allowed codes are A, B1, B2, B4, B5, B6, G"),
    ("0-0-0", "xd", "names no class"),
    ("A-B1", "xd", "mixes the normal code"),
    ("Fighting", "xd", "'Fighting'"),
    ("Robery", "ucf", "unknown class.*Robbery"),
])
def test_bad_labels(label, preset, message):
    with pytest.raises(DataError, match=message):
        parse_codes(label, preset)


def test_multi_hot_unknown_class():
    with pytest.raises(DataError, match="'riots'"):
        multi_hot(["riots"], get_preset("xd").model.class_names)


def test_frame_labels_follow_official_slicing():
    # official: gt = zeros((N+1)*16); gt[s:e] = 1; keep gt[:-16]  ->  [s, e) cut at N*16
    segments = [Segment(0, 3, "B1"), Segment(10, 12, None), Segment(30, 100, "B1")]
    labels = frame_labels(segments, 32)
    assert labels.dtype == np.uint8 and len(labels) == 32
    np.testing.assert_array_equal(np.flatnonzero(labels), [0, 1, 2, 10, 11, 30, 31])
    assert frame_labels([Segment(40, 50, None)], 32).sum() == 0
    with pytest.raises(DataError):
        Segment(5, 5, None)


def test_ground_truth_needs_annotations_and_classes(tmp_path):
    def entry(name, label):
        return FeatureListEntry(path=tmp_path / f"{name}__0.npy", label=label, name=name, crop=0)

    entries = [entry("n_label_A", "A"), entry("x_label_B1-B2-0", "B1-B2-0"), entry("y_label_G-0-0", "G-0-0")]
    annotations = {"x_label_B1-B2-0": [Segment(0, 10, None)]}
    with pytest.raises(DataError) as err:
        frame_ground_truth(entries, annotations, [2, 2, 2])
    assert "y_label_G-0-0" in str(err.value) and "x_label" not in str(err.value)
    with pytest.raises(DataError) as err:
        detection_ground_truth(entries, annotations, [2, 2, 2])
    assert "x_label_B1-B2-0: 1 segment(s) without a class" in str(err.value)
    assert "y_label_G-0-0" in str(err.value)
    assert group_by_video(entries + [entries[0]])["n_label_A"] == [entries[0], entries[0]]


# --------------------------------------------------------------------------- bad feature lists

def test_list_problems_reported_together(tmp_path):
    csv_path = write_csv(tmp_path / "list.csv", "path,label\n"
                         "a__0.npy,B1-0-0\n"
                         "b__0.npy,\n"
                         ",A\n"
                         "c.mp4,A\n"
                         "d__0.npy,B7-0-0\n")
    with pytest.raises(DataError) as err:
        read_feature_list(csv_path, preset="xd")
    message = str(err.value)
    assert "4 problem(s)" in message
    for part in ("row 3 (b__0.npy): empty label", "row 4: empty path", "row 5: 'c.mp4'", "row 6 (d__0.npy)", "'B7'"):
        assert part in message
    assert "row 2" not in message


@pytest.mark.parametrize("text, message", [
    ("", "missing column(s) path, label"),
    ("file,label\na.npy,A\n", "missing column(s) path"),
    ("path,label\n", "no rows"),
    ("path,label\n\n  \n", "no rows"),
])
def test_bad_list_structure(tmp_path, text, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_feature_list(write_csv(tmp_path / "list.csv", text))


def test_missing_list_file(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        read_feature_list(tmp_path / "nope.csv")


def test_list_paths_and_crops(tmp_path):
    (tmp_path / "lists").mkdir()
    csv_path = write_csv(tmp_path / "lists" / "l.csv", "path,label\n"
                         + "".join(f"../feats/v1__{i}.npy,Abuse\n" for i in range(10))
                         + f"{tmp_path}/feats/v2.npy,Normal\n")
    entries = read_feature_list(csv_path, preset="ucf")
    assert [e.crop for e in entries] == list(range(10)) + [None]
    assert entries[0].path == (tmp_path / "feats" / "v1__0.npy").resolve()
    assert list(group_by_video(entries)) == ["v1", "v2"]


def test_root_confinement(tmp_path):
    root = tmp_path / "root"
    save(root / "feats" / "ok__0.npy", np.zeros((2, 4), np.float32))
    save(tmp_path / "secret.npy", np.zeros((2, 4), np.float32))
    (root / "feats" / "link.npy").symlink_to(tmp_path / "secret.npy")
    (root / "feats" / "inner_link.npy").symlink_to(root / "feats" / "ok__0.npy")
    csv_path = write_csv(root / "list.csv", "path,label\n"
                         "feats/ok__0.npy,A\n"
                         "feats/inner_link.npy,A\n"
                         "../secret.npy,A\n"
                         "feats/../feats/ok__0.npy,A\n"
                         f"{tmp_path / 'secret.npy'},A\n"
                         "feats/link.npy,A\n")
    with pytest.raises(DataError) as err:
        read_feature_list(csv_path, root=root)
    message = str(err.value)
    assert "4 problem(s)" in message
    assert "row 4: ../secret.npy: '..' is refused" in message
    assert "row 5: feats/../feats/ok__0.npy: '..' is refused" in message
    assert "row 6:" in message and "absolute paths are refused" in message
    assert "row 7: feats/link.npy: resolves to" in message and "outside" in message
    # the same list without the escaping rows is accepted; without root, anything goes
    write_csv(root / "good.csv", "path,label\nfeats/ok__0.npy,A\nfeats/inner_link.npy,A\n")
    assert len(read_feature_list(root / "good.csv", root=root)) == 2
    assert len(read_feature_list(csv_path)) == 6


def test_scan_feature_folder_problems(tmp_path):
    root = tmp_path / "root"
    save(root / "Fighting" / "f1.npy", np.zeros((2, 4)))
    save(root / "car_accident" / "c1__0.npy", np.zeros((2, 4)))
    save(root / "normal" / "n1.npy", np.zeros((2, 4)))
    save(root / "x_label_B2-0-0__0.npy", np.zeros((2, 4)))
    entries = scan_feature_folder(root, "xd")
    assert sorted((e.name, e.label) for e in entries) == [
        ("c1", "B6"), ("f1", "B1"), ("n1", "A"), ("x_label_B2-0-0", "B2-0-0")]
    save(root / "Cats" / "z.npy", np.zeros((2, 4)))
    save(root / "loose.npy", np.zeros((2, 4)))
    save(root / "y_label_B9-0-0.npy", np.zeros((2, 4)))
    save(tmp_path / "outside.npy", np.zeros((2, 4)))
    (root / "Fighting" / "escape.npy").symlink_to(tmp_path / "outside.npy")
    with pytest.raises(DataError) as err:
        scan_feature_folder(root, "xd")
    message = str(err.value)
    assert "4 problem(s)" in message
    for part in ("Cats/: not a class folder", "loose.npy: cannot tell its class", "y_label_B9-0-0.npy",
                 "Fighting/escape.npy: resolves to"):
        assert part in message
    ucf = tmp_path / "ucf"
    save(ucf / "Testing_Normal_Videos_Anomaly" / "Normal_Videos_003_x264__5.npy", np.zeros((2, 4)))
    save(ucf / "RoadAccidents" / "RoadAccidents001_x264__5.npy", np.zeros((2, 4)))
    assert [(e.name, e.label, e.crop) for e in scan_feature_folder(ucf, "ucf")] == [
        ("RoadAccidents001_x264", "RoadAccidents", 5), ("Normal_Videos_003_x264", "Normal", 5)]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .npy files"):
        scan_feature_folder(tmp_path / "empty", "ucf")


# --------------------------------------------------------------------------- bad annotation files

def test_bad_annotation_lines(tmp_path):
    xd = write_csv(tmp_path / "multi.txt", "a_label_B1-0-0 B1 0 10 B1 20 30\n"
                   "b_label_B1-0-0 B1 0 10 B9 20 30\n"
                   "c_label_B1-0-0 B1 10 5\n"
                   "a_label_B1-0-0 B1 0 10\n"
                   "d_label_B1-0-0 B1 0\n")
    with pytest.raises(DataError) as err:
        read_annotations(xd)
    message = str(err.value)
    assert "4 problem(s)" in message
    for part in ("line 2 (b_label_B1-0-0): unknown code(s) 'B9'", "line 3 (c_label_B1-0-0): segment [10, 5)",
                 "line 4 (a_label_B1-0-0): the video appears twice", "line 5 (d_label_B1-0-0): expected"):
        assert part in message
    ucf = write_csv(tmp_path / "ucf.txt", "Abuse001_x264  Abuse  5  9  -1  -1\n"
                    "Normal_Videos_1_x264  Normal  5  9  -1  -1\n"
                    "Theft001_x264  Theft  5  9  -1  -1\n"
                    "Abuse002_x264  Abuse  5  9  -1\n")
    with pytest.raises(DataError) as err:
        read_annotations(ucf, fmt="ucf")
    message = str(err.value)
    for part in ("line 2 (Normal_Videos_1_x264): a Normal video with anomalous segments",
                 "line 3 (Theft001_x264): unknown class 'Theft'", "line 4 (Abuse002_x264): expected"):
        assert part in message
    with pytest.raises(DataError, match="not a known annotation format"):
        read_annotations(write_csv(tmp_path / "x.txt", "hello world, this is prose\n"))
    with pytest.raises(DataError, match="no annotation lines"):
        read_annotations(write_csv(tmp_path / "e.txt", "\n\n"), fmt="xd_binary")


# --------------------------------------------------------------------------- bad feature files

def test_check_feature_files_lists_every_problem(tmp_path):
    folder = tmp_path / "f"
    good = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    nan = good.copy()
    nan[2, 3] = np.nan
    inf = good.copy()
    inf[0, 0] = np.inf
    save(folder / "good_label_A__0.npy", good)
    save(folder / "abnormal_ok_label_B1-0-0__0.npy", good)
    save(folder / "wrong_dim_label_A__0.npy", np.zeros((5, 7), np.float32))
    save(folder / "wrong_ndim_label_A__0.npy", np.zeros((5, 8, 1), np.float32))
    save(folder / "empty_label_A__0.npy", np.zeros((0, 8), np.float32))
    save(folder / "nan_label_A__0.npy", nan)
    save(folder / "inf_label_A__0.npy", inf)
    save(folder / "ints_label_A__0.npy", np.zeros((5, 8), np.int64))
    (folder / "garbage_label_A__0.npy").write_bytes(b"this is not numpy")
    save(folder / "unannotated_label_G-0-0__0.npy", good)
    save(folder / "no_segments_label_B2-0-0__0.npy", good)
    rows = [p.name for p in sorted(folder.iterdir())] + ["missing_label_A__0.npy"]
    csv_path = write_csv(folder / "list.csv", "path,label\n" + "".join(
        f"{name},{xd_label_from_name(split_feature_file_name(name)[0])}\n" for name in rows))
    entries = read_feature_list(csv_path, preset="xd")
    annotations = {"abnormal_ok_label_B1-0-0": [Segment(0, 16, "B1")], "no_segments_label_B2-0-0": []}

    check_feature_files([e for e in entries if e.name in ("good_label_A", "abnormal_ok_label_B1-0-0")],
                      dim=8, annotations=annotations)
    with pytest.raises(DataError) as err:
        check_feature_files(entries, dim=8, annotations=annotations)
    message = str(err.value)
    expected = {
        "wrong_dim_label_A crop 0: feature size 7, expected 8",
        "wrong_ndim_label_A crop 0: expected a 2-D array",
        "empty_label_A crop 0: zero snippets",
        "nan_label_A crop 0: 1 NaN/Inf value(s)",
        "inf_label_A crop 0: 1 NaN/Inf value(s)",
        "ints_label_A crop 0: dtype int64",
        "garbage_label_A crop 0: unreadable",
        "missing_label_A crop 0: missing file",
        "unannotated_label_G-0-0: abnormal video (label 'G-0-0') has no line in the annotations",
        "no_segments_label_B2-0-0: abnormal video (label 'B2-0-0') has no annotated segment",
    }
    for part in expected:
        assert part in message
    assert f"{len(expected)} problem(s)" in message
    assert "good_label_A" not in message and "abnormal_ok" not in message
    with pytest.raises(DataError, match="no feature files"):
        check_feature_files([])


def test_load_features(tmp_path):
    path = save(tmp_path / "v.npy", np.arange(6, dtype=np.float64).reshape(3, 2))
    features = load_features(path)
    assert features.dtype == np.float32 and features.shape == (3, 2)
    with pytest.raises(DataError, match="no such feature file"):
        load_features(tmp_path / "none.npy")
    with pytest.raises(DataError, match=r"shape \[snippets, dim\]"):
        load_features(save(tmp_path / "one_d.npy", np.zeros(4)))
    (tmp_path / "bad.npy").write_bytes(b"nope")
    with pytest.raises(DataError, match="cannot read"):
        load_features(tmp_path / "bad.npy")
    np.savez(tmp_path / "arch.npz", a=np.zeros((2, 2)))
    with pytest.raises(DataError, match="not a .npy array"):
        load_features(tmp_path / "arch.npz")


def test_check_feature_files_is_fast(tmp_path):
    entries = []
    for i in range(300):
        path = save(tmp_path / f"v{i}.npy", np.ones((200, 512), np.float32))
        entries.append(FeatureListEntry(path=path, label="A", name=f"v{i}", crop=None))
    start = time.perf_counter()
    check_feature_files(entries)
    assert time.perf_counter() - start < 5.0
