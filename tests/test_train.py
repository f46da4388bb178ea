"""Training: one step against a by-hand reference, learning on synth data, resume, cancel, refusals."""
from __future__ import annotations

import copy
import json

import numpy as np
import open_clip
import pytest
import torch

import vadclip
from vadclip import cli, formats
from vadclip.checkpoint import get_tokenizer, save_checkpoint
from vadclip.clip_backbone import describe_clip
from vadclip.config import model_config
from vadclip.evaluate import evaluate, load_eval_set
from vadclip.model import VadCLIP
from vadclip.safe_load import load_state_dict_file
from vadclip.train import TrainConfig, TrainError, effective_recipe, make_optimizer, train, train_step

from conftest import synth
from reference_train_step import HandAdamW, per_video_losses  # benchmarks/

T = 32   # a short clip length keeps CPU training fast; the recipe is the same


# --------------------------------------------------------------------------- helpers

@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Training steps are small here; one thread avoids OpenMP stalls on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_init(path, preset: str = "xd", visual_length: int = T):
    """One of our checkpoints with a tiny random CLIP (text width 64, projected to 512)."""
    torch.manual_seed(0)
    clip = open_clip.model.CLIP(
        embed_dim=512, quick_gelu=True,
        vision_cfg=open_clip.model.CLIPVisionCfg(layers=1, width=64, head_width=64, patch_size=16, image_size=32),
        text_cfg=open_clip.model.CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=1, layers=1))
    with torch.no_grad():
        for p in clip.parameters():
            p.copy_(p.half().float())           # float16-representable: stored compactly
    info = describe_clip(clip, "tiny-test-clip", random_weights=True)
    config = model_config(preset, visual_length=visual_length, attn_window=8)
    save_checkpoint(VadCLIP(config, clip.eval().requires_grad_(False), info, get_tokenizer()), path)
    return path


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    synth("xd", root / "xd", n_train=24, n_test=12)
    tiny_init(root / "init.safetensors")
    return root


def config_for(bench, out, **overrides) -> TrainConfig:
    xd = bench / "xd"
    base = dict(preset="xd", train_list=str(xd / "xd_train.csv"), test_list=str(xd / "xd_test.csv"),
                annotations=[str(xd / "annotations.txt"), str(xd / "annotations_multiclasses.txt")],
                out_dir=str(out), init=str(bench / "init.safetensors"), batch_size=8, epochs=2,
                num_workers=0, device="cpu")
    return TrainConfig(**{**base, **overrides})


def adapter(path):
    return {k: v for k, v in load_state_dict_file(path).items() if not k.startswith("clipmodel.")}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# --------------------------------------------------------------------------- one step vs a by-hand reference

