"""The model against the official code's own outputs, and each of its parts on its own."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import vadclip
from vadclip import losses
from vadclip.config import XD_CODE_TO_CLASS, model_config
from vadclip.inference import chunk_features
from vadclip.model import distance_adjacency, similarity_adjacency, window_attention_mask
from vadclip.prompt import max_name_tokens, tokenize_class_names, validate_class_names

from reference_forward import official_mlp, official_style_forward, official_temporal, quick_gelu  # benchmarks/


def _multi_hot(labels, names):
    mh = torch.zeros(len(labels), len(names))
    for i, label in enumerate(labels):
        for code in str(label).split("-"):
            if code in XD_CODE_TO_CLASS:
                mh[i, names.index(XD_CODE_TO_CLASS[code])] = 1
    return mh


# ----------------------------------------------------------------------------- parity

def test_forward_matches_official(official_model, parity):
    names = list(parity["class_names"])
    with torch.no_grad():
        out = official_model(torch.from_numpy(parity["batch_features"]),
                             torch.from_numpy(parity["batch_lengths"]), names)
    for key in ("text_features", "logits_c", "logits_a"):
        np.testing.assert_allclose(getattr(out, key).numpy(), parity[key], atol=1e-4, rtol=0, err_msg=key)


def test_losses_match_official(official_model, parity):
    names = list(parity["class_names"])
    lengths = torch.from_numpy(parity["batch_lengths"])
    with torch.no_grad():
        out = official_model(torch.from_numpy(parity["batch_features"]), lengths, names)
    mh = _multi_hot(parity["batch_labels"], names)
    assert losses.loss_c(out.logits_c, lengths, 1 - mh[:, 0]).item() == pytest.approx(float(parity["loss_c"]), abs=1e-5)
    assert losses.loss_mil_align(out.logits_a, lengths, mh).item() == pytest.approx(float(parity["loss_a"]), abs=1e-5)
    assert losses.loss_contrastive(out.text_features).item() == pytest.approx(float(parity["loss_contrast"][0]), abs=1e-5)
    total = losses.total_loss(out, lengths, mh, contrast_weight=1e-4)
    expected = float(parity["loss_c"]) + float(parity["loss_a"]) + 1e-4 * float(parity["loss_contrast"][0])
    assert total["loss"].item() == pytest.approx(expected, abs=1e-5)


def test_video_scores_match_official(official_model, parity):
    s = vadclip.score_features(official_model, parity["video_features"], list(parity["class_names"]))
    np.testing.assert_allclose(s.coarse_c, parity["video_coarse_c"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(s.coarse_a, parity["video_coarse_a"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(s.fine, parity["video_fine"], atol=1e-4, rtol=0)
    assert not s.random_weights


def test_default_vocabulary_is_the_preset(official_model, parity):
    s = vadclip.score_features(official_model, parity["video_features"][:40])
    assert s.class_names == list(model_config("xd").class_names) == list(parity["class_names"])


# ----------------------------------------------------------------------------- parts

def test_window_mask_blocks():
    m = window_attention_mask(256, 64)
    assert m.shape == (256, 256)
    assert (m[:64, :64] == 0).all() and torch.isinf(m[:64, 64:]).all()
    assert (m[192:, 192:] == 0).all() and torch.isinf(m[192:, :192]).all()
    m8 = window_attention_mask(256, 8)
    assert int((m8 == 0).sum()) == 32 * 8 * 8
    # a window width that does not divide T: the last window runs to T (no all -inf rows)
    m100 = window_attention_mask(256, 100)
    assert (m100[100:, 100:] == 0).all() and torch.isinf(m100[:100, 100:]).all()
    assert not torch.isinf(m100).all(dim=1).any()


@pytest.mark.parametrize("window", [6, 8, 7, 30])       # tiling, tiling, last window longer, one window
def test_local_temporal_matches_masked_attention(window):
    """Windows run as separate sequences and padding-only windows shared: same values and gradients."""
    from vadclip.model import LocalTemporal
    torch.manual_seed(0)
    T, D = 24, 32
    module = LocalTemporal(D, layers=2, heads=2, window=window)
    position = torch.randn(T, D) * 0.5
    lengths = torch.tensor([24, 13, 1, 6, 7, 18])
    valid = torch.arange(T)[None, :] < lengths[:, None]
    feats = torch.randn(len(lengths), T, D).masked_fill(~valid[..., None], 0.0)
    mask = window_attention_mask(T, window)

    def run(fn):
        pos = position.clone().requires_grad_(True)
        f = feats.clone().requires_grad_(True)
        out = fn(f + pos, pos)
        weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
        (out * weight).sum().backward()
        grads = [pos.grad, f.grad[valid]] + [q.grad.clone() for q in module.parameters()]
        module.zero_grad()
        return out.detach(), grads

    ours, g_ours = run(lambda x, pos: module(x, lengths, pos, mask))
    ref, g_ref = run(lambda x, pos: official_temporal(module, x, mask))
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-5)
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, atol=5e-5, rtol=1e-4)


def test_quick_gelu_mlp_matches_plain_mlp():
    from vadclip.model import QuickGELU, QuickGELUMLP
    torch.manual_seed(0)
    m = QuickGELUMLP(16).double()
    x = torch.randn(2, 5, 16, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: m(x), (x,))
    ref = official_mlp(m, x)
    out = m(x)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(out)
    params = [x] + list(m.parameters())
    for a, b in zip(torch.autograd.grad(out, params, g), torch.autograd.grad(ref, params, g)):
        torch.testing.assert_close(a, b)
    h = m.c_fc(x)
    torch.testing.assert_close(QuickGELU()(h), quick_gelu(h))


def test_c_branch_is_classifier_of_x_plus_mlp2(official_model):
    """The folded C-branch equals the official classifier(X + mlp2(X)), values and gradients."""
    import copy
    model = copy.deepcopy(official_model)
    torch.manual_seed(0)
    X = torch.randn(3, 10, model.config.visual_width, requires_grad=True)
    params = [X] + list(model.mlp2.parameters()) + list(model.classifier.parameters())
    ours = model.c_branch(X)
    ref = model.classifier(X + official_mlp(model.mlp2, X))
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(ours)
    for a, b in zip(torch.autograd.grad(ours, params, g), torch.autograd.grad(ref, params, g)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_forward_and_gradients_match_the_plain_official_computation(official_model, parity):
    """Whole model: our forward (windows as sequences, shared padding windows, folded C-branch)
    against the official computation written plainly (benchmarks/reference_forward.py), values and
    the gradients of every adapter parameter."""
    import copy

    names = list(parity["class_names"])
    feats = torch.from_numpy(parity["batch_features"])
    lengths = torch.from_numpy(parity["batch_lengths"]).long()
    results = []
    for fn in (lambda m: m(feats, lengths, names), lambda m: official_style_forward(m, feats, lengths, names)):
        model = copy.deepcopy(official_model).train()
        out = fn(model)
        t0, logits_c, logits_a = (out.text_features, out.logits_c, out.logits_a) if hasattr(out, "logits_c") else out
        g = torch.Generator().manual_seed(0)
        loss = (logits_c * torch.randn(logits_c.shape, generator=g)).sum() \
            + (logits_a * torch.randn(logits_a.shape, generator=g)).sum() + t0.square().sum()
        loss.backward()
        results.append((logits_c.detach(), logits_a.detach(), [p.grad for p in model.adapter_parameters()]))
    (c1, a1, g1), (c2, a2, g2) = results
    torch.testing.assert_close(c1, c2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a1, a2, atol=1e-4, rtol=1e-5)
    for x, y in zip(g1, g2):
        scale = y.abs().max().clamp_min(1e-12)
        assert ((x - y).abs().max() / scale) < 1e-4


def test_padding_content_is_ignored(official_model, parity):
    """Positions past a video's length count as zero padding whatever they hold."""
    names = list(parity["class_names"])
    feats = torch.from_numpy(parity["batch_features"]).clone()
    lengths = torch.from_numpy(parity["batch_lengths"])
    assert (lengths < feats.shape[1]).any()
    noisy = feats.clone()
    pad = torch.arange(feats.shape[1])[None, :] >= lengths[:, None]
    noisy[pad] = torch.randn(int(pad.sum()), feats.shape[2])
    with torch.no_grad():
        a, b = official_model(feats, lengths, names), official_model(noisy, lengths, names)
    torch.testing.assert_close(a.logits_a, b.logits_a, atol=0, rtol=0)
    torch.testing.assert_close(a.logits_c, b.logits_c, atol=0, rtol=0)


