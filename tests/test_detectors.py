"""The detector interface, the one loader (every checkpoint kind, hf://) and the user-error base."""
from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import numpy as np
import pytest

import vadclip
from vadclip import factory
from vadclip.checkpoint import get_tokenizer
from vadclip.config import get_preset
from vadclip.detectors import (Detector, DetectorScores, VadCLIPDetector, ZeroShotDetector,
                               check_fixed_vocabulary)
from vadclip.errors import OptionError, UserError, VocabularyError
from vadclip.factory import CheckpointKind, LoadedModel, load_model, register_checkpoint_kind
from vadclip.features import FeatureCache
from vadclip.results import DetectionParams
from vadclip.safe_load import CheckpointError
from vadclip.scoring import score_video, score_video_features, video_features

from videos import write_video

XD_NAMES = list(get_preset("xd").model.class_names)
LOW = DetectionParams(threshold=0.0, min_gap_s=0.0, min_duration_s=0.0)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("v") / "clip.mp4", 50, fps=16)      # 3 snippets


@pytest.fixture(scope="module")
def zero_shot(official_model) -> ZeroShotDetector:
    return ZeroShotDetector(official_model.clipmodel, official_model.clip_info, get_tokenizer())


# --------------------------------------------------------------------------- detectors

def test_both_detectors_follow_the_protocol(official_model, zero_shot):
    vad = VadCLIPDetector(official_model)
    feats = np.random.default_rng(0).normal(size=(7, 512)).astype(np.float32)
    for det, branches in ((vad, ("c", "a")), (zero_shot, ("a",))):
        assert isinstance(det, Detector)
        assert det.branches == branches and det.frames_per_row == 16 and not det.fixed_vocabulary
        assert det.random_weights is False and det.clip_info.embed_dim == 512
        assert det.vocabulary(None) == XD_NAMES
        names = det.vocabulary([" normal", "fire "])
        assert names == ["normal", "fire"]
        s = det.score(feats, names)
        assert isinstance(s, DetectorScores) and tuple(s.curves) == branches
        assert s.class_probs.shape == (7, 2) and s.frames_per_row == 16 and s.class_names == names
        np.testing.assert_allclose(s.class_probs.sum(1), 1, atol=1e-5)
        np.testing.assert_allclose(s.curves["a"], 1 - s.class_probs[:, 0], atol=1e-6)
        for c in s.curves.values():
            assert c.shape == (7,) and c.dtype == np.float32 and ((c >= 0) & (c <= 1)).all()
    assert vad.kind == "vadclip" and zero_shot.kind == "zero-shot"
    assert "preset xd" in vad.description and "zero-shot" in zero_shot.description


@pytest.mark.parametrize("names, message", [
    (["normal"], "normal class"), (["normal", "a", "A"], "duplicate"), (["normal", "word " * 80], "too long"),
])
def test_vocabulary_errors_are_user_errors(official_model, zero_shot, names, message):
    for det in (VadCLIPDetector(official_model), zero_shot):
        with pytest.raises(VocabularyError, match=message):
            det.vocabulary(names)


def test_fixed_vocabulary_rule():
    check_fixed_vocabulary(["ok", "bad thing"], ["normal", "anomalous"])      # reworded: fine
    with pytest.raises(VocabularyError, match="exactly 2 classes"):
        check_fixed_vocabulary(["normal", "anomalous", "fire"], ["normal", "anomalous"])


