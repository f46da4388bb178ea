"""AnomalyCLIP through its public API against the official code's own outputs (xd fixture),
plus the official test-time padding, safe checkpoint loading and our checkpoint format."""
from __future__ import annotations

import copy
import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from conftest import SHARED
from reference_anomalyclip import official_test_step          # benchmarks/
from vadclip import anomalyclip
from vadclip.safe_load import CheckpointError, UnsafeCheckpointError

FIXTURE = SHARED / "fixtures" / "anomalyclip"
TOL = 1e-5
VIDEOS = ("v0", "v1", "v2")


@pytest.fixture(scope="module")
def fx() -> dict:
    if not (FIXTURE / "parity_xd.npz").is_file():
        pytest.skip(f"AnomalyCLIP parity fixtures not found at {FIXTURE} (../shared is absent)")
    return dict(np.load(FIXTURE / "parity_xd.npz"))


@pytest.fixture(scope="module")
def centroid(fx) -> np.ndarray:
    bounds = np.cumsum(fx["train_normal_lengths"])[:-1]
    return anomalyclip.normal_centroid(np.split(fx["train_normal_features"], bounds))


@pytest.fixture(scope="module")
def model(fx, centroid):
    """The fixture checkpoint loaded as a user's last.ckpt is. Do not mutate (deepcopy first)."""
    return anomalyclip.load_official_checkpoint(FIXTURE / "official_xd.ckpt", preset="xd", centroid=centroid,
                                                device="cpu")


def close(a, b, tol=TOL) -> None:
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else b
    np.testing.assert_allclose(a, np.asarray(b), rtol=0, atol=tol)


