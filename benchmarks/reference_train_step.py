"""A straightforward per-video training step, as a baseline for `vadclip.train.train_step`.

The same computation as the official training step, written the plain way: the text encoded once
with a loop over classes, then each video through the official-style forward (batch of 1), the
C-branch, MIL-Align and contrastive losses computed per video with Python loops, one backward, and
AdamW written out by hand (the same update as `torch.optim.AdamW`, weight decay decoupled).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from reference_forward import _encode_text_loop, official_style_forward
from vadclip.model import VadCLIP


def per_video_losses(model: VadCLIP, features: torch.Tensor, lengths: torch.Tensor, multi_hot: torch.Tensor,
                     class_names: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss_c, loss_a, contrastive before its weight), one video at a time."""
    t0 = _encode_text_loop(model, class_names)
    loss_c, loss_a = 0.0, 0.0
    for i in range(features.shape[0]):
        _, logits_c, logits_a = official_style_forward(model, features[i:i + 1], lengths[i:i + 1], class_names, t0)
        L = int(lengths[i])
        k = int(L / 16 + 1)
        score = torch.sigmoid(logits_c[0, :L, 0]).topk(k).values.mean()
        y = 1.0 - multi_hot[i, 0]
        loss_c = loss_c - (y * torch.log(score) + (1 - y) * torch.log(1 - score))
        video_logits = logits_a[0, :L].topk(k, dim=0).values.mean(dim=0)
        target = multi_hot[i] / multi_hot[i].sum()
        loss_a = loss_a - (target * F.log_softmax(video_logits, dim=0)).sum()
    t = t0 / t0.norm(dim=-1, keepdim=True)
    contrast = sum(torch.abs(t[0] @ t[j]) for j in range(1, t.shape[0])) / (t.shape[0] - 1)
    n = features.shape[0]
    return loss_c / n, loss_a / n, contrast


class HandAdamW:
    """AdamW written out (betas 0.9/0.999, eps 1e-8), one tensor at a time."""

    def __init__(self, params: list[torch.nn.Parameter], lr: float, weight_decay: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params, self.lr, self.wd, self.betas, self.eps = list(params), lr, weight_decay, betas, eps
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            p.mul_(1 - self.lr * self.wd)
            m_hat = m / (1 - b1 ** self.t)
            v_hat = v / (1 - b2 ** self.t)
            p.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))


def per_video_train_step(model: VadCLIP, optimizer: HandAdamW, features: torch.Tensor, lengths: torch.Tensor,
                         multi_hot: torch.Tensor, class_names: list[str], contrast_weight: float) -> dict[str, float]:
    """One optimizer step, computed per video; returns the losses."""
    loss_c, loss_a, contrast = per_video_losses(model, features, lengths, multi_hot, class_names)
    loss = loss_c + loss_a + contrast_weight * contrast
    for p in optimizer.params:
        p.grad = None
    loss.backward()
    optimizer.step()
    return {"loss": loss.item(), "loss_c": loss_c.item(), "loss_a": loss_a.item(), "loss_contrast": contrast.item()}
