"""`vadclip reproduce` on the fixture checkpoints: the official lists as downloaded (another
machine's paths, found under --features-root), our metrics against the metrics of the fixtures'
official outputs, the paper's numbers beside them; and the opt-in test-time flags."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vadclip import formats, metrics
from vadclip.cli import main as cli_main

from shared_paths import OFFICIAL, SHARED

AC_FIXTURES = SHARED / "fixtures" / "anomalyclip"
XD_NAME = "Fight.Club.1999__#01-02-03_01-02-30_label_B1-0-0"      # an XD-style test video name
SEGMENTS = ((1600, 4800), (6000, 7200))                           # its anomalous frames [start, end)
AUTHORS = "/home/xbgydx/Desktop/XDTestClipFeatures"               # the official CSV's folder


@pytest.fixture
def vadclip_release(tmp_path, official_dir, parity) -> Path:
    """The fixture's test video as a release: official-style CSV of the authors' absolute path, the
    features somewhere under a download folder, an XD annotations.txt."""
    feats = tmp_path / "download" / "XDTestClipFeatures"
    feats.mkdir(parents=True)
    np.save(feats / f"{XD_NAME}__0.npy", parity["video_features"].astype(np.float32))
    (tmp_path / "list").mkdir()
    (tmp_path / "list" / "xd_CLIP_rgbtest.csv").write_text(f"path,label\n{AUTHORS}/{XD_NAME}__0.npy,B1-0-0\n")
    (tmp_path / "list" / "annotations.txt").write_text(f"{XD_NAME} " + " ".join(f"{s} {e}" for s, e in SEGMENTS) + "\n")
    return tmp_path


def _vadclip_args(root: Path, *extra: str) -> list[str]:
    return ["reproduce", "--method", "vadclip", "--preset", "xd", "--checkpoint", str(OFFICIAL / "official_xd.pth"),
            "--features-root", str(root / "download"), "--test-list", str(root / "list" / "xd_CLIP_rgbtest.csv"),
            "--annotations", str(root / "list" / "annotations.txt"), "--json", str(root / "out.json"), *extra]


def test_reproduce_vadclip_matches_the_fixture_outputs(vadclip_release, parity, capsys):
    assert cli_main(_vadclip_args(vadclip_release)) == 0
    printed = capsys.readouterr().out
    assert "84.51" in printed and "AP (XD-Violence, A-branch)" in printed and "official test path" in printed
    ours = json.loads((vadclip_release / "out.json").read_text())["ours"]
    # the same metrics from the official code's own scores of this video (parity_xd.npz)
    n = len(parity["video_features"])
    gt = np.zeros(n * 16, dtype=np.uint8)
    for s, e in SEGMENTS:
        gt[s:e] = 1
    for branch, official in (("c", parity["video_coarse_c"]), ("a", parity["video_coarse_a"])):
        frames = metrics.snippets_to_frames(official)
        assert ours[f"auc_{branch}"] == pytest.approx(metrics.frame_auc(frames, gt), abs=1e-4)
        assert ours[f"ap_{branch}"] == pytest.approx(metrics.frame_ap(frames, gt), abs=1e-4)
        assert ours[f"anoauc_{branch}"] == pytest.approx(metrics.frame_auc(frames, gt), abs=1e-4)   # one abnormal video
    paper = json.loads((vadclip_release / "out.json").read_text())["paper"]
    assert paper["ap_a"]["value"] == 84.51


def test_reproduce_without_features_root_says_how_to_fix(vadclip_release, capsys):
    args = _vadclip_args(vadclip_release)
    i = args.index("--features-root")
    del args[i:i + 2]
    with pytest.raises(SystemExit):              # --features-root is required by reproduce
        cli_main(args)
    capsys.readouterr()
    eval_args = ["eval", "--checkpoint", str(OFFICIAL / "official_xd.pth"),
                 "--test-list", str(vadclip_release / "list" / "xd_CLIP_rgbtest.csv"),
                 "--annotations", str(vadclip_release / "list" / "annotations.txt")]
    assert cli_main(eval_args) == 2
    err = capsys.readouterr().err
    assert "1 of 1 listed files not found" in err and "another machine's paths" in err
    assert f"folder {AUTHORS} does not exist here" in err


def test_test_time_flags_are_opt_in(vadclip_release, capsys):
    assert cli_main(_vadclip_args(vadclip_release)) == 0
    official = json.loads((vadclip_release / "out.json").read_text())["ours"]
    assert cli_main(_vadclip_args(vadclip_release, "--smooth", "1")) == 0         # width 1 = off
    assert json.loads((vadclip_release / "out.json").read_text())["ours"] == official
    assert cli_main(_vadclip_args(vadclip_release, "--resample", "bins", "--smooth", "5")) == 0
    assert "test-time options" in capsys.readouterr().out
    changed = json.loads((vadclip_release / "out.json").read_text())["ours"]
    assert changed["auc_a"] != official["auc_a"]
    assert cli_main(_vadclip_args(vadclip_release, "--smooth", "4")) == 2          # even width
    assert "test-time options" in capsys.readouterr().err
    assert cli_main(_vadclip_args(vadclip_release, "--resample-short")) == 2
    assert "--resample-short needs --resample" in capsys.readouterr().err


def test_reproduce_vadclip_refuses_sht(vadclip_release, capsys):
    args = _vadclip_args(vadclip_release)
    args[args.index("--preset") + 1] = "sht"
    assert cli_main(args) == 2
    assert "VadCLIP has the presets xd and ucf" in capsys.readouterr().err


@pytest.fixture
def anomalyclip_release(tmp_path) -> Path:
    """The AnomalyCLIP fixture's three test videos as an official release: Anomaly_Test.txt,
    the temporal annotation, one .npy per video, the run's ncentroid.pt."""
    if not (AC_FIXTURES / "official_xd.ckpt").is_file():
        pytest.skip(f"{AC_FIXTURES} not found (../shared is absent)")
    z = np.load(AC_FIXTURES / "parity_xd.npz")
    normal_id = int(z["normal_id"])
    (tmp_path / "features" / "flat").mkdir(parents=True)       # not where the list says: found by name
    lines, annotations = [], []
    for k in range(3):
        features, labels, label = z[f"v{k}_features"], z[f"v{k}_frame_labels"], int(z[f"v{k}_video_label"])
        np.save(tmp_path / "features" / "flat" / f"v{k}.npy", features.astype(np.float32))
        lines.append(f"Test/v{k} 0 {len(features) - 1} {label}")
        abnormal = np.flatnonzero(labels != normal_id)
        breaks = np.flatnonzero(np.diff(abnormal) > 1)
        starts = np.r_[abnormal[:1], abnormal[breaks + 1]]
        ends = np.r_[abnormal[breaks], abnormal[-1:]]
        ranges = " ".join(f"{s} {e}" for s, e in zip(starts, ends)) or "-1 -1"
        annotations.append(f"v{k}.mp4 {label} {ranges}")
    (tmp_path / "Anomaly_Test.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "Temporal_Anomaly_Annotation_for_Testing_Videos.txt").write_text("\n".join(annotations) + "\n")
    torch.save(torch.from_numpy(z["ncentroid"].astype(np.float32)), tmp_path / "ncentroid.pt")
    return tmp_path


def test_reproduce_anomalyclip_matches_the_fixture_metrics(anomalyclip_release, capsys):
    root = anomalyclip_release
    args = ["reproduce", "--method", "anomalyclip", "--preset", "xd", "--checkpoint", str(AC_FIXTURES / "official_xd.ckpt"),
            "--centroid", str(root / "ncentroid.pt"), "--features-root", str(root / "features"),
            "--test-list", str(root / "Anomaly_Test.txt"),
            "--annotations", str(root / "Temporal_Anomaly_Annotation_for_Testing_Videos.txt"), "--json", str(root / "o.json")]
    assert cli_main(args) == 0
    printed = capsys.readouterr().out
    assert "78.51" in printed and "class-wise mAUC" in printed
    ours = json.loads((root / "o.json").read_text())["ours"]
    official = json.loads((AC_FIXTURES / "metrics_xd.json").read_text())
    for key in ("auc_roc", "auc_pr", "mean_mc_auroc", "mean_mc_aupr"):
        assert ours[key] == pytest.approx(official[key], abs=1e-6), key
    assert ours["n_videos"] == 3 and ours["n_frames"] == 1920
    assert cli_main(args + ["--smooth", "3"]) == 2
    assert "VadCLIP test-time options" in capsys.readouterr().err


def _eval_args(root: Path, *checkpoints: str) -> list[str]:
    return ["eval", *[a for c in checkpoints for a in ("--checkpoint", c)], "--preset", "xd",
            "--features-root", str(root / "download"), "--test-list", str(root / "list" / "xd_CLIP_rgbtest.csv"),
            "--annotations", str(root / "list" / "annotations.txt"), "--json", str(root / "eval.json")]


def test_repeated_checkpoints_are_an_ensemble(vadclip_release, official_model, capsys):
    from vadclip.checkpoint import load_checkpoint, save_checkpoint
    from vadclip.evaluate import load_eval_set
    from vadclip.improvements import evaluate_with_options
    from vadclip.seeds import SUMMARY_FILE

    root = vadclip_release
    official = str(OFFICIAL / "official_xd.pth")
    other = load_checkpoint(save_checkpoint(official_model, root / "copy.safetensors"))
    with torch.no_grad():                                    # a second, different member
        for p in other.adapter_parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    save_checkpoint(other, root / "seeds" / "seed_1" / "best.safetensors")
    save_checkpoint(official_model, root / "seeds" / "seed_0" / "best.safetensors")
    (root / "seeds" / SUMMARY_FILE).write_text(json.dumps({"runs": [{"seed": 0}, {"seed": 1}]}))

    eval_set = load_eval_set(root / "list" / "xd_CLIP_rgbtest.csv", [root / "list" / "annotations.txt"],
                             preset="xd", features_root=root / "download")
    expected = evaluate_with_options([official_model, other], eval_set).as_dict()
    single = evaluate_with_options([official_model], eval_set).as_dict()
    assert expected["auc_a"] != single["auc_a"] or expected["ap_c"] != single["ap_c"]   # the member matters

    assert cli_main(_eval_args(root, official, str(root / "seeds" / "seed_1"))) == 0
    assert "checkpoint ensemble of 2" in capsys.readouterr().out
    explicit = json.loads((root / "eval.json").read_text())
    assert cli_main(_eval_args(root, str(root / "seeds"))) == 0          # a --seeds folder: its runs
    from_folder = json.loads((root / "eval.json").read_text())
    for name in ("auc_c", "ap_c", "auc_a", "ap_a", "map_avg"):
        assert explicit[name] == pytest.approx(expected[name], abs=1e-6)
        assert from_folder[name] == pytest.approx(expected[name], abs=1e-6)
    assert cli_main(_eval_args(root, official, official)) == 0          # k identical members: the member
    twice = json.loads((root / "eval.json").read_text())
    assert all(twice[k] == pytest.approx(single[k], abs=1e-7) for k in ("auc_c", "ap_c", "auc_a", "ap_a"))


def test_anomalyclip_refuses_an_ensemble(anomalyclip_release, capsys):
    root = anomalyclip_release
    ckpt = str(AC_FIXTURES / "official_xd.ckpt")
    args = ["eval", "--checkpoint", ckpt, "--checkpoint", ckpt, "--centroid", str(root / "ncentroid.pt"),
            "--features-root", str(root / "features"), "--test-list", str(root / "Anomaly_Test.txt"),
            "--annotations", str(root / "Temporal_Anomaly_Annotation_for_Testing_Videos.txt")]
    assert cli_main(args) == 2
    assert "ensembles are a VadCLIP option" in capsys.readouterr().err