def wrap_pad(features: np.ndarray) -> torch.Tensor:
    n = len(features)
    return torch.from_numpy(features[np.arange(512 * -(-n // 512)) % n])[None]


# --- parity ------------------------------------------------------------------------------------

def test_normal_centroid_is_the_official_one(fx, centroid):
    assert centroid.dtype == np.float32 and centroid.shape == (512,)
    close(centroid, fx["ncentroid"], 1e-7)


def test_preset_matches_the_fixture(fx, model):
    assert list(model.config.class_names) == list(fx["class_names"])
    assert model.config.normal_id == int(fx["normal_id"])
    ids = model.prompt_token_ids(list(model.config.class_names))
    assert ids.argmax(dim=-1).tolist() == fx["prompt_eot_index"].tolist()


def test_text_features_and_directions(fx, model):
    with torch.no_grad():
        t = model.text_features()
        close(t, fx["text_features"])
        close(model.directions(t), fx["directions"])
        close(model.cached_directions(), fx["directions"])


@pytest.mark.parametrize("video", VIDEOS)
def test_score_frames_matches_official_test_step(fx, model, video):
    out = anomalyclip.score_frames(model, fx[f"{video}_features"])
    n = len(fx[f"{video}_features"])
    assert out.scores.shape == (n,) and out.class_probs.shape == (n, 7)
    assert out.class_names == list(fx["class_names"]) and out.normal_id == 4
    close(out.scores, fx[f"{video}_scores"])
    close(out.class_probs, fx[f"{video}_class_probs"])
    close(out.logits, fx[f"{video}_logits"][:n])
    close(torch.from_numpy(out.logits).softmax(dim=-1), fx[f"{video}_softmax"])
    close(out.class_probs.sum(axis=1), np.ones(n))


@pytest.mark.parametrize("video", VIDEOS)
def test_forward_intermediates_on_the_padded_video(fx, model, video):
    """Interleaved grids of a wrap-around padded video: projections, logits, temporal output."""
    with torch.no_grad():
        out = model(wrap_pad(fx[f"{video}_features"]))
    n = len(fx[f"{video}_features"])
    assert out.scores.shape[1] // 512 == int(fx[f"{video}_segment_size"])
    close(out.proj_raw[0], fx[f"{video}_proj_raw"])
    close(out.logits[0], fx[f"{video}_logits"])
    close(out.temporal[0], fx[f"{video}_temporal_out"])
    close(out.scores[0, :n], fx[f"{video}_scores"])
    close(model.class_probs(out.logits[0], out.scores[0])[:n], fx[f"{video}_class_probs"])


@pytest.mark.parametrize("grad, reversible", [(True, False), (True, True), (False, False)],
                         ids=["autograd-grid", "autograd-reversible", "no-grad"])
def test_train_mode_uses_batch_statistics(fx, model, grad, reversible):
    m = copy.deepcopy(model).train()
    m.temporal_model.reversible = reversible
    bn = m.selector_model.bn_layer
    before = bn.running_mean.clone()
    with torch.set_grad_enabled(grad):
        out = m(torch.from_numpy(fx["train_features"]))
    close(out.logits.reshape(-1, 6), fx["train_logits"])
    close(out.scores.reshape(-1), fx["train_scores"])
    batch_mean = out.proj_raw.detach().reshape(-1, 6).mean(dim=0)
    close(bn.running_mean, 0.9 * before + 0.1 * batch_mean, 1e-6)          # momentum 0.1
    if grad:
        out.scores.sum().backward()
        assert all(p.grad is not None for p in m.temporal_model.parameters() if p.requires_grad)


def test_metrics_match_official_test_epoch_end(fx, model):
    outs = [anomalyclip.score_frames(model, fx[f"{v}_features"]) for v in VIDEOS]
    labels = np.concatenate([fx[f"{v}_frame_labels"] for v in VIDEOS])
    expected = json.loads((FIXTURE / "metrics_xd.json").read_text())
    for scores, probs in (
        (np.concatenate([o.scores for o in outs]), np.concatenate([o.class_probs for o in outs])),
        (np.concatenate([fx[f"{v}_scores"] for v in VIDEOS]), np.concatenate([fx[f"{v}_class_probs"] for v in VIDEOS])),
    ):
        got = anomalyclip.frame_metrics(scores, probs, labels, normal_id=4)
        assert set(expected) <= set(got)
        for key, value in expected.items():
            np.testing.assert_allclose(np.asarray(got[key], dtype=float), np.asarray(value, dtype=float),
                                       rtol=0, atol=1e-6, err_msg=key)    # NaN positions must agree


def test_frame_metrics_rejects_bad_input():
    s, p, y = np.full(4, 0.5, np.float32), np.full((4, 3), 1 / 3, np.float32), np.array([0, 1, 2, 1])
    with pytest.raises(ValueError, match="normal_id"):
        anomalyclip.frame_metrics(s, p, y, normal_id=3)
    with pytest.raises(ValueError, match="class ids"):
        anomalyclip.frame_metrics(s, p, np.array([0, 1, 5, 1]), normal_id=1)
    with pytest.raises(ValueError, match="probabilities"):
        anomalyclip.frame_metrics(s * 3, p, y, normal_id=1)
    with pytest.raises(ValueError, match="finite"):
        anomalyclip.frame_metrics(np.array([0.5, np.nan, 0.1, 0.2], np.float32), p, y, normal_id=1)


# --- the official test-time padding ------------------------------------------------------------

@pytest.mark.parametrize("frames", [1, 300, 511, 512, 513, 1023, 1024, 1025])
def test_padding_and_interleaved_grids_against_a_per_grid_reference(model, frames):
    """Lengths just under, at and over multiples of 512: score_frames vs the official test step
    written plainly, with each interleaved grid run through axial_attention on its own."""
    feats = np.random.default_rng(frames).standard_normal((frames, 512)).astype(np.float32)
    out = anomalyclip.score_frames(model, feats, max_grids_per_batch=1)
    with torch.no_grad():
        ref = official_test_step(model, feats, per_grid=True)
    close(out.scores, ref["scores"])
    close(out.class_probs, ref["class_probs"])
    close(out.logits, ref["logits"][:frames])


def test_grid_batches_give_the_same_scores(model):
    feats = np.random.default_rng(1).standard_normal((2600, 512)).astype(np.float32)   # 6 grids
    a = anomalyclip.score_frames(model, feats, max_grids_per_batch=64)
    b = anomalyclip.score_frames(model, feats, max_grids_per_batch=4)
    close(a.scores, b.scores, 1e-6)


# --- inputs, vocabulary, cache -----------------------------------------------------------------

@pytest.mark.parametrize("bad, message", [
    (np.zeros((10, 256), np.float32), "256 dimensions"),
    (np.zeros((0, 512), np.float32), "N >= 1"),
    (np.zeros(512, np.float32), "N >= 1"),
    (np.full((10, 512), np.nan, np.float32), "NaN"),
])
def test_score_frames_rejects_bad_features(model, bad, message):
    with pytest.raises(ValueError, match=message):
        anomalyclip.score_frames(model, bad)


def test_class_names_may_be_reworded_not_added(fx, model):
    feats = fx["v1_features"]
    same = anomalyclip.score_frames(model, feats, class_names=[n.replace("_", " ") for n in model.config.class_names])
    close(same.class_probs, fx["v1_class_probs"])            # "_" becomes a space in the prompt anyway
    names = list(model.config.class_names)
    names[0] = "child abuse"
    reworded = anomalyclip.score_frames(model, feats, class_names=names)
    assert reworded.class_names[0] == "child abuse"
    assert not np.allclose(reworded.class_probs[:, 0], same.class_probs[:, 0])
    with pytest.raises(ValueError, match="not added or removed"):
        anomalyclip.score_frames(model, feats, class_names=names + ["arson"])


def test_cached_directions_follow_weight_updates(model):
    m = copy.deepcopy(model)
    d0 = m.cached_directions()
    assert m.cached_directions() is d0
    with torch.no_grad():
        m.prompt_learner.ctx.add_(0.05)
    d1 = m.cached_directions()
    assert not torch.allclose(d0, d1)
    with torch.no_grad():
        close(d1, m.directions(m.text_features()), 1e-6)


def test_param_groups_and_frozen_clip(model):
    groups = model.param_groups()
    assert list(groups) == ["selector", "temporal", "ctx", "text_projection"]
    assert groups["ctx"][0] is model.prompt_learner.ctx
    assert groups["text_projection"][0] is model.clipmodel.text_projection
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == {id(p) for ps in groups.values() for p in ps}


# --- official checkpoint loading ----------------------------------------------------------------

def test_strided_token_table_is_read_as_its_values(fx, model):
    raw = anomalyclip.read_lightning_checkpoint(FIXTURE / "official_xd.ckpt")
    table = raw["state_dict"]["net.token_embedding.weight"]
    assert table.stride() == (1, 1)                          # the fixture's overlapping view
    assert torch.equal(model.clipmodel.token_embedding.weight, table.contiguous())
    hp = raw["hyper_parameters"]
    assert type(hp["optimizer"]).__name__.startswith("Stub[")   # stubbed, never imported
    assert anomalyclip.is_official_checkpoint(FIXTURE / "official_xd.ckpt")


class _RunsCode:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize("how", ["os.system", "builtins.eval", "subprocess"])
def test_malicious_checkpoint_is_refused_and_nothing_runs(tmp_path, how):
    marker = tmp_path / "pwned"
    import subprocess
    payload = {
        "os.system": _RunsCode(os.system, f"touch {marker}"),
        "builtins.eval": _RunsCode(eval, f"open({str(marker)!r}, 'w').close()"),
        "subprocess": _RunsCode(subprocess.call, ["touch", str(marker)]),
    }[how]
    bad = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"net.x": torch.zeros(2)}, "hyper_parameters": {"loss": payload}}, bad)
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        anomalyclip.load_official_checkpoint(bad, preset="xd", centroid=np.zeros(512, np.float32))
    plain = tmp_path / "plain.ckpt"
    plain.write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError):
        anomalyclip.load_official_checkpoint(plain, preset="xd", centroid=np.zeros(512, np.float32))
    assert not marker.exists()


