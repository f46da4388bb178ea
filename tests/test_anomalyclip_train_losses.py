"""AnomalyCLIP segment selection and losses against the official training batch and the plain
per-clip transcription (benchmarks/reference_anomalyclip_train_step.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import SHARED
from reference_anomalyclip_train_step import official_losses
from vadclip.anomalyclip.losses import LOSS_NAMES, anomalyclip_losses, draw_keep_mask, select_segments

FIXTURE = SHARED / "fixtures" / "anomalyclip" / "parity_xd.npz"


@pytest.fixture(scope="module")
def batch():
    if not FIXTURE.is_file():
        pytest.skip(f"{FIXTURE} not found (../shared is absent)")
    return dict(np.load(FIXTURE))


def fixture_tensors(z):
    logits = torch.tensor(z["train_logits"]).view(4, 512, -1)
    scores = torch.tensor(z["train_scores"]).view(4, 512)
    return logits, scores, torch.tensor(z["train_labels"]), torch.tensor(z["train_segment_mask"])


def test_selection_and_losses_match_the_official_batch(batch):
    logits, scores, labels, keep = fixture_tensors(batch)
    normal_id = int(batch["normal_id"])
    sel = select_segments(logits, labels, keep, normal_id)
    np.testing.assert_array_equal(sel.topk_abn.numpy(), batch["train_idx_topk_abn"])
    np.testing.assert_array_equal(sel.topk_nor.numpy(), batch["train_idx_topk_nor"])
    np.testing.assert_array_equal(sel.bottomk_abn.numpy(), batch["train_idx_bottomk_abn"])
    losses = anomalyclip_losses(logits, scores, labels, sel, normal_id)
    assert set(losses) == {"loss", *LOSS_NAMES}
    for name in LOSS_NAMES:
        assert abs(float(losses[name]) - float(batch[f"loss_{name}"])) < 1e-5, name
    assert abs(float(losses["loss"]) - float(batch["loss_total"])) < 1e-5


def test_keep_mask_is_the_official_draw(batch):
    """The fixture's mask is the second of two Bernoulli(0.3) draws from torch seed 2 (top, then
    bottom mask; the bottom one serves both)."""
    keep = draw_keep_mask(4, 32, 0.7, torch.Generator().manual_seed(2))
    np.testing.assert_array_equal(keep.numpy(), batch["train_segment_mask"])
    with torch.random.fork_rng():
        torch.manual_seed(2)
        np.testing.assert_array_equal(draw_keep_mask(4, 32, 0.7).numpy(), batch["train_segment_mask"])


def test_fewer_than_k_survivors_fill_up_with_dropped_segments():
    torch.manual_seed(0)
    logits = torch.randn(4, 512, 6)
    labels = torch.tensor([0, 5, 4, 4])
    keep = torch.zeros(4, 32)
    keep[:, 7] = 1                       # one surviving segment per clip
    sel = select_segments(logits, labels, keep, normal_id=4)
    for idx in (sel.topk_abn, sel.topk_nor, sel.bottomk_abn):
        assert idx.shape == (2, 3) and (idx[:, 0] == 7).all()
        assert all(len(set(row.tolist())) == 3 for row in idx)


def test_batched_losses_and_gradients_equal_the_per_clip_transcription():
    torch.manual_seed(1)
    B, A, normal_id = 8, 6, 4
    logits = torch.randn(B, 512, A, dtype=torch.float64, requires_grad=True)
    raw = torch.randn(B, 512, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 5, 6, 4, 4, 4, 4])
    keep = draw_keep_mask(B, 32, 0.7, torch.Generator().manual_seed(3))
    scores = torch.sigmoid(raw)
    sel = select_segments(logits, labels, keep, normal_id)
    ours = anomalyclip_losses(logits, scores, labels, sel, normal_id)
    ref = official_losses(logits.reshape(-1, A), scores.reshape(-1), labels, sel.topk_abn, sel.topk_nor,
                          sel.bottomk_abn, normal_id)
    for name in ("loss", *LOSS_NAMES):
        assert torch.allclose(ours[name], ref[name], atol=1e-12, rtol=0), name
    g_ours = torch.autograd.grad(ours["loss"], (logits, raw), retain_graph=True)
    g_ref = torch.autograd.grad(ref["loss"], (logits, raw))
    for a, b in zip(g_ours, g_ref):
        assert torch.allclose(a, b, atol=1e-12, rtol=0)
        assert a.abs().sum() > 0