def test_one_step_equals_a_by_hand_reference(official_model, parity):
    """Our batched step against the official computation written plainly, one video at a time
    (benchmarks/reference_train_step.py), with AdamW written out."""
    ours = copy.deepcopy(official_model).train()
    ref = copy.deepcopy(official_model).train()
    names = list(ours.config.class_names)
    features = torch.from_numpy(parity["batch_features"])
    lengths = torch.from_numpy(parity["batch_lengths"]).long()
    multi_hot = torch.from_numpy(np.stack([formats.multi_hot(formats.parse_label(str(l), "xd"), names)
                                           for l in parity["batch_labels"]]))
    recipe = effective_recipe(TrainConfig(preset="xd"))

    lc, la, lt = per_video_losses(ref, features, lengths, multi_hot, names)
    # The by-hand losses are the official code's (fixture) losses.
    assert lc.item() == pytest.approx(float(parity["loss_c"]), abs=1e-5)
    assert la.item() == pytest.approx(float(parity["loss_a"]), abs=1e-5)
    assert lt.item() == pytest.approx(float(np.ravel(parity["loss_contrast"])[0]), abs=1e-5)
    (lc + la + recipe.contrast_weight * lt).backward()
    ref_params = ref.adapter_parameters()
    before = [p.detach().clone() for p in ref_params]
    HandAdamW(ref_params, recipe.lr, recipe.weight_decay).step()

    optimizer, _ = make_optimizer(ours, recipe)
    losses = train_step(ours, optimizer, features, multi_hot, lengths, names, recipe.contrast_weight)
    assert losses["loss_c"] == pytest.approx(lc.item(), abs=1e-6)
    assert losses["loss_a"] == pytest.approx(la.item(), abs=1e-6)
    assert losses["loss"] == pytest.approx((lc + la + recipe.contrast_weight * lt).item(), abs=1e-6)

    for p_ours, p_ref, p0 in zip(ours.adapter_parameters(), ref_params, before):
        assert p_ours.grad is not None
        torch.testing.assert_close(p_ours.grad, p_ref.grad, rtol=1e-3, atol=1e-6)
        step_ours, step_ref = p_ours.detach() - p0, p_ref.detach() - p0
        assert step_ref.abs().max() > 0                                   # every tensor moved
        # The update is the by-hand AdamW step of our gradients ...
        mine = p0.clone().requires_grad_()
        mine.grad = p_ours.grad.clone()
        HandAdamW([mine], recipe.lr, recipe.weight_decay).step()
        torch.testing.assert_close(p_ours.detach(), mine.detach(), rtol=0, atol=1e-3 * recipe.lr)
        # ... and equals the reference update wherever the gradient is above rounding noise (a first
        # Adam step is about lr * sign(g), so noise-level gradients, such as the attention key bias's,
        # which is exactly zero in exact arithmetic, move by an arbitrary sign).
        signal = p_ref.grad.abs() > 1e-4 * p_ref.grad.abs().max()
        torch.testing.assert_close(step_ours[signal], step_ref[signal], rtol=0, atol=0.01 * recipe.lr)
    # CLIP is frozen.
    assert not any(p.requires_grad for p in ours.clipmodel.parameters())


def test_autocast_step_stays_close_to_float32(official_model, parity):
    """The mixed-precision path (bfloat16 autocast, as on CUDA; run here on the CPU) gives nearly
    the float32 losses and finite gradients."""
    names = list(model_config("xd").class_names)
    features = torch.from_numpy(parity["batch_features"])
    lengths = torch.from_numpy(parity["batch_lengths"]).long()
    multi_hot = torch.from_numpy(np.stack([formats.multi_hot(formats.parse_label(str(l), "xd"), names)
                                           for l in parity["batch_labels"]]))
    recipe = effective_recipe(TrainConfig(preset="xd"))
    losses = {}
    for dtype in (None, torch.bfloat16):
        model = copy.deepcopy(official_model).train()
        optimizer, _ = make_optimizer(model, recipe)
        losses[dtype] = train_step(model, optimizer, features, multi_hot, lengths, names, recipe.contrast_weight,
                                   amp_dtype=dtype)
        assert all(torch.isfinite(p.grad).all() and p.grad.dtype == torch.float32 for p in model.adapter_parameters())
    for key in ("loss_c", "loss_a"):
        assert losses[torch.bfloat16][key] == pytest.approx(losses[None][key], rel=2e-2)


# --------------------------------------------------------------------------- learning, resume, cancel