@pytest.mark.parametrize("preset, named", [
    ("ucf", r"prompt_learner\.ctx has shape \[7, 8, 512\] \(7 classes\) but preset 'ucf' has 14 classes "
            r"\(expected \[14, 8, 512\]; 7 classes is preset 'xd'\)"),
    ("sht", r"temporal_model\.projection\.weight has shape \[128, 512\]"),
])
def test_checkpoint_of_another_preset_is_refused_with_the_mismatch_named(centroid, preset, named):
    with pytest.raises(CheckpointError, match=named):
        anomalyclip.load_official_checkpoint(FIXTURE / "official_xd.ckpt", preset=preset, centroid=centroid)


def test_centroid_sources(fx, tmp_path, centroid):
    pt = tmp_path / "ncentroid.pt"
    torch.save(torch.from_numpy(centroid), pt)
    close(anomalyclip.load_centroid(pt), centroid, 0)
    unsafe = tmp_path / "bad.pt"
    torch.save({"c": _RunsCode(os.system, "true")}, unsafe)
    with pytest.raises(CheckpointError, match="refused"):
        anomalyclip.load_centroid(unsafe)
    with pytest.raises(ValueError, match=r"\[512\] vector"):
        anomalyclip.load_centroid(np.zeros(256))
    # beside the checkpoint (official run layout: <run>/ncentroid.pt, <run>/checkpoints/last.ckpt)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    os.symlink(FIXTURE / "official_xd.ckpt", run / "checkpoints" / "last.ckpt")
    with pytest.raises(CheckpointError, match="normal centroid"):
        anomalyclip.load_official_checkpoint(run / "checkpoints" / "last.ckpt", preset="xd")
    shutil.copy(pt, run / "ncentroid.pt")
    m = anomalyclip.load_official_checkpoint(run / "checkpoints" / "last.ckpt", preset="xd")
    close(m.ncentroid, centroid, 0)