def test_two_steps_equal_score_video(official_model, zero_shot, video, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    for det in (VadCLIPDetector(official_model), zero_shot):
        whole = score_video(video, det, params=LOW, cache=cache)
        stages = []
        feats = video_features(video, det, cache=cache, on_progress=lambda s, f: stages.append(s))
        assert feats.cache_hit and feats.n_rows == 3 and feats.frames_per_row == 16
        assert feats.cache_key is not None and cache.get(feats.cache_key).shape == (3, 512)
        parts = score_video_features(feats, det, None, LOW, on_progress=lambda s, f: stages.append(s))
        assert stages[0] == "probe" and stages[-1] == "score" and "encode" in stages
        assert parts.branches == whole.branches == det.branches
        for b in det.branches:
            np.testing.assert_allclose(parts.coarse(b), whole.coarse(b), atol=1e-6)
        np.testing.assert_allclose(parts.fine, whole.fine, atol=1e-6)
        assert parts.segments == whole.segments and parts.params.branch == det.branches[0]


def test_vadclip_json_keeps_both_curves_and_zero_shot_has_one(official_model, zero_shot, video):
    vad = score_video(video, official_model).to_dict()
    assert set(vad["snippets"]) == {"start_s", "end_s", "coarse_c", "coarse_a", "fine"}
    assert vad["branches"] == ["c", "a"] and vad["params"]["branch"] == "c"
    zs = score_video(video, zero_shot).to_dict()
    assert set(zs["snippets"]) == {"start_s", "end_s", "coarse_a", "fine"} and zs["params"]["branch"] == "a"
    back = vadclip.VideoScores.from_dict(zs)
    assert back.branches == ("a",)
    with pytest.raises(OptionError, match="no 'c' curve"):
        vadclip.redetect(back, DetectionParams(branch="c"))


class _PerFrame(ZeroShotDetector):
    frames_per_row = 1


def test_per_frame_detectors_get_one_row_per_frame(official_model, video, tmp_path):
    det = _PerFrame(official_model.clipmodel, official_model.clip_info, get_tokenizer())
    cache = FeatureCache(tmp_path / "cache")
    rows = video_features(video, det, cache=cache)
    snippets = video_features(video, VadCLIPDetector(official_model), cache=cache)
    assert rows.frames_per_row == 1 and rows.n_rows == rows.info.n_frames and rows.settings.frames_per_row == 1
    assert snippets.n_rows == rows.info.n_frames // 16 and rows.cache_key != snippets.cache_key
    scores = score_video_features(rows, det)
    assert scores.snippet_frames == 1 and scores.samples_per_snippet == 1 and scores.n_snippets == rows.n_rows


# --------------------------------------------------------------------------- loader

def test_load_model_official_auto_preset(official_dir, official_model):
    loaded = load_model(official_dir / "official_xd.pth")
    assert isinstance(loaded, LoadedModel) and loaded.kind == "official" and loaded.preset == "xd"
    assert isinstance(loaded.detector, VadCLIPDetector) and loaded.path == official_dir / "official_xd.pth"
    assert not hasattr(loaded.detector.model, "checkpoint_metadata")
    with pytest.raises(CheckpointError, match="temporal layers"):
        load_model(official_dir / "official_xd.pth", preset="ucf")


def test_load_model_ours_and_run_folder(official_model, tmp_path):
    file = vadclip.save_checkpoint(official_model, tmp_path / "run" / "best.safetensors", metadata={"step": 7})
    for ref in (file, tmp_path / "run", str(file)):
        loaded = load_model(ref)
        assert loaded.kind == "ours" and loaded.preset == "xd" and loaded.path == file
        assert loaded.metadata == {"step": 7}
    feats = np.random.default_rng(1).normal(size=(5, 512)).astype(np.float32)
    a = VadCLIPDetector(official_model).score(feats, XD_NAMES)
    b = loaded.detector.score(feats, XD_NAMES)
    np.testing.assert_allclose(a.class_probs, b.class_probs, atol=1e-6)


def test_load_model_zero_shot_and_errors(tmp_path):
    loaded = load_model(factory.ZERO_SHOT, clip="random", preset="ucf")
    assert loaded.kind == "zero-shot" and loaded.detector.random_weights
    assert loaded.detector.default_class_names == list(get_preset("ucf").model.class_names)
    (tmp_path / "notes.txt").write_text("hi")
    for ref, error, message in [
        (tmp_path / "missing.pth", CheckpointError, "no such file"),
        (tmp_path / "notes.txt", CheckpointError, "not a checkpoint of a known kind"),
        (tmp_path, CheckpointError, "not a checkpoint"),
    ]:
        with pytest.raises(error, match=message):
            load_model(ref)
    with pytest.raises(OptionError, match="unknown preset"):
        load_model(tmp_path / "x.pth", preset="big")
    with pytest.raises(OptionError, match="only for zero-shot"):
        load_model(tmp_path / "x.pth", clip="random")


def _populate_hf_cache(cache: Path, repo_id: str, filename: str, source: Path, commit: str = "a" * 40) -> Path:
    """The layout huggingface_hub writes: models--OWNER--REPO/{refs/main, snapshots/COMMIT/FILE}."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    target = repo / "snapshots" / commit / filename
    target.parent.mkdir(parents=True)
    target.write_bytes(source.read_bytes())
    return target


def test_load_model_hf_offline_cache(official_model, tmp_path, monkeypatch):
    from huggingface_hub import constants
    cache = tmp_path / "hf"
    src = vadclip.save_checkpoint(official_model, tmp_path / "m.safetensors")
    target = _populate_hf_cache(cache, "someone/vad", "ckpt/model.safetensors", src)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    loaded = load_model("hf://someone/vad/ckpt/model.safetensors")
    assert loaded.kind == "ours" and loaded.path == target
    assert load_model("hf://someone/vad/ckpt/model.safetensors@main").path == target
    with pytest.raises(CheckpointError) as e:
        load_model("hf://someone/vad/absent.safetensors")
    message = str(e.value)
    assert "hf://someone/vad/absent.safetensors" in message and "no cached copy" in message
    assert len(message.splitlines()) == 1
    with pytest.raises(CheckpointError, match="not a Hugging Face reference"):
        load_model("hf://someone/vad")


def test_a_new_checkpoint_kind_is_one_registration(official_model, zero_shot, tmp_path, monkeypatch):
    monkeypatch.setattr(factory, "_KINDS", list(factory._KINDS))      # leave the registry as it was
    path = tmp_path / "toy.toyckpt"
    path.write_text("toy")
    register_checkpoint_kind(CheckpointKind(
        "toy", sniff=lambda p: p.suffix == ".toyckpt",
        load=lambda p, preset, device: LoadedModel(zero_shot, "toy", path=p, metadata={"n": 1})))
    loaded = load_model(path)
    assert loaded.kind == "toy" and loaded.detector is zero_shot and factory.checkpoint_kind(path) == "toy"


# --------------------------------------------------------------------------- errors, CLI split

def test_user_error_hierarchy():
    from vadclip.clip_backbone import ClipError
    from vadclip.formats import DataError
    from vadclip.paths import PathEscapeError
    from vadclip.safe_load import UnsafeCheckpointError
    from vadclip.train import TrainError
    from vadclip.video import VideoError
    for cls in (ClipError, DataError, PathEscapeError, CheckpointError, UnsafeCheckpointError, TrainError,
                VideoError, VocabularyError, OptionError):
        assert issubclass(cls, UserError), cls
    assert issubclass(UserError, ValueError)          # code that caught ValueError keeps working
    with pytest.raises(OptionError):
        DetectionParams(threshold=2.0)


def test_no_library_module_imports_argparse():
    """The command line lives in vadclip.cli; the library modules do not parse arguments."""
    root = Path(vadclip.__file__).parent
    offenders = []
    for info in pkgutil.walk_packages([str(root)], "vadclip."):
        if info.name.startswith("vadclip.cli") or info.name == "vadclip.__main__":
            continue
        module = importlib.import_module(info.name)
        tree = ast.parse(Path(module.__file__).read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                 for a in n.names} | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        if "argparse" in names:
            offenders.append(info.name)
    assert offenders == []
    for name in ("score", "extract", "train", "evaluate"):
        assert callable(importlib.import_module(f"vadclip.cli.{name}").run)


def _seeds_folder(root: Path, models) -> Path:
    """A `vadclip train --seeds` output folder holding `models` as seeds 0, 1, ..."""
    import json

    from vadclip.checkpoint import save_checkpoint
    from vadclip.seeds import SUMMARY_FILE

    for seed, model in enumerate(models):
        save_checkpoint(model, root / f"seed_{seed}" / "best.safetensors")
    (root / SUMMARY_FILE).write_text(json.dumps({"runs": [{"seed": s} for s in range(len(models))]}))
    return root


def _perturbed(model, scale: float = 0.05):
    import copy

    import torch

    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.adapter_parameters():
            p.add_(scale * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return other


def test_seeds_folder_loads_as_an_ensemble_of_its_runs(official_model, parity, tmp_path):
    from vadclip.detectors import VadCLIPEnsemble
    from vadclip.improvements import ensemble_scores
    from vadclip.inference import score_features

    other = _perturbed(official_model)
    folder = _seeds_folder(tmp_path / "runs", [official_model, other])
    assert factory.checkpoint_kind(folder) == "seeds"
    loaded = load_model(folder)
    assert isinstance(loaded.detector, VadCLIPEnsemble) and isinstance(loaded.detector, Detector)
    assert loaded.kind == "seeds" and loaded.preset == "xd" and len(loaded.metadata["members"]) == 2
    assert "ensemble of 2" in loaded.detector.description
    members = loaded.detector.members
    assert members[1].model.clipmodel is members[0].model.clipmodel          # one copy of the CLIP
    features = parity["video_features"].astype(np.float32)
    names = loaded.detector.vocabulary(None)
    got = loaded.detector.score(features, names)
    expected = ensemble_scores([score_features(m, features, names) for m in (official_model, other)])
    np.testing.assert_allclose(got.curves["c"], expected.coarse_c, atol=1e-6)
    np.testing.assert_allclose(got.curves["a"], expected.coarse_a, atol=1e-6)
    np.testing.assert_allclose(got.class_probs, expected.fine, atol=1e-6)
    assert not np.allclose(got.curves["c"], score_features(official_model, features, names).coarse_c, atol=1e-4)


def test_an_ensemble_of_one_is_the_member(official_model, parity, tmp_path):
    folder = _seeds_folder(tmp_path / "one", [official_model])
    features = parity["video_features"].astype(np.float32)
    detector = load_model(folder).detector
    single = VadCLIPDetector(official_model)
    names = single.vocabulary(None)
    np.testing.assert_array_equal(detector.score(features, names).class_probs, single.score(features, names).class_probs)


def test_ensemble_members_must_share_the_clip_and_the_preset(official_model, tmp_path):
    import copy

    import torch

    other = copy.deepcopy(official_model)
    with torch.no_grad():
        next(other.clipmodel.parameters()).add_(1.0)
    with pytest.raises(CheckpointError, match="another CLIP"):
        load_model(_seeds_folder(tmp_path / "clips", [official_model, other]))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "seeds_summary.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not a seeds summary"):
        load_model(bad)
    missing = tmp_path / "missing"
    missing.mkdir()
    (missing / "seeds_summary.json").write_text('{"runs": [{"seed": 3}]}')
    with pytest.raises(CheckpointError, match="seed_3 has no VadCLIP checkpoint"):
        load_model(missing)


def test_the_app_lists_a_seeds_folder_and_its_runs(official_model, tmp_path):
    from app.models import scan_models

    _seeds_folder(tmp_path / "models" / "runs-xd", [official_model, _perturbed(official_model)])
    choices = {Path(c.key).name: c for c in scan_models(tmp_path / "models")}
    assert {"runs-xd", "seed_0", "seed_1"} <= set(choices)
    assert choices["runs-xd"].kind == "seeds" and "VadCLIP ensemble of 2 seeds" in choices["runs-xd"].label


def test_vadclip_score_takes_a_seeds_folder(official_model, video, tmp_path, capsys):
    import json

    from vadclip.cli import main as cli_main

    folder = _seeds_folder(tmp_path / "runs", [official_model, _perturbed(official_model)])
    out = tmp_path / "scores.json"
    assert cli_main(["score", str(video), "--checkpoint", str(folder), "--device", "cpu", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    expected = score_video(video, load_model(folder).detector, cache=None)
    np.testing.assert_allclose(result["snippets"]["coarse_c"], expected.curves["c"], atol=1e-6)
    np.testing.assert_allclose(result["snippets"]["fine"], expected.fine, atol=1e-6)
    assert result["model"].startswith("VadCLIP ensemble of 2") and "ensemble of 2" in capsys.readouterr().out
