"""Checkpoint import/export and CLIP loading, including every refusal path."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import vadclip
from vadclip.checkpoint import read_checkpoint_header
from vadclip.clip_backbone import ClipError, clip_from_file, load_clip
from vadclip.safe_load import CheckpointError, UnsafeCheckpointError, load_state_dict_file


@pytest.fixture(scope="module")
def official_sd(official_dir):
    return torch.load(official_dir / "official_xd.pth", weights_only=True)


def test_round_trip_our_format(official_model, parity, tmp_path):
    path = vadclip.save_checkpoint(official_model, tmp_path / "m.safetensors", metadata={"note": "x"})
    with open(path, "rb") as f:                      # safetensors: 8-byte length + JSON header
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    assert header["__metadata__"]["format"] == "vadclip"
    loaded = vadclip.load_checkpoint(path)
    assert loaded.config == official_model.config
    assert loaded.checkpoint_metadata == {"note": "x"}
    a = vadclip.score_features(official_model, parity["video_features"])
    b = vadclip.score_features(loaded, parity["video_features"])
    np.testing.assert_array_equal(a.fine, b.fine)
    # a run folder resolves to its best checkpoint
    os.replace(path, tmp_path / "best.safetensors")
    assert vadclip.load_checkpoint(tmp_path).config.preset == "xd"
    assert read_checkpoint_header(tmp_path / "best.safetensors")["clip"]["random_weights"] is False


def test_official_float16_clip_is_stored_losslessly(official_model, tmp_path):
    path = vadclip.save_checkpoint(official_model, tmp_path / "m.safetensors")
    sd = load_state_dict_file(path)
    assert sd["clipmodel.token_embedding.weight"].dtype == torch.float16      # exact in fp16
    assert sd["frame_position_embeddings.weight"].dtype == torch.float32


def test_load_model_dispatches(official_dir, official_model, tmp_path):
    assert vadclip.load_model(official_dir / "official_xd.pth").detector.model.config.preset == "xd"
    path = vadclip.save_checkpoint(official_model, tmp_path / "ours.safetensors")
    assert vadclip.load_model(path).detector.model.config.preset == "xd"


def test_wrong_preset_is_named(official_dir, official_sd, tmp_path):
    with pytest.raises(CheckpointError, match=r"1 temporal layers but preset 'ucf' has 2 \(that is the 'xd' preset\)"):
        vadclip.load_official_checkpoint(official_dir / "official_xd.pth", preset="ucf")
    sd = dict(official_sd)
    for k, v in official_sd.items():
        if k.startswith("temporal.resblocks.0."):
            sd[k.replace("resblocks.0.", "resblocks.1.")] = v
    torch.save(sd, tmp_path / "two_layers.pth")
    with pytest.raises(CheckpointError, match="that is the 'ucf' preset"):
        vadclip.load_official_checkpoint(tmp_path / "two_layers.pth", preset="xd")


def test_shape_mismatch_is_named(official_sd, tmp_path):
    sd = dict(official_sd)
    sd["classifier.weight"] = torch.zeros(2, 512)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"classifier.weight has shape \(2, 512\), expected \(1, 512\)"):
        vadclip.load_official_checkpoint(tmp_path / "bad.pth")


def test_not_a_vadclip_checkpoint(official_sd, tmp_path):
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a VadCLIP checkpoint"):
        vadclip.load_official_checkpoint(tmp_path / "other.pth")
    no_clip = {k: v for k, v in official_sd.items() if not k.startswith("clipmodel.")}
    torch.save(no_clip, tmp_path / "noclip.pth")
    with pytest.raises(CheckpointError, match="without its CLIP"):
        vadclip.load_official_checkpoint(tmp_path / "noclip.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty file"):
        vadclip.load_official_checkpoint(tmp_path / "empty.pth")
    (tmp_path / "text.pth").write_text("hello, I am not a checkpoint")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        vadclip.load_official_checkpoint(tmp_path / "text.pth")
    with pytest.raises(CheckpointError, match="no such file"):
        vadclip.load_official_checkpoint(tmp_path / "missing.pth")
    (tmp_path / "fake.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    with pytest.raises(CheckpointError, match="safetensors"):
        vadclip.load_checkpoint(tmp_path / "fake.safetensors")


class _Exploit:
    """Unpickling this would call os.system; weights_only loading must refuse it."""

    def __reduce__(self):
        return (os.system, ("touch pwned_by_checkpoint",))


def test_crafted_pickle_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"frame_position_embeddings.weight": torch.zeros(256, 512), "x": _Exploit()},
               tmp_path / "evil.pth")
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        vadclip.load_official_checkpoint(tmp_path / "evil.pth")
    with pytest.raises(UnsafeCheckpointError):
        load_clip(str(tmp_path / "evil.pth"))
    assert not (tmp_path / "pwned_by_checkpoint").exists()


def test_clip_from_official_checkpoint(official_dir):
    clip, info = load_clip(str(official_dir / "official_xd.pth"))
    assert info.image_size == 32 and info.embed_dim == 512 and not info.random_weights
    assert all(not p.requires_grad for p in clip.parameters())
    assert clip.token_embedding.weight.dtype == torch.float32      # float16 tensors upcast


def test_clip_openai_state_dict_file_with_extra_keys(official_sd, tmp_path):
    sd = {k[len("clipmodel."):]: v for k, v in official_sd.items() if k.startswith("clipmodel.")}
    sd["input_resolution"] = torch.tensor(32)
    sd["context_length"] = torch.tensor(77)
    sd["vocab_size"] = torch.tensor(49408)
    torch.save(sd, tmp_path / "clip.pt")
    model = clip_from_file(tmp_path / "clip.pt")
    assert model.visual.image_size in (32, (32, 32))


def test_clip_source_errors(tmp_path):
    with pytest.raises(ClipError, match="no such file"):
        load_clip("no/such/clip.pt")
    torch.save({"w": torch.zeros(1)}, tmp_path / "w.pt")
    with pytest.raises(ClipError, match="not a CLIP checkpoint"):
        load_clip(str(tmp_path / "w.pt"))


def test_random_clip_is_flagged():
    model = vadclip.build_model("xd", clip="random")
    assert model.clip_info.random_weights
    assert "RANDOM" in model.clip_info.label
    s = vadclip.score_features(model, np.random.default_rng(0).normal(size=(20, 512)).astype(np.float32))
    assert s.random_weights


# --------------------------------------------------------------------------- hub weights without internet

def _fake_hub_cache(root, repo_id, filename):
    """The Hugging Face cache layout for one file: refs/main -> snapshots/<rev>/<filename>."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (snap / filename).write_bytes(b"weights")
    return snap / filename


