"""AnomalyCLIP training: one step against the official batch, exact resume, a short run that learns."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from conftest import SHARED
from reference_anomalyclip_train_step import official_forward, official_losses
from test_anomalyclip_lists import synth_anomalyclip
from vadclip.anomalyclip import load_checkpoint, load_official_checkpoint
from vadclip.anomalyclip.config import get_preset
from vadclip.anomalyclip.losses import LOSS_NAMES, anomalyclip_losses, select_segments
from vadclip.anomalyclip.train import (TrainConfig, TrainError, effective_recipe, epoch_lr, epoch_order, evaluate,
                                       fresh_model, load_inputs, make_optimizer, set_normal_centroid, train,
                                       train_step)
from vadclip.formats import DataError

FIXTURES = SHARED / "fixtures" / "anomalyclip"
FIXTURE_CLIP = SHARED / "fixtures" / "official" / "official_xd.pth"


@pytest.fixture(scope="module")
def parity():
    if not (FIXTURES / "parity_xd.npz").is_file():
        pytest.skip(f"{FIXTURES} not found (../shared is absent)")
    return dict(np.load(FIXTURES / "parity_xd.npz"))


@pytest.fixture(scope="module")
def official(parity):
    return load_official_checkpoint(FIXTURES / "official_xd.ckpt", preset="xd", centroid=parity["ncentroid"])


def grads(model) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_one_step_on_the_official_batch(official, parity):
    """Train-mode forward, selection and losses of the fixture's batch; gradients equal the plain
    per-clip transcription's, and the step changes exactly the trained parameters."""
    model = copy.deepcopy(official).train()
    assert not model.temporal_model.reversible and not TrainConfig().reversible    # the default: grid path
    features = torch.tensor(parity["train_features"])
    labels = torch.tensor(parity["train_labels"])
    keep = torch.tensor(parity["train_segment_mask"])
    recipe = effective_recipe(TrainConfig(preset="xd"))
    normal_id = model.config.normal_id

    out = model(features)
    A = out.logits.shape[-1]
    np.testing.assert_allclose(out.logits.detach().reshape(-1, A).numpy(), parity["train_logits"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(out.scores.detach().reshape(-1).numpy(), parity["train_scores"], atol=1e-5, rtol=0)
    sel = select_segments(out.logits, labels, keep, normal_id)
    for ours, key in ((sel.topk_abn, "train_idx_topk_abn"), (sel.topk_nor, "train_idx_topk_nor"),
                      (sel.bottomk_abn, "train_idx_bottomk_abn")):
        np.testing.assert_array_equal(ours.numpy(), parity[key])
    losses = anomalyclip_losses(out.logits, out.scores, labels, sel, normal_id)
    for name in LOSS_NAMES:
        assert abs(losses[name].item() - float(parity[f"loss_{name}"])) < 1e-5, name
    assert abs(losses["loss"].item() - float(parity["loss_total"])) < 1e-5
    model.zero_grad(set_to_none=True)
    losses["loss"].backward()
    ours = grads(model)

    reference = copy.deepcopy(official).train()
    logits, scores, *idx = official_forward(reference, features, labels, keep)
    ref_losses = official_losses(logits, scores, labels, *idx, normal_id)
    for name in ("loss", *LOSS_NAMES):
        assert abs(ref_losses[name].item() - losses[name].item()) < 1e-5, name
    ref_losses["loss"].backward()
    theirs = grads(reference)
    assert set(ours) == set(theirs)
    trained = {f"clipmodel.text_projection", "prompt_learner.ctx"}
    assert trained <= set(ours) and any(k.startswith("temporal_model.") for k in ours)
    for name, g in ours.items():
        assert torch.isfinite(g).all(), name
        torch.testing.assert_close(g, theirs[name], atol=1e-5, rtol=1e-4, msg=name)
    assert sum(g.abs().sum() for g in ours.values()) > 0

    # the opt-in official reversible network (TrainConfig(reversible=True)): same losses and
    # gradients to rounding
    rev = copy.deepcopy(official).train()
    rev.temporal_model.reversible = True
    out = rev(features)
    rev_losses = anomalyclip_losses(out.logits, out.scores, labels, select_segments(out.logits, labels, keep, normal_id),
                                    normal_id)
    assert abs(rev_losses["loss"].item() - float(parity["loss_total"])) < 1e-5
    rev_losses["loss"].backward()
    for name, g in grads(rev).items():
        torch.testing.assert_close(g, ours[name], atol=1e-5, rtol=1e-4, msg=name)

    # the full step (AdamW, four groups) moves exactly the parameters that have gradients
    stepped = copy.deepcopy(official).train()
    before = {k: v.detach().clone() for k, v in stepped.named_parameters()}
    optimizer = make_optimizer(stepped, recipe)
    assert [g["name"] for g in optimizer.param_groups] == ["selector", "temporal", "ctx", "text_projection"]
    result = train_step(stepped, optimizer, features, labels, keep, recipe)
    assert abs(result["loss"] - float(parity["loss_total"])) < 1e-5
    changed = {k for k, v in stepped.named_parameters() if not torch.equal(v, before[k])}
    assert changed == set(ours)


def test_schedule_is_the_official_warmup_cosine():
    recipe = effective_recipe(TrainConfig(preset="xd", epochs=16, warmup_epochs=1, lr=1e-3))
    lrs = [epoch_lr(e, recipe) for e in range(16)]
    assert lrs[0] == 0.0 and lrs[1] == pytest.approx(1e-3)
    assert all(a > b for a, b in zip(lrs[1:], lrs[2:]))
    assert lrs[8] == pytest.approx(1e-3 * (1 + np.cos(np.pi * 7 / 15)) / 2)
    official = effective_recipe(TrainConfig(preset="xd"))
    assert [epoch_lr(e, official) / 5e-6 for e in range(6)] == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])