def test_distance_adjacency_values():
    d = distance_adjacency(5)
    assert torch.allclose(d, torch.exp(-torch.tensor([[abs(i - j) for j in range(5)] for i in range(5)],
                                                     dtype=torch.float32) / np.e))
    assert torch.all(torch.diag(d) == 1)


def test_similarity_adjacency_matches_per_video_loop():
    torch.manual_seed(0)
    base = torch.randn(1, 1, 16)
    x = base + 0.6 * torch.randn(3, 20, 16)         # similar rows so some pass the 0.7 threshold
    lengths = torch.tensor([20, 7, 1])
    adj = similarity_adjacency(x, lengths)
    for b, L in enumerate(lengths.tolist()):
        xb = x[b, :L]
        sim = (xb @ xb.T) / (xb.norm(dim=-1, keepdim=True) @ xb.norm(dim=-1, keepdim=True).T + 1e-20)
        ref = torch.nn.functional.threshold(sim, 0.7, 0).softmax(dim=1)
        torch.testing.assert_close(adj[b, :L, :L], ref)
        assert (adj[b, L:] == 0).all() and (adj[b, :, L:] == 0).all()
    assert ((adj[0] > 0) & (adj[0] < 1)).any()


def test_prompt_positions(official_model):
    tok = official_model.tokenizer
    t = tokenize_class_names(tok, ["normal", "car accident", "a much longer class name here"], 10, 10)
    k = t.ids.argmax(dim=-1)
    assert k.tolist() == [2, 3, 7]                   # start + n tokens, then end token
    assert t.eot_position.tolist() == (10 + k + 10).tolist()
    for c in range(3):
        src = t.source_index[c]
        assert src[0] == 0
        assert src[t.eot_position[c]] == k[c]
        kc = int(k[c])
        assert src[11:10 + kc].tolist() == list(range(1, kc))
        learned = torch.ones(77, dtype=torch.bool)
        learned[[0, *range(11, 10 + kc), int(t.eot_position[c])]] = False
        assert (src[learned] == -1).all()