def test_unreachable_hub_fails_at_once_with_the_reason(tmp_path, monkeypatch):
    import time
    from vadclip import clip_backbone
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = []
    monkeypatch.setattr(clip_backbone.open_clip, "create_model", lambda *a, **k: calls.append(k))
    started = time.perf_counter()
    with pytest.raises(ClipError, match="cannot be reached and its weights .* not in the local Hugging Face cache"):
        load_clip("openai", cache_dir=str(tmp_path))
    assert time.perf_counter() - started < 5 and not calls          # no download attempt, no retries


def test_unreachable_hub_uses_the_cached_weights(tmp_path, monkeypatch):
    from vadclip import clip_backbone
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached = _fake_hub_cache(tmp_path, "timm/vit_base_patch16_clip_224.openai", "open_clip_model.safetensors")
    assert clip_backbone.cached_hub_weights("timm/vit_base_patch16_clip_224.openai/", str(tmp_path)) == str(cached)
    calls = []

    def create_model(name, **kwargs):
        calls.append((name, kwargs))
        raise RuntimeError("stop here")
    monkeypatch.setattr(clip_backbone.open_clip, "create_model", create_model)
    with pytest.raises(ClipError, match="stop here"):
        load_clip("openai", cache_dir=str(tmp_path))
    (name, kwargs), = calls
    # the cached file, with the QuickGELU that the openai tag would have set
    assert name == "ViT-B-16" and kwargs["pretrained"] == str(cached) and kwargs["force_quick_gelu"] is True


def test_reachable_hub_downloads_by_tag(monkeypatch):
    from vadclip import clip_backbone
    monkeypatch.setattr(clip_backbone, "hub_reachable", lambda timeout_s=3.0: True)
    calls = []
    monkeypatch.setattr(clip_backbone.open_clip, "create_model",
                        lambda name, **kw: calls.append((name, kw)) or (_ for _ in ()).throw(RuntimeError("x")))
    with pytest.raises(ClipError):
        load_clip("openai")
    assert calls[0][0] == "ViT-B-16" and calls[0][1]["pretrained"] == "openai"