def test_epoch_order_cycles_the_shorter_list():
    g = torch.Generator().manual_seed(0)
    order = epoch_order(n_abnormal=10, n_normal=4, half=3, generator=g)
    assert order.shape == (3, 6)                          # 10 // 3 steps; the 4 normal videos cycle
    abnormal = order[:, :3].reshape(-1)
    assert len(set(abnormal.tolist())) == 9 and abnormal.max() < 10
    assert order[:, 3:].max() < 4
    for row in order[:, 3:]:
        assert len(set(row.tolist())) == 3


def small_config(synth_dir, out_dir, **overrides) -> TrainConfig:
    values = dict(preset="xd", train_normal=str(synth_dir / "Anomaly_Train_Normal.txt"),
                  train_abnormal=str(synth_dir / "Anomaly_Train_Abnormal.txt"),
                  test_list=str(synth_dir / "Anomaly_Test.txt"),
                  annotations=str(synth_dir / "Temporal_Anomaly_Annotation_for_Testing_Videos.txt"),
                  features_root=str(synth_dir / "features"), clip=str(FIXTURE_CLIP), out_dir=str(out_dir),
                  epochs=4, warmup_epochs=1, lr=1e-3, batch_size=4, seed=1024)
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    if not FIXTURE_CLIP.is_file():
        pytest.skip(f"{FIXTURE_CLIP} not found (../shared is absent)")
    return synth_anomalyclip(tmp_path_factory.mktemp("tiny_ac"), n_train=8, n_test=4, seed=3)


def test_resume_ends_with_the_uninterrupted_weights(tiny, tmp_path):
    full = train(small_config(tiny, tmp_path / "full"))
    assert full.epochs_done == 4 and not full.cancelled

    events = []

    def stop_after_two_epochs() -> bool:      # cancel mid-run: after epoch 2, plus one step of epoch 3
        return sum(e["kind"] == "step" for e in events) >= 2 * 2 + 1

    part = train(small_config(tiny, tmp_path / "split"), on_progress=events.append, should_stop=stop_after_two_epochs)
    assert part.cancelled and part.epochs_done == 2 and part.steps == 5
    with pytest.raises(TrainError, match="already holds"):
        train(small_config(tiny, tmp_path / "split"))
    with pytest.raises(TrainError, match="different settings"):
        train(small_config(tiny, tmp_path / "split", lr=2e-3, resume=True))
    rest = train(small_config(tiny, tmp_path / "split", resume=True))
    assert rest.epochs_done == 4 and rest.steps == full.steps

    a = load_checkpoint(tmp_path / "full" / "last.safetensors").state_dict()
    b = load_checkpoint(tmp_path / "split" / "last.safetensors").state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert rest.last_metrics == full.last_metrics
    log = [json.loads(line) for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if e["kind"] == "step"] == list(range(1, full.steps + 1))
    report = json.loads((tmp_path / "split" / "report.json").read_text())
    assert report["steps"] == full.steps and report["method"] == "anomalyclip"
    assert (tmp_path / "full" / "best.safetensors").is_file()
    best = load_checkpoint(tmp_path / "full")     # a run folder loads its best checkpoint
    torch.testing.assert_close(best.ncentroid, load_checkpoint(tmp_path / "full" / "last.safetensors").ncentroid)


def test_bad_input_is_listed_before_work_starts(tiny, tmp_path):
    (tmp_path / "normal.txt").write_text("train/Normal_00001 0 299 4\nmissing_video 0 99 4\nx 0 9 1 2\n")
    (tmp_path / "ann.txt").write_text("broken.mp4 Riot 5\n")
    config = small_config(tiny, tmp_path / "out", train_normal=str(tmp_path / "normal.txt"),
                          annotations=str(tmp_path / "ann.txt"), batch_size=10)
    with pytest.raises(DataError) as err:
        train(config)
    text = str(err.value)
    assert "missing_video" in text and "cannot be batched" in text and "broken" in text
    assert "fewer than the 5 abnormal clips" in text
    assert not (tmp_path / "out").exists()
    with pytest.raises(TrainError, match="batch_size"):
        train(small_config(tiny, tmp_path / "out", batch_size=3))


@pytest.mark.slow
def test_short_cpu_run_beats_the_untrained_model(tmp_path):
    """A few epochs on synthetic data (xd, fixture CLIP): every metric above the untrained model's."""
    if not FIXTURE_CLIP.is_file():
        pytest.skip(f"{FIXTURE_CLIP} not found (../shared is absent)")
    synth_dir = synth_anomalyclip(tmp_path / "synth", n_train=32, n_test=12, seed=0)
    config = small_config(synth_dir, tmp_path / "run", epochs=6, batch_size=8)
    model_config, _ = get_preset("xd")
    recipe = effective_recipe(config)
    data = load_inputs(config, model_config, recipe)
    untrained = fresh_model(model_config, config.clip, recipe.seed, "cpu")
    set_normal_centroid(untrained, data.normal)
    before = evaluate(untrained, data)
    result = train(config)
    after = result.last_metrics
    for name in ("auc_roc", "auc_pr", "mean_mc_auroc", "mean_mc_aupr"):
        assert after[name] > before[name], (name, before[name], after[name])
