"""`vadclip eval` end to end on synthetic benchmarks, and its up-front input checks."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import vadclip
from vadclip import formats
from vadclip.checkpoint import get_tokenizer
from vadclip.clip_backbone import load_clip
from vadclip.config import model_config
from vadclip.evaluate import evaluate, load_eval_set, score_eval_set
from vadclip.model import VadCLIP

from conftest import synth


@pytest.fixture(scope="module")
def xd_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_xd")
    synth("xd", out)
    return out


def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "vadclip", *map(str, args)], capture_output=True, text=True)


def test_eval_cli_xd(official_dir, xd_bench, tmp_path):
    r = _run_cli("eval", "--checkpoint", official_dir / "official_xd.pth", "--preset", "xd",
                 "--test-list", xd_bench / "xd_test.csv", "--annotations", xd_bench / "annotations.txt",
                 "--annotations", xd_bench / "annotations_multiclasses.txt", "--json", tmp_path / "m.json")
    assert r.returncode == 0, r.stderr
    assert "AUC" in r.stdout and "mAP" in r.stdout
    m = json.loads((tmp_path / "m.json").read_text())
    for key in ("auc_c", "ap_c", "anoauc_c", "auc_a", "ap_a", "anoauc_a"):
        assert 0.0 <= m[key] <= 1.0
    assert [m[f"map@{t}"] for t in ("0.1", "0.2", "0.3", "0.4", "0.5")] == pytest.approx(
        [m[f"map@{t}"] for t in ("0.1", "0.2", "0.3", "0.4", "0.5")])
    assert m["map_avg"] == pytest.approx(np.mean([m[f"map@0.{i}"] for i in range(1, 6)]))
    assert m["n_videos"] == 24


def test_eval_matches_a_by_hand_computation(official_model, xd_bench):
    es = load_eval_set(xd_bench / "xd_test.csv", [xd_bench / "annotations.txt",
                                                  xd_bench / "annotations_multiclasses.txt"], preset="xd")
    result = evaluate(official_model, es)
    # by hand: each video scored alone through the public API, frames built by np.repeat
    per_video = [vadclip.score_features(official_model, f) for f in es.features]
    s_c = np.repeat(np.concatenate([s.coarse_c for s in per_video]), 16)
    s_a = np.repeat(np.concatenate([s.coarse_a for s in per_video]), 16)
    from sklearn.metrics import average_precision_score, roc_auc_score
    assert result.auc_c == pytest.approx(roc_auc_score(es.frame_gt, s_c), abs=1e-6)
    assert result.ap_a == pytest.approx(average_precision_score(es.frame_gt, s_a), abs=1e-6)
    mp = vadclip.metrics.detection_map([s.fine for s in per_video], es.det_segments, es.det_labels,
                                       es.det_classlist)
    np.testing.assert_allclose(result.map_percent, mp, atol=1e-6)


def test_eval_without_multiclass_annotations_has_no_map(official_model, xd_bench):
    es = load_eval_set(xd_bench / "xd_test.csv", xd_bench / "annotations.txt", preset="xd")
    assert es.det_segments is None and "annotations_multiclasses" in es.warnings[0]
    assert evaluate(official_model, es).map_percent is None


def test_eval_ucf_preset(official_dir, tmp_path):
    synth("ucf", tmp_path / "bench")
    clip, info = load_clip(str(official_dir / "official_xd.pth"))
    model = VadCLIP(model_config("ucf"), clip, info, get_tokenizer())
    ckpt = vadclip.save_checkpoint(model, tmp_path / "ucf.safetensors")
    r = _run_cli("eval", "--checkpoint", ckpt, "--preset", "ucf", "--test-list", tmp_path / "bench" / "ucf_test.csv",
                 "--annotations", tmp_path / "bench" / "Temporal_Anomaly_Annotation.txt")
    assert r.returncode == 0, r.stderr
    assert "mAP" in r.stdout


def test_bad_inputs_are_reported_together_before_work(official_dir, xd_bench, tmp_path):
    bench = tmp_path / "b"
    synth("xd", bench, n_test=10)
    rows = (bench / "xd_test.csv").read_text().splitlines()
    feats = [bench / r.split(",")[0] for r in rows[1:]]
    feats[0].unlink()                                            # missing file
    np.save(feats[1], np.zeros((5, 256), np.float32))            # wrong dimension
    x = np.load(feats[2]); x[3, 4] = np.nan; np.save(feats[2], x)   # NaN
    abnormal = [f for f, r in zip(feats, rows[1:]) if not r.endswith(",A")]
    ann = bench / "annotations.txt"
    missing_name = formats.split_feature_file_name(abnormal[-1].name)[0]
    ann.write_text("\n".join(l for l in ann.read_text().splitlines() if not l.startswith(missing_name)) + "\n")
    r = _run_cli("eval", "--checkpoint", official_dir / "official_xd.pth", "--test-list", bench / "xd_test.csv",
                 "--annotations", ann)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    for name in (feats[0], feats[1], feats[2]):
        assert formats.split_feature_file_name(name.name)[0] in r.stderr
    assert "missing file" in r.stderr and "feature size 256" in r.stderr and "NaN" in r.stderr
    assert missing_name in r.stderr and "no line in the annotations" in r.stderr


def test_eval_cli_bad_checkpoint(xd_bench, tmp_path):
    (tmp_path / "x.pth").write_text("not a checkpoint")
    r = _run_cli("eval", "--checkpoint", tmp_path / "x.pth", "--test-list", xd_bench / "xd_test.csv",
                 "--annotations", xd_bench / "annotations.txt")
    assert r.returncode == 2 and "not a PyTorch checkpoint" in r.stderr and "Traceback" not in r.stderr


def test_scoring_all_videos_batched_equals_one_by_one(official_model, xd_bench):
    es = load_eval_set(xd_bench / "xd_test.csv", xd_bench / "annotations.txt", preset="xd")
    c, a, f = score_eval_set(official_model, es)
    for feats, cc, ff in zip(es.features, c, f):
        s = vadclip.score_features(official_model, feats)
        np.testing.assert_allclose(cc, s.coarse_c, atol=1e-5)
        np.testing.assert_allclose(ff, s.fine, atol=1e-5)


def test_a_test_list_without_abnormal_frames_is_refused(xd_bench, tmp_path):
    """Frame AUC/AP are undefined on normal videos alone: a clear DataError, not a crash later."""
    rows = (xd_bench / "xd_test.csv").read_text().splitlines()
    normal = [r for r in rows[1:] if r.rsplit(",", 1)[1] == "A"]
    assert normal
    only_normal = tmp_path / "normal.csv"
    only_normal.write_text("\n".join([rows[0], *[f"{xd_bench / r.split(',')[0]},A" for r in normal]]) + "\n")
    with pytest.raises(formats.DataError, match="every frame is normal"):
        load_eval_set(only_normal, xd_bench / "annotations.txt", preset="xd")