# --- our format ----------------------------------------------------------------------------------

def test_our_checkpoint_round_trip(fx, model, tmp_path):
    path = anomalyclip.save_checkpoint(model, tmp_path / "run" / "last.safetensors", metadata={"epoch": 3})
    for source in (path, tmp_path / "run"):
        loaded = anomalyclip.load_checkpoint(source)
        assert loaded.config == model.config and loaded.checkpoint_metadata == {"epoch": 3}
        assert anomalyclip.is_anomalyclip_checkpoint(source) and not anomalyclip.is_official_checkpoint(source)
        ours, theirs = model.state_dict(), loaded.state_dict()
        assert ours.keys() == theirs.keys()
        for k in ours:
            assert torch.equal(ours[k].float(), theirs[k].float()), k
        close(anomalyclip.score_frames(loaded, fx["v0_features"]).scores, fx["v0_scores"])
    with pytest.raises(CheckpointError, match="not an AnomalyCLIP checkpoint"):
        from safetensors.torch import save_file
        save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
        anomalyclip.load_checkpoint(tmp_path / "other.safetensors")


@pytest.mark.parametrize("preset", ["ucf", "sht"])
def test_other_presets_match_the_official_computation(model, preset):
    """ucf (emb 256) and sht (depth 2, logits concatenated to the input) with random adapter
    weights on the fixture's CLIP: score_frames vs the plain official test step, and the fast
    grid path (no gradient, and the training default with autograd) vs axial_attention's
    reversible forward (the opt-in `reversible = True`) in training mode."""
    config = anomalyclip.get_preset(preset)[0]
    torch.manual_seed(0)
    m = anomalyclip.AnomalyCLIP(config, copy.deepcopy(model.clipmodel), model.clip_info, model.tokenizer)
    with torch.no_grad():
        m.ncentroid.copy_(model.ncentroid)
        bn = m.selector_model.bn_layer
        bn.running_mean.normal_(0, 0.3)
        bn.running_var.uniform_(0.5, 2.0)
    m.eval()
    feats = np.random.default_rng(2).standard_normal((700, 512)).astype(np.float32)
    out = anomalyclip.score_frames(m, feats)
    with torch.no_grad():
        ref = official_test_step(m, feats)
    assert out.class_probs.shape == (700, config.num_classes)
    close(out.scores, ref["scores"])
    close(out.class_probs, ref["class_probs"])
    m.train()
    clip = torch.from_numpy(feats[:512])[None].repeat(2, 1, 1)
    with torch.no_grad():
        fast = m(clip)
    grid = m(clip)                                         # autograd on: the training default
    m.temporal_model.reversible = True
    reversible = m(clip)                                   # autograd on: axial_attention's own forward
    for out in (fast, grid):
        close(out.temporal, reversible.temporal)
        close(out.scores, reversible.scores)