def test_short_training_improves_auc(bench, tmp_path):
    config = config_for(bench, tmp_path / "run", lr=1e-4, epochs=3, milestones=())
    eval_set = load_eval_set(config.test_list, config.annotations, preset="xd")
    before = evaluate(vadclip.load_checkpoint(config.init), eval_set).as_dict()
    events = []
    result = train(config, on_progress=events.append)
    after = evaluate(vadclip.load_checkpoint(tmp_path / "run"), eval_set).as_dict()
    assert result.best_value == pytest.approx(after["ap_a"])
    # The A-branch (the selection metric's branch) learns fastest on this tiny set.
    assert after["auc_a"] > before["auc_a"] + 0.2, (before, after)
    assert after["ap_a"] > before["ap_a"] + 0.2, (before, after)

    kinds = [e["kind"] for e in events]
    assert kinds.count("step") == result.steps == 9 and kinds.count("eval") == 3 and kinds[-1] == "done"
    step = next(e for e in events if e["kind"] == "step")
    assert {"step", "epoch", "total_steps", "loss", "loss_c", "loss_a", "loss_contrast", "lr",
            "steps_per_s"} <= step.keys()
    json.dumps(events)                                                       # plain JSON-able dicts
    out = tmp_path / "run"
    logged = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in logged if e["kind"] == "step"] == list(range(1, 10))
    report = json.loads((out / "report.json").read_text())
    assert report["steps"] == 9 and report["select_metric"] == "ap_a" and not report["cancelled"]
    assert json.loads((out / "run.json").read_text())["config"]["lr"] == 1e-4
    header = vadclip.checkpoint.read_checkpoint_header(out / "best.safetensors")
    assert header["metadata"]["best_value"] == pytest.approx(result.best_value)
    assert header["metadata"]["select_metric"] == "ap_a"


def test_cancel_and_resume_give_the_same_weights_as_one_run(bench, tmp_path):
    # A large lr makes later evaluations worse, so the epoch-end reload of the best weights matters.
    config = lambda out, **kw: config_for(bench, out, eval_every_steps=2, lr=1e-3, **kw)
    events = []
    whole = train(config(tmp_path / "whole"), on_progress=events.append)
    assert whole.steps == 6 and whole.epochs_done == 2 and not whole.cancelled
    evals = {e["step"]: e["best"] for e in events if e["kind"] == "eval"}
    assert list(evals) == [2, 3, 4, 6] and not evals[6]          # the last epoch ends on an older best

    calls = []
    cut = train(config(tmp_path / "cut"),
                should_stop=lambda: calls.append(1) or len(calls) > 2)             # stop before step 3
    assert cut.cancelled and cut.steps == 2
    model = vadclip.load_checkpoint(tmp_path / "cut")                             # loadable after a cancel
    assert model.checkpoint_metadata["step"] == 2
    assert (tmp_path / "cut" / "train_state.pt").is_file()

    # a run killed while writing leaves hidden temporary files; resuming removes them, nothing else
    leftover = tmp_path / "cut" / ".last.safetensors.abc123.tmp"
    leftover.write_bytes(b"half")
    (tmp_path / "cut" / "notes.txt").write_text("mine")
    part = train(config(tmp_path / "cut", resume=True, max_steps=4))
    assert not leftover.exists() and (tmp_path / "cut" / "notes.txt").read_text() == "mine"
    assert part.steps == 4 and not part.cancelled and part.epochs_done == 1
    rest = train(config(tmp_path / "cut", resume=True))
    assert rest.steps == 6 and rest.epochs_done == 2
    assert_same_weights(adapter(tmp_path / "whole" / "last.safetensors"), adapter(tmp_path / "cut" / "last.safetensors"))
    assert_same_weights(adapter(tmp_path / "whole" / "best.safetensors"), adapter(tmp_path / "cut" / "best.safetensors"))
    assert rest.best_value == whole.best_value
    steps = [json.loads(l)["step"] for l in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
             if json.loads(l)["kind"] == "step"]
    assert steps == list(range(1, 7))


def test_without_a_test_list_the_last_checkpoint_is_the_best(bench, tmp_path):
    result = train(config_for(bench, tmp_path / "run", test_list=None, annotations=None, max_steps=2))
    assert result.best_value is None and result.steps == 2
    assert_same_weights(adapter(tmp_path / "run" / "best.safetensors"), adapter(tmp_path / "run" / "last.safetensors"))


# --------------------------------------------------------------------------- refusals and bad input

def test_refuses_to_overwrite_another_runs_checkpoints(bench, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "best.safetensors").write_bytes(b"precious")
    with pytest.raises(TrainError, match="already holds best.safetensors"):
        train(config_for(bench, out))
    assert (out / "best.safetensors").read_bytes() == b"precious"
    with pytest.raises(TrainError, match="train_state.pt is missing"):
        train(config_for(bench, out, resume=True))