def test_vocabulary_validation(official_model):
    tok = official_model.tokenizer
    with pytest.raises(ValueError, match="normal class"):
        validate_class_names(["normal"])
    with pytest.raises(ValueError, match="empty class name"):
        validate_class_names(["normal", "  "])
    with pytest.raises(ValueError, match="duplicate"):
        validate_class_names(["normal", "Fight", "fight"])
    with pytest.raises(ValueError, match="not one string"):
        validate_class_names("normal,fight")
    limit = max_name_tokens(10, 10)
    with pytest.raises(ValueError, match=f"at most {limit} CLIP tokens"):
        tokenize_class_names(tok, ["normal", "word " * (limit + 1)], 10, 10)
    tokenize_class_names(tok, ["normal", " ".join(["word"] * limit)], 10, 10)   # exactly fits


def test_any_vocabulary_scores(official_model, parity):
    names = ["normal", "fight", "fire", "person falling down stairs"]
    s = vadclip.score_features(official_model, parity["video_features"][:300], names)
    assert s.fine.shape == (300, 4)
    np.testing.assert_allclose(s.fine.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(s.coarse_a, 1 - s.fine[:, 0], atol=1e-6)


def test_topk_lengths_and_mean():
    assert losses.topk_per_video(torch.tensor([1, 15, 16, 31, 32, 256])).tolist() == [1, 1, 2, 2, 3, 17]
    torch.manual_seed(1)
    v = torch.randn(3, 40, 2)
    lengths = torch.tensor([40, 17, 3])
    got = losses.topk_mean(v, lengths)
    for b, L in enumerate(lengths.tolist()):
        k = int(L / 16 + 1)
        ref = torch.topk(v[b, :L], k, dim=0).values.mean(dim=0)
        torch.testing.assert_close(got[b], ref)


@pytest.mark.parametrize("n", [1, 255, 256, 257, 600])
def test_chunking(official_model, parity, n):
    feats = parity["video_features"][:n] if n <= 600 else None
    chunks, lengths = chunk_features(torch.from_numpy(feats), 256)
    assert chunks.shape == (-(-n // 256), 256, 512)
    assert lengths.sum().item() == n and (lengths[:-1] == 256).all()
    assert torch.equal(chunks.reshape(-1, 512)[:n], torch.from_numpy(feats))
    assert (chunks.reshape(-1, 512)[n:] == 0).all()
    s = vadclip.score_features(official_model, feats)
    assert s.coarse_c.shape == (n,) and s.coarse_a.shape == (n,) and s.fine.shape == (n, 7)
    # chunks are independent: each chunk scored alone gives the same numbers
    first = vadclip.score_features(official_model, feats[: min(n, 256)])
    np.testing.assert_allclose(s.coarse_c[: min(n, 256)], first.coarse_c, atol=1e-5)


def test_chunk_batches_do_not_change_scores(official_model, parity):
    a = vadclip.score_features(official_model, parity["video_features"], max_chunks_per_batch=1)
    b = vadclip.score_features(official_model, parity["video_features"], max_chunks_per_batch=64)
    np.testing.assert_allclose(a.fine, b.fine, atol=1e-5)


def test_out_of_memory_falls_back_to_smaller_batches(official_model, parity, monkeypatch):
    feats = np.concatenate([parity["video_features"]] * 3)           # several chunks
    expected = vadclip.score_features(official_model, feats)
    forward = type(official_model).forward
    sizes = []

    def tight_memory(self, features, *args, **kwargs):
        sizes.append(features.shape[0])
        if features.shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(self, features, *args, **kwargs)

    monkeypatch.setattr(type(official_model), "forward", tight_memory)
    got = vadclip.score_features(official_model, feats, max_chunks_per_batch=4)
    assert sizes[0] > 1 and set(sizes[-3:]) == {1}
    np.testing.assert_allclose(got.fine, expected.fine, atol=1e-5)
    assert not official_model.training


def test_other_errors_are_not_retried(official_model, parity, monkeypatch):
    def broken(self, *args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(type(official_model), "forward", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        vadclip.score_features(official_model, parity["video_features"])


@pytest.mark.parametrize("bad, message", [
    (np.zeros((0, 512), np.float32), "N >= 1"),
    (np.zeros((10,), np.float32), r"\[N, 512\]"),
    (np.zeros((10, 256), np.float32), "256 dimensions"),
    (np.full((10, 512), np.nan, np.float32), "NaN"),
])
def test_score_features_bad_input(official_model, bad, message):
    with pytest.raises(ValueError, match=message):
        vadclip.score_features(official_model, bad)


def test_gradients_only_reach_the_adapter(official_model, parity):
    model = vadclip.load_official_checkpoint(parity_path(official_model), preset="xd")
    model.train()
    assert not model.clipmodel.training
    out = model(torch.from_numpy(parity["batch_features"]), torch.from_numpy(parity["batch_lengths"]),
                list(parity["class_names"]))
    (out.logits_c.sum() + out.logits_a.sum()).backward()
    assert all(p.grad is None for p in model.clipmodel.parameters())
    assert model.text_prompt_embeddings.weight.grad is not None
    assert model.frame_position_embeddings.weight.grad is not None


def parity_path(model) -> str:
    from conftest import OFFICIAL
    return str(OFFICIAL / "official_xd.pth")