def test_damaged_or_foreign_files_give_clear_errors(tmp_path, centroid):
    data = (FIXTURE / "official_xd.ckpt").read_bytes()
    cases = {
        "empty.ckpt": (b"", "empty file"),
        "noise.ckpt": (np.random.default_rng(0).bytes(4096), "not a PyTorch checkpoint"),
        "truncated.ckpt": (data[: len(data) // 2], "not a PyTorch checkpoint"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match=message):
            anomalyclip.load_official_checkpoint(tmp_path / name, preset="xd", centroid=centroid)
    torch.save({"epoch": 3, "state_dict": {"net.other.weight": torch.zeros(2)}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not an AnomalyCLIP checkpoint"):
        anomalyclip.load_official_checkpoint(tmp_path / "other.ckpt", preset="xd", centroid=centroid)
    with pytest.raises(CheckpointError, match="no such file"):
        anomalyclip.load_official_checkpoint(tmp_path / "missing.ckpt", preset="xd", centroid=centroid)


def test_training_through_the_grid_path_gives_the_official_gradients(fx, model):
    """Training through the grid path (the default, `temporal_model.reversible = False`): same
    outputs and gradients as axial_attention's reversible forward / backward (the opt-in
    `reversible = True`), up to float rounding."""
    assert copy.deepcopy(model).temporal_model.reversible is False
    feats = torch.from_numpy(fx["train_features"])
    grads = []
    for reversible in (True, False):
        m = copy.deepcopy(model).train()
        m.temporal_model.reversible = reversible
        out = m(feats)
        close(out.scores.reshape(-1), fx["train_scores"])
        (out.scores.square().sum() + out.logits.sum()).backward()
        grads.append({n: p.grad.clone() for n, p in m.temporal_model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-5, msg=name)


def test_clip_from_openai_state_dict_keeps_float32_values(fx):
    """open_clip's OpenAI builder loads into float16 weights; a trained float32 text_projection
    (AnomalyCLIP trains it) must come back exact, not rounded to float16."""
    from vadclip.anomalyclip.checkpoint import read_lightning_checkpoint, split_official_state_dict
    from vadclip.clip_backbone import clip_from_openai_state_dict

    clip_sd, _ = split_official_state_dict(read_lightning_checkpoint(FIXTURE / "official_xd.ckpt")["state_dict"])
    proj = clip_sd["text_projection"] + 1e-4 / 3             # not representable in float16
    clip_sd["text_projection"] = proj
    model = clip_from_openai_state_dict(clip_sd)
    assert torch.equal(model.text_projection.detach(), proj)


@pytest.mark.parametrize("shape", [(2, 32, 16, 24), (3, 16, 24), (5, 24)], ids=["grid", "frames", "odd-rows"])
def test_pointwise_is_the_linear_map(shape):
    """`_pointwise` (1x1 convolution in CPU training) = F.linear to rounding, with the same
    gradients; without autograd (evaluation) it is F.linear itself, bit for bit."""
    from vadclip.anomalyclip.model import _pointwise
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g)
    w = torch.randn(40, 24, generator=g).requires_grad_()
    b = torch.randn(40, generator=g).requires_grad_()
    xs = [x.clone().requires_grad_() for _ in range(2)]
    outs = [_pointwise(xs[0], w, b), torch.nn.functional.linear(xs[1], w, b)]
    assert outs[0].shape == outs[1].shape == (*shape[:-1], 40)
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
    grads = [torch.autograd.grad(o.square().sum(), [xi, w, b]) for o, xi in zip(outs, xs)]
    for ours, theirs in zip(*grads):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        assert torch.equal(_pointwise(x, w, b), torch.nn.functional.linear(x, w, b))