def test_resume_with_other_settings_is_refused(bench, tmp_path):
    train(config_for(bench, tmp_path / "run", max_steps=1, test_list=None, annotations=None))
    with pytest.raises(TrainError, match=r"lr"):
        train(config_for(bench, tmp_path / "run", max_steps=2, test_list=None, annotations=None,
                         lr=1e-3, resume=True))


def test_bad_input_is_reported_all_at_once_before_training(bench, tmp_path):
    feats = tmp_path / "f"
    feats.mkdir()
    np.save(feats / "ok_label_A__0.npy", np.zeros((20, 512), np.float32))
    np.save(feats / "small_label_A__0.npy", np.zeros((20, 256), np.float32))
    bad = np.zeros((20, 512), np.float32)
    bad[3, 7] = np.nan
    np.save(feats / "nan_label_B1-0-0__0.npy", bad)
    (tmp_path / "train.csv").write_text("path,label\nf/ok_label_A__0.npy,A\nf/small_label_A__0.npy,A\n"
                                        "f/nan_label_B1-0-0__0.npy,B1-0-0\nf/ok_label_A__0.npy,B9\n")
    xd = bench / "xd"
    test_csv = (xd / "xd_test.csv").read_text().splitlines()
    abnormal = next(l for l in test_csv[1:] if not l.split(",")[1].startswith("A"))
    (tmp_path / "test.csv").write_text(f"path,label\n{xd / abnormal.split(',')[0]},{abnormal.split(',')[1]}\n")
    (tmp_path / "ann.txt").write_text("someone_else_label_B1-0-0 0 16\n")
    out = tmp_path / "out"
    config = config_for(bench, out, train_list=str(tmp_path / "train.csv"), test_list=str(tmp_path / "test.csv"),
                        annotations=str(tmp_path / "ann.txt"), batch_size=2)
    with pytest.raises(formats.DataError) as err:
        train(config)
    message = str(err.value)
    assert "'B9'" in message                                                 # label not in the vocabulary
    assert "small_label_A" in message and "feature size 256" in message      # wrong dimension
    assert "nan_label_B1-0-0" in message and "NaN" in message                # NaN
    assert abnormal.split(",")[0].split("/")[-1][:-7] in message and "no line in the annotations" in message
    assert not out.exists()                                                  # nothing written

    (tmp_path / "empty.csv").write_text("path,label\n")
    with pytest.raises(formats.DataError, match="no rows"):
        train(config_for(bench, out, train_list=str(tmp_path / "empty.csv")))


def test_bad_options_are_refused():
    with pytest.raises(TrainError, match="batch_size"):
        effective_recipe(TrainConfig(batch_size=0))
    with pytest.raises(ValueError, match="unknown preset"):
        effective_recipe(TrainConfig(preset="nope"))


# --------------------------------------------------------------------------- CLI

def test_cli_train_in_process(bench, tmp_path, capsys):
    xd = bench / "xd"
    out = tmp_path / "cli"
    argv = ["train", "--preset", "xd", "--train-list", str(xd / "xd_train.csv"), "--out", str(out),
            "--init", str(bench / "init.safetensors"), "--batch-size", "8", "--max-steps", "2",
            "--workers", "0", "--milestones", "", "--device", "cpu", "--lr", "2e-5"]
    assert cli.main(argv) == 0
    assert "2 steps" in capsys.readouterr().out
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["milestones"] == [] and run["config"]["lr"] == 2e-5
    assert vadclip.load_checkpoint(out).checkpoint_metadata["step"] == 2

    assert cli.main(argv) == 2                                                # refuses to overwrite
    assert "already holds" in capsys.readouterr().err
    assert cli.main(argv + ["--resume", "--max-steps", "3"]) == 0
    assert vadclip.load_checkpoint(out / "last.safetensors").checkpoint_metadata["step"] == 3
